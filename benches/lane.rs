//! tasklane against its peers: futures-util (`buffer_unordered`, `buffered`) and futures-buffered
//! (`buffered_unordered`, `buffered_ordered`), on the same workloads in the same criterion groups.
//!
//! - `ready`: futures that are ready at their first poll (pure combinator overhead per item).
//! - `yield_once`: futures that wake themselves and return `Pending` once, then are ready (one wake
//!   and one re-poll per item).
//! - `wake_scaling`: `limit` futures gated by oneshot channels, all started, then released one at a
//!   time in a random order; the cost per wake must not grow with the number in flight.
//!
//! Every stream is driven by a manual poll loop with a no-op waker (criterion has no async executor
//! here), so what is measured is the combinator, not an executor. Each timed closure checks the
//! count and the sum of the outputs, so nothing is optimized away.

use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use futures::channel::oneshot;
use futures::stream::{self, Stream, StreamExt};
use futures::task::noop_waker_ref;
use futures_buffered::BufferedStreamExt;
use tasklane::prelude::*;

mod common;
use common::yield_once;

/// Items per run in the `ready` and `yield_once` groups.
const N: u64 = 100_000;

/// Concurrency limits for the `ready` and `yield_once` groups.
const LIMITS: [usize; 4] = [1, 16, 256, 4096];

/// Futures in flight (and the lane limit) for the `wake_scaling` group.
const IN_FLIGHT: [usize; 2] = [100, 10_000];

/// Seed for the release order in `wake_scaling`.
const SEED: u64 = 0x7a5c_1a9e;

/// Drains a stream of values (see [`common::drain`]).
fn drain<S: Stream<Item = u64>>(stream: S) -> (u64, u64) {
    common::drain(stream, Some)
}

/// Asserts what every run over `0..N` must yield.
fn check(drained: (u64, u64)) {
    common::check(N, drained);
}

/// The six implementations over `0..N` mapped through `f`, at each limit in [`LIMITS`], in one group.
fn compare<F, Fut>(group: &mut BenchmarkGroup<'_, WallTime>, f: F)
where
    F: Fn(u64) -> Fut + Copy,
    Fut: Future<Output = u64>,
{
    for limit in LIMITS {
        group.bench_function(BenchmarkId::new("tasklane_unordered", limit), |b| {
            b.iter(|| check(drain((0..black_box(N)).lane(limit).map_async(f))))
        });
        group.bench_function(BenchmarkId::new("tasklane_ordered", limit), |b| {
            b.iter(|| check(drain((0..black_box(N)).lane(limit).ordered().map_async(f))))
        });
        group.bench_function(BenchmarkId::new("futures_util_unordered", limit), |b| {
            b.iter(|| {
                check(drain(
                    stream::iter(0..black_box(N)).map(f).buffer_unordered(limit),
                ))
            })
        });
        group.bench_function(BenchmarkId::new("futures_util_ordered", limit), |b| {
            b.iter(|| check(drain(stream::iter(0..black_box(N)).map(f).buffered(limit))))
        });
        group.bench_function(BenchmarkId::new("futures_buffered_unordered", limit), |b| {
            b.iter(|| {
                check(drain(
                    stream::iter(0..black_box(N))
                        .map(f)
                        .buffered_unordered(limit),
                ))
            })
        });
        group.bench_function(BenchmarkId::new("futures_buffered_ordered", limit), |b| {
            b.iter(|| {
                check(drain(
                    stream::iter(0..black_box(N)).map(f).buffered_ordered(limit),
                ))
            })
        });
    }
}

/// Settings shared by every group: few samples, short measurements (the whole file runs in minutes).
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
}

/// Per-item overhead with futures that are ready at their first poll: `N` items through each
/// implementation, at each limit in [`LIMITS`], both orders.
fn ready_futures(c: &mut Criterion) {
    let mut group = c.benchmark_group("ready");
    configure(&mut group);
    group.throughput(Throughput::Elements(N));
    compare(&mut group, ready::<u64>);
    group.finish();
}

/// Per-item cost with futures that wake themselves once (`wake_by_ref`, then `Pending`) and are ready
/// at their second poll: one wake and one re-poll per item on top of the `ready` cost.
fn yield_once_futures(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield_once");
    configure(&mut group);
    group.throughput(Throughput::Elements(N));
    compare(&mut group, yield_once);
    group.finish();
}

/// The senders of one `wake_scaling` run, each with the value it sends, in release order.
type Senders = Vec<(u64, oneshot::Sender<u64>)>;

/// Builds the gated stream for one `wake_scaling` run, outside the timed part: `limit` oneshot
/// receivers fed to `make` (the stream under test, boxed), polled until all of them are in flight,
/// and the senders (with the value each sends) in a random order.
fn gated<S, M>(limit: usize, rng: &mut fastrand::Rng, make: M) -> (Pin<Box<S>>, Senders)
where
    S: Stream<Item = Result<u64, oneshot::Canceled>>,
    M: Fn(Vec<oneshot::Receiver<u64>>) -> S,
{
    let (mut senders, receivers): (Vec<_>, Vec<_>) = (0..limit as u64)
        .map(|i| {
            let (tx, rx) = oneshot::channel();
            ((i, tx), rx)
        })
        .unzip();
    rng.shuffle(&mut senders);
    let mut stream = Box::pin(make(receivers));
    let mut cx = Context::from_waker(noop_waker_ref());
    // Each implementation polls a bounded number of new futures per call (tasklane 64,
    // futures-buffered 61): poll often enough that every receiver has been polled once.
    for _ in 0..limit / 16 + 4 {
        assert!(stream.as_mut().poll_next(&mut cx).is_pending());
    }
    (stream, senders)
}

/// Releases the senders one at a time and takes the one output each release makes ready; asserts
/// that every value came out once. Returns the drained stream, so dropping it is not timed.
fn release<S>((mut stream, senders): (Pin<Box<S>>, Senders)) -> Pin<Box<S>>
where
    S: Stream<Item = Result<u64, oneshot::Canceled>>,
{
    let mut cx = Context::from_waker(noop_waker_ref());
    let limit = senders.len() as u64;
    let mut sum = 0;
    for (value, tx) in senders {
        tx.send(value).unwrap();
        loop {
            match stream.as_mut().poll_next(&mut cx) {
                Poll::Ready(Some(out)) => {
                    sum += out.unwrap();
                    break;
                }
                Poll::Ready(None) => panic!("the stream ended early"),
                Poll::Pending => {}
            }
        }
    }
    assert!(stream.as_mut().poll_next(&mut cx).is_ready());
    assert_eq!(sum, limit * (limit.saturating_sub(1)) / 2);
    stream
}

/// Cost per wake with many futures in flight: `limit` futures gated by oneshot receivers, all
/// started (lane limit = `limit`), then released one at a time in a random (seeded) order, each send
/// waking one slot and followed by the `poll_next` that yields its output. Only the releases and the
/// draining are timed; per-item time should stay flat from 100 to 10,000 in flight. Unordered only.
fn wake_scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("wake_scaling");
    configure(&mut group);
    for limit in IN_FLIGHT {
        group.throughput(Throughput::Elements(limit as u64));
        let mut rng = fastrand::Rng::with_seed(SEED);
        group.bench_function(BenchmarkId::new("tasklane_unordered", limit), |b| {
            b.iter_batched(
                || gated(limit, &mut rng, |rxs| rxs.lane(limit).run()),
                release,
                BatchSize::SmallInput,
            )
        });
        let mut rng = fastrand::Rng::with_seed(SEED);
        group.bench_function(BenchmarkId::new("futures_util_unordered", limit), |b| {
            b.iter_batched(
                || {
                    gated(limit, &mut rng, |rxs| {
                        stream::iter(rxs).buffer_unordered(limit)
                    })
                },
                release,
                BatchSize::SmallInput,
            )
        });
        let mut rng = fastrand::Rng::with_seed(SEED);
        group.bench_function(BenchmarkId::new("futures_buffered_unordered", limit), |b| {
            b.iter_batched(
                || {
                    gated(limit, &mut rng, |rxs| {
                        stream::iter(rxs).buffered_unordered(limit)
                    })
                },
                release,
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// One `wake_scaling` run of one implementation outside criterion, for instruction and cache
/// counts: `reps` times, a gated stream is built and then released by [`release_counted`] (the only
/// function to count, e.g. `valgrind --tool=callgrind --toggle-collect='*release_counted*'`).
fn count_wake_scaling(implementation: &str, limit: usize, reps: usize) {
    let mut rng = fastrand::Rng::with_seed(SEED);
    for _ in 0..reps {
        match implementation {
            "tasklane" => drop(release_counted(gated(limit, &mut rng, |rxs| {
                rxs.lane(limit).run()
            }))),
            "futures_util" => drop(release_counted(gated(limit, &mut rng, |rxs| {
                stream::iter(rxs).buffer_unordered(limit)
            }))),
            "futures_buffered" => drop(release_counted(gated(limit, &mut rng, |rxs| {
                stream::iter(rxs).buffered_unordered(limit)
            }))),
            other => panic!("unknown implementation {other:?}"),
        }
    }
}

/// [`release`], never inlined, so that a profiler can count it alone.
#[inline(never)]
fn release_counted<S>(input: (Pin<Box<S>>, Senders)) -> Pin<Box<S>>
where
    S: Stream<Item = Result<u64, oneshot::Canceled>>,
{
    release(input)
}

/// One `ready` or `yield_once` run of one implementation outside criterion (see
/// [`count_wake_scaling`]), counted in [`drain_counted`].
fn count_drain(kind: &str, implementation: &str, limit: usize) {
    fn run<F: Fn(u64) -> Fut + Copy, Fut: Future<Output = u64>>(f: F, imp: &str, limit: usize) {
        let n = black_box(N);
        match imp {
            "tasklane_unordered" => check(drain_counted((0..n).lane(limit).map_async(f))),
            "tasklane_ordered" => check(drain_counted((0..n).lane(limit).ordered().map_async(f))),
            "futures_buffered_unordered" => check(drain_counted(
                stream::iter(0..n).map(f).buffered_unordered(limit),
            )),
            "futures_buffered_ordered" => check(drain_counted(
                stream::iter(0..n).map(f).buffered_ordered(limit),
            )),
            other => panic!("unknown implementation {other:?}"),
        }
    }
    match kind {
        "ready" => run(ready::<u64>, implementation, limit),
        "yield_once" => run(yield_once, implementation, limit),
        other => panic!("unknown kind {other:?}"),
    }
}

/// [`drain`], never inlined, so that a profiler can count it alone.
#[inline(never)]
fn drain_counted<S: Stream<Item = u64>>(stream: S) -> (u64, u64) {
    drain(stream)
}

// A plain `main` rather than `criterion_group!`, whose generated `pub fn` has no doc comment.
fn main() {
    // `LANE_COUNT=wake_scaling:<implementation>:<limit>:<reps>` or
    // `LANE_COUNT=<ready|yield_once>:<implementation>:<limit>`: one run outside criterion, for
    // valgrind (see BENCHMARKS.md).
    if let Ok(spec) = std::env::var("LANE_COUNT") {
        let parts: Vec<&str> = spec.split(':').collect();
        let number = |i: usize| -> usize { parts[i].parse().expect("a number") };
        match parts[0] {
            "wake_scaling" => count_wake_scaling(parts[1], number(2), number(3)),
            kind => count_drain(kind, parts[1], number(2)),
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    ready_futures(&mut c);
    yield_once_futures(&mut c);
    wake_scaling(&mut c);
    c.final_summary();
}
