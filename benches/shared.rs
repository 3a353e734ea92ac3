//! Shared limiters (`tasklane::Limiter`), on real time and at their cost when they never wait.
//!
//! - `shared_100k`: 4 lanes (limit 16 each, 25,000 instant items each) share one
//!   `Limiter::new().rate(100_000.0)` under one `futures::executor::block_on`: the figures are the
//!   rate reached (starts over the time from the first start to the last) and the CPU time per
//!   start of the whole process (the timer thread's included, from `/proc/self/task/*/schedstat`).
//!   Beside it, in the same run, the peer users reach for: one governor `Arc<RateLimiter>` shared
//!   by 4 streams, each item waiting in `until_ready()` in front of futures-buffered's
//!   `buffered_unordered(16)`; governor reaches a fraction of the rate, so its runs have 10,000
//!   items per stream and its figure is the same rate over its own time.
//! - `shared_never_waits`: 100,000 ready items at limit 16 under `block_on`, in interleaved rounds
//!   (every round runs each once, in shuffled order): a plain lane, and the same lane with a
//!   `Limiter` whose concurrency (2^30) never makes a start wait. The figure is the median over the
//!   rounds of the difference in ns per item, beside the plain lane's ns per item.
//!
//! `cargo bench -p tasklane-benches --bench shared` (about 30 s). Every run checks the count and the
//! sum of what came out.

use std::future::ready;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use futures_buffered::BufferedStreamExt;
use governor::{Quota, RateLimiter};
use tasklane::prelude::*;
use tasklane::Limiter;

#[allow(dead_code)]
// reason: this bench uses only `process_cpu_time` of the helpers the bench files share
mod common;
use common::process_cpu_time;

/// Lanes sharing one limiter.
const LANES: u64 = 4;
/// The shared rate, starts per second.
const RATE: u32 = 100_000;

/// What one run of `shared_100k` measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Starts per second, from the first start to the last.
    rate: f64,
    /// CPU time of the process per start.
    cpu_per_start: Duration,
}

/// Runs `body`, which starts `starts` items recording each start's time in `times`.
fn measure(
    starts: u64,
    times: &Mutex<(Option<Instant>, Option<Instant>)>,
    body: impl FnOnce(),
) -> Run {
    let cpu = process_cpu_time();
    body();
    let cpu = process_cpu_time() - cpu;
    let (first, last) = *times.lock().unwrap();
    let span = last.unwrap() - first.unwrap();
    Run {
        rate: (starts - 1) as f64 / span.as_secs_f64(),
        cpu_per_start: cpu / starts as u32,
    }
}

/// Notes a start in `times` (the first and the last).
fn note(times: &Mutex<(Option<Instant>, Option<Instant>)>) {
    let now = Instant::now();
    let mut t = times.lock().unwrap();
    t.0.get_or_insert(now);
    t.1 = Some(now);
}

fn tasklane_shared(per_lane: u64) -> Run {
    let limiter = Limiter::new().rate(f64::from(RATE));
    let times = Arc::new(Mutex::new((None, None)));
    measure(LANES * per_lane, &times, || {
        let lanes: Vec<_> = (0..LANES)
            .map(|_| {
                let times = Arc::clone(&times);
                (0..per_lane)
                    .lane(16)
                    .limiter(&limiter)
                    .map_async(move |x| {
                        note(&times);
                        ready(x)
                    })
                    .fold((0u64, 0u64), |(c, s), x| ready((c + 1, s + x)))
            })
            .collect();
        let out = futures::executor::block_on(futures::future::join_all(lanes));
        for (count, sum) in out {
            assert_eq!((count, sum), (per_lane, per_lane * (per_lane - 1) / 2));
        }
    })
}

fn governor_shared(per_lane: u64) -> Run {
    let quota = Quota::per_second(NonZeroU32::new(RATE).unwrap()).allow_burst(NonZeroU32::MIN);
    let limiter = Arc::new(RateLimiter::direct(quota));
    let times = Arc::new(Mutex::new((None, None)));
    measure(LANES * per_lane, &times, || {
        let lanes: Vec<_> = (0..LANES)
            .map(|_| {
                let (limiter, times) = (Arc::clone(&limiter), Arc::clone(&times));
                stream::iter(0..per_lane)
                    .then(move |x| {
                        let (limiter, times) = (Arc::clone(&limiter), Arc::clone(&times));
                        async move {
                            limiter.until_ready().await;
                            note(&times);
                            x
                        }
                    })
                    // Each item, once admitted, is a ready future for futures-buffered.
                    .map(ready)
                    .buffered_unordered(16)
                    .fold((0u64, 0u64), |(c, s), x| ready((c + 1, s + x)))
            })
            .collect();
        let out = futures::executor::block_on(futures::future::join_all(lanes));
        for (count, sum) in out {
            assert_eq!((count, sum), (per_lane, per_lane * (per_lane - 1) / 2));
        }
    })
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn shared_100k() {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..3 {
        // Interleaved: each round runs both, the order alternating.
        if round % 2 == 0 {
            ours.push(tasklane_shared(25_000));
            theirs.push(governor_shared(10_000));
        } else {
            theirs.push(governor_shared(10_000));
            ours.push(tasklane_shared(25_000));
        }
    }
    println!(
        "shared_100k: {LANES} lanes sharing one rate of {RATE} per second (3 runs each, medians)"
    );
    for (name, runs) in [
        ("tasklane Limiter", &ours),
        (
            "governor Arc<RateLimiter> + until_ready + futures-buffered",
            &theirs,
        ),
    ] {
        let rate = median(runs.iter().map(|r| r.rate).collect());
        let cpu = median(runs.iter().map(|r| r.cpu_per_start).collect());
        let all: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.1} %", r.rate / f64::from(RATE) * 100.0))
            .collect();
        println!(
            "  {name}: {:.1} % of the rate (runs: {}), CPU {:.2} µs per start",
            rate / f64::from(RATE) * 100.0,
            all.join(", "),
            cpu.as_secs_f64() * 1e6
        );
    }
}

/// 100,000 ready items through one lane of limit 16, with `limiter` if given: ns per item.
fn never_waits_once(limiter: Option<&Limiter>) -> f64 {
    const N: u64 = 100_000;
    let lane = (0..N).lane(16);
    let t0 = Instant::now();
    let (count, sum) = match limiter {
        None => futures::executor::block_on(
            lane.map_async(|x| async move { x })
                .fold((0u64, 0u64), |(c, s), x| ready((c + 1, s + x))),
        ),
        Some(limiter) => futures::executor::block_on(
            lane.limiter(limiter)
                .map_async(|x| async move { x })
                .fold((0u64, 0u64), |(c, s), x| ready((c + 1, s + x))),
        ),
    };
    let ns = t0.elapsed().as_nanos() as f64 / N as f64;
    assert_eq!((count, sum), (N, N * (N - 1) / 2));
    ns
}

fn shared_never_waits() {
    let limiter = Limiter::new().concurrency(1 << 30);
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut plain, mut diff) = (Vec::new(), Vec::new());
    for _ in 0..31 {
        let first_plain = rng.bool();
        let (p, l) = if first_plain {
            let p = never_waits_once(None);
            (p, never_waits_once(Some(&limiter)))
        } else {
            let l = never_waits_once(Some(&limiter));
            (never_waits_once(None), l)
        };
        plain.push(p);
        diff.push(l - p);
    }
    assert_eq!(limiter.in_flight(), 0);
    println!(
        "shared_never_waits: plain lane {:.1} ns per item; with a Limiter that never waits +{:.1} ns \
         per item (median of 31 interleaved rounds)",
        median(plain),
        median(diff)
    );
}

fn main() {
    // `cargo bench --no-run` builds it; `cargo bench` passes `--bench`.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    shared_never_waits();
    shared_100k();
}
