//! The `lane` capability: bounded concurrency, ordering, streaming, backpressure, early exit and the
//! engine guarantees of API.md section 8, for both terminals (`map_async`, `run`) and both orders.
//!
//! Scenario tests are named after their SCENARIOS.md ID. Completions are ordered with oneshot gates
//! or a fake clock, so most tests need no real time and run under Miri; the few that port a
//! real-time scenario are ignored there.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use common::*;
use futures::executor::block_on;
use futures::future::Either;
use futures::stream::{self, FusedStream};
use futures::{FutureExt, Stream, StreamExt};
use futures_test::stream::StreamTestExt;
use futures_test::task::noop_context;
use futures_test::{assert_stream_done, assert_stream_next, assert_stream_pending};
use proptest::prelude::*;
use tasklane::prelude::*;
use tasklane::{MapAsync, Run};

/// `full` normally, `miri` under Miri.
fn size(full: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        full
    }
}

/// Both output streams (and either of them), seen through what the tests need.
trait LaneStream: Stream + FusedStream {
    fn in_progress(&self) -> usize;
}

impl<St, Fut, F> LaneStream for MapAsync<St, F>
where
    St: Stream,
    Fut: Future,
    F: FnMut(St::Item) -> Fut,
{
    fn in_progress(&self) -> usize {
        MapAsync::in_progress(self)
    }
}

impl<St> LaneStream for Run<St>
where
    St: Stream,
    St::Item: Future,
{
    fn in_progress(&self) -> usize {
        Run::in_progress(self)
    }
}

impl<A: LaneStream, B: LaneStream<Item = A::Item>> LaneStream for Either<A, B> {
    fn in_progress(&self) -> usize {
        match self {
            Either::Left(a) => a.in_progress(),
            Either::Right(b) => b.in_progress(),
        }
    }
}

/// The instruments around a gated lane: item `i` finishes (with output `i`) once gate `i` opens.
struct Rig {
    tracker: Tracker,
    probe: InputProbe,
    openers: Vec<Option<Opener>>,
}

impl Rig {
    fn open(&mut self, i: usize) {
        self.openers[i].take().expect("gate opened twice").open();
    }
}

/// `n` gated items through `map_async`, from a counting input.
fn gated_map(n: usize, limit: usize, ordered: bool) -> (Rig, impl LaneStream<Item = usize>) {
    let tracker = Tracker::new();
    let (openers, gates) = gates(n);
    let (input, probe) = counting_iter(gates.into_iter().enumerate());
    let t = tracker.clone();
    let lane = input.lane(limit);
    let lane = if ordered { lane.ordered() } else { lane };
    let out = lane.map_async(move |(i, gate): (usize, Gate)| {
        t.track(i, async move {
            gate.await;
            i
        })
    });
    let rig = Rig {
        tracker,
        probe,
        openers,
    };
    (rig, out)
}

/// `n` gated futures through `run`, from a counting input (each future is made when pulled).
fn gated_run(n: usize, limit: usize, ordered: bool) -> (Rig, impl LaneStream<Item = usize>) {
    let tracker = Tracker::new();
    let (openers, gates) = gates(n);
    let t = tracker.clone();
    let futs = gates.into_iter().enumerate().map(move |(i, gate)| {
        t.track(i, async move {
            gate.await;
            i
        })
    });
    let (input, probe) = counting_iter(futs);
    let lane = input.lane(limit);
    let lane = if ordered { lane.ordered() } else { lane };
    let rig = Rig {
        tracker,
        probe,
        openers,
    };
    (rig, lane.run())
}

/// `n` gated items through `run` (`use_run`) or `map_async`.
fn gated(
    n: usize,
    limit: usize,
    ordered: bool,
    use_run: bool,
) -> (Rig, impl LaneStream<Item = usize>) {
    if use_run {
        let (rig, lane) = gated_run(n, limit, ordered);
        (rig, Either::Left(lane))
    } else {
        let (rig, lane) = gated_map(n, limit, ordered);
        (rig, Either::Right(lane))
    }
}

fn range(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

// =============================================================================================
// A. Concurrency limit (CL)
// =============================================================================================

/// CL-01: 50 items, limit 5, each 20 ms: the peak is exactly 5 (never more, and the slots fill), all
/// 50 results arrive, and the run takes at least 10 rounds of 20 ms.
#[test]
#[cfg_attr(miri, ignore)] // real time
fn cl_01_limit_is_respected_and_filled() {
    let gauge = Gauge::new();
    let g = gauge.clone();
    let start = Instant::now();
    let out: Vec<u32> = block_on(
        (0..50u32)
            .lane(5)
            .map_async(move |x| {
                let g = g.clone();
                async move {
                    let _active = g.enter();
                    sleep(20).await;
                    x
                }
            })
            .collect(),
    );
    let elapsed = start.elapsed();
    assert_eq!(sorted(out), (0..50).collect::<Vec<_>>());
    assert_eq!(gauge.peak(), 5);
    assert_eq!(gauge.active(), 0);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

/// CL-02: a gather (`ordered().run()`) of 20 futures with limit 3 runs exactly 3 at once.
#[test]
fn cl_02_gather_respects_and_fills_the_limit() {
    let gauge = Gauge::new();
    let futs = (0..20usize).map(|i| {
        let g = gauge.clone();
        async move {
            let _active = g.enter();
            yield_times(3).await;
            i
        }
    });
    let out: Vec<usize> = block_on_sync(futs.lane(3).ordered().run().collect());
    assert_eq!(out, range(20));
    assert_eq!(gauge.peak(), 3);
    assert_eq!(gauge.active(), 0);
}

/// CL-03: limit 3, ordered, x -> 2x over 0..10 with 20 ms of work: input order, at most (and, with
/// 10 > 3 items, exactly) 3 at once.
#[test]
#[cfg_attr(miri, ignore)] // real time
fn cl_03_ordered_lane_applies_its_settings() {
    let gauge = Gauge::new();
    let g = gauge.clone();
    let lane = (0..10u32).lane(3).ordered();
    assert_eq!(lane.limit(), 3);
    assert!(lane.is_ordered());
    let out: Vec<u32> = block_on(
        lane.map_async(move |x| {
            let g = g.clone();
            async move {
                let _active = g.enter();
                sleep(20).await;
                2 * x
            }
        })
        .collect(),
    );
    assert_eq!(out, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    assert_eq!(gauge.peak(), 3);
}

/// CL-04: limit 1 is sequential: items start in input order and never overlap (each one ends before
/// the next starts).
#[test]
#[cfg_attr(miri, ignore)] // real time
fn cl_04_limit_one_is_sequential() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    let out: Vec<u32> = block_on(
        (0..5u32)
            .lane(1)
            .map_async(move |x| {
                let l = Arc::clone(&l);
                async move {
                    l.lock().unwrap().push(("start", x));
                    sleep(10).await;
                    l.lock().unwrap().push(("end", x));
                    x
                }
            })
            .collect(),
    );
    assert_eq!(out, [0, 1, 2, 3, 4]);
    let expected: Vec<(&str, u32)> = (0..5).flat_map(|x| [("start", x), ("end", x)]).collect();
    assert_eq!(*log.lock().unwrap(), expected);
}

/// The CL-12 output for items that are all "H" but index `bad` ("S"), with limit `limit`.
fn cl_12_expected(n: usize, bad: usize, limit: usize) -> String {
    let mut v = vec!['H'; n - 1];
    let at = if bad < limit { 0 } else { bad - bad % limit };
    v.insert(at, 'S');
    v.into_iter().collect()
}

/// CL-12: a freed slot is refilled from the next input item in the same wake-up, in input order.
/// "H" takes one tick of a fake clock, "S" fails at once; the failure comes out at the start of its
/// batch (or first, when it is in the first batch), for lists, plain iterators and async inputs.
#[test]
fn cl_12_refill_is_immediate_and_in_input_order() {
    const N: usize = 6;
    for limit in 1..=3 {
        for bad in 0..N {
            for input_kind in 0..3 {
                let clock = FakeClock::new();
                let items: Vec<char> = (0..N).map(|i| if i == bad { 'S' } else { 'H' }).collect();
                let c = clock.clone();
                let work = move |item: char| {
                    let tick = c.sleep(1);
                    async move {
                        if item == 'S' {
                            return Err('S');
                        }
                        tick.await;
                        Ok('H')
                    }
                };
                let out: Vec<Result<char, char>> = match input_kind {
                    0 => Poller::new(items.clone().lane(limit).map_async(work)).run_on(&clock),
                    1 => Poller::new(items.iter().copied().lane(limit).map_async(work))
                        .run_on(&clock),
                    _ => Poller::new(
                        stream::iter(items.clone())
                            .interleave_pending()
                            .lane(limit)
                            .map_async(work),
                    )
                    .run_on(&clock),
                };
                let got: String = out.into_iter().map(|r| r.unwrap_or_else(|e| e)).collect();
                assert_eq!(
                    got,
                    cl_12_expected(N, bad, limit),
                    "limit {limit}, bad item {bad}, input kind {input_kind}"
                );
            }
        }
    }
}

// =============================================================================================
// B. Ordering (OR)
// =============================================================================================

/// OR-01: items 0..10, item x takes 10 - x ticks, limit 4, ordered: the squares come out in input
/// order although the items finish in reverse.
#[test]
fn or_01_ordered_preserves_input_order() {
    let clock = FakeClock::new();
    let tracker = Tracker::new();
    let (c, t) = (clock.clone(), tracker.clone());
    let lane = (0..10u64)
        .lane(4)
        .ordered()
        .map_async(move |x| t.track(x as usize, c.sleep(10 - x)).map(move |()| x * x));
    let out = Poller::new(lane).run_on(&clock);
    assert_eq!(out, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    let completed = tracker.completed();
    assert_eq!(
        &completed[..4],
        [3, 2, 1, 0],
        "the first batch finished in reverse"
    );
}

/// OR-02: an unsized input (size_hint (0, None)) of 0..=6, item x takes 7 - x ticks, limit 3,
/// ordered: 0..=6 in order.
#[test]
fn or_02_unsized_input_in_order() {
    let clock = FakeClock::new();
    let mut next = 0u64;
    let input = std::iter::from_fn(move || {
        (next < 7).then(|| {
            next += 1;
            next - 1
        })
    });
    assert_eq!(input.size_hint(), (0, None));
    let c = clock.clone();
    let lane = input
        .lane(3)
        .ordered()
        .map_async(move |x| c.sleep(7 - x).map(move |()| x));
    assert_eq!(Poller::new(lane).run_on(&clock), [0, 1, 2, 3, 4, 5, 6]);
}

/// OR-03: an async input that returns `Pending` between items; f(x) = x + 1; limit 3: [1..=6].
#[test]
fn or_03_async_input_that_pends_between_items() {
    let (input, probe) = counting(stream::iter(0..6u32).interleave_pending());
    let out: Vec<u32> = block_on_sync(
        input
            .lane(3)
            .ordered()
            .map_async(|x| async move { x + 1 })
            .collect(),
    );
    assert_eq!(out, [1, 2, 3, 4, 5, 6]);
    assert_eq!(probe.pulled(), 6);
    assert!(probe.polls() >= 12, "the input pended between items");
}

/// OR-04: a gather of 5 futures, x taking 5 - x ticks, limit 2: outputs in input order.
#[test]
fn or_04_gather_preserves_order() {
    let clock = FakeClock::new();
    let futs = (0..5u64).map(|x| clock.sleep(5 - x).map(move |()| x));
    let out = Poller::new(futs.lane(2).ordered().run()).run_on(&clock);
    assert_eq!(out, [0, 1, 2, 3, 4]);
}

/// OR-11: empty input: the first poll ends the stream, and `f` is never called (both orders, both
/// terminals).
#[test]
fn or_11_empty_input_ends_at_once() {
    for ordered in [false, true] {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let lane = Vec::<u32>::new().lane(4);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut out = lane.map_async(move |x| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { x }
        });
        assert_eq!(out.size_hint(), (0, Some(0)));
        assert_stream_done!(out);
        assert!(out.is_terminated());
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        let lane = Vec::<std::future::Ready<u32>>::new().lane(4);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut out = lane.run();
        assert_stream_done!(out);
        assert!(out.is_terminated());
    }
}

/// What one run of the reorder-window job measured: the ticks it took, the most futures alive at
/// once, the most items pulled and not yet yielded, and the outputs.
struct WindowRun {
    ticks: u64,
    peak_in_flight: usize,
    peak_in_progress: usize,
    out: Vec<u64>,
}

/// 64 items at limit 4, item `x` taking 20 ticks when `x % 16 == 0` and 1 tick otherwise, run
/// unordered, `ordered()` or `window(n)` on a fake clock.
fn window_job(mode: &str) -> WindowRun {
    let clock = FakeClock::new();
    let tracker = Tracker::new();
    let (c, t) = (clock.clone(), tracker.clone());
    let lane = (0..64u64).lane(4);
    let lane = match mode {
        "unordered" => lane,
        "ordered" => lane.ordered(),
        "window(4)" => lane.window(4),
        "window(16)" => lane.window(16),
        "window(48)" => lane.window(48),
        _ => unreachable!(),
    };
    let mut poller = Poller::new(lane.map_async(move |x| {
        let ticks = if x % 16 == 0 { 20 } else { 1 };
        t.track(x as usize, c.sleep(ticks)).map(move |()| x)
    }));
    let mut out = Vec::new();
    let mut peak_in_progress = 0;
    while !poller.is_done() {
        out.extend(poller.settle_checking(|s, _| {
            peak_in_progress = peak_in_progress.max(s.in_progress());
        }));
        if !poller.is_done() {
            assert!(
                clock.sleepers() > 0,
                "deadlock: the lane waits but nothing sleeps"
            );
            while clock.advance() == 0 {}
        }
    }
    WindowRun {
        ticks: clock.now(),
        peak_in_flight: tracker.peak(),
        peak_in_progress,
        out,
    }
}

/// Issue "A new user's first hour" §7: ordered output stalls behind one slow item, because finished
/// outputs waiting for their turn hold slots; a reorder window lets the lane run past it. With one
/// slow item (20 ticks) in 16 (1 tick each), limit 4, 64 items: unordered takes 44 ticks,
/// `ordered()` 92, `window(4)` 88, `window(16)` 54 and `window(48)` 44 (as fast as unordered: the
/// window holds every output finished while a slow item runs). A window of `n` keeps at most
/// `limit + n` items pulled and not yet yielded, and never more than `limit` in flight.
#[test]
fn a_reorder_window_lets_the_lane_run_past_a_slow_item() {
    let modes = [
        "unordered",
        "ordered",
        "window(4)",
        "window(16)",
        "window(48)",
    ];
    let runs: Vec<(&str, WindowRun)> = modes
        .into_iter()
        .map(|mode| (mode, window_job(mode)))
        .collect();
    for (mode, run) in &runs {
        println!(
            "{mode:>10}: {} ticks, peak in flight {}, peak pulled and not yielded {}",
            run.ticks, run.peak_in_flight, run.peak_in_progress
        );
        let mut sorted = run.out.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..64).collect::<Vec<_>>(),
            "{mode}: one output per item"
        );
        assert!(
            run.peak_in_flight <= 4,
            "{mode}: never more than the limit in flight"
        );
    }
    let [unordered, ordered, window4, window16, window48] = [0, 1, 2, 3, 4].map(|i| &runs[i].1);
    for run in [ordered, window4, window16, window48] {
        assert_eq!(run.out, (0..64).collect::<Vec<_>>(), "input order");
    }
    let ticks = [unordered, ordered, window4, window16, window48].map(|run| run.ticks);
    assert_eq!(ticks, [44, 92, 88, 54, 44]);
    assert!(ordered.peak_in_progress <= 4);
    for (run, n) in [(window4, 4), (window16, 16), (window48, 48)] {
        assert!(run.peak_in_progress <= 4 + n && run.peak_in_progress > 4);
    }
}

// =============================================================================================
// C. Streaming / completion order (ST)
// =============================================================================================

/// ST-01: items [3, 1, 2, 0] taking x ticks, limit 4, unordered: completion order [0, 1, 2, 3].
#[test]
fn st_01_yields_in_completion_order() {
    let clock = FakeClock::new();
    let c = clock.clone();
    let lane = [3u64, 1, 2, 0]
        .lane(4)
        .map_async(move |x| c.sleep(x).map(move |()| x));
    assert_eq!(Poller::new(lane).run_on(&clock), [0, 1, 2, 3]);
}

/// ST-02: 20 items of one yield each, limit 4: every result is there exactly once, whatever the order.
#[test]
fn st_02_all_results_present_regardless_of_order() {
    let tracker = Tracker::new();
    let t = tracker.clone();
    let out: Vec<usize> = block_on_sync(
        (0..20usize)
            .lane(4)
            .map_async(move |x| t.track(x, yield_times(1)).map(move |()| 10 * x))
            .collect(),
    );
    assert_eq!(out.len(), 20);
    assert_eq!(sorted(out), (0..20).map(|x| 10 * x).collect::<Vec<_>>());
    assert_eq!(tracker.peak(), 4);
}

/// ST-03: [0, 1, 2], limit 1, item 1 fails: three outputs, the error as a value, and the stream goes
/// on after it.
#[test]
fn st_03_errors_are_values_and_the_stream_continues() {
    let out: Vec<Result<u32, String>> = block_on_sync(
        (0..3u32)
            .lane(1)
            .map_async(|x| async move {
                yield_times(1).await;
                if x == 1 {
                    Err(format!("bad {x}"))
                } else {
                    Ok(x)
                }
            })
            .collect(),
    );
    assert_eq!(out, [Ok(0), Err("bad 1".to_string()), Ok(2)]);
}

/// ST-04: duplicates are processed individually, not de-duplicated.
#[test]
fn st_04_duplicates_are_processed_individually() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let out: Vec<String> = block_on_sync(
        ["apple", "banana", "cherry", "apple"]
            .lane(2)
            .map_async(move |s: &str| {
                c.fetch_add(1, Ordering::SeqCst);
                let cap = s[..1].to_uppercase() + &s[1..];
                async move { cap }
            })
            .collect(),
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(sorted(out), ["Apple", "Apple", "Banana", "Cherry"]);
}

/// ST-09: output starts before the input is exhausted: `take(3)` on a lane over an infinite input
/// returns 3 results and ends (both orders).
#[test]
fn st_09_infinite_input_streams_output() {
    for ordered in [false, true] {
        let (input, probe) = counting_iter(0u64..);
        let lane = input.lane(4);
        let lane = if ordered { lane.ordered() } else { lane };
        let out: Vec<u64> = block_on_sync(
            lane.map_async(|x| async move { x })
                .take(3)
                .collect::<Vec<_>>(),
        );
        assert_eq!(out.len(), 3);
        if ordered {
            assert_eq!(out, [0, 1, 2]);
        }
        assert!(probe.pulled() <= 3 + 4, "pulled {}", probe.pulled());
        assert!(probe.dropped());
    }
}

// =============================================================================================
// D. Backpressure, constant memory, lazy input (BP)
// =============================================================================================

/// BP-01: limit 3 over a 100-item input whose work blocks: exactly 3 items pulled and 3 started
/// (the input is read only when a slot is free), in both orders and for both terminals.
#[test]
fn bp_01_pulls_only_when_a_slot_is_free() {
    for ordered in [false, true] {
        let (rig, lane) = gated_map(100, 3, ordered);
        let mut p = Poller::new(lane);
        assert!(p.settle().is_empty());
        assert!(p.settle().is_empty(), "polling again pulls nothing more");
        assert_eq!(rig.probe.pulled(), 3);
        assert_eq!(rig.tracker.created(), [0, 1, 2]);
        assert_eq!(p.get().in_progress(), 3);

        let (rig, lane) = gated_run(100, 3, ordered);
        let mut p = Poller::new(lane);
        assert!(p.settle().is_empty());
        assert_eq!(rig.probe.pulled(), 3);
        assert_eq!(rig.tracker.created(), [0, 1, 2]);
    }
}

/// BP-02: 100 items of 10 s each, limit 5, the consuming future dropped after 50 ms: exactly 5 items
/// started and all 5 dropped, nothing left running, and the drop is prompt.
#[test]
#[cfg_attr(miri, ignore)] // real time
fn bp_02_external_cancellation_is_clean() {
    let tracker = Tracker::new();
    let t = tracker.clone();
    let (input, probe) = counting_iter(0..100usize);
    let run = input
        .lane(5)
        .map_async(move |i| t.track(i, sleep(10_000)))
        .collect::<Vec<()>>();
    let start = Instant::now();
    match block_on(futures::future::select(Box::pin(run), sleep(50))) {
        futures::future::Either::Left(_) => panic!("the 10 s work finished first"),
        futures::future::Either::Right(((), run)) => drop(run),
    }
    let elapsed = start.elapsed();
    assert_eq!(tracker.created(), range(5));
    assert_eq!(tracker.cancelled(), range(5));
    assert!(tracker.alive().is_empty());
    assert!(probe.dropped());
    assert_eq!(probe.pulled(), 5);
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

/// BP-09: a slow consumer. While the consumer does not poll, nothing new is pulled or started, at
/// most `limit` finished outputs wait, and in-flight work makes progress only when polled.
#[test]
fn bp_09_slow_consumer_bounds_buffered_results() {
    for ordered in [false, true] {
        // 100 instant items, limit 2: after the first result the lane holds exactly 2 more.
        let tracker = Tracker::new();
        let t = tracker.clone();
        let (input, probe) = counting_iter(0..100usize);
        let lane = input.lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p = Poller::new(lane.map_async(move |i| t.track(i, async move { i })));
        assert!(matches!(p.poll(), Poll::Ready(Some(_))));
        // The consumer pauses here.
        assert_eq!(
            probe.pulled(),
            3,
            "2 slots + the eager refill of the yielded one"
        );
        assert_eq!(tracker.completed().len(), 3);
        assert_eq!(p.get().in_progress(), 2);
        let rest = p.settle();
        assert_eq!(rest.len(), 99);
        assert!(p.is_done());

        // Gated items: opening gates while the consumer pauses runs nothing until it polls again.
        let (mut rig, lane) = gated_map(10, 2, ordered);
        let mut p = Poller::new(lane);
        assert!(p.settle().is_empty());
        rig.open(0);
        rig.open(1);
        assert!(
            rig.tracker.completed().is_empty(),
            "no spawning: no progress"
        );
        assert_eq!(rig.probe.pulled(), 2);
        assert_eq!(sorted(p.settle()), [0, 1]);
        assert_eq!(sorted(rig.tracker.completed()), [0, 1]);
    }
}

/// BP-10: a lane over an infinite input with limit 16 holds at most 16 items: `take(n)` pulls at most
/// n + 16 (API.md: at most `limit` pulled and not yet yielded; with the eager refill, exactly that).
#[test]
fn bp_10_infinite_input_in_bounded_memory() {
    for ordered in [false, true] {
        for n in [1, 5, size(10_000, 100)] {
            let (input, probe) = counting_iter(0u64..);
            let lane = input.lane(16);
            let lane = if ordered { lane.ordered() } else { lane };
            let mut p = Poller::new(lane.map_async(|x| async move { x }));
            for yielded in 1..=n {
                assert!(matches!(p.poll(), Poll::Ready(Some(_))));
                assert!(p.get().in_progress() <= 16);
                assert!(probe.pulled() - yielded <= 16);
            }
            assert!(probe.pulled() <= n + 16, "n {n}: pulled {}", probe.pulled());
            drop(p);
            assert!(probe.dropped());

            let (input, probe) = counting_iter(0u64..);
            let lane = input.lane(16);
            let lane = if ordered { lane.ordered() } else { lane };
            let out: Vec<u64> =
                block_on_sync(lane.map_async(|x| async move { x }).take(n).collect());
            assert_eq!(out.len(), n);
            assert!(probe.pulled() <= n + 16, "n {n}: pulled {}", probe.pulled());
        }
    }
}

/// BP-11: ordered, item 0 blocked, the rest instant, limit 3: only 3 items are pulled until item 0
/// finishes (like futures-util's `buffered`), then everything flows in order.
#[test]
fn bp_11_ordered_head_of_line_bounds_pulls() {
    let n = 20;
    let (mut rig, lane) = gated_map(n, 3, true);
    for i in 1..n {
        rig.open(i);
    }
    let mut p = Poller::new(lane);
    assert!(p.settle().is_empty());
    assert!(p.settle().is_empty());
    assert_eq!(rig.probe.pulled(), 3);
    assert_eq!(rig.tracker.completed(), [1, 2]);
    assert_eq!(p.get().in_progress(), 3);
    rig.open(0);
    assert_eq!(p.settle(), range(n));
    assert!(p.is_done());
}

// =============================================================================================
// J. Early exit, drop, external cancellation (EX)
// =============================================================================================

/// EX-01: take the first result and drop the stream: every started future is dropped and nothing more
/// is pulled. With limit 4, items 0..=4 started (item 0's slot was refilled with item 4) and 1..=4
/// cancelled; with limit 20, all 20 started and 1..20 cancelled.
#[test]
fn ex_01_early_break_drops_in_flight() {
    for (limit, started) in [(4, 5), (20, 20)] {
        let clock = FakeClock::new();
        let tracker = Tracker::new();
        let (c, t) = (clock.clone(), tracker.clone());
        let (input, probe) = counting_iter(0..20u64);
        let lane = input
            .lane(limit)
            .map_async(move |x| t.track(x as usize, c.sleep(x)).map(move |()| x));
        let mut p = Poller::new(lane);
        assert_stream_next!(p.pinned(), 0);
        drop(p);
        assert_eq!(tracker.created(), range(started));
        assert_eq!(tracker.cancelled(), (1..started).collect::<Vec<_>>());
        assert!(tracker.alive().is_empty());
        assert_eq!(probe.pulled(), started);
        assert!(probe.dropped());
        assert_eq!(clock.sleepers(), 0, "no timer survives");
    }
}

/// EX-02: external cancellation of the future that consumes the lane (`collect`), midway: the
/// in-flight items are dropped at once, the input too, and items never started are never made.
#[test]
fn ex_02_dropping_the_consuming_future_cancels_cleanly() {
    for ordered in [false, true] {
        let (mut rig, lane) = gated_map(100, 5, ordered);
        let mut run = Box::pin(lane.collect::<Vec<usize>>());
        for i in 0..3 {
            rig.open(i);
        }
        assert!(run.as_mut().poll(&mut noop_context()).is_pending());
        assert_eq!(rig.tracker.created(), range(8));
        assert_eq!(rig.tracker.alive(), [3, 4, 5, 6, 7]);
        drop(run);
        assert!(rig.tracker.alive().is_empty());
        assert_eq!(rig.tracker.cancelled(), [3, 4, 5, 6, 7]);
        assert_eq!(rig.probe.pulled(), 8);
        assert!(rig.probe.dropped());
    }
}

/// A drop counter in an async generator's state: counts when the generator is closed (dropped).
fn generator(n: u32, closed: &Arc<AtomicUsize>) -> impl Stream<Item = u32> {
    let guard = DropCounter::new(closed);
    stream::unfold((0, guard), move |(i, guard)| async move {
        yield_times(1).await;
        (i < n).then_some((i, (i + 1, guard)))
    })
}

/// EX-08: dropping the lane closes the upstream (async generator) input, at any point: before the
/// first poll, while the input itself is pending, between polls mid-run, and after the end.
#[test]
fn ex_08_dropping_the_lane_closes_the_input() {
    let work = |x: u32| async move {
        yield_times(2).await;
        x
    };
    for ordered in [false, true] {
        // Before the first poll.
        let closed = Arc::new(AtomicUsize::new(0));
        let lane = generator(10, &closed).lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        drop(lane.map_async(work));
        assert_eq!(closed.load(Ordering::SeqCst), 1);

        // While the input is pending (first poll only).
        let closed = Arc::new(AtomicUsize::new(0));
        let lane = generator(10, &closed).lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p = Poller::new(lane.map_async(work));
        assert_stream_pending!(p.pinned());
        assert_eq!(closed.load(Ordering::SeqCst), 0);
        drop(p);
        assert_eq!(closed.load(Ordering::SeqCst), 1);

        // Mid-run, with work in flight.
        let closed = Arc::new(AtomicUsize::new(0));
        let tracker = Tracker::new();
        let t = tracker.clone();
        let lane = generator(10, &closed).lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p = Poller::new(lane.map_async(move |x| t.track(x as usize, work(x))));
        let mut got = Vec::new();
        for _ in 0..1_000 {
            if got.len() == 3 {
                break;
            }
            if let Poll::Ready(Some(x)) = p.poll() {
                got.push(x);
            }
        }
        assert_eq!(got.len(), 3);
        assert!(!tracker.alive().is_empty(), "work is in flight");
        drop(p);
        assert_eq!(closed.load(Ordering::SeqCst), 1);
        assert!(tracker.alive().is_empty());

        // After the end: the generator was exhausted; dropping the lane drops it (once).
        let closed = Arc::new(AtomicUsize::new(0));
        let lane = generator(10, &closed).lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        let out: Vec<u32> = block_on_sync(lane.map_async(work).collect());
        assert_eq!(sorted(out), (0..10).collect::<Vec<_>>());
        assert_eq!(closed.load(Ordering::SeqCst), 1);
    }
}

// =============================================================================================
// Engine guarantees (API.md section 8)
// =============================================================================================

/// Never more than `limit` in flight, and every slot full while the input has items left: checked
/// after the lane settles on blocked futures, with gates released one by one in a scrambled order
/// (both orders, both terminals, several limits).
#[test]
fn limit_is_never_exceeded_and_always_filled() {
    for ordered in [false, true] {
        for limit in [1, 2, 3, 5, 8] {
            for use_run in [false, true] {
                let n = 3 * limit + 2;
                let (mut rig, lane) = gated(n, limit, ordered, use_run);
                let mut p = Poller::new(lane);
                let mut order = range(n);
                fastrand::Rng::with_seed(limit as u64).shuffle(&mut order);
                let mut out = p.settle();
                assert_eq!(rig.tracker.in_flight(), limit);
                for &i in &order {
                    rig.open(i);
                    out.extend(p.settle());
                    let occupied = p.get().in_progress();
                    assert!(rig.tracker.in_flight() <= limit);
                    assert!(occupied <= limit);
                    if rig.probe.pulled() < n {
                        assert_eq!(
                            occupied, limit,
                            "a slot was left empty with input remaining"
                        );
                    }
                    if !ordered {
                        // Nothing finished waits after settling: occupied slots are all running.
                        assert_eq!(rig.tracker.in_flight(), occupied);
                        assert_eq!(occupied, (n - out.len()).min(limit));
                    }
                }
                assert!(p.is_done());
                assert_eq!(rig.tracker.peak(), limit);
                assert_eq!(sorted(out), range(n));
            }
        }
    }
}

/// Settles `p`, checking after every poll that the items pulled and not yet yielded are exactly the
/// lane's `in_progress()` and never more than `limit`.
fn settle_within_limit<S: LaneStream<Item = usize>>(
    p: &mut Poller<S>,
    out: &mut Vec<usize>,
    probe: &InputProbe,
    limit: usize,
) {
    let base = out.len();
    let got = p.settle_checking(|s, k| {
        let (pulled, yielded) = (probe.pulled(), base + k);
        assert!(
            pulled - yielded <= limit,
            "pulled {pulled}, yielded {yielded}"
        );
        assert_eq!(s.in_progress(), pulled - yielded);
    });
    out.extend(got);
}

/// At most `limit` items pulled and not yet yielded, checked after every single poll (both orders),
/// with an input that pends between items.
#[test]
fn at_most_limit_pulled_and_not_yet_yielded() {
    for ordered in [false, true] {
        for limit in [1, 2, 4, 7] {
            let n = 4 * limit + 3;
            let tracker = Tracker::new();
            let (mut openers, gates) = gates(n);
            let input = stream::iter(gates.into_iter().enumerate()).interleave_pending();
            let (input, probe) = counting(input);
            let t = tracker.clone();
            let lane = input.lane(limit);
            let lane = if ordered { lane.ordered() } else { lane };
            let mut p = Poller::new(lane.map_async(move |(i, g): (usize, Gate)| {
                t.track(i, async move {
                    g.await;
                    i
                })
            }));
            let mut order = range(n);
            fastrand::Rng::with_seed(7 + limit as u64).shuffle(&mut order);
            let mut out = Vec::new();
            settle_within_limit(&mut p, &mut out, &probe, limit);
            assert_eq!(probe.pulled(), limit);
            for &i in &order {
                openers[i].take().unwrap().open();
                settle_within_limit(&mut p, &mut out, &probe, limit);
            }
            assert!(p.is_done());
            assert_eq!(tracker.peak(), limit);
            if ordered {
                assert_eq!(out, range(n));
            } else {
                assert_eq!(sorted(out), range(n));
            }
        }
    }
}

/// Eager refill: when `poll_next` returns an output, the freed slot has already been refilled from
/// the input and its new future polled once (futures-util's `buffered` refills only on the next
/// call). Both orders, both terminals.
#[test]
fn eager_refill_before_the_output_is_returned() {
    for ordered in [false, true] {
        for use_run in [false, true] {
            let (mut rig, lane) = gated(4, 2, ordered, use_run);
            let mut p = Poller::new(lane);
            assert_stream_pending!(p.pinned());
            assert_eq!(rig.probe.pulled(), 2);
            assert_eq!((rig.tracker.polls_of(0), rig.tracker.polls_of(1)), (1, 1));
            // Ordered: the head finishes; unordered: the second one does.
            let first = if ordered { 0 } else { 1 };
            rig.open(first);
            assert_stream_next!(p.pinned(), first);
            assert_eq!(rig.probe.pulled(), 3, "refilled before returning");
            assert_eq!(rig.tracker.created(), [0, 1, 2]);
            assert_eq!(rig.tracker.polls_of(2), 1, "the new future was polled once");

            // Two finish at once: one is returned (its slot refilled), the other waits in its slot.
            let (a, b) = if ordered { (1, 2) } else { (2, 1 - first) };
            rig.open(a);
            rig.open(b);
            let x = match p.poll() {
                Poll::Ready(Some(x)) => x,
                other => panic!("expected an output, got {other:?}"),
            };
            assert!(x == a || x == b);
            assert_eq!(rig.probe.pulled(), 4);
            assert_eq!(rig.tracker.polls_of(3), 1);
            rig.open(3);
            let rest = p.settle();
            assert_eq!(rest.len(), 2);
            assert!(p.is_done());
        }
    }
}

/// Every woken in-flight future is driven on every poll, even when an output is already waiting:
/// a finished output waits in its slot while the others keep running.
#[test]
fn all_woken_futures_are_driven_even_when_an_output_is_waiting() {
    for ordered in [false, true] {
        let (mut rig, lane) = gated_map(3, 3, ordered);
        let mut p = Poller::new(lane);
        assert_stream_pending!(p.pinned());
        rig.open(0);
        rig.open(1);
        assert!(matches!(p.poll(), Poll::Ready(Some(_))));
        assert_eq!(
            sorted(rig.tracker.completed()),
            [0, 1],
            "both woken, both driven"
        );
        rig.open(2);
        assert!(matches!(p.poll(), Poll::Ready(Some(_))));
        assert_eq!(sorted(rig.tracker.completed()), [0, 1, 2]);
        assert!(matches!(p.poll(), Poll::Ready(Some(_))));
        assert_stream_done!(p.pinned());
    }
}

/// Dropping the stream while its futures are pending drops every in-flight future and the input at
/// once; `f` was never called for the items that never started (both orders, both terminals).
#[test]
fn drop_while_pending_drops_in_flight_and_input() {
    for ordered in [false, true] {
        for use_run in [false, true] {
            let (rig, lane) = gated(10, 4, ordered, use_run);
            let mut p = Poller::new(lane);
            assert!(p.settle().is_empty());
            assert_eq!(rig.tracker.alive(), [0, 1, 2, 3]);
            assert!(!rig.probe.dropped());
            drop(p);
            assert!(rig.tracker.alive().is_empty());
            assert_eq!(rig.tracker.cancelled(), [0, 1, 2, 3]);
            assert_eq!(
                rig.tracker.created(),
                [0, 1, 2, 3],
                "never called for 4..10"
            );
            assert!(rig.probe.dropped());
        }
    }
}

/// A lane that was never polled pulls nothing and drops its input with itself.
#[test]
fn drop_before_first_poll_touches_nothing() {
    let (rig, lane) = gated_map(10, 4, false);
    drop(lane);
    assert!(rig.tracker.created().is_empty());
    assert_eq!(rig.probe.polls(), 0);
    assert!(rig.probe.dropped());
}

/// Dropping after partial consumption drops the in-flight futures, the finished outputs still
/// waiting for their turn, and the input; nothing is leaked (every output made is dropped once).
#[test]
fn drop_after_partial_consumption_drops_everything() {
    for ordered in [false, true] {
        let tracker = Tracker::new();
        let outputs_dropped = Arc::new(AtomicUsize::new(0));
        let (mut openers, gates) = gates(10);
        let (input, probe) = counting_iter(gates.into_iter().enumerate());
        let (t, od) = (tracker.clone(), Arc::clone(&outputs_dropped));
        let lane = input.lane(4);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p = Poller::new(lane.map_async(move |(i, g): (usize, Gate)| {
            let od = Arc::clone(&od);
            t.track(i, async move {
                g.await;
                (i, DropCounter::new(&od))
            })
        }));
        assert!(p.settle().is_empty());
        for i in [0, 2, 3] {
            openers[i].take().unwrap().open();
        }
        let got: Vec<usize> = p.settle().into_iter().map(|(i, _)| i).collect();
        if ordered {
            // 0 yielded; 2 and 3 finished and wait behind 1; 4 started in 0's slot.
            assert_eq!(got, [0]);
            assert_eq!(tracker.alive(), [1, 4]);
            assert_eq!(p.get().in_progress(), 4);
        } else {
            assert_eq!(sorted(got), [0, 2, 3]);
            assert_eq!(tracker.alive(), [1, 4, 5, 6]);
        }
        let made = tracker.completed().len();
        assert_eq!(made, 3);
        drop(p);
        assert!(tracker.alive().is_empty());
        assert!(probe.dropped());
        assert_eq!(
            outputs_dropped.load(Ordering::SeqCst),
            made,
            "waiting outputs dropped"
        );
        let expected_cancelled: &[usize] = if ordered { &[1, 4] } else { &[1, 4, 5, 6] };
        assert_eq!(tracker.cancelled(), expected_cancelled);
    }
}

/// `lane(0)` on an iterator panics naming `limit`, and the panic points at the caller's line.
#[test]
fn lane_zero_panics_at_the_caller_for_iterators() {
    use tasklane::IterLaneExt;
    let line = Cell::new(0);
    let report = catch_panic(|| {
        let _ = (line.set(line!()), (0..3).lane(0));
    })
    .unwrap_err();
    assert!(report.message.contains("`limit`"), "{}", report.message);
    assert_eq!(report.file, file!());
    assert!(report.file.contains("tests"));
    assert_eq!(report.line, line.get());

    let report = catch_panic(|| {
        let _ = (line.set(line!()), IterLaneExt::lane(vec![1, 2], 0));
    })
    .unwrap_err();
    assert!(report.message.contains("`limit`"), "{}", report.message);
    assert_eq!((report.file.as_str(), report.line), (file!(), line.get()));
}

/// `lane(0)` on a stream panics naming `limit`, and the panic points at the caller's line.
#[test]
fn lane_zero_panics_at_the_caller_for_streams() {
    use tasklane::LaneExt;
    let line = Cell::new(0);
    let report = catch_panic(|| {
        let _ = (line.set(line!()), stream::iter(0..3).lane(0));
    })
    .unwrap_err();
    assert!(report.message.contains("`limit`"), "{}", report.message);
    assert_eq!(report.file, file!());
    assert_eq!(report.line, line.get());

    let report = catch_panic(|| {
        let _ = (line.set(line!()), LaneExt::lane(stream::empty::<u8>(), 0));
    })
    .unwrap_err();
    assert!(report.message.contains("`limit`"), "{}", report.message);
    assert_eq!((report.file.as_str(), report.line), (file!(), line.get()));

    // A non-zero limit is fine.
    assert!(catch_panic(|| stream::iter(0..3).lane(1).limit()).is_ok());
}

/// `with_limit(0)` panics naming `limit`, at the caller's line, on a lane and on a policy.
#[test]
fn with_limit_zero_panics_at_the_caller() {
    let line = Cell::new(0);
    let report = catch_panic(|| {
        let _ = (line.set(line!()), (0..3).lane(2).with_limit(0));
    })
    .unwrap_err();
    assert!(report.message.contains("`limit`"), "{}", report.message);
    assert_eq!((report.file.as_str(), report.line), (file!(), line.get()));

    let report = catch_panic(|| {
        let _ = (line.set(line!()), tasklane::Policy::new(2).with_limit(0));
    })
    .unwrap_err();
    assert!(report.message.contains("`limit`"), "{}", report.message);
    assert_eq!((report.file.as_str(), report.line), (file!(), line.get()));

    // A non-zero limit is fine, and is the lane's limit from then on.
    assert_eq!((0..3).lane(2).with_limit(5).limit(), 5);
}

/// A panic inside a user future propagates out of `poll_next`; the lane is then safe to drop, and
/// dropping it drops the other in-flight futures and the input (both orders, both terminals).
#[test]
fn panic_in_a_future_propagates_and_the_lane_drops_cleanly() {
    for ordered in [false, true] {
        for use_run in [false, true] {
            let tracker = Tracker::new();
            let (mut openers, gates) = gates(6);
            let t = tracker.clone();
            let make = move |(i, g): (usize, Gate)| {
                t.track(i, async move {
                    g.await;
                    if i == 1 {
                        panic!("boom in item {i}");
                    }
                    i
                })
            };
            let (mut p, probe) = if use_run {
                let (input, probe) = counting_iter(gates.into_iter().enumerate().map(make));
                let lane = input.lane(3);
                let lane = if ordered { lane.ordered() } else { lane };
                (Poller::new(Either::Left(lane.run())), probe)
            } else {
                let (input, probe) = counting_iter(gates.into_iter().enumerate());
                let lane = input.lane(3);
                let lane = if ordered { lane.ordered() } else { lane };
                (Poller::new(Either::Right(lane.map_async(make))), probe)
            };
            assert!(p.settle().is_empty());
            openers[1].take().unwrap().open();
            let report = catch_panic(|| p.poll()).unwrap_err();
            assert_eq!(report.message, "boom in item 1");
            assert_eq!(tracker.alive(), [0, 1, 2]);
            drop(p);
            assert!(tracker.alive().is_empty());
            assert_eq!(tracker.created(), [0, 1, 2]);
            assert!(probe.dropped());
            drop(openers);
        }
    }
}

/// A panic in `f` (while refilling a slot) propagates out of `poll_next`; dropping the lane then
/// drops the in-flight futures and the input, and leaks nothing.
#[test]
fn panic_in_the_closure_propagates_and_the_lane_drops_cleanly() {
    for ordered in [false, true] {
        let tracker = Tracker::new();
        let t = tracker.clone();
        let (mut openers, gates) = gates(5);
        let (input, probe) = counting_iter(gates.into_iter().enumerate());
        let lane = input.lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p = Poller::new(lane.map_async(move |(i, g): (usize, Gate)| {
            assert_ne!(i, 2, "f refuses item 2");
            t.track(i, async move {
                g.await;
                i
            })
        }));
        assert!(p.settle().is_empty());
        openers[0].take().unwrap().open();
        let report = catch_panic(|| p.poll()).unwrap_err();
        assert!(
            report.message.contains("f refuses item 2"),
            "{}",
            report.message
        );
        assert_eq!(tracker.created(), [0, 1]);
        drop(p);
        assert!(tracker.alive().is_empty());
        assert!(probe.dropped());
    }
}

/// Polls `p` `times` times, checking the limit after each poll.
fn poll_times<S: LaneStream<Item = usize>>(
    p: &mut Poller<S>,
    out: &mut Vec<usize>,
    rig: &Rig,
    limit: usize,
    times: u8,
) {
    for _ in 0..times {
        if let Poll::Ready(Some(x)) = p.poll() {
            out.push(x);
        }
        assert!(rig.probe.pulled() - out.len() <= limit);
        assert!(p.get().in_progress() <= limit);
        assert!(rig.tracker.peak() <= limit);
    }
}

fn exactly_once_case(
    n: usize,
    limit: usize,
    ordered: bool,
    use_run: bool,
    order: &[usize],
    polls: &[u8],
) {
    let (mut rig, lane) = gated(n, limit, ordered, use_run);
    let mut p = Poller::new(lane);
    let mut out = Vec::new();
    poll_times(&mut p, &mut out, &rig, limit, 1);
    for (&i, &times) in order.iter().zip(polls) {
        rig.open(i);
        poll_times(&mut p, &mut out, &rig, limit, times);
    }
    out.extend(p.settle());
    assert!(
        p.is_done(),
        "every gate is open, yet the lane did not finish"
    );
    assert!(rig.tracker.alive().is_empty());
    if ordered {
        assert_eq!(out, range(n));
    } else {
        assert_eq!(sorted(out), range(n));
    }
}

fn exactly_once_inputs() -> impl Strategy<Value = (usize, usize, bool, bool, Vec<usize>, Vec<u8>)> {
    (0usize..=24, 1usize..=8, any::<bool>(), any::<bool>()).prop_flat_map(
        |(n, limit, ordered, use_run)| {
            (
                Just(n),
                Just(limit),
                Just(ordered),
                Just(use_run),
                Just(range(n)).prop_shuffle(),
                proptest::collection::vec(0u8..=2, n),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        // Miri's isolation forbids the regression file; elsewhere failures are kept as regressions.
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    /// Every item comes out exactly once (in input order when ordered) under random completion
    /// orders interleaved with random numbers of polls, for limits 1..=8, both orders and terminals.
    #[test]
    fn every_item_comes_out_exactly_once(
        (n, limit, ordered, use_run, order, polls) in exactly_once_inputs()
    ) {
        exactly_once_case(n, limit, ordered, use_run, &order, &polls);
    }
}

/// `usize::MAX` means unbounded: every item starts (after the lane settles; one poll starts at most a
/// budget's worth), then all finish.
#[test]
fn usize_max_limit_starts_everything() {
    let n = size(300, 80);
    for ordered in [false, true] {
        let (mut rig, lane) = gated_map(n, usize::MAX, ordered);
        let mut p = Poller::new(lane);
        assert!(p.settle().is_empty());
        assert_eq!(rig.tracker.created().len(), n);
        assert_eq!(rig.tracker.in_flight(), n);
        assert_eq!(p.get().in_progress(), n);
        for i in (0..n).rev() {
            rig.open(i);
        }
        let out = p.settle();
        assert!(p.is_done());
        if ordered {
            assert_eq!(out, range(n));
        } else {
            assert_eq!(sorted(out), range(n));
        }
        assert_eq!(rig.tracker.peak(), n);
    }
    assert_eq!((0..3).lane(usize::MAX).limit(), usize::MAX);
}

/// After `None` the stream keeps returning `None`, `is_terminated()` turns true exactly then, and
/// the input is never polled again (the counting input panics if it is).
#[test]
fn fused_after_the_end() {
    for ordered in [false, true] {
        let (input, probe) = counting_iter(0..5u32);
        let lane = input.lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut out = lane.map_async(|x| async move { x });
        for _ in 0..5 {
            assert!(!out.is_terminated());
            assert!(matches!(
                out.poll_next_unpin(&mut noop_context()),
                Poll::Ready(Some(_))
            ));
        }
        assert!(!out.is_terminated());
        assert_stream_done!(out);
        assert!(out.is_terminated());
        let polls = probe.polls();
        for _ in 0..3 {
            assert_stream_done!(out);
        }
        assert!(out.is_terminated());
        assert_eq!(probe.polls(), polls);
        assert_eq!(out.size_hint(), (0, Some(0)));

        let futs = (0..3u32).map(|x| async move { x });
        let lane = futs.lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut out = lane.run();
        assert_eq!(block_on_sync(out.by_ref().count()), 3);
        assert!(out.is_terminated());
        assert_stream_done!(out);
        assert_stream_done!(out);
    }
}

/// `size_hint` is exact for exact inputs at every step (items still to pull plus items in progress),
/// and stays sound for inexact and unbounded inputs.
#[test]
fn size_hint_is_exact_for_exact_inputs() {
    for ordered in [false, true] {
        let (mut rig, lane) = gated_map(10, 3, ordered);
        let mut p = Poller::new(lane);
        assert_eq!(p.get().size_hint(), (10, Some(10)));
        assert!(p.settle().is_empty());
        assert_eq!(p.get().size_hint(), (10, Some(10)));
        for i in 0..10 {
            rig.open(i);
            assert_eq!(p.settle(), [i]);
            assert_eq!(p.get().size_hint(), (9 - i, Some(9 - i)));
        }
        assert!(p.is_done());

        let lane = (0..6u32).lane(4);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut run = lane.map_async(|x| async move { x }).boxed();
        let mut left = 6;
        while let Some(_x) = block_on_sync(run.next()) {
            left -= 1;
            assert_eq!(run.size_hint(), (left, Some(left)));
        }

        // Inexact input: the bounds still hold every item.
        let lane = (0..10u32).filter(|x| x % 2 == 0).lane(2);
        let out = lane.map_async(|x| async move { x });
        assert_eq!(out.size_hint(), (0, Some(10)));
        assert_eq!(block_on_sync(out.count()), 5);

        // Unbounded input: saturates.
        let mut out = (0u64..).lane(3).map_async(|x| async move { x });
        assert_eq!(out.size_hint(), (usize::MAX, None));
        assert!(block_on_sync(out.next()).is_some());
        assert_eq!(out.size_hint(), (usize::MAX, None));
    }
    let run = (1..=2).map(|x| async move { x }).lane(1).run();
    assert_eq!(run.size_hint(), (2, Some(2)));
}

/// Many self-waking futures (each returns `Pending` once, waking itself) with a limit as large as
/// the input all complete (both orders, both terminals).
#[test]
fn many_self_waking_futures_complete() {
    let n = size(10_000, 50);
    for ordered in [false, true] {
        let lane = (0..n).lane(n);
        let lane = if ordered { lane.ordered() } else { lane };
        let out: Vec<usize> = block_on_sync(
            lane.map_async(|i| yield_times(1).map(move |()| i))
                .collect(),
        );
        assert_eq!(sorted(out.clone()), range(n));
        if ordered {
            assert_eq!(out, range(n));
        }

        let futs = (0..n).map(|i| yield_times(1).map(move |()| i));
        let lane = futs.lane(n);
        let lane = if ordered { lane.ordered() } else { lane };
        let out: Vec<usize> = block_on_sync(lane.run().collect());
        assert_eq!(sorted(out), range(n));
    }
}

/// One `poll_next` call makes a bounded number of user-future polls (the engine's budget is 64),
/// then wakes its own waker and returns `Pending`, so it never starves its executor.
#[test]
fn one_poll_is_bounded_by_the_budget() {
    let n = size(10_000, 200);
    for ordered in [false, true] {
        let polls = Arc::new(AtomicUsize::new(0));
        let pl = Arc::clone(&polls);
        let lane = (0..n).lane(n);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p =
            Poller::new(lane.map_async(move |i| count_polls(&pl, yield_times(1)).map(move |()| i)));
        assert!(p.poll().is_pending());
        let first = polls.load(Ordering::SeqCst);
        assert!(first > 0 && first < 200, "{first} user polls in one call");
        assert_eq!(p.woken(), 1, "it woke itself");
        // Each further call is bounded too, and the whole run completes.
        let mut out = Vec::new();
        while !p.is_done() {
            let before = polls.load(Ordering::SeqCst);
            if let Poll::Ready(Some(x)) = p.poll() {
                out.push(x);
            }
            assert!(polls.load(Ordering::SeqCst) - before < 200);
        }
        assert_eq!(sorted(out), range(n));
    }
}

/// Busy futures (they wake themselves on every poll and never finish) do not trap `poll_next` in a
/// loop: it returns `Pending` after a bounded number of polls, having woken its waker.
#[test]
fn busy_futures_do_not_hang_a_poll() {
    for ordered in [false, true] {
        let polls = Arc::new(AtomicUsize::new(0));
        let pl = Arc::clone(&polls);
        let lane = (0..4).lane(4);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p = Poller::new(lane.map_async(move |_| Spin(Arc::clone(&pl))));
        for call in 1..=3 {
            assert!(p.poll().is_pending());
            let total = polls.load(Ordering::SeqCst);
            assert!(total < 200 * call, "{total} polls after {call} calls");
            assert_eq!(p.woken(), call);
        }
    }
}

/// A stale wake-up is harmless: the waker of a finished future fired after its slot was reused by
/// the next item (a spurious poll of that item at most), fired at an empty slot, or fired at a
/// finished output waiting its turn; each item still comes out exactly once.
#[test]
fn stale_wake_ups_are_harmless() {
    for ordered in [false, true] {
        // Slot reused: limit 1, item 0's waker fired while item 1 runs in its slot.
        let tracker = Tracker::new();
        let trap = WakerTrap::new();
        let (mut openers, gates) = gates(3);
        let (t, tr) = (tracker.clone(), trap.clone());
        let lane = gates.into_iter().enumerate().lane(1);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p = Poller::new(lane.map_async(move |(i, g): (usize, Gate)| {
            let fut = async move {
                g.await;
                i
            };
            if i == 0 {
                Either::Left(t.track(i, tr.wrap(fut)))
            } else {
                Either::Right(t.track(i, fut))
            }
        }));
        assert_stream_pending!(p.pinned());
        let stale = trap.waker().expect("item 0 was polled");
        openers[0].take().unwrap().open();
        assert_stream_next!(p.pinned(), 0);
        assert_eq!(tracker.alive(), [1], "item 1 runs in item 0's old slot");
        let polls_before = tracker.polls_of(1);
        stale.wake_by_ref();
        assert!(p.settle().is_empty(), "a stale wake-up yields nothing");
        assert!(
            tracker.polls_of(1) <= polls_before + 1,
            "one spurious poll at most"
        );
        assert_eq!(tracker.completed(), [0]);
        openers[1].take().unwrap().open();
        openers[2].take().unwrap().open();
        assert_eq!(p.settle(), [1, 2]);
        assert!(p.is_done());
        stale.wake_by_ref();
        assert_stream_done!(p.pinned());
        drop(p);
        stale.wake(); // outlives the lane

        // Empty slot: the input is exhausted, so item 0's slot stays empty after it finished.
        let trap = WakerTrap::new();
        let (mut openers, gates) = common::gates(2);
        let tr = trap.clone();
        let lane = gates.into_iter().enumerate().lane(2);
        let lane = if ordered { lane.ordered() } else { lane };
        let mut p = Poller::new(lane.map_async(move |(i, g): (usize, Gate)| {
            tr.wrap(async move {
                g.await;
                i
            })
        }));
        assert_stream_pending!(p.pinned());
        // The trap holds the waker of whichever item was polled last: item 1.
        let stale = trap.waker().unwrap();
        openers[1].take().unwrap().open();
        if ordered {
            assert_stream_pending!(p.pinned()); // 1 waits for 0
            stale.wake_by_ref(); // at a finished output waiting its turn
            assert!(p.settle().is_empty());
            openers[0].take().unwrap().open();
            assert_eq!(p.settle(), [0, 1]);
        } else {
            assert_stream_next!(p.pinned(), 1);
            stale.wake_by_ref(); // at an empty slot
            assert!(p.settle().is_empty());
            openers[0].take().unwrap().open();
            assert_eq!(p.settle(), [0]);
        }
        assert!(p.is_done());
    }
}
