//! Poisoning (issue 9 §2 and §3, What to build 3, acceptance 3): a terminal that saw a panic from
//! user code escape one of its polls remembers it. That panic propagates once, out of the poll where
//! it happened; every later poll panics with a message saying the terminal was poisoned (matched
//! here on the word "poisoned") and runs no user code; dropping the terminal drops every future it
//! created exactly once, and the input with it.
//!
//! Every terminal (`map_async` in both orders, plain, with retry and with timeout; `run`; `gather`,
//! `try_gather`, `first`, `first_ok`; `for_each_async`; the pool's driver), and every place user code
//! runs: a future's poll, `map_async`'s closure, `retry_if`, `retry_after`, an item's `Clone`, a
//! future's `Drop`, and each of them while the lane processes its timer. Futures finish on the
//! test's command (a [`Board`]), the lanes are polled by hand, time is a `ManualClock`.

mod common;

use std::fmt::Debug;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{catch_panic, counting_iter, InputProbe, Poller, Tracker};
use futures::future::{self, FutureExt, LocalBoxFuture};
use futures::stream::{LocalBoxStream, StreamExt};
use futures_test::task::noop_context;
use tasklane::pool::{JobError, TaskPool};
use tasklane::time::ManualClock;
use tasklane::{prelude::*, Backoff, Error};

/// The word every poll of a poisoned terminal panics with.
const POISONED: &str = "poisoned";

/// A timeout that never expires in these tests (the clock is moved by hand).
const LONG: Duration = Duration::from_secs(3600);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn order(ordered: bool) -> &'static str {
    if ordered {
        "ordered"
    } else {
        "unordered"
    }
}

// ---------------------------------------------------------------------------------------------
// A board of gates by id: `wait(id)` finishes once the test calls `open(id)`, however many
// futures wait for the same id (one per attempt).
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Board(Arc<Mutex<BoardInner>>);

#[derive(Debug, Default)]
struct BoardInner {
    open: Vec<usize>,
    waiting: Vec<(usize, Waker)>,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, BoardInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait(&self, id: usize) -> impl Future<Output = ()> + Send + 'static {
        let board = self.clone();
        future::poll_fn(move |cx: &mut Context<'_>| {
            let mut inner = board.lock();
            if inner.open.contains(&id) {
                return Poll::Ready(());
            }
            inner.waiting.push((id, cx.waker().clone()));
            Poll::Pending
        })
    }

    fn open(&self, id: usize) {
        let woken: Vec<Waker> = {
            let mut inner = self.lock();
            inner.open.push(id);
            let (woken, rest) = std::mem::take(&mut inner.waiting)
                .into_iter()
                .partition(|(i, _)| *i == id);
            inner.waiting = rest;
            woken.into_iter().map(|(_, w)| w).collect()
        };
        woken.into_iter().for_each(Waker::wake);
    }
}

// ---------------------------------------------------------------------------------------------
// A future whose drop panics
// ---------------------------------------------------------------------------------------------

/// When a [`PanicsOnDrop`] panics.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DropPanic {
    /// Never.
    No,
    /// When dropped after it finished (the lane drops a finished future in place).
    Finished,
    /// When dropped before it finished (a timeout drops it).
    Unfinished,
}

/// Wraps a future; its drop panics as `when` says.
struct PanicsOnDrop<F> {
    fut: Pin<Box<F>>,
    id: usize,
    when: DropPanic,
    finished: bool,
}

fn panics_on_drop<F: Future>(id: usize, when: DropPanic, fut: F) -> PanicsOnDrop<F> {
    PanicsOnDrop {
        fut: Box::pin(fut),
        id,
        when,
        finished: false,
    }
}

impl<F: Future> Future for PanicsOnDrop<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = self.fut.as_mut().poll(cx);
        if out.is_ready() {
            self.finished = true;
        }
        out
    }
}

impl<F> Drop for PanicsOnDrop<F> {
    fn drop(&mut self) {
        let panics = match self.when {
            DropPanic::No => false,
            DropPanic::Finished => self.finished,
            DropPanic::Unfinished => !self.finished,
        };
        if panics && !std::thread::panicking() {
            panic!("item {} panicked in drop", self.id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// An item whose clone panics
// ---------------------------------------------------------------------------------------------

/// An input item whose `panic_on`-th clone panics. Every copy holds `token`, so its strong count
/// tells how many copies are alive.
#[derive(Debug)]
struct Fragile {
    id: usize,
    panic_on: Option<usize>,
    clones: Arc<AtomicUsize>,
    token: Arc<()>,
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        let n = self.clones.fetch_add(1, Ordering::SeqCst) + 1;
        if self.panic_on == Some(n) {
            panic!("item {} panicked in clone {n}", self.id);
        }
        Fragile {
            id: self.id,
            panic_on: self.panic_on,
            clones: Arc::clone(&self.clones),
            token: Arc::clone(&self.token),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Runs each case of a test to its end, even when an earlier one failed, and fails the test with
/// every case's failure at once.
#[derive(Default)]
struct Cases {
    run: usize,
    failures: Vec<String>,
}

impl Cases {
    fn run(&mut self, case: impl FnOnce()) {
        self.run += 1;
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(case)) {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            self.failures.push(message);
        }
    }

    #[track_caller]
    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} cases failed:\n- {}",
            self.failures.len(),
            self.run,
            self.failures.join("\n- ")
        );
    }
}

/// One poll that must panic with user code's own message (`boom`).
#[track_caller]
fn assert_panics<R: Debug>(what: &str, boom: &str, poll: impl FnOnce() -> R) {
    match catch_panic(poll) {
        Ok(r) => panic!("{what}: expected the panic {boom:?}, got {r:?}"),
        Err(report) => assert!(
            report.message.contains(boom),
            "{what}: expected the panic {boom:?}, got the panic {:?} at {}:{}",
            report.message,
            report.file,
            report.line
        ),
    }
}

/// The next polls (three of them) each panic with a message containing "poisoned", and poll no
/// future of `trackers` any more.
#[track_caller]
fn assert_poisoned<R: Debug>(what: &str, trackers: &[&Tracker], mut poll: impl FnMut() -> R) {
    let polls: usize = trackers.iter().map(|t| t.total_polls()).sum();
    for n in 1..=3 {
        match catch_panic(&mut poll) {
            Ok(r) => panic!(
                "{what}: poll {n} after the panic: expected a panic saying it is {POISONED}, \
                 got {r:?}"
            ),
            Err(report) => assert!(
                report.message.contains(POISONED),
                "{what}: poll {n} after the panic: expected a panic saying it is {POISONED}, \
                 got the panic {:?} at {}:{}",
                report.message,
                report.file,
                report.line
            ),
        }
    }
    let after: usize = trackers.iter().map(|t| t.total_polls()).sum();
    assert_eq!(after, polls, "{what}: a poisoned terminal polls no future");
}

/// After the terminal is dropped: every future it created was dropped exactly once.
#[track_caller]
fn assert_dropped_once(what: &str, tracker: &Tracker) {
    let mut created = tracker.created();
    let mut dropped = tracker.dropped();
    created.sort_unstable();
    dropped.sort_unstable();
    assert_eq!(
        dropped, created,
        "{what}: every future created (left) is dropped exactly once (right)"
    );
}

// ---------------------------------------------------------------------------------------------
// Lanes of every kind
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `map_async` (or `run`) alone.
    Plain,
    /// `.retry(2)` with a zero back-off.
    Retry,
    /// `.timeout(LONG)` on the manual clock.
    Timeout,
}

const KINDS: [Kind; 3] = [Kind::Plain, Kind::Retry, Kind::Timeout];

/// What every test lane yields: its outputs, formatted (the kinds have different item types).
type Out = LocalBoxStream<'static, String>;

fn show<T: Debug>(x: T) -> String {
    format!("{x:?}")
}

/// `items` (from a counting input) through `lane(limit)` of the given kind, then `map_async(f)`.
fn map_lane<T, F, Fut>(
    items: Vec<T>,
    limit: usize,
    ordered: bool,
    kind: Kind,
    clock: &ManualClock,
    f: F,
) -> (Poller<Out>, InputProbe)
where
    T: Clone + 'static,
    F: FnMut(T) -> Fut + 'static,
    Fut: Future<Output = Result<usize, usize>> + 'static,
{
    let (input, probe) = counting_iter(items);
    let lane = input.lane(limit).with_clock(clock);
    let lane = if ordered { lane.ordered() } else { lane };
    let out: Out = match kind {
        Kind::Plain => lane.map_async(f).map(show).boxed_local(),
        Kind::Retry => lane
            .retry(2)
            .backoff(Backoff::constant(Duration::ZERO))
            .map_async(f)
            .map(show)
            .boxed_local(),
        Kind::Timeout => lane.timeout(LONG).map_async(f).map(show).boxed_local(),
    };
    (Poller::new(out), probe)
}

/// A tracked attempt for item `id`: waits for its gate, panics in poll if `id == panics`, then
/// outputs `Ok(id)`; its drop panics as `drop_panic` says if `id == panics`.
fn attempt(
    tracker: &Tracker,
    board: &Board,
    id: usize,
    panics: Option<usize>,
    drop_panic: DropPanic,
) -> impl Future<Output = Result<usize, usize>> + Send + 'static {
    let gate = board.wait(id);
    let when = if panics == Some(id) {
        drop_panic
    } else {
        DropPanic::No
    };
    let in_poll = panics == Some(id) && drop_panic == DropPanic::No;
    tracker.track(
        id,
        panics_on_drop(id, when, async move {
            gate.await;
            if in_poll {
                panic!("item {id} panicked in poll");
            }
            Ok::<usize, usize>(id)
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// map_async
// ---------------------------------------------------------------------------------------------

/// Item 1 of a `map_async` lane of every kind, in both orders, panics (in poll, or in the drop
/// of its finished future): the panic propagates once with `message`, every later poll panics
/// saying the lane is poisoned and polls nothing (though other items were woken meanwhile), and
/// dropping the lane drops every future once.
fn a_future_panic_poisons_the_lane(how: &str, drop_panic: DropPanic, message: &str) {
    let mut cases = Cases::default();
    for kind in KINDS {
        for ordered in [false, true] {
            cases.run(|| {
                let what = format!("map_async, {kind:?}, {}: a panic in {how}", order(ordered));
                let (tracker, board, clock) =
                    (Tracker::new(), Board::default(), ManualClock::new());
                let (t, b) = (tracker.clone(), board.clone());
                let (mut p, probe) =
                    map_lane((0..6).collect(), 3, ordered, kind, &clock, move |i| {
                        attempt(&t, &b, i, Some(1), drop_panic)
                    });
                assert!(p.settle().is_empty(), "{what}");
                board.open(1);
                assert_panics(&what, message, || p.poll());
                board.open(0);
                board.open(2);
                assert_poisoned(&what, &[&tracker], || p.poll());
                drop(p);
                assert_dropped_once(&what, &tracker);
                assert!(probe.dropped(), "{what}: the input is dropped");
            });
        }
    }
    cases.finish();
}

/// A future that panics in poll poisons a `map_async` lane (plain, retrying, timed; both orders):
/// its panic propagates once, every later poll panics saying the lane is poisoned and polls nothing
/// (though other items were woken meanwhile), and dropping the lane drops every future once.
#[test]
fn a_panic_in_a_future_poisons_a_map_async_lane() {
    a_future_panic_poisons_the_lane("poll", DropPanic::No, "item 1 panicked in poll");
}

/// A panic in `map_async`'s closure (while it refills a slot) poisons the lane: the panic
/// propagates once, later polls panic saying the lane is poisoned (they do not pull and drop more
/// input), and dropping the lane drops every future once.
#[test]
fn a_panic_in_the_closure_poisons_a_map_async_lane() {
    let mut cases = Cases::default();
    for kind in KINDS {
        for ordered in [false, true] {
            cases.run(|| {
                let what = format!("map_async, {kind:?}, {}: a panic in f", order(ordered));
                let (tracker, board, clock) =
                    (Tracker::new(), Board::default(), ManualClock::new());
                let (t, b) = (tracker.clone(), board.clone());
                let (mut p, probe) =
                    map_lane((0..6).collect(), 2, ordered, kind, &clock, move |i| {
                        if i == 2 {
                            panic!("f panicked on item 2");
                        }
                        attempt(&t, &b, i, None, DropPanic::No)
                    });
                assert!(p.settle().is_empty(), "{what}");
                board.open(0);
                assert_panics(&what, "f panicked on item 2", || p.poll());
                let pulled = probe.pulled();
                board.open(1);
                assert_poisoned(&what, &[&tracker], || p.poll());
                assert_eq!(
                    probe.pulled(),
                    pulled,
                    "{what}: a poisoned lane pulls nothing"
                );
                drop(p);
                assert_eq!(tracker.created(), [0, 1], "{what}");
                assert_dropped_once(&what, &tracker);
                assert!(probe.dropped(), "{what}: the input is dropped");
            });
        }
    }
    cases.finish();
}

/// A future whose drop panics (the lane drops a finished future in place) poisons the lane: the
/// panic propagates once, later polls panic saying the lane is poisoned, and every future is
/// dropped exactly once (the one that panicked in drop is not dropped again).
#[test]
fn a_panic_in_a_finished_futures_drop_poisons_a_map_async_lane() {
    a_future_panic_poisons_the_lane("drop", DropPanic::Finished, "item 1 panicked in drop");
}

/// The retrying lane of the `retry_if` / `retry_after` tests: items 0..6, limit 3, two retries at
/// once; item 1 returns `Err(1)` when its gate opens, the others `Ok`.
fn retry_lane<R, H>(
    ordered: bool,
    timed: bool,
    tracker: &Tracker,
    board: &Board,
    clock: &ManualClock,
    retry_if: R,
    retry_after: H,
) -> (Poller<Out>, InputProbe)
where
    R: FnMut(&Error<usize>) -> bool + 'static,
    H: FnMut(&usize) -> Option<Duration> + 'static,
{
    let (input, probe) = counting_iter(0..6usize);
    let lane = input.lane(3).with_clock(clock);
    let lane = if ordered { lane.ordered() } else { lane };
    let lane = lane
        .retry(2)
        .backoff(Backoff::constant(Duration::ZERO))
        .retry_if(retry_if)
        .retry_after(retry_after);
    let lane = if timed { lane.timeout(LONG) } else { lane };
    let (t, b) = (tracker.clone(), board.clone());
    let out = lane
        .map_async(move |i| {
            let gate = b.wait(i);
            t.track(i, async move {
                gate.await;
                if i == 1 {
                    Err(i)
                } else {
                    Ok(i)
                }
            })
        })
        .map(show)
        .boxed_local();
    (Poller::new(out), probe)
}

/// A panic in `retry_if` poisons a retrying lane (with and without a timeout, both orders): it
/// propagates once, later polls panic saying the lane is poisoned, every attempt is dropped once.
#[test]
fn a_panic_in_retry_if_poisons_the_lane() {
    let mut cases = Cases::default();
    for timed in [false, true] {
        for ordered in [false, true] {
            cases.run(|| {
                let what = format!(
                    "retry{}, {}: a panic in retry_if",
                    if timed { " and timeout" } else { "" },
                    order(ordered)
                );
                let (tracker, board, clock) =
                    (Tracker::new(), Board::default(), ManualClock::new());
                let retry_if = |e: &Error<usize>| {
                    if e.inner() == Some(&1) {
                        panic!("retry_if panicked on item 1");
                    }
                    true
                };
                let (mut p, probe) =
                    retry_lane(ordered, timed, &tracker, &board, &clock, retry_if, |_| None);
                assert!(p.settle().is_empty(), "{what}");
                board.open(1);
                assert_panics(&what, "retry_if panicked on item 1", || p.poll());
                board.open(0);
                board.open(2);
                assert_poisoned(&what, &[&tracker], || p.poll());
                drop(p);
                assert_dropped_once(&what, &tracker);
                assert!(probe.dropped(), "{what}: the input is dropped");
            });
        }
    }
    cases.finish();
}

/// A panic in `retry_after` poisons a retrying lane (with and without a timeout, both orders): it
/// propagates once, later polls panic saying the lane is poisoned, every attempt is dropped once.
#[test]
fn a_panic_in_retry_after_poisons_the_lane() {
    let mut cases = Cases::default();
    for timed in [false, true] {
        for ordered in [false, true] {
            cases.run(|| {
                let what = format!(
                    "retry{}, {}: a panic in retry_after",
                    if timed { " and timeout" } else { "" },
                    order(ordered)
                );
                let (tracker, board, clock) =
                    (Tracker::new(), Board::default(), ManualClock::new());
                let retry_after = |e: &usize| -> Option<Duration> {
                    if *e == 1 {
                        panic!("retry_after panicked on item 1");
                    }
                    None
                };
                let (mut p, probe) = retry_lane(
                    ordered,
                    timed,
                    &tracker,
                    &board,
                    &clock,
                    |_| true,
                    retry_after,
                );
                assert!(p.settle().is_empty(), "{what}");
                board.open(1);
                assert_panics(&what, "retry_after panicked on item 1", || p.poll());
                board.open(0);
                board.open(2);
                assert_poisoned(&what, &[&tracker], || p.poll());
                drop(p);
                assert_dropped_once(&what, &tracker);
                assert!(probe.dropped(), "{what}: the input is dropped");
            });
        }
    }
    cases.finish();
}

/// A panic in an item's `Clone` (a retrying lane clones the item for every attempt: the first
/// clone at its start, the second at its retry) poisons the lane: it propagates once, later polls
/// panic saying the lane is poisoned, every attempt is dropped once and no copy of an item leaks.
#[test]
fn a_panic_in_an_items_clone_poisons_a_retrying_lane() {
    let mut cases = Cases::default();
    for panic_on in [1, 2] {
        for timed in [false, true] {
            for ordered in [false, true] {
                cases.run(|| {
                    let what = format!(
                        "retry{}, {}: a panic in clone {panic_on} of item 1",
                        if timed { " and timeout" } else { "" },
                        order(ordered)
                    );
                    let tracker = Tracker::new();
                    let clock = ManualClock::new();
                    let token = Arc::new(());
                    let items: Vec<Fragile> = (0..6)
                        .map(|id| Fragile {
                            id,
                            panic_on: (id == 1).then_some(panic_on),
                            clones: Arc::default(),
                            token: Arc::clone(&token),
                        })
                        .collect();
                    let (input, probe) = counting_iter(items);
                    let lane = input.lane(3).with_clock(&clock);
                    let lane = if ordered { lane.ordered() } else { lane };
                    let lane = lane.retry(2).backoff(Backoff::constant(Duration::ZERO));
                    let lane = if timed { lane.timeout(LONG) } else { lane };
                    let t = tracker.clone();
                    // Item 1 fails (so that it is retried); the others never finish.
                    let out = lane
                        .map_async(move |item: Fragile| {
                            let id = item.id;
                            t.track(id, async move {
                                if id == 1 {
                                    return Err(id);
                                }
                                future::pending::<()>().await;
                                drop(item);
                                Ok(id)
                            })
                        })
                        .map(show)
                        .boxed_local();
                    let mut p = Poller::new(out);
                    assert_panics(
                        &what,
                        &format!("item 1 panicked in clone {panic_on}"),
                        || p.poll(),
                    );
                    assert_poisoned(&what, &[&tracker], || p.poll());
                    drop(p);
                    assert_dropped_once(&what, &tracker);
                    assert!(probe.dropped(), "{what}: the input is dropped");
                    assert_eq!(
                        Arc::strong_count(&token),
                        1,
                        "{what}: every copy of every item is dropped"
                    );
                });
            }
        }
    }
    cases.finish();
}

/// A panic while the lane processes its timer poisons it: `retry_if` panics on a timeout error
/// (item 0's attempt timed out). The panic propagates once; later polls panic saying the lane is
/// poisoned (they do not return `Pending` with a disarmed timer); every attempt is dropped once.
#[test]
fn a_panic_in_retry_if_on_a_timeout_poisons_the_lane() {
    let mut cases = Cases::default();
    for ordered in [false, true] {
        cases.run(|| {
            let what = format!(
                "retry and timeout, {}: retry_if panics on a timeout",
                order(ordered)
            );
            let tracker = Tracker::new();
            let clock = ManualClock::new();
            let (input, probe) = counting_iter(0..4usize);
            let lane = input.lane(2).with_clock(&clock);
            let lane = if ordered { lane.ordered() } else { lane };
            let t = tracker.clone();
            let out = lane
                .retry(3)
                .backoff(Backoff::constant(Duration::ZERO))
                .timeout(ms(100))
                .retry_if(|e: &Error<usize>| {
                    if e.is_timeout() {
                        panic!("retry_if panicked on a timeout");
                    }
                    true
                })
                .map_async(move |i| t.track(i, future::pending::<Result<usize, usize>>()))
                .map(show)
                .boxed_local();
            let mut p = Poller::new(out);
            assert!(p.settle().is_empty(), "{what}");
            clock.advance(ms(100));
            assert_panics(&what, "retry_if panicked on a timeout", || p.poll());
            clock.advance(ms(1000));
            assert_poisoned(&what, &[&tracker], || p.poll());
            drop(p);
            assert_dropped_once(&what, &tracker);
            assert!(probe.dropped(), "{what}: the input is dropped");
        });
    }
    cases.finish();
}

/// A future whose drop panics when its timeout drops it (during the lane's timer processing)
/// poisons the lane: the panic propagates once, later polls panic saying the lane is poisoned, and
/// every future is dropped exactly once.
#[test]
fn a_panic_in_the_drop_of_a_timed_out_future_poisons_the_lane() {
    let mut cases = Cases::default();
    for retry in [false, true] {
        for ordered in [false, true] {
            cases.run(|| {
                let what = format!(
                    "timeout{}, {}: a panic in the drop of a timed-out attempt",
                    if retry { " and retry" } else { "" },
                    order(ordered)
                );
                let (tracker, board, clock) =
                    (Tracker::new(), Board::default(), ManualClock::new());
                let (t, b) = (tracker.clone(), board.clone());
                let make = move |i| attempt(&t, &b, i, Some(1), DropPanic::Unfinished);
                let (input, probe) = counting_iter(0..4usize);
                let lane = input.lane(2).with_clock(&clock);
                let lane = if ordered { lane.ordered() } else { lane };
                let out: Out = if retry {
                    lane.retry(2)
                        .timeout(ms(100))
                        .map_async(make)
                        .map(show)
                        .boxed_local()
                } else {
                    lane.timeout(ms(100))
                        .map_async(make)
                        .map(show)
                        .boxed_local()
                };
                let mut p = Poller::new(out);
                assert!(p.settle().is_empty(), "{what}");
                clock.advance(ms(100));
                assert_panics(&what, "item 1 panicked in drop", || p.poll());
                clock.advance(ms(1000));
                board.open(0);
                assert_poisoned(&what, &[&tracker], || p.poll());
                drop(p);
                assert_dropped_once(&what, &tracker);
                assert!(probe.dropped(), "{what}: the input is dropped");
            });
        }
    }
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------------------------

/// A panic in a future's poll, or in the drop of a finished future, poisons a `run` lane (plain
/// and timed, both orders): it propagates once, later polls panic saying the lane is poisoned, and
/// every future is dropped once.
#[test]
fn a_panic_in_a_future_poisons_a_run_lane() {
    let mut cases = Cases::default();
    for drop_panic in [DropPanic::No, DropPanic::Finished] {
        for timed in [false, true] {
            for ordered in [false, true] {
                cases.run(|| {
                    let what = format!(
                        "run{}, {}: a panic in {}",
                        if timed { " with timeout" } else { "" },
                        order(ordered),
                        if drop_panic == DropPanic::No {
                            "poll"
                        } else {
                            "drop"
                        }
                    );
                    let (tracker, board, clock) =
                        (Tracker::new(), Board::default(), ManualClock::new());
                    let (t, b) = (tracker.clone(), board.clone());
                    let futs = (0..6).map(move |i| attempt(&t, &b, i, Some(1), drop_panic));
                    let (input, probe) = counting_iter(futs);
                    let lane = input.lane(3).with_clock(&clock);
                    let lane = if ordered { lane.ordered() } else { lane };
                    let out: Out = if timed {
                        lane.timeout(LONG).run().map(show).boxed_local()
                    } else {
                        lane.run().map(show).boxed_local()
                    };
                    let mut p = Poller::new(out);
                    assert!(p.settle().is_empty(), "{what}");
                    board.open(1);
                    let boom = if drop_panic == DropPanic::No {
                        "item 1 panicked in poll"
                    } else {
                        "item 1 panicked in drop"
                    };
                    assert_panics(&what, boom, || p.poll());
                    board.open(0);
                    board.open(2);
                    assert_poisoned(&what, &[&tracker], || p.poll());
                    drop(p);
                    assert_dropped_once(&what, &tracker);
                    assert!(probe.dropped(), "{what}: the input is dropped");
                });
            }
        }
    }
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// gather, try_gather, first, first_ok
// ---------------------------------------------------------------------------------------------

/// The four helpers, as one boxed future each (their outputs formatted).
#[derive(Clone, Copy, Debug)]
enum Helper {
    Gather,
    TryGather,
    First,
    FirstOk,
}

fn helper_future(
    helper: Helper,
    futs: impl Iterator<Item = LocalBoxFuture<'static, Result<usize, usize>>> + 'static,
) -> LocalBoxFuture<'static, String> {
    match helper {
        Helper::Gather => tasklane::gather(futs, 3).map(show).boxed_local(),
        Helper::TryGather => tasklane::try_gather(futs, 3).map(show).boxed_local(),
        Helper::First => tasklane::first(futs, 3).map(show).boxed_local(),
        Helper::FirstOk => tasklane::first_ok(futs, 3).map(show).boxed_local(),
    }
}

/// A panic in a future's poll, or in the drop of a finished future, poisons `gather`,
/// `try_gather`, `first` and `first_ok`: it propagates once, later polls panic saying the future is
/// poisoned, and every future is dropped once.
#[test]
fn a_panic_in_a_future_poisons_gather_try_gather_first_and_first_ok() {
    let mut cases = Cases::default();
    for helper in [
        Helper::Gather,
        Helper::TryGather,
        Helper::First,
        Helper::FirstOk,
    ] {
        for drop_panic in [DropPanic::No, DropPanic::Finished] {
            cases.run(|| {
                let boom = if drop_panic == DropPanic::No {
                    "item 1 panicked in poll"
                } else {
                    "item 1 panicked in drop"
                };
                let what = format!("{helper:?}: {boom}");
                let (tracker, board) = (Tracker::new(), Board::default());
                let (t, b) = (tracker.clone(), board.clone());
                let futs =
                    (0..6).map(move |i| attempt(&t, &b, i, Some(1), drop_panic).boxed_local());
                let mut fut = helper_future(helper, futs);
                let mut cx = noop_context();
                assert!(fut.poll_unpin(&mut cx).is_pending(), "{what}");
                board.open(1);
                assert_panics(&what, boom, || fut.poll_unpin(&mut noop_context()));
                board.open(0);
                board.open(2);
                assert_poisoned(&what, &[&tracker], || fut.poll_unpin(&mut noop_context()));
                drop(fut);
                assert_dropped_once(&what, &tracker);
            });
        }
    }
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// for_each_async
// ---------------------------------------------------------------------------------------------

/// Where the `for_each_async` tests panic.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Site {
    /// In the handler's future, when polled.
    HandlerFuture,
    /// In the handler `g` itself.
    Handler,
    /// In a lane future.
    LaneFuture,
}

/// A panic in the handler's future, in the handler, or in a lane future poisons `for_each_async`
/// (both orders): it propagates once, later polls panic saying it is poisoned and poll no future,
/// and dropping it drops every lane future and every handler future once.
#[test]
fn a_panic_poisons_for_each_async() {
    let mut cases = Cases::default();
    for site in [Site::HandlerFuture, Site::Handler, Site::LaneFuture] {
        for ordered in [false, true] {
            cases.run(|| {
                let what = format!("for_each_async, {}: a panic in {site:?}", order(ordered));
                let (tracker, handlers, board) = (Tracker::new(), Tracker::new(), Board::default());
                let (t, b, h, hb) = (
                    tracker.clone(),
                    board.clone(),
                    handlers.clone(),
                    board.clone(),
                );
                let panics = (site == Site::LaneFuture).then_some(1);
                let (input, probe) = counting_iter(0..6usize);
                let lane = input.lane(3);
                let lane = if ordered { lane.ordered() } else { lane };
                let fut = lane
                    .map_async(move |i| attempt(&t, &b, i, panics, DropPanic::No))
                    .for_each_async(move |out: Result<usize, usize>| {
                        let i = out.unwrap();
                        if site == Site::Handler && i == 1 {
                            panic!("the handler panicked on 1");
                        }
                        // Handler futures wait for gate 100 + i.
                        let gate = hb.wait(100 + i);
                        h.track(i, async move {
                            if site == Site::HandlerFuture && i == 1 {
                                panic!("the handler's future panicked on 1");
                            }
                            gate.await;
                        })
                    });
                let mut fut = Box::pin(fut);
                assert!(fut.poll_unpin(&mut noop_context()).is_pending(), "{what}");
                // Item 0 and its handler finish, then item 1 (in either order) panics.
                board.open(0);
                board.open(100);
                board.open(1);
                let boom = match site {
                    Site::HandlerFuture => "the handler's future panicked on 1",
                    Site::Handler => "the handler panicked on 1",
                    Site::LaneFuture => "item 1 panicked in poll",
                };
                assert_panics(&what, boom, || fut.poll_unpin(&mut noop_context()));
                board.open(2);
                board.open(101);
                assert_poisoned(&what, &[&tracker, &handlers], || {
                    fut.poll_unpin(&mut noop_context())
                });
                drop(fut);
                assert_dropped_once(&what, &tracker);
                assert_dropped_once(&format!("{what} (handlers)"), &handlers);
                assert!(probe.dropped(), "{what}: the input is dropped");
            });
        }
    }
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// The pool
// ---------------------------------------------------------------------------------------------

/// A job that panics poisons the pool's driver: the panic propagates once out of the driver's
/// poll, later polls panic saying the driver is poisoned and poll no job, and dropping the driver
/// drops every job (running and queued) exactly once; every handle resolves to `Cancelled`.
#[test]
fn a_panicking_job_poisons_the_pool_driver() {
    let what = "TaskPool::new(2): job 1 panics";
    let (tracker, board) = (Tracker::new(), Board::default());
    let (pool, driver) = TaskPool::new(2);
    let mut handles: Vec<_> = (0..5)
        .map(|i| pool.submit(attempt(&tracker, &board, i, Some(1), DropPanic::No)))
        .collect();
    let mut driver = Box::pin(driver);
    assert!(
        driver.poll_unpin(&mut noop_context()).is_pending(),
        "{what}"
    );
    board.open(1);
    assert_panics(what, "item 1 panicked in poll", || {
        driver.poll_unpin(&mut noop_context())
    });
    board.open(0);
    board.open(2);
    assert_poisoned(what, &[&tracker], || driver.poll_unpin(&mut noop_context()));
    drop(driver);
    drop(pool);
    assert_dropped_once(what, &tracker);
    for (i, handle) in handles.iter_mut().enumerate() {
        assert_eq!(
            handle.poll_unpin(&mut noop_context()),
            Poll::Ready(Err(JobError::Cancelled)),
            "{what}: the handle of job {i}"
        );
    }
}
