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
//! - `shared_never_waits`: 100,000 items at limit 16, on `futures::executor::block_on` and on a
//!   tokio current-thread runtime, with futures written as users write them (`async move { x }`,
//!   and `async move { yield_once(()).await; x }`), in 31 interleaved rounds (every round runs each
//!   once, in shuffled order): a plain lane, the same lane with a `Limiter` whose concurrency
//!   (2^30) never makes a start wait, and futures-buffered's `buffered_unordered(16)`. The figures
//!   are medians over the rounds: the plain lane's ns per item, the difference the limiter makes
//!   (ns per item), futures-buffered's ns per item, and the per-round ratio of the lane with the
//!   limiter to futures-buffered.
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
use common::{process_cpu_time, yield_once, Exec};

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
/// What `shared_never_waits` runs in each round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The lane alone.
    Plain,
    /// The same lane with a `Limiter` that never makes a start wait.
    Shared,
    /// futures-buffered's `buffered_unordered`, the peer.
    FuturesBuffered,
}

/// One drain of 100,000 items at limit 16, in ns per item: `yields` picks the futures
/// (`async move { x }`, or `async move { yield_once(()).await; x }`).
fn never_waits_once(exec: Exec<'_>, who: Who, yields: bool, limiter: &Limiter) -> f64 {
    const N: u64 = 100_000;
    let f = move |x: u64| async move {
        if yields {
            yield_once(()).await;
        }
        x
    };
    let fold = |(c, s): (u64, u64), x: u64| ready((c + 1, s + x));
    let t0 = Instant::now();
    let (count, sum) = match who {
        Who::Plain => exec.block_on((0..N).lane(16).map_async(f).fold((0, 0), fold)),
        Who::Shared => exec.block_on(
            (0..N)
                .lane(16)
                .limiter(limiter)
                .map_async(f)
                .fold((0, 0), fold),
        ),
        Who::FuturesBuffered => exec.block_on(
            stream::iter(0..N)
                .map(f)
                .buffered_unordered(16)
                .fold((0, 0), fold),
        ),
    };
    let ns = t0.elapsed().as_nanos() as f64 / N as f64;
    assert_eq!((count, sum), (N, N * (N - 1) / 2));
    ns
}

fn shared_never_waits() {
    const ROUNDS: usize = 31;
    let limiter = Limiter::new().concurrency(1 << 30);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    println!(
        "shared_never_waits: 100,000 items at limit 16, {ROUNDS} interleaved rounds (each round \
         runs the three once, in shuffled order); medians"
    );
    for exec in [Exec::BlockOn, Exec::Tokio(&rt)] {
        for yields in [false, true] {
            let (mut plain, mut extra, mut vs_fb, mut fb) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                let mut order = [Who::Plain, Who::Shared, Who::FuturesBuffered];
                rng.shuffle(&mut order);
                let mut ns = [0.0; 3];
                for who in order {
                    ns[who as usize] = never_waits_once(exec, who, yields, &limiter);
                }
                plain.push(ns[0]);
                extra.push(ns[1] - ns[0]);
                vs_fb.push(ns[1] / ns[2]);
                fb.push(ns[2]);
            }
            println!(
                "  {:<21} {:<6} plain lane {:5.1} ns, with the Limiter {:+5.1} ns per item; \
                 futures-buffered {:5.1} ns (lane with the Limiter / futures-buffered: {:.2})",
                match exec {
                    Exec::BlockOn => "block_on",
                    Exec::Tokio(_) => "tokio current_thread",
                },
                if yields { "yield" } else { "ready" },
                median(plain),
                median(extra),
                median(fb),
                median(vs_fb),
            );
        }
    }
    assert_eq!(limiter.in_flight(), 0);
}

fn main() {
    // `cargo bench --no-run` builds it; `cargo bench` passes `--bench`.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    shared_never_waits();
    shared_100k();
}
