//! `gather`, `try_gather`, `first`, `first_ok`, and the lane-level answers to error collection vs
//! fail-fast: SCENARIOS.md groups I (ER), K (GA), L (RA) and M (RE), each test named after its
//! scenario. Completions are ordered with gates and polled by hand, so "at once" means "in the same
//! poll", and "dropped" is read from drop guards.

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::{
    block_on_sync, catch_panic, gates, yield_times, Gate, Gauge, Opener, Tracked, Tracker,
};
use futures::future::{self, BoxFuture, FusedFuture};
use futures::{FutureExt, StreamExt, TryStreamExt};
use futures_test::task::noop_context;
use tasklane::prelude::*;
use tasklane::time::ManualClock;

/// A tracked future that waits for its gate (if any), then outputs `out`.
fn job<T: Send + 'static>(
    tracker: &Tracker,
    id: usize,
    gate: Option<Gate>,
    out: T,
) -> Tracked<BoxFuture<'static, T>> {
    tracker.track(
        id,
        async move {
            if let Some(gate) = gate {
                gate.await;
            }
            out
        }
        .boxed(),
    )
}

/// `n` gated jobs with outputs `out(i)`, and their openers.
fn gated<T: Send + 'static>(
    tracker: &Tracker,
    n: usize,
    out: impl Fn(usize) -> T,
) -> (Vec<Option<Opener>>, Vec<Tracked<BoxFuture<'static, T>>>) {
    let (openers, gates) = gates(n);
    let futs = gates
        .into_iter()
        .enumerate()
        .map(|(i, g)| job(tracker, i, Some(g), out(i)))
        .collect();
    (openers, futs)
}

fn poll<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    fut.poll_unpin(&mut noop_context())
}

fn open(openers: &mut [Option<Opener>], i: usize) {
    openers[i].take().expect("each gate opens once").open();
}

type Res = Result<usize, String>;

// ---------------------------------------------------------------------------------------------
// K. gather (GA)
// ---------------------------------------------------------------------------------------------

/// GA-01 (OR-04): five futures finishing in reverse order, limit 2: outputs in input order.
#[test]
fn ga_01_gather_preserves_input_order() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 5, |i| i);
    let mut fut = tasklane::gather(futs, 2);
    assert!(poll(&mut fut).is_pending());
    // Each time, the started future latest in the input finishes first.
    while openers.iter().any(Option::is_some) {
        let latest = (0..5)
            .rev()
            .find(|&i| openers[i].is_some() && tracker.polls_of(i) > 0)
            .unwrap();
        open(&mut openers, latest);
        if let Poll::Ready(out) = poll(&mut fut) {
            assert_eq!(out, [0, 1, 2, 3, 4]);
        }
    }
    assert!(fut.is_terminated());
    assert_eq!(
        tracker.completed(),
        [1, 2, 3, 4, 0],
        "completion order differed"
    );
}

/// GA-02 (CL-02): 20 futures, limit 3: exactly 3 at once at the peak.
#[test]
fn ga_02_gather_respects_the_limit() {
    let gauge = Gauge::new();
    let futs = (0..20).map(|i| {
        let guard = gauge.enter();
        async move {
            yield_times(3).await;
            guard.leave();
            i
        }
    });
    let out = block_on_sync(tasklane::gather(futs, 3));
    assert_eq!(out, (0..20).collect::<Vec<_>>());
    assert_eq!(gauge.peak(), 3);
}

/// GA-03: collect-all: `[ok(1), bad, ok(2)]` gives every outcome at its position.
#[test]
fn ga_03_gather_collects_errors_as_values() {
    let futs = [Ok(1), Err("nope".to_string()), Ok(2)].map(future::ready);
    let out: Vec<Result<i32, String>> = block_on_sync(tasklane::gather(futs, 16));
    assert_eq!(out, [Ok(1), Err("nope".to_string()), Ok(2)]);
}

/// GA-04: 6 futures, limit 3, #1 fails: Err at once; started [0, 1, 2], cancelled [0, 2]; 3, 4
/// and 5 dropped without a poll (the failure stops the input, so even #1's slot is not refilled:
/// Python's tasklane starts #3 too).
#[test]
fn ga_04_try_gather_drops_started_and_unstarted_futures() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 6, |i| {
        if i == 1 {
            Err(format!("boom {i}"))
        } else {
            Ok(i)
        }
    });
    let mut fut = tasklane::try_gather(futs, 3);
    assert!(poll(&mut fut).is_pending());
    open(&mut openers, 1);
    assert_eq!(poll(&mut fut), Poll::Ready(Err("boom 1".to_string())));
    assert!(fut.is_terminated());
    assert!(tracker.alive().is_empty(), "every future dropped at once");
    assert_eq!(tracker.cancelled(), [0, 2, 3, 4, 5]);
    assert_eq!(tracker.completed(), [1]);
    for started in [0, 1, 2] {
        assert!(tracker.polls_of(started) > 0);
    }
    for unstarted in [3, 4, 5] {
        assert_eq!(tracker.polls_of(unstarted), 0, "{unstarted} never polled");
    }

    // With a lazy iterator the unstarted futures are not even created.
    let lazy = Tracker::new();
    let (mut openers, gates) = gates(6);
    let gates = RefCell::new(gates.into_iter().map(Some).collect::<Vec<_>>());
    let futs = (0..6).map(|i| {
        let out: Res = if i == 1 { Err("boom".into()) } else { Ok(i) };
        job(&lazy, i, gates.borrow_mut()[i].take(), out)
    });
    let mut fut = tasklane::try_gather(futs, 3);
    assert!(poll(&mut fut).is_pending());
    open(&mut openers, 1);
    assert!(matches!(poll(&mut fut), Poll::Ready(Err(_))));
    assert_eq!(lazy.created(), [0, 1, 2]);
    assert!(lazy.alive().is_empty());
}

/// GA-05 (TO-03): a gathered future that outlives its timeout gives a timeout error. `gather` has
/// no timeout of its own: the lane form (`lane(n).timeout(d).ordered().run()`) is the recipe.
#[test]
fn ga_05_gather_with_a_timeout_via_the_lane() {
    let clock = ManualClock::new();
    let mut out = Box::pin(
        vec![future::pending::<Result<u8, ()>>()]
            .lane(16)
            .timeout(Duration::from_millis(50))
            .with_clock(&clock)
            .ordered()
            .run()
            .try_collect::<Vec<u8>>(),
    );
    assert!(poll(&mut out).is_pending());
    clock.advance(Duration::from_millis(49));
    assert!(poll(&mut out).is_pending());
    clock.advance(Duration::from_millis(1));
    match poll(&mut out) {
        Poll::Ready(Err(e)) => assert!(e.is_timeout()),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// GA-06: limit 2, three immediate futures.
#[test]
fn ga_06_gather_of_immediate_futures() {
    let out = block_on_sync(tasklane::gather([1, 2, 3].map(future::ready), 2));
    assert_eq!(out, [1, 2, 3]);
}

/// GA-07: nothing in, nothing out: `gather` gives `[]`, `try_gather` gives `Ok([])`.
#[test]
fn ga_07_empty_input() {
    let none: Vec<future::Ready<u8>> = Vec::new();
    assert_eq!(block_on_sync(tasklane::gather(none, 4)), Vec::<u8>::new());
    let none: Vec<future::Ready<Result<u8, ()>>> = Vec::new();
    assert_eq!(block_on_sync(tasklane::try_gather(none, 4)), Ok(vec![]));
}

/// GA-08 (OR-10): ordered output, fail-fast by completion time: item 3 fails before item 0 does, so
/// `try_gather` returns item 3's error, without waiting for the head of the line.
#[test]
fn ga_08_try_gather_fails_by_completion_time() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 5, |i| match i {
        0 => Err("item 0"),
        3 => Err("item 3"),
        _ => Ok(i),
    });
    let mut fut = tasklane::try_gather(futs, 5);
    assert!(poll(&mut fut).is_pending());
    open(&mut openers, 3);
    assert_eq!(poll(&mut fut), Poll::Ready(Err("item 3")));
    assert!(tracker.alive().is_empty());

    // The collect-all form keeps every outcome, in input order.
    let (mut openers, futs) = gated(&Tracker::new(), 5, |i| if i == 3 { Err(i) } else { Ok(i) });
    let mut fut = tasklane::gather(futs, 2);
    for i in [1, 0, 3, 4, 2] {
        let _ = poll(&mut fut);
        open(&mut openers, i);
    }
    assert_eq!(
        poll(&mut fut),
        Poll::Ready(vec![Ok(0), Ok(1), Ok(2), Err(3), Ok(4)])
    );
}

#[test]
fn gather_limit_zero_panics_at_the_caller() {
    let calls: [Box<dyn Fn()>; 4] = [
        Box::new(|| drop(tasklane::gather([future::ready(1)], 0))),
        Box::new(|| drop(tasklane::try_gather([future::ready(Ok::<u8, ()>(1))], 0))),
        Box::new(|| drop(tasklane::first([future::ready(1)], 0))),
        Box::new(|| drop(tasklane::first_ok([future::ready(Ok::<u8, ()>(1))], 0))),
    ];
    for call in calls {
        catch_panic(call)
            .unwrap_err()
            .assert_names("limit", "tests/gather.rs");
    }
}

#[test]
fn gather_polled_after_completion_panics_naming_its_type() {
    let mut fut = tasklane::gather([future::ready(1)], 1);
    assert_eq!(poll(&mut fut), Poll::Ready(vec![1]));
    let report = catch_panic(|| poll(&mut fut)).unwrap_err();
    assert!(report.message.contains("Gather"), "{}", report.message);
}

/// An inexact `size_hint` (a filter) still puts every output at its position.
#[test]
fn gather_with_an_inexact_size_hint() {
    let futs = (0..50).filter(|i| i % 3 != 0).map(future::ready);
    let out = block_on_sync(tasklane::gather(futs, 4));
    assert_eq!(out, (0..50).filter(|i| i % 3 != 0).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// L. run_any: first, first_ok (RA)
// ---------------------------------------------------------------------------------------------

/// RA-01: `[slow, fast]` gives "fast".
#[test]
fn ra_01_first_returns_the_fastest() {
    let tracker = Tracker::new();
    let (_openers, gates) = gates(1);
    let slow = job(&tracker, 0, gates.into_iter().next(), "slow");
    let fast = job(&tracker, 1, None, "fast");
    assert_eq!(
        block_on_sync(tasklane::first(vec![slow, fast], 2)),
        Some("fast")
    );
}

/// RA-02 (CL-05): 30 tasks of random length, `first` with limits 1, 2, 5, 10, 20: never more than
/// the limit at once, at least one.
#[test]
fn ra_02_first_respects_the_limit() {
    let mut rng = fastrand::Rng::with_seed(5);
    for limit in [1, 2, 5, 10, 20] {
        let gauge = Gauge::new();
        let futs: Vec<_> = (0..30)
            .map(|i| {
                let gauge = gauge.clone();
                let n = rng.usize(1..10);
                async move {
                    let guard = gauge.enter();
                    yield_times(n).await;
                    guard.leave();
                    i
                }
            })
            .collect();
        assert!(block_on_sync(tasklane::first(futs, limit)).is_some());
        assert!(
            gauge.peak() > 0 && gauge.peak() <= limit,
            "limit {limit}: {}",
            gauge.peak()
        );
        assert_eq!(gauge.active(), 0, "the losers were dropped");
    }
}

/// RA-03: "first completed" under a rate limit. `first` has no rate of its own; its rate-limited
/// form is a lane with `.rate()` whose first output is taken and the rest dropped. The tasks that do
/// start are spaced by the period (exactly, on the manual clock), and once the first result is in,
/// nothing else starts.
#[test]
fn ra_03_first_under_a_rate_limit_spaces_the_starts_it_makes() {
    let clock = ManualClock::new();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let gates: Vec<_> = (0..3)
        .map(|_| futures::channel::oneshot::channel::<u32>())
        .collect();
    let (senders, receivers): (Vec<_>, Vec<_>) = gates.into_iter().unzip();
    let futs: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            let (starts, clock) = (Arc::clone(&starts), clock.clone());
            async move {
                starts.lock().unwrap().push((i, clock.elapsed()));
                rx.await.unwrap_or(0)
            }
        })
        .collect();
    let mut lane = futs.lane(3).with_clock(&clock).rate(20.0).run();
    let mut cx = noop_context();
    assert!(lane.poll_next_unpin(&mut cx).is_pending());
    clock.advance(Duration::from_millis(50));
    assert!(lane.poll_next_unpin(&mut cx).is_pending());
    let mut senders = senders.into_iter();
    senders.next().unwrap().send(7).unwrap(); // the first task finishes first
    let first = match lane.poll_next_unpin(&mut cx) {
        Poll::Ready(first) => first,
        Poll::Pending => panic!("the first result is ready"),
    };
    assert_eq!(first, Some(7));
    drop(lane); // the rest is dropped, as `first` does
    clock.advance(Duration::from_millis(100));
    let starts = starts.lock().unwrap().clone();
    assert_eq!(
        starts,
        [(0, Duration::ZERO), (1, Duration::from_millis(50))],
        "two starts a period apart, and none after the first result"
    );
}

/// RA-04: the first completion returns at once and every loser is dropped in that same poll (not
/// after the losers finish, as in aiometer).
#[test]
fn ra_04_first_drops_the_losers_at_once() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 4, |i| i);
    let mut fut = tasklane::first(futs, 4);
    assert!(poll(&mut fut).is_pending());
    open(&mut openers, 2);
    assert_eq!(poll(&mut fut), Poll::Ready(Some(2)));
    assert!(tracker.alive().is_empty());
    assert_eq!(tracker.cancelled(), [0, 1, 3]);
}

/// RA-05: `[fails at once, succeeds later]`: `first` gives the error (the first outcome wins);
/// `first_ok` waits for the success.
#[test]
fn ra_05_first_outcome_vs_first_success() {
    let tracker = Tracker::new();
    let (_openers, never) = gates(1);
    let late_ok = job(&tracker, 1, never.into_iter().next(), Ok::<_, &str>("good"));
    let bad = job(&tracker, 0, None, Err("bad"));
    assert_eq!(
        block_on_sync(tasklane::first(vec![bad, late_ok], 2)),
        Some(Err("bad"))
    );
    assert_eq!(tracker.cancelled(), [1]);

    let tracker = Tracker::new();
    let (mut openers, later) = gates(1);
    let late_ok = job(&tracker, 1, later.into_iter().next(), Ok::<_, &str>("good"));
    let bad = job(&tracker, 0, None, Err("bad"));
    let mut fut = tasklane::first_ok(vec![bad, late_ok], 2);
    assert!(poll(&mut fut).is_pending());
    open(&mut openers, 0);
    assert_eq!(poll(&mut fut), Poll::Ready(Ok("good")));
}

/// RA-06: `[fails late, succeeds at once]`: Ok("good") at once; the slow one is dropped unfinished.
#[test]
fn ra_06_first_ok_drops_the_late_failure() {
    let tracker = Tracker::new();
    let (_openers, gates) = gates(1);
    let late_bad = job(
        &tracker,
        0,
        gates.into_iter().next(),
        Err::<&str, _>("late"),
    );
    let good = job(&tracker, 1, None, Ok("good"));
    let mut fut = tasklane::first_ok(vec![late_bad, good], 2);
    assert_eq!(poll(&mut fut), Poll::Ready(Ok("good")));
    assert_eq!(tracker.cancelled(), [0]);
    assert!(tracker.alive().is_empty());
}

/// RA-07: empty input is a defined outcome, never a hang.
#[test]
fn ra_07_empty_input() {
    let none: Vec<future::Ready<u8>> = Vec::new();
    assert_eq!(poll(&mut tasklane::first(none, 3)), Poll::Ready(None));
    let none: Vec<future::Ready<Result<u8, String>>> = Vec::new();
    assert_eq!(
        poll(&mut tasklane::first_ok(none, 3)),
        Poll::Ready(Err(vec![]))
    );
}

/// RA-08: limit 1 over [a, b, c]: a's result; b and c never start.
#[test]
fn ra_08_first_with_limit_one_never_starts_the_rest() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 3, |i| i);
    let mut fut = tasklane::first(futs, 1);
    assert!(poll(&mut fut).is_pending());
    open(&mut openers, 0);
    assert_eq!(poll(&mut fut), Poll::Ready(Some(0)));
    assert_eq!(tracker.polls_of(1), 0);
    assert_eq!(tracker.polls_of(2), 0);
    assert!(tracker.alive().is_empty());
}

/// `first_ok` with every future failing: all the errors, in completion order.
#[test]
fn first_ok_all_fail_gives_every_error_in_completion_order() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 4, Err::<(), _>);
    let mut fut = tasklane::first_ok(futs, 4);
    for i in [2, 0, 3, 1] {
        assert!(poll(&mut fut).is_pending());
        open(&mut openers, i);
    }
    assert_eq!(poll(&mut fut), Poll::Ready(Err(vec![2, 0, 3, 1])));
}

// ---------------------------------------------------------------------------------------------
// M. run_on_each / run_all (RE)
// ---------------------------------------------------------------------------------------------

/// RE-01: run_on_each over ["apple", "banana", "cherry", "apple"]: every item handled, duplicates
/// too; no value.
#[test]
fn re_01_run_on_each() {
    let seen = Mutex::new(BTreeSet::new());
    let calls = Mutex::new(0);
    let done: () = block_on_sync(
        ["apple", "banana", "cherry", "apple"]
            .lane(2)
            .map_async(|fruit| async move { fruit })
            .for_each_async(|fruit| {
                *calls.lock().unwrap() += 1;
                seen.lock().unwrap().insert(fruit);
                future::ready(())
            }),
    );
    assert_eq!(done, ());
    assert_eq!(*calls.lock().unwrap(), 4);
    assert_eq!(
        seen.into_inner().unwrap().into_iter().collect::<Vec<_>>(),
        ["apple", "banana", "cherry"]
    );
}

/// RE-02 (CL-05, IA-04): run_on_each and run_all honour the limit; a limit of 0 panics naming it.
#[test]
fn re_02_run_on_each_and_run_all_respect_the_limit() {
    for limit in [1, 2, 5, 10, 20] {
        let gauge = Gauge::new();
        let work = |i: usize| {
            let gauge = gauge.clone();
            async move {
                let guard = gauge.enter();
                yield_times(i % 7).await;
                guard.leave();
                i
            }
        };
        block_on_sync(
            (0..30)
                .lane(limit)
                .map_async(work)
                .for_each_async(|_| future::ready(())),
        );
        assert!(gauge.peak() > 0 && gauge.peak() <= limit);
        let all = block_on_sync(tasklane::gather((0..30).map(work), limit));
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        assert!(gauge.peak() <= limit);
    }
    let report = catch_panic(|| drop((0..3).lane(0))).unwrap_err();
    assert!(report.message.contains("`limit`"));
}

/// RE-03: no limit (`usize::MAX`): all 100 tasks start before any finishes.
#[test]
fn re_03_unlimited_starts_everything_at_once() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 100, |i| i);
    let mut fut = tasklane::gather(futs, usize::MAX);
    assert!(poll(&mut fut).is_pending());
    assert_eq!(tracker.in_flight(), 100);
    for i in 0..100 {
        open(&mut openers, i);
    }
    assert_eq!(poll(&mut fut), Poll::Ready((0..100).collect::<Vec<_>>()));
}

/// RE-04 (ER-07): run_all and run_on_each, limit 3, 10 items, item 2 fails: 0 and 1 dropped
/// unfinished, 3..9 never started.
#[test]
fn re_04_fail_fast_cancels_in_flight_and_never_starts_the_rest() {
    // run_all: try_gather.
    try_gather_stops_at_item_2_of_10();

    // run_on_each: a lane with `try_for_each` (lazy input: unstarted items are never created).
    let tracker = Tracker::new();
    let (mut openers, gates) = gates(10);
    let gates = RefCell::new(gates.into_iter().map(Some).collect::<Vec<_>>());
    let mut fut = (0..10usize)
        .lane(3)
        .map_async(|i| {
            let out = if i == 2 { Err(i) } else { Ok(()) };
            job(&tracker, i, gates.borrow_mut()[i].take(), out)
        })
        .try_for_each(|()| future::ready(Ok(())));
    assert!(poll(&mut fut).is_pending());
    open(&mut openers, 2);
    assert_eq!(poll(&mut fut), Poll::Ready(Err(2)));
    drop(fut);
    assert_eq!(tracker.created(), [0, 1, 2, 3]);
    assert_eq!(tracker.cancelled(), [0, 1, 3]);
}

/// RE-05: run_on_each resolves to `()` (or, with `try_for_each`, to the first error); dropping it
/// drops every in-flight future.
#[test]
fn re_05_run_on_each_resolves_to_unit_and_drop_cancels() {
    let tracker = Tracker::new();
    let (_openers, futs) = gated(&tracker, 6, |_| ());
    let mut fut = futs.lane(4).run().for_each_async(|()| future::ready(()));
    assert!(fut.poll_unpin(&mut noop_context()).is_pending());
    assert_eq!((0..6).filter(|&i| tracker.polls_of(i) > 0).count(), 4);
    drop(fut);
    assert!(tracker.alive().is_empty());
    assert_eq!(
        block_on_sync(
            (0..5)
                .lane(2)
                .map_async(future::ready)
                .for_each_async(|_| future::ready(()))
        ),
        ()
    );
}

// ---------------------------------------------------------------------------------------------
// I. Error collection vs fail-fast (ER)
// ---------------------------------------------------------------------------------------------

/// ER-01: 0..9, limit 10, item 3 fails at once, the others wait: fail-fast gives its error, from
/// `try_gather` and from a lane consumed with `try_next`.
#[test]
fn er_01_fail_fast_returns_the_error() {
    let tracker = Tracker::new();
    let (_openers, futs) = er_01_futures(&tracker);
    assert_eq!(block_on_sync(tasklane::try_gather(futs, 10)), Err("boom"));
    let tracker = Tracker::new();
    let (_openers, futs) = er_01_futures(&tracker);
    let mut stream = futs.lane(10).run();
    assert_eq!(block_on_sync(stream.try_next()), Err("boom"));
}

/// Ten gated futures of `Result`, item 3 failing without waiting for its gate.
type Er01Futures = (
    Vec<Option<Opener>>,
    Vec<BoxFuture<'static, Result<usize, &'static str>>>,
);

fn er_01_futures(tracker: &Tracker) -> Er01Futures {
    let (openers, futs) = gated(tracker, 10, |i| i);
    let futs = futs
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            async move {
                if i == 3 {
                    return Err("boom");
                }
                Ok(f.await)
            }
            .boxed()
        })
        .collect();
    (openers, futs)
}

/// ER-02: 6 items, limit 6, item 0 fails, 1..5 never finish: fail-fast returns the error and the
/// five siblings are dropped.
#[test]
fn er_02_fail_fast_drops_in_flight_siblings() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 6, |i| if i == 0 { Err("boom") } else { Ok(i) });
    let mut collect = futs.lane(6).run().try_collect::<Vec<_>>();
    assert!(poll(&mut collect).is_pending());
    open(&mut openers, 0);
    assert_eq!(poll(&mut collect), Poll::Ready(Err("boom")));
    drop(collect);
    assert_eq!(tracker.cancelled(), [1, 2, 3, 4, 5]);
}

/// ER-03: collect-all: every input yields exactly one output, errors as values at their position.
#[test]
fn er_03_collect_all_keeps_every_outcome_in_place() {
    let out: Vec<Result<u32, u32>> = block_on_sync(
        (0..10u32)
            .lane(3)
            .ordered()
            .map_async(|i| async move {
                if i % 3 == 0 {
                    Err(i)
                } else {
                    Ok(i)
                }
            })
            .collect(),
    );
    let expected: Vec<_> = (0..10)
        .map(|i| if i % 3 == 0 { Err(i) } else { Ok(i) })
        .collect();
    assert_eq!(out, expected);
}

/// ER-04: ["apple", "banana", "fail", "apple"]: the error surfaces from the iteration and the other
/// tasks are dropped at once.
#[test]
fn er_04_error_surfaces_and_the_rest_is_dropped() {
    let tracker = Tracker::new();
    let (_openers, gates) = gates(4);
    let futs = ["apple", "banana", "fail", "apple"]
        .into_iter()
        .zip(gates)
        .enumerate()
        .map(|(i, (word, g))| {
            let gate = (word != "fail").then_some(g);
            job(
                &tracker,
                i,
                gate,
                if word == "fail" { Err(word) } else { Ok(word) },
            )
        })
        .collect::<Vec<_>>();
    let mut stream = futs.lane(4).run();
    assert_eq!(poll(&mut stream.try_next()), Poll::Ready(Err("fail")));
    drop(stream);
    assert_eq!(tracker.cancelled(), [0, 1, 3]);
}

/// ER-05: three futures failing in the same poll: the first by completion wins, the others are
/// dropped (Rust has no exception groups).
#[test]
fn er_05_simultaneous_failures_first_wins() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 3, Err::<(), _>);
    let mut fut = tasklane::try_gather(futs, 3);
    assert!(poll(&mut fut).is_pending());
    for i in [1, 0, 2] {
        open(&mut openers, i);
    }
    let Poll::Ready(Err(first)) = poll(&mut fut) else {
        panic!("expected an error")
    };
    assert!(first < 3);
    assert!(tracker.alive().is_empty());
    assert_eq!(
        tracker.completed().len(),
        3,
        "the others finished in the same poll, and were dropped"
    );
}

/// ER-07: run_all with a limit of 3 over 10 items, item 2 fails (RE-04 runs it for run_on_each too).
#[test]
fn er_07_fail_fast_with_a_limit_never_starts_the_rest() {
    try_gather_stops_at_item_2_of_10();
}

/// ER-07 / RE-04 for `try_gather`: limit 3, 10 items, item 2 fails: 0 and 1 dropped unfinished,
/// 3..9 never polled.
fn try_gather_stops_at_item_2_of_10() {
    let tracker = Tracker::new();
    let (mut openers, futs) = gated(&tracker, 10, |i| if i == 2 { Err(i) } else { Ok(i) });
    let mut fut = tasklane::try_gather(futs, 3);
    assert!(poll(&mut fut).is_pending());
    open(&mut openers, 2);
    assert_eq!(poll(&mut fut), Poll::Ready(Err(2)));
    assert_eq!(tracker.cancelled(), [0, 1, 3, 4, 5, 6, 7, 8, 9]);
    assert!(
        (3..10).all(|i| tracker.polls_of(i) == 0),
        "3..9 never polled"
    );
}

/// ER-08: with a limit, a consumer that stops at the first failure has seen exactly the outputs
/// that completed before it; running futures are dropped, unstarted ones never created, and every
/// item's captured resource is released (nothing leaked).
#[test]
fn er_08_outputs_before_the_failure_and_nothing_leaked() {
    let token = Arc::new(());
    let tracker = Tracker::new();
    let (mut openers, gates) = gates(9);
    let gates = RefCell::new(gates.into_iter().map(Some).collect::<Vec<_>>());
    let mut stream = (0..9usize).lane(3).ordered().map_async(|i| {
        let token = Arc::clone(&token);
        let gate = gates.borrow_mut()[i].take();
        tracker.track(i, async move {
            if let Some(g) = gate {
                g.await;
            }
            let _token = token;
            if i == 4 {
                Err(i)
            } else {
                Ok(i)
            }
        })
    });
    let mut seen = Vec::new();
    let mut failure = None;
    for i in 0..9 {
        open(&mut openers, i);
        while let Poll::Ready(Some(out)) = poll(&mut stream.next()) {
            match out {
                Ok(v) => seen.push(v),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_some() {
            break;
        }
    }
    drop(stream);
    assert_eq!(failure, Some(4));
    assert_eq!(seen, [0, 1, 2, 3]);
    // The consumer took 0..=4; the lane had refilled 4's slot, so 5, 6 and 7 were in flight.
    assert_eq!(
        tracker.created(),
        [0, 1, 2, 3, 4, 5, 6, 7],
        "at most 3 beyond the consumer"
    );
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "every captured resource released"
    );
    drop(gates);
}

/// ER-09: collect-all in completion order: `[ok slow, bad at once, ok slow]` gives the error first.
#[test]
fn er_09_errors_as_values_in_completion_order() {
    let tracker = Tracker::new();
    let (mut openers, gates) = gates(3);
    let mut gates = gates.into_iter();
    let futs = vec![
        job(&tracker, 0, gates.next(), Ok(0)),
        job(&tracker, 1, None, Err("bad")),
        job(&tracker, 2, gates.nth(1), Ok(2)),
    ];
    let mut stream = futs.lane(3).run();
    assert_eq!(poll(&mut stream.next()), Poll::Ready(Some(Err("bad"))));
    open(&mut openers, 2);
    assert_eq!(poll(&mut stream.next()), Poll::Ready(Some(Ok(2))));
    open(&mut openers, 0);
    let rest: Vec<_> = block_on_sync(stream.collect());
    assert_eq!(rest, [Ok(0)]);
}

/// ER-10: a source error and a task error stay apart: the recipe maps the input's `Err` to its own
/// variant, which the lane passes through unchanged (the other two aio.tasks error kinds cannot
/// happen in Rust: the types rule them out).
#[test]
fn er_10_source_errors_and_task_errors_stay_apart() {
    #[derive(Debug, PartialEq)]
    enum Failure {
        Source(&'static str),
        Task(u32),
    }
    let input = futures::stream::iter([Ok(1u32), Err("bad source"), Ok(4)]);
    let out: Vec<Result<u32, Failure>> = block_on_sync(
        input
            .lane(2)
            .ordered()
            .map_async(|item: Result<u32, &'static str>| async move {
                let x = item.map_err(Failure::Source)?;
                if x == 4 {
                    Err(Failure::Task(x))
                } else {
                    Ok(x * 10)
                }
            })
            .collect(),
    );
    assert_eq!(
        out,
        [
            Ok(10),
            Err(Failure::Source("bad source")),
            Err(Failure::Task(4))
        ]
    );
}

/// ER-13: a panic in a user future propagates out of `poll`; the future is safe to drop and drops
/// every other in-flight future.
#[test]
fn er_13_a_panic_propagates_and_drop_is_clean() {
    let tracker = Tracker::new();
    let (_openers, gates) = gates(3);
    let mut gates = gates.into_iter();
    let futs: Vec<Pin<Box<dyn Future<Output = u8>>>> = vec![
        Box::pin(job(&tracker, 0, gates.next(), 0)),
        Box::pin(async { panic!("task 1 panicked") }),
        Box::pin(job(&tracker, 2, gates.next(), 2)),
    ];
    let mut fut = tasklane::gather(futs, 3);
    let report = catch_panic(|| fut.poll_unpin(&mut noop_context())).unwrap_err();
    assert_eq!(report.message, "task 1 panicked");
    drop(fut);
    assert!(tracker.alive().is_empty());
}

/// ER-14: the error surfaced is the user's own value, unchanged (the same allocation).
#[test]
fn er_14_the_users_own_error_unchanged() {
    #[derive(Debug)]
    struct MyError(Arc<String>);
    let original = Arc::new("disk full".to_string());
    let err = MyError(Arc::clone(&original));
    let futs: Vec<BoxFuture<'static, Result<(), MyError>>> =
        vec![future::pending().boxed(), future::ready(Err(err)).boxed()];
    let Err(got) = block_on_sync(tasklane::try_gather(futs, 2)) else {
        panic!("expected the error")
    };
    assert!(Arc::ptr_eq(&got.0, &original));

    let err = MyError(Arc::clone(&original));
    let Err(all) = block_on_sync(tasklane::first_ok([future::ready(Err::<(), _>(err))], 1)) else {
        panic!("expected the errors")
    };
    assert!(Arc::ptr_eq(&all[0].0, &original));
}

/// Debug output of the helper futures does not need the futures to be `Debug`.
#[test]
fn helper_futures_debug_without_debug_futures() {
    struct Opaque;
    impl Future for Opaque {
        type Output = u8;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u8> {
            Poll::Ready(1)
        }
    }
    let text = format!("{:?}", tasklane::gather([Opaque], 1));
    assert!(text.starts_with("Gather"), "{text}");
    let text = format!("{:?}", tasklane::first([Opaque], 1));
    assert!(text.starts_with("First"), "{text}");
}
