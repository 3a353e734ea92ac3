//! Named helpers for the retry and timeout tests: an event log stamped with a [`ManualClock`], attempt
//! futures whose drop is logged (so a test sees exactly when the lane drops an attempt), gates that
//! finish an attempt on the test's command, and poll-level helpers for a lane on the manual clock.
//!
//! Everything here is deterministic and Miri-friendly: no real time, no threads.
// Each test binary that declares `mod common_time;` uses only some of these helpers.
#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{FutureExt, LocalBoxFuture};
use futures::{Stream, StreamExt};
use futures_test::task::{new_count_waker, noop_context, AwokenCount};
use tasklane::time::ManualClock;
use tasklane::{Configure, Error, Lane};

pub(crate) const NS: Duration = Duration::from_nanos(1);

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// Event log on the manual clock
// ---------------------------------------------------------------------------------------------

/// A log of `(clock reading, event)` pairs, shared by the test and its attempt futures.
#[derive(Clone, Debug)]
pub(crate) struct Log {
    clock: ManualClock,
    events: Rc<RefCell<Vec<(Duration, String)>>>,
}

impl Log {
    pub(crate) fn new(clock: &ManualClock) -> Self {
        Log {
            clock: clock.clone(),
            events: Rc::default(),
        }
    }

    /// Records `event` at the clock's current reading.
    pub(crate) fn record(&self, event: impl Into<String>) {
        let now = self.clock.elapsed();
        self.events.borrow_mut().push((now, event.into()));
    }

    /// Every event so far, with its time.
    pub(crate) fn events(&self) -> Vec<(Duration, String)> {
        self.events.borrow().clone()
    }

    /// Every event so far, without times.
    pub(crate) fn names(&self) -> Vec<String> {
        self.events
            .borrow()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The times of the events whose name starts with `prefix`.
    pub(crate) fn times_of(&self, prefix: &str) -> Vec<Duration> {
        self.events
            .borrow()
            .iter()
            .filter(|(_, e)| e.starts_with(prefix))
            .map(|(t, _)| *t)
            .collect()
    }

    /// How many events start with `prefix`.
    pub(crate) fn count(&self, prefix: &str) -> usize {
        self.times_of(prefix).len()
    }

    /// Forgets every event so far.
    pub(crate) fn clear(&self) {
        self.events.borrow_mut().clear();
    }
}

/// Shorthand for an expected event list: `events![(0, "start a"), (100, "drop a")]` (times in ms).
#[macro_export]
macro_rules! events {
    ($(($ms:expr, $name:expr)),* $(,)?) => {
        vec![$((std::time::Duration::from_millis($ms), String::from($name))),*]
    };
}

// ---------------------------------------------------------------------------------------------
// Attempt futures
// ---------------------------------------------------------------------------------------------

/// An attempt: logs `start <label>` when made, `end <label>` when it finishes and `drop <label>` when
/// the lane drops it. Finishing does not drop it, so `drop` marks the moment the lane lets go.
pub(crate) struct Attempt<O> {
    fut: LocalBoxFuture<'static, O>,
    log: Log,
    label: String,
}

impl<O: 'static> Attempt<O> {
    /// An attempt that runs `fut`.
    pub(crate) fn new(
        log: &Log,
        label: impl Into<String>,
        fut: impl Future<Output = O> + 'static,
    ) -> Self {
        let label = label.into();
        log.record(format!("start {label}"));
        Attempt {
            fut: fut.boxed_local(),
            log: log.clone(),
            label,
        }
    }

    /// An attempt that finishes at its first poll with `output`.
    pub(crate) fn ready(log: &Log, label: impl Into<String>, output: O) -> Self {
        Self::new(log, label, futures::future::ready(output))
    }

    /// An attempt that never finishes (until the lane drops it).
    pub(crate) fn pending(log: &Log, label: impl Into<String>) -> Self {
        Self::new(log, label, futures::future::pending())
    }
}

impl<O> Future for Attempt<O> {
    type Output = O;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let out = self.fut.as_mut().poll(cx);
        if out.is_ready() {
            self.log.record(format!("end {}", self.label));
        }
        out
    }
}

impl<O> Drop for Attempt<O> {
    fn drop(&mut self) {
        self.log.record(format!("drop {}", self.label));
    }
}

/// A future that finishes with whatever the test sends through its [`GateKey`]; never, if the key
/// is dropped.
pub(crate) fn gate<T: 'static>() -> (GateKey<T>, LocalBoxFuture<'static, T>) {
    let (tx, rx) = oneshot::channel();
    let fut = async move {
        match rx.await {
            Ok(value) => value,
            Err(_) => futures::future::pending().await,
        }
    };
    (GateKey(tx), fut.boxed_local())
}

/// Opens a [`gate`].
#[derive(Debug)]
pub(crate) struct GateKey<T>(oneshot::Sender<T>);

impl<T> GateKey<T> {
    pub(crate) fn open(self, value: T) {
        let _ = self.0.send(value);
    }
}

// ---------------------------------------------------------------------------------------------
// Items that count their clones and drops
// ---------------------------------------------------------------------------------------------

/// An input item that is `Clone`: `Rc::strong_count` of its token tells how many copies are alive.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) id: u32,
    pub(crate) token: Rc<()>,
}

/// `n` items sharing one token; the returned token's strong count minus one is the number of copies
/// of the items alive anywhere (input, lane, attempts).
pub(crate) fn items(n: u32) -> (Rc<()>, Vec<Item>) {
    let token = Rc::new(());
    let items = (0..n)
        .map(|id| Item {
            id,
            token: Rc::clone(&token),
        })
        .collect();
    (token, items)
}

// ---------------------------------------------------------------------------------------------
// Polling by hand
// ---------------------------------------------------------------------------------------------

/// Polls a stream once with a no-op waker.
pub(crate) fn poll_once<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
    stream.poll_next_unpin(&mut noop_context())
}

/// Polls once and asserts `Pending`.
#[track_caller]
pub(crate) fn assert_pending<S: Stream + Unpin>(stream: &mut S)
where
    S::Item: std::fmt::Debug,
{
    match poll_once(stream) {
        Poll::Pending => {}
        Poll::Ready(other) => panic!("expected Pending, got Ready({other:?})"),
    }
}

/// Polls once and returns the item, panicking on `Pending` or the end of the stream.
#[track_caller]
pub(crate) fn next_now<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    match poll_once(stream) {
        Poll::Ready(Some(item)) => item,
        Poll::Ready(None) => panic!("expected an item, the stream ended"),
        Poll::Pending => panic!("expected an item, got Pending"),
    }
}

/// Polls once and asserts the end of the stream.
#[track_caller]
pub(crate) fn assert_done<S: Stream + Unpin>(stream: &mut S)
where
    S::Item: std::fmt::Debug,
{
    match poll_once(stream) {
        Poll::Ready(None) => {}
        other => panic!("expected the end of the stream, got {other:?}"),
    }
}

/// A poller with a counting waker: tells whether the lane asked to be polled again since last time.
pub(crate) struct Poller {
    cx_waker: std::task::Waker,
    count: AwokenCount,
    seen: usize,
}

impl Poller {
    pub(crate) fn new() -> Self {
        let (cx_waker, count) = new_count_waker();
        Poller {
            cx_waker,
            count,
            seen: 0,
        }
    }

    pub(crate) fn poll<S: Stream + Unpin>(&mut self, stream: &mut S) -> Poll<Option<S::Item>> {
        stream.poll_next_unpin(&mut Context::from_waker(&self.cx_waker))
    }

    /// Whether the waker given to the lane was woken since the last call.
    pub(crate) fn woken(&mut self) -> bool {
        let now = self.count.get();
        let woken = now > self.seen;
        self.seen = now;
        woken
    }
}

/// Advances the clock in steps of `step` up to `until` (since the clock's start), polling the stream
/// after each step; returns every item yielded on the way, with the clock reading it came at.
pub(crate) fn drive_until<S: Stream + Unpin>(
    stream: &mut S,
    clock: &ManualClock,
    step: Duration,
    until: Duration,
) -> Vec<(Duration, S::Item)> {
    let mut out = Vec::new();
    loop {
        while let Poll::Ready(Some(item)) = poll_once(stream) {
            out.push((clock.elapsed(), item));
        }
        if clock.elapsed() >= until {
            return out;
        }
        clock.advance(step.min(until - clock.elapsed()));
    }
}

// ---------------------------------------------------------------------------------------------
// Per-item attempt counters and gates
// ---------------------------------------------------------------------------------------------

/// Counts the calls of a lane's function per item id: `next(id)` is the 1-based attempt number.
#[derive(Clone, Debug, Default)]
pub(crate) struct Calls(Rc<RefCell<std::collections::BTreeMap<u32, u32>>>);

impl Calls {
    /// Counts one more call for `id` and returns its number (1 for the first).
    pub(crate) fn next(&self, id: u32) -> u32 {
        let mut map = self.0.borrow_mut();
        let n = map.entry(id).or_insert(0);
        *n += 1;
        *n
    }

    /// Calls for `id` so far.
    pub(crate) fn of(&self, id: u32) -> u32 {
        self.0.borrow().get(&id).copied().unwrap_or(0)
    }

    /// Calls for every id so far.
    pub(crate) fn total(&self) -> u32 {
        self.0.borrow().values().sum()
    }
}

/// Gates by name: `make(name)` gives a future that finishes when the test calls `open(name, value)`.
#[derive(Debug)]
pub(crate) struct Gates<T>(Rc<RefCell<std::collections::BTreeMap<String, GateKey<T>>>>);

impl<T> Clone for Gates<T> {
    fn clone(&self) -> Self {
        Gates(Rc::clone(&self.0))
    }
}

impl<T> Default for Gates<T> {
    fn default() -> Self {
        Gates(Rc::default())
    }
}

impl<T: 'static> Gates<T> {
    pub(crate) fn make(&self, name: impl Into<String>) -> LocalBoxFuture<'static, T> {
        let (key, fut) = gate();
        self.0.borrow_mut().insert(name.into(), key);
        fut
    }

    #[track_caller]
    pub(crate) fn open(&self, name: &str, value: T) {
        let key = self
            .0
            .borrow_mut()
            .remove(name)
            .unwrap_or_else(|| panic!("no gate named {name:?}"));
        key.open(value);
    }
}

/// What a timed or retrying lane yields.
pub(crate) type Out<T, E> = Result<T, Error<E>>;

/// The lane in input order or in completion order, for tests that check both.
pub(crate) fn order<St, P>(lane: Lane<St, P>, ordered: bool) -> Lane<St, P> {
    if ordered {
        lane.ordered()
    } else {
        lane
    }
}

/// How `order` was asked for, for failure messages.
pub(crate) fn order_name(ordered: bool) -> &'static str {
    if ordered {
        "ordered"
    } else {
        "unordered"
    }
}

// ---------------------------------------------------------------------------------------------
// A manual clock with sleeps for user futures
// ---------------------------------------------------------------------------------------------

/// A manual clock whose sleeps are futures the test's user code can await: advancing it wakes every
/// sleeper, which then checks the time itself.
#[derive(Clone, Default)]
pub(crate) struct Sim {
    pub(crate) clock: ManualClock,
    sleepers: Rc<RefCell<Vec<Waker>>>,
    /// The clock reading of every attempt start, in order.
    starts: Rc<RefCell<Vec<Duration>>>,
}

impl Sim {
    pub(crate) fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Records an attempt start now.
    pub(crate) fn start(&self) {
        self.starts.borrow_mut().push(self.now());
    }

    pub(crate) fn starts(&self) -> Vec<Duration> {
        self.starts.borrow().clone()
    }

    /// A future that finishes `d` from now (on this clock).
    pub(crate) fn sleep(&self, d: Duration) -> SimSleep {
        SimSleep {
            sim: self.clone(),
            until: self.now() + d,
        }
    }

    pub(crate) fn advance(&self, d: Duration) {
        self.clock.advance(d);
        for w in self.sleepers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Polls `out` until it is pending, collecting what it yields.
    pub(crate) fn drain<S: futures::Stream + Unpin>(
        &self,
        out: &mut S,
        into: &mut Vec<S::Item>,
    ) -> bool {
        loop {
            match poll_once(out) {
                Poll::Ready(Some(item)) => into.push(item),
                Poll::Ready(None) => return true,
                Poll::Pending => return false,
            }
        }
    }

    /// Drives `out` to its end, advancing the clock by `step` whenever it is pending.
    pub(crate) fn run<S: futures::Stream + Unpin>(
        &self,
        out: &mut S,
        step: Duration,
    ) -> Vec<S::Item> {
        let mut items = Vec::new();
        let deadline = self.now() + Duration::from_secs(100_000);
        while !self.drain(out, &mut items) {
            assert!(self.now() < deadline, "the lane never finished");
            self.advance(step);
        }
        items
    }
}

pub(crate) struct SimSleep {
    sim: Sim,
    until: Duration,
}

impl Future for SimSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.sim.now() >= self.until {
            return Poll::Ready(());
        }
        self.sim.sleepers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
