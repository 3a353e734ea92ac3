//! The cost of an armed timeout that never fires: tasklane's `.timeout(60 s)` against a plain lane,
//! against tokio's `timeout` and against a futures-timer `Delay` per item (both on futures-buffered),
//! each beside the same stream without a timeout, so the overhead per item is a difference.
//!
//! - `timeout_ready`: futures that are ready at their first poll (`Ok(x)`).
//! - `timeout_yield_once`: futures that wake themselves and return `Pending` once, then are ready:
//!   the timeout is still armed after the first poll, so its registration is paid in full.
//!
//! tasklane and futures-buffered with a futures-timer `Delay` are driven by a manual poll loop with
//! a no-op waker, as in `benches/lane.rs`; futures-buffered with tokio's `timeout` needs a tokio
//! runtime, so it runs in a current-thread runtime's `block_on`, beside the same stream without a
//! timeout in the same runtime (`futures_buffered_no_timeout_tokio`). Each timed closure checks that
//! all `N` items came back `Ok` and their sum, so nothing is optimized away.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use futures::future::{self, Either};
use futures::stream::{self, Stream, StreamExt};
use futures_buffered::BufferedStreamExt;
use futures_timer::Delay;
use tasklane::prelude::*;

mod common;
use common::{drain, yield_once, YieldOnce};

/// Items per run.
const N: u64 = 100_000;

/// Concurrency limits.
const LIMITS: [usize; 2] = [16, 256];

/// A timeout that never fires in a run.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The futures' error type: there is none.
type Out = Result<u64, ()>;

/// A future that is ready at its first poll with `Ok(x)` (the same as `async move { Ok(x) }`).
async fn ready_ok(x: u64) -> Out {
    Ok(x)
}

/// A future that wakes itself and returns `Pending` at its first poll, and is ready with `Ok` at its
/// second.
fn yield_once_ok(value: u64) -> YieldOnce<Out> {
    yield_once(Ok(value))
}

/// The futures-timer variant's timeout error.
#[derive(Debug)]
struct TimedOut;

/// `fut` raced against a futures-timer `Delay` of [`TIMEOUT`], created (and registered with the
/// timer thread) now, as tokio's `timeout` takes its deadline at creation.
fn with_delay<Fut: Future>(fut: Fut) -> impl Future<Output = Result<Fut::Output, TimedOut>> {
    let delay = Delay::new(TIMEOUT);
    async move {
        match future::select(pin!(fut), delay).await {
            Either::Left((out, _delay)) => Ok(out),
            Either::Right(((), _fut)) => Err(TimedOut),
        }
    }
}

/// [`drain`] for a stream that needs a runtime: `StreamExt::next` in an async context.
async fn drain_async<S: Stream>(stream: S, ok: impl Fn(S::Item) -> Option<u64>) -> (u64, u64) {
    let mut stream = pin!(stream);
    let (mut count, mut sum) = (0, 0);
    while let Some(x) = stream.next().await {
        count += 1;
        sum += ok(x).expect("every item comes back Ok");
    }
    (count, sum)
}

/// Asserts what every run over `0..N` must yield.
fn check(drained: (u64, u64)) {
    common::check(N, drained);
}

/// The six implementations over `0..N` mapped through `f`, at each limit in [`LIMITS`], in one group:
/// tasklane without and with a timeout, futures-buffered without a timeout and with a futures-timer
/// `Delay` per item (manual poll loop), and futures-buffered without and with tokio's `timeout` (in a
/// current-thread tokio runtime). All unordered.
fn compare<F, Fut>(group: &mut BenchmarkGroup<'_, WallTime>, f: F)
where
    F: Fn(u64) -> Fut + Copy,
    Fut: Future<Output = Out>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    for limit in LIMITS {
        group.bench_function(BenchmarkId::new("tasklane_no_timeout", limit), |b| {
            b.iter(|| {
                check(drain(
                    (0..black_box(N)).lane(limit).map_async(f),
                    Result::ok,
                ))
            })
        });
        group.bench_function(BenchmarkId::new("tasklane_timeout_60s", limit), |b| {
            b.iter(|| {
                check(drain(
                    (0..black_box(N)).lane(limit).timeout(TIMEOUT).map_async(f),
                    |out: Result<u64, tasklane::Error<()>>| out.ok(),
                ))
            })
        });
        group.bench_function(
            BenchmarkId::new("futures_buffered_no_timeout", limit),
            |b| {
                b.iter(|| {
                    check(drain(
                        stream::iter(0..black_box(N))
                            .map(f)
                            .buffered_unordered(limit),
                        Result::ok,
                    ))
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("futures_buffered_futures_timer_delay", limit),
            |b| {
                b.iter(|| {
                    check(drain(
                        stream::iter(0..black_box(N))
                            .map(|x| with_delay(f(x)))
                            .buffered_unordered(limit),
                        |out| out.ok()?.ok(),
                    ))
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("futures_buffered_no_timeout_tokio", limit),
            |b| {
                b.iter(|| {
                    check(
                        rt.block_on(drain_async(
                            stream::iter(0..black_box(N))
                                .map(f)
                                .buffered_unordered(limit),
                            Result::ok,
                        )),
                    )
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("futures_buffered_tokio_timeout", limit),
            |b| {
                b.iter(|| {
                    // `timeout` needs the runtime's context when it is called: the stream calls it
                    // only when polled, inside `block_on`.
                    check(
                        rt.block_on(drain_async(
                            stream::iter(0..black_box(N))
                                .map(|x| tokio::time::timeout(TIMEOUT, f(x)))
                                .buffered_unordered(limit),
                            |out| out.ok()?.ok(),
                        )),
                    )
                })
            },
        );
    }
}

/// Settings shared by every group: few samples, short measurements (the whole file runs in minutes).
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    // NOTE: more samples than the lane bench: the quantity of interest (the difference between two
    // lanes, a few ns per item) is as small as this machine's run-to-run noise.
    group.sample_size(30);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(N));
}

/// Timeout overhead per item with futures that are ready at their first poll: the attempt ends in
/// the call that started it, so a lane never reads the clock for it; tokio's `timeout` never polls
/// (registers) its sleep; a futures-timer `Delay` is registered with its thread at creation anyway.
fn ready_futures(c: &mut Criterion) {
    let mut group = c.benchmark_group("timeout_ready");
    configure(&mut group);
    compare(&mut group, ready_ok);
    group.finish();
}

/// Timeout overhead per item with futures that wake themselves once and are ready at their second
/// poll: every timeout is armed for real and then removed (tasklane: the attempt is recorded when it
/// returns `Pending`, and would join the lane's timeout list at the next clock reading, at most one
/// per 64 `poll_next` calls; tokio: a timer-wheel entry; futures-timer: a heap entry on its thread).
fn yield_once_futures(c: &mut Criterion) {
    let mut group = c.benchmark_group("timeout_yield_once");
    configure(&mut group);
    compare(&mut group, yield_once_ok);
    group.finish();
}

// A plain `main` rather than `criterion_group!`, whose generated `pub fn` has no doc comment.
/// The same two tasklane lanes (without and with `.timeout(60 s)`) on yield-once futures, measured
/// *paired*: every iteration of either benchmark runs both lanes back to back, alternating which
/// goes first, and reports only its own lane's time. Drift of the machine between benchmarks (they
/// run minutes apart in the groups above) then cancels out of the difference, which is the quantity
/// of interest here and is as small as that drift.
fn paired_yield_once(c: &mut Criterion) {
    let mut group = c.benchmark_group("timeout_paired_yield_once");
    configure(&mut group);
    for limit in LIMITS {
        let plain = move || {
            check(drain(
                (0..black_box(N)).lane(limit).map_async(yield_once_ok),
                Result::ok,
            ))
        };
        let timed = move || {
            check(drain(
                (0..black_box(N))
                    .lane(limit)
                    .timeout(TIMEOUT)
                    .map_async(yield_once_ok),
                |out: Result<u64, tasklane::Error<()>>| out.ok(),
            ))
        };
        for (name, own_is_timed) in [
            ("tasklane_no_timeout", false),
            ("tasklane_timeout_60s", true),
        ] {
            group.bench_function(BenchmarkId::new(name, limit), |b| {
                b.iter_custom(|iters| {
                    let mut own = Duration::ZERO;
                    for i in 0..iters {
                        let timed_first = i % 2 == 0;
                        for timed_turn in [timed_first, !timed_first] {
                            let start = Instant::now();
                            if timed_turn {
                                timed();
                            } else {
                                plain();
                            }
                            if timed_turn == own_is_timed {
                                own += start.elapsed();
                            }
                        }
                    }
                    own
                })
            });
        }
    }
    group.finish();
}

/// One run of the plain or the timed tasklane lane outside criterion, for instruction and cache
/// counts, counted in [`drain_counted`] (e.g. `valgrind --tool=callgrind
/// --toggle-collect='*drain_counted*'`).
fn count(kind: &str, lane: &str, limit: usize) {
    fn run<F: Fn(u64) -> Fut + Copy, Fut: Future<Output = Out>>(f: F, lane: &str, limit: usize) {
        let n = black_box(N);
        match lane {
            "plain" => check(drain_counted((0..n).lane(limit).map_async(f), Result::ok)),
            "timed" => check(drain_counted(
                (0..n).lane(limit).timeout(TIMEOUT).map_async(f),
                |out: Result<u64, tasklane::Error<()>>| out.ok(),
            )),
            other => panic!("unknown lane {other:?}"),
        }
    }
    match kind {
        "ready" => run(ready_ok, lane, limit),
        "yield_once" => run(yield_once_ok, lane, limit),
        other => panic!("unknown kind {other:?}"),
    }
}

/// [`drain`], never inlined, so that a profiler can count it alone.
#[inline(never)]
fn drain_counted<S: Stream>(stream: S, ok: impl Fn(S::Item) -> Option<u64>) -> (u64, u64) {
    drain(stream, ok)
}

fn main() {
    // `TIMEOUT_COUNT=<ready|yield_once>:<plain|timed>:<limit>`: one run outside criterion, for
    // valgrind (see BENCHMARKS.md).
    if let Ok(spec) = std::env::var("TIMEOUT_COUNT") {
        let parts: Vec<&str> = spec.split(':').collect();
        count(parts[0], parts[1], parts[2].parse().expect("a limit"));
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    ready_futures(&mut c);
    yield_once_futures(&mut c);
    paired_yield_once(&mut c);
    c.final_summary();
}
