//! The rate limiter, on real time and at its cost when it never has to wait.
//!
//! - `rate_100k`: 100,000 instant items at 100,000 starts per second (burst 1, limit 64) on
//!   `futures::executor::block_on` and the real timer. A run of the default (catch-up) schedule
//!   should take one second: the figure is the wall time per run (and per item), within 2 % of 1 s.
//!   Beside it, the same lane with `.strict_rate()` (burst 1, then bursts 10 and 100: at most that
//!   many starts in any 100 µs and 1 ms), which does not catch up after a late timer and so gives
//!   up part of the rate, and the same work admitted by governor's `until_ready()` in front of
//!   futures-buffered's `buffered_unordered(64)`. After the group, the CPU time per item of each
//!   (all threads of the process, the timer's included) is printed (from the threads' `schedstat`,
//!   Linux only).
//! - `rate_never_waits`: 100,000 ready items at limit 16, driven by a no-op-waker poll loop as in
//!   `benches/lane.rs`: a plain lane, the same lane with a `.rate()` so high it never makes a start
//!   wait (every start still asks the limiter and reads the clock), the same with `.strict_rate()`,
//!   and as the peer, futures-buffered without and with governor's `check()` per item in front of
//!   it.
//!
//! Every timed closure checks the count and the sum of what came out.

use std::future::{ready, Ready};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use futures::future::FutureExt;
use futures::stream::{self, StreamExt};
use futures_buffered::BufferedStreamExt;
use governor::{Quota, RateLimiter};
use tasklane::prelude::*;

#[allow(dead_code)]
// reason: this bench uses only `check`, `drain` and `process_cpu_time` of the shared helpers
mod common;
use common::{check, drain, process_cpu_time};

/// Items per run.
const N: u64 = 100_000;

/// (wall, cpu) of every timed run, per benchmark, printed after the group.
static RUNS: Mutex<Vec<(&'static str, Duration, Duration)>> = Mutex::new(Vec::new());

/// Runs `run` `iters` times, recording the wall and CPU time of each; returns the total wall time.
fn timed(name: &'static str, iters: u64, mut run: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (wall, cpu) = (Instant::now(), process_cpu_time());
        run();
        let (wall, cpu) = (wall.elapsed(), process_cpu_time() - cpu);
        RUNS.lock().unwrap().push((name, wall, cpu));
        total += wall;
    }
    total
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The schedules of `rate_100k`.
#[derive(Clone, Copy)]
enum Schedule {
    /// The default, burst 1.
    CatchUp,
    /// `.strict_rate()` with this burst.
    Strict(u32),
}

/// 100,000 instant items at 100,000 starts per second, limit 64, on real time, under `schedule`.
fn tasklane_100k(schedule: Schedule) {
    let lane = (0..N).lane(64).rate(100_000.0);
    let (lane, burst) = match schedule {
        Schedule::CatchUp => (lane, 1),
        Schedule::Strict(burst) => (lane.burst(burst).strict_rate(), u64::from(burst)),
    };
    let t0 = Instant::now();
    let mut last_start = t0;
    let (count, sum) = futures::executor::block_on(
        lane.map_async(|x| {
            last_start = Instant::now();
            ready(x)
        })
        .fold((0, 0), |(c, s), x| ready((c + 1, s + x))),
    );
    check(N, (count, sum));
    // Never faster than the rate: the last start comes at least (N - 1) periods after the first
    // (strict: the starts that the windows of `burst` periods before it allow).
    let periods = (N - 1) / burst * burst;
    assert!(last_start - t0 >= Duration::from_micros(10 * periods - 1_000));
}

/// The same admitted by governor's `until_ready()` (burst 1) in front of futures-buffered.
fn governor_100k() {
    let quota = Quota::per_second(NonZeroU32::new(100_000).unwrap()).allow_burst(NonZeroU32::MIN);
    let limiter = RateLimiter::direct(quota);
    let limiter = &limiter;
    let (count, sum) = futures::executor::block_on(
        stream::iter(0..N)
            // Each item waits for its permit, then becomes a ready future for futures-buffered.
            .then(|x| limiter.until_ready().map(move |()| ready(x)))
            .buffered_unordered(64)
            .fold((0, 0), |(c, s), x| ready((c + 1, s + x))),
    );
    check(N, (count, sum));
}

fn rate_100k(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_100k");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(12))
        .throughput(Throughput::Elements(N));
    group.bench_function("tasklane", |b| {
        b.iter_custom(|iters| timed("tasklane", iters, || tasklane_100k(Schedule::CatchUp)))
    });
    for (name, burst) in [
        ("tasklane_strict_burst_100", 100),
        ("tasklane_strict_burst_10", 10),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| timed(name, iters, || tasklane_100k(Schedule::Strict(burst))))
        });
    }
    // The strict schedule at burst 1 loses each start's timer lateness, as governor does (about 6 s
    // per run): one run per sample is enough (criterion warns that its ten take longer than this).
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("tasklane_strict", |b| {
        b.iter_custom(|iters| {
            timed("tasklane_strict", iters, || {
                tasklane_100k(Schedule::Strict(1))
            })
        })
    });
    // governor delivers about a tenth of the rate (9 s per run): give its ten runs the time.
    group.measurement_time(Duration::from_secs(95));
    group.bench_function("governor_until_ready_futures_buffered", |b| {
        b.iter_custom(|iters| {
            timed(
                "governor_until_ready_futures_buffered",
                iters,
                governor_100k,
            )
        })
    });
    group.finish();
    let runs = std::mem::take(&mut *RUNS.lock().unwrap());
    for name in [
        "tasklane",
        "tasklane_strict",
        "tasklane_strict_burst_10",
        "tasklane_strict_burst_100",
        "governor_until_ready_futures_buffered",
    ] {
        let wall: Vec<Duration> = runs.iter().filter(|r| r.0 == name).map(|r| r.1).collect();
        let cpu: Vec<Duration> = runs.iter().filter(|r| r.0 == name).map(|r| r.2).collect();
        if wall.is_empty() {
            continue; // filtered out on the command line
        }
        let (wall, cpu) = (median(wall), median(cpu));
        println!(
            "rate_100k/{name}: median wall {:.4} s per run ({:.2} % off 1 s, {:.1} % of the rate), \
             median CPU {:.0} ns per item",
            wall.as_secs_f64(),
            (wall.as_secs_f64() - 1.0) * 100.0,
            100.0 / wall.as_secs_f64(),
            cpu.as_nanos() as f64 / N as f64
        );
    }
}

/// The cost of a `.rate()` that never makes a start wait.
fn rate_never_waits(c: &mut Criterion) {
    const L: usize = 16;
    let mut group = c.benchmark_group("rate_never_waits");
    group
        .throughput(Throughput::Elements(N))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    group.bench_function(BenchmarkId::new("tasklane", L), |b| {
        b.iter(|| {
            let lane = black_box(0..N).lane(L).map_async(ready);
            check(N, drain(lane, Some))
        })
    });
    group.bench_function(BenchmarkId::new("tasklane_rate", L), |b| {
        b.iter(|| {
            // A billion starts per second: every start asks the limiter and reads the clock, none
            // ever waits (an item takes longer than the 1 ns period).
            let lane = black_box(0..N).lane(L).rate(1e9).map_async(ready);
            check(N, drain(lane, Some))
        })
    });
    group.bench_function(BenchmarkId::new("tasklane_strict_rate", L), |b| {
        b.iter(|| {
            // The same with the strict schedule: a log of one start time, checked and overwritten
            // per start.
            let lane = black_box(0..N)
                .lane(L)
                .rate(1e9)
                .strict_rate()
                .map_async(ready);
            check(N, drain(lane, Some))
        })
    });
    group.bench_function(BenchmarkId::new("futures_buffered", L), |b| {
        b.iter(|| {
            let s = stream::iter(black_box(0..N))
                .map(ready)
                .buffered_unordered(L);
            check(N, drain(s, Some))
        })
    });
    group.bench_function(
        BenchmarkId::new("futures_buffered_governor_check", L),
        |b| {
            let quota = Quota::per_second(NonZeroU32::MAX);
            b.iter(|| {
                let limiter = RateLimiter::direct(quota);
                let s = stream::iter(black_box(0..N))
                    .map(|x| -> Ready<u64> {
                        limiter.check().expect("a quota this large never refuses");
                        ready(x)
                    })
                    .buffered_unordered(L);
                check(N, drain(s, Some))
            })
        },
    );
    group.finish();
}

// A plain `main` rather than `criterion_group!`, whose generated `pub fn` has no doc comment.
// About five minutes in all, most of it governor's runs of 9 s each and the strict schedule's of
// 6 s at burst 1.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    rate_never_waits(&mut c);
    rate_100k(&mut c);
    c.final_summary();
}
