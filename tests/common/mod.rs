//! Named helpers for the integration tests: instruments that make a lane's behaviour observable
//! (which futures were created, polled, finished and dropped; how many ran at once; how much of the
//! input was pulled), gates and a fake clock that order completions without real time, and a manual
//! poller for poll-level assertions.
//!
//! Everything here is deterministic and Miri-friendly except [`sleep`], which uses real time.
// Each test binary that declares `mod common;` uses only some of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::channel::oneshot;
use futures::Stream;
use futures_test::task::{new_count_waker, AwokenCount};

/// Locks a mutex, ignoring poison: a test that panicked on purpose must not break the next one.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Concurrency gauge
// ---------------------------------------------------------------------------------------------

/// Counts how many things are active at once, and the peak.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gauge(Arc<GaugeInner>);

#[derive(Debug, Default)]
struct GaugeInner {
    active: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Marks one more active thing until the returned guard is dropped.
    pub(crate) fn enter(&self) -> GaugeGuard {
        self.enter_counted().0
    }

    /// [`Gauge::enter`], also giving how many are active with this one (counted by the same
    /// atomic step, so it is exact whatever other threads do).
    pub(crate) fn enter_counted(&self) -> (GaugeGuard, usize) {
        let now = self.0.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.peak.fetch_max(now, Ordering::SeqCst);
        (GaugeGuard(Some(self.clone())), now)
    }

    /// Active right now.
    pub(crate) fn active(&self) -> usize {
        self.0.active.load(Ordering::SeqCst)
    }

    /// The most ever active at once.
    pub(crate) fn peak(&self) -> usize {
        self.0.peak.load(Ordering::SeqCst)
    }
}

/// Leaves the [`Gauge`] when dropped (or at [`GaugeGuard::leave`]).
#[derive(Debug)]
pub(crate) struct GaugeGuard(Option<Gauge>);

impl GaugeGuard {
    pub(crate) fn leave(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if let Some(g) = self.0.take() {
            g.0.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.release();
    }
}

// ---------------------------------------------------------------------------------------------
// Drop-guard tracker for user futures
// ---------------------------------------------------------------------------------------------

/// What happened to a tracked future, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Created(usize),
    Polled(usize),
    Completed(usize),
    Dropped(usize),
}

/// Records the life of every future wrapped with [`Tracker::track`]: created (which, for
/// `map_async`, is when `f` was called), polled, completed, dropped. A gauge counts the futures that
/// were created and have neither completed nor been dropped ("in flight").
#[derive(Clone, Debug, Default)]
pub(crate) struct Tracker(Arc<TrackerInner>);

#[derive(Debug, Default)]
struct TrackerInner {
    events: Mutex<Vec<Event>>,
    gauge: Gauge,
}

impl Tracker {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Wraps `fut` as item `id`. Counts as created now.
    pub(crate) fn track<F: Future>(&self, id: usize, fut: F) -> Tracked<F> {
        lock(&self.0.events).push(Event::Created(id));
        Tracked {
            fut: Box::pin(fut),
            id,
            tracker: self.clone(),
            running: Some(self.0.gauge.enter()),
        }
    }

    fn push(&self, e: Event) {
        lock(&self.0.events).push(e);
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        lock(&self.0.events).clone()
    }

    fn ids(&self, pick: impl Fn(&Event) -> Option<usize>) -> Vec<usize> {
        lock(&self.0.events).iter().filter_map(pick).collect()
    }

    /// Ids of the futures created, in creation order.
    pub(crate) fn created(&self) -> Vec<usize> {
        self.ids(|e| match *e {
            Event::Created(i) => Some(i),
            _ => None,
        })
    }

    /// Ids of the futures that completed, in completion order.
    pub(crate) fn completed(&self) -> Vec<usize> {
        self.ids(|e| match *e {
            Event::Completed(i) => Some(i),
            _ => None,
        })
    }

    /// Ids of the futures dropped, in drop order (completed ones included).
    pub(crate) fn dropped(&self) -> Vec<usize> {
        self.ids(|e| match *e {
            Event::Dropped(i) => Some(i),
            _ => None,
        })
    }

    /// Ids of the futures dropped before they completed ("cancelled"), sorted.
    pub(crate) fn cancelled(&self) -> Vec<usize> {
        let done = self.completed();
        let mut v: Vec<usize> = self
            .dropped()
            .into_iter()
            .filter(|i| !done.contains(i))
            .collect();
        v.sort_unstable();
        v
    }

    /// Ids created and not yet dropped, sorted.
    pub(crate) fn alive(&self) -> Vec<usize> {
        let dropped = self.dropped();
        let mut v: Vec<usize> = self
            .created()
            .into_iter()
            .filter(|i| !dropped.contains(i))
            .collect();
        v.sort_unstable();
        v
    }

    /// How many times future `id` was polled.
    pub(crate) fn polls_of(&self, id: usize) -> usize {
        lock(&self.0.events)
            .iter()
            .filter(|e| **e == Event::Polled(id))
            .count()
    }

    /// Polls of all tracked futures.
    pub(crate) fn total_polls(&self) -> usize {
        lock(&self.0.events)
            .iter()
            .filter(|e| matches!(e, Event::Polled(_)))
            .count()
    }

    /// Created and neither completed nor dropped, right now.
    pub(crate) fn in_flight(&self) -> usize {
        self.0.gauge.active()
    }

    /// The most ever in flight at once.
    pub(crate) fn peak(&self) -> usize {
        self.0.gauge.peak()
    }
}

/// A future wrapped by [`Tracker::track`].
#[derive(Debug)]
pub(crate) struct Tracked<F> {
    fut: Pin<Box<F>>,
    id: usize,
    tracker: Tracker,
    /// `Some` until the future completes or is dropped.
    running: Option<GaugeGuard>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        assert!(
            this.running.is_some(),
            "tracked future {} polled after completion",
            this.id
        );
        this.tracker.push(Event::Polled(this.id));
        let out = this.fut.as_mut().poll(cx);
        if out.is_ready() {
            this.tracker.push(Event::Completed(this.id));
            this.running = None;
        }
        out
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.tracker.push(Event::Dropped(self.id));
    }
}

/// Counts its own drops: put one in an output or an input item to see when it is dropped.
#[derive(Debug)]
pub(crate) struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Self {
        DropCounter(Arc::clone(count))
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// Counting input
// ---------------------------------------------------------------------------------------------

/// What a [`CountingStream`] saw: polls, items handed out, end reached, dropped.
#[derive(Clone, Debug, Default)]
pub(crate) struct InputProbe(Arc<InputInner>);

#[derive(Debug, Default)]
struct InputInner {
    polls: AtomicUsize,
    pulled: AtomicUsize,
    ended: AtomicBool,
    dropped: AtomicBool,
}

impl InputProbe {
    /// `poll_next` calls.
    pub(crate) fn polls(&self) -> usize {
        self.0.polls.load(Ordering::SeqCst)
    }

    /// Items handed out (`Ready(Some)`).
    pub(crate) fn pulled(&self) -> usize {
        self.0.pulled.load(Ordering::SeqCst)
    }

    /// Returned `Ready(None)`.
    pub(crate) fn ended(&self) -> bool {
        self.0.ended.load(Ordering::SeqCst)
    }

    pub(crate) fn dropped(&self) -> bool {
        self.0.dropped.load(Ordering::SeqCst)
    }
}

/// A stream that records how it is used (see [`InputProbe`]). Panics if polled after its end.
#[derive(Debug)]
pub(crate) struct CountingStream<St> {
    inner: Pin<Box<St>>,
    probe: InputProbe,
}

/// Wraps `stream` so that its polls, pulls, end and drop can be observed.
pub(crate) fn counting<St: Stream>(stream: St) -> (CountingStream<St>, InputProbe) {
    let probe = InputProbe::default();
    (
        CountingStream {
            inner: Box::pin(stream),
            probe: probe.clone(),
        },
        probe,
    )
}

/// [`counting`] over an iterator (a synchronous input).
pub(crate) fn counting_iter<I: IntoIterator>(
    items: I,
) -> (
    CountingStream<futures::stream::Iter<I::IntoIter>>,
    InputProbe,
) {
    counting(futures::stream::iter(items))
}

impl<St: Stream> Stream for CountingStream<St> {
    type Item = St::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<St::Item>> {
        let probe = self.probe.clone();
        assert!(!probe.ended(), "input polled after it returned None");
        probe.0.polls.fetch_add(1, Ordering::SeqCst);
        let out = self.inner.as_mut().poll_next(cx);
        match &out {
            Poll::Ready(Some(_)) => {
                probe.0.pulled.fetch_add(1, Ordering::SeqCst);
            }
            Poll::Ready(None) => probe.0.ended.store(true, Ordering::SeqCst),
            Poll::Pending => {}
        }
        out
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<St> Drop for CountingStream<St> {
    fn drop(&mut self) {
        self.probe.0.dropped.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// Gates: completions in an order the test chooses
// ---------------------------------------------------------------------------------------------

/// A future that completes once its [`Opener`] opens it, and never if the opener is dropped unopened.
#[derive(Debug)]
pub(crate) struct Gate(oneshot::Receiver<()>);

/// Opens a [`Gate`].
#[derive(Debug)]
pub(crate) struct Opener(oneshot::Sender<()>);

impl Opener {
    pub(crate) fn open(self) {
        // The gate may already be gone (its future dropped): that is fine.
        let _ = self.0.send(());
    }
}

/// One gate and its opener.
pub(crate) fn gate() -> (Opener, Gate) {
    let (tx, rx) = oneshot::channel();
    (Opener(tx), Gate(rx))
}

/// `n` gates; opener `i` opens gate `i`. Openers are `Option`s so they can be taken in any order.
pub(crate) fn gates(n: usize) -> (Vec<Option<Opener>>, Vec<Gate>) {
    (0..n).map(|_| gate()).map(|(o, g)| (Some(o), g)).unzip()
}

impl Future for Gate {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(()),
            // The opener was dropped unopened: stay closed forever (nothing will wake us).
            Poll::Ready(Err(_)) => Poll::Pending,
            Poll::Pending => Poll::Pending,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Self-waking futures
// ---------------------------------------------------------------------------------------------

/// Returns `Pending` `n` times, waking itself each time, then `Ready(())`.
pub(crate) fn yield_times(n: usize) -> YieldTimes {
    YieldTimes(n)
}

#[derive(Debug)]
pub(crate) struct YieldTimes(usize);

impl Future for YieldTimes {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Never completes, but wakes itself on every poll (a busy future) and counts its polls. Panics after
/// 100 000 polls in all, so a consumer stuck polling it fails instead of hanging.
#[derive(Debug)]
pub(crate) struct Spin(pub(crate) Arc<AtomicUsize>);

impl Future for Spin {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let polls = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            polls <= 100_000,
            "a busy future was polled {polls} times: the consumer never yields"
        );
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Wraps `fut`, adding one to `polls` on each of its polls (cheaper than a [`Tracker`] for big runs).
pub(crate) fn count_polls<F: Future>(
    polls: &Arc<AtomicUsize>,
    fut: F,
) -> impl Future<Output = F::Output> {
    let polls = Arc::clone(polls);
    let mut fut = Box::pin(fut);
    futures::future::poll_fn(move |cx| {
        polls.fetch_add(1, Ordering::SeqCst);
        fut.as_mut().poll(cx)
    })
}

/// Keeps the waker a wrapped future was last polled with, so a test can fire it later (a stale
/// wake-up, after the future is gone and its slot reused).
#[derive(Clone, Debug, Default)]
pub(crate) struct WakerTrap(Arc<Mutex<Option<Waker>>>);

impl WakerTrap {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Wraps `fut`: every poll stores the waker it was given, then polls `fut`.
    pub(crate) fn wrap<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        let trap = self.clone();
        let mut fut = Box::pin(fut);
        futures::future::poll_fn(move |cx| {
            *lock(&trap.0) = Some(cx.waker().clone());
            fut.as_mut().poll(cx)
        })
    }

    /// The last waker stored, if any.
    pub(crate) fn waker(&self) -> Option<Waker> {
        lock(&self.0).clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// Sleeps for `ms` milliseconds of real time (futures-timer). Tests that use it are ignored under Miri.
pub(crate) fn sleep(ms: u64) -> futures_timer::Delay {
    futures_timer::Delay::new(Duration::from_millis(ms))
}

/// A fake clock in whole ticks: [`FakeClock::sleep`] futures complete only when the test calls
/// [`FakeClock::advance`]. Sleeps measure from their first poll, like a real timer started at the
/// start of the work.
#[derive(Clone, Debug, Default)]
pub(crate) struct FakeClock(Arc<Mutex<ClockInner>>);

#[derive(Debug, Default)]
struct ClockInner {
    now: u64,
    next_id: u64,
    /// Sleeps that have been polled and not completed: id -> (deadline, waker).
    sleepers: BTreeMap<u64, (u64, Waker)>,
}

impl FakeClock {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn now(&self) -> u64 {
        lock(&self.0).now
    }

    /// A future that completes `ticks` ticks after its first poll (at once for 0).
    pub(crate) fn sleep(&self, ticks: u64) -> FakeSleep {
        let id = {
            let mut inner = lock(&self.0);
            inner.next_id += 1;
            inner.next_id
        };
        FakeSleep {
            clock: self.clone(),
            id,
            ticks,
            deadline: None,
        }
    }

    /// Sleeps not yet finished (polled at least once).
    pub(crate) fn sleepers(&self) -> usize {
        lock(&self.0).sleepers.len()
    }

    /// Moves time one tick on and wakes the sleeps that are due. Returns how many were woken.
    pub(crate) fn advance(&self) -> usize {
        let due: Vec<Waker> = {
            let mut inner = lock(&self.0);
            inner.now += 1;
            let now = inner.now;
            let ids: Vec<u64> = inner
                .sleepers
                .iter()
                .filter(|(_, (deadline, _))| *deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .map(|id| inner.sleepers.remove(id).expect("listed").1)
                .collect()
        };
        let n = due.len();
        for w in due {
            w.wake();
        }
        n
    }
}

/// See [`FakeClock::sleep`].
#[derive(Debug)]
pub(crate) struct FakeSleep {
    clock: FakeClock,
    id: u64,
    ticks: u64,
    deadline: Option<u64>,
}

impl Future for FakeSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut inner = lock(&this.clock.0);
        let now = inner.now;
        let deadline = *this.deadline.get_or_insert(now + this.ticks);
        if now >= deadline {
            inner.sleepers.remove(&this.id);
            return Poll::Ready(());
        }
        inner
            .sleepers
            .insert(this.id, (deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for FakeSleep {
    fn drop(&mut self) {
        lock(&self.clock.0).sleepers.remove(&self.id);
    }
}

// ---------------------------------------------------------------------------------------------
// Manual polling
// ---------------------------------------------------------------------------------------------

/// Polls a stream by hand with a counting waker, so a test can tell "pending, will wake itself"
/// from "pending, waiting for something outside".
pub(crate) struct Poller<S> {
    stream: Pin<Box<S>>,
    waker: Waker,
    count: AwokenCount,
    done: bool,
}

impl<S: Stream> Poller<S> {
    pub(crate) fn new(stream: S) -> Self {
        let (waker, count) = new_count_waker();
        Poller {
            stream: Box::pin(stream),
            waker,
            count,
            done: false,
        }
    }

    /// One `poll_next` call.
    pub(crate) fn poll(&mut self) -> Poll<Option<S::Item>> {
        let mut cx = Context::from_waker(&self.waker);
        let out = self.stream.as_mut().poll_next(&mut cx);
        if let Poll::Ready(None) = out {
            self.done = true;
        }
        out
    }

    /// One `poll_next` call inside `catch_unwind`.
    pub(crate) fn poll_catching(&mut self) -> std::thread::Result<Poll<Option<S::Item>>> {
        panic::catch_unwind(AssertUnwindSafe(|| self.poll()))
    }

    /// How many times the stream has woken the poller's waker so far.
    pub(crate) fn woken(&self) -> usize {
        self.count.get()
    }

    /// Polls until the stream is done, or returns `Pending` without having woken itself (it now waits
    /// for something outside). Returns the items yielded meanwhile.
    pub(crate) fn settle(&mut self) -> Vec<S::Item> {
        let mut out = Vec::new();
        for _ in 0..1_000_000 {
            let before = self.woken();
            match self.poll() {
                Poll::Ready(Some(x)) => out.push(x),
                Poll::Ready(None) => return out,
                Poll::Pending if self.woken() == before => return out,
                Poll::Pending => {}
            }
        }
        panic!("stream never settled");
    }

    /// Like [`Poller::settle`], but checks `check` after every poll.
    pub(crate) fn settle_checking(&mut self, mut check: impl FnMut(&S, usize)) -> Vec<S::Item> {
        let mut out = Vec::new();
        for _ in 0..1_000_000 {
            let before = self.woken();
            let polled = self.poll();
            let settled = match polled {
                Poll::Ready(Some(x)) => {
                    out.push(x);
                    false
                }
                Poll::Ready(None) => true,
                Poll::Pending => self.woken() == before,
            };
            check(&self.stream, out.len());
            if settled {
                return out;
            }
        }
        panic!("stream never settled");
    }

    /// Drives the stream to its end on a [`FakeClock`]: settles, then advances the clock while the
    /// stream waits, until it is done. Returns every item, in the order yielded.
    pub(crate) fn run_on(&mut self, clock: &FakeClock) -> Vec<S::Item> {
        let mut out = Vec::new();
        for _ in 0..100_000 {
            out.extend(self.settle());
            if self.done {
                return out;
            }
            assert!(
                clock.sleepers() > 0,
                "deadlock: the stream waits but nothing sleeps"
            );
            while clock.advance() == 0 {}
        }
        panic!("stream never finished");
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    pub(crate) fn get(&self) -> &S {
        &self.stream
    }

    pub(crate) fn pinned(&mut self) -> Pin<&mut S> {
        self.stream.as_mut()
    }
}

/// Runs a future that needs nothing from outside (no timer, no other thread) to completion on this
/// thread. Panics instead of hanging if it returns `Pending` without having arranged to be woken (a
/// lost wake-up), or if it never finishes.
pub(crate) fn block_on_sync<F: Future>(fut: F) -> F::Output {
    let (waker, count) = new_count_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(fut);
    for _ in 0..10_000_000 {
        let before = count.get();
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(
            count.get() > before,
            "lost wake-up: the future is pending and nothing will wake it"
        );
    }
    panic!("the future never finished");
}

// ---------------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------------

/// A caught panic: its message and where it was raised.
#[derive(Debug)]
pub(crate) struct PanicReport {
    pub(crate) message: String,
    pub(crate) file: String,
    pub(crate) line: u32,
}

impl PanicReport {
    /// Asserts that the panic names the argument `arg` (in backticks) and points at a line of the
    /// test file `file` (the caller, thanks to `#[track_caller]`), not at the crate's own code.
    pub(crate) fn assert_names(&self, arg: &str, file: &str) {
        assert!(
            self.message.contains(&format!("`{arg}`")),
            "the message names `{arg}`: {}",
            self.message
        );
        assert_eq!(self.file, file, "the panic points at the caller");
    }
}

/// Serializes [`catch_panic`]: the panic hook is process-wide.
static HOOK: Mutex<()> = Mutex::new(());

/// Runs `f`, catching a panic and recording its message and location through a panic hook that
/// only listens to this thread (other threads' panics go to the previous hook).
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, PanicReport> {
    let _serial = lock(&HOOK);
    let me = std::thread::current().id();
    let seen: Arc<Mutex<Option<(String, u32)>>> = Arc::default();
    let prev = Arc::new(panic::take_hook());
    {
        let prev = Arc::clone(&prev);
        let seen = Arc::clone(&seen);
        panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == me {
                let loc = info.location().map(|l| (l.file().to_string(), l.line()));
                *lock(&seen) = Some(loc.unwrap_or_default());
            } else {
                prev(info);
            }
        }));
    }
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let _ours = panic::take_hook();
    panic::set_hook(Box::new(move |info| prev(info)));
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let (file, line) = lock(&seen).take().unwrap_or_default();
        PanicReport {
            message,
            file,
            line,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Watchdog
// ---------------------------------------------------------------------------------------------

/// Runs `f` on a watchdog: fails the test if it takes longer than `limit`.
pub(crate) fn watchdog<R: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let body = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("did not finish within {limit:?}: a hang")
        }
        // Done, or it panicked (then `join` passes the panic on).
        _ => body
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
    }
}
