//! The lane engine: the no-spawn state machine shared by every terminal.
//!
//! ```text
//! input ──► fill free slots ──► slots: running ─┬─► done ──► emit: completion order (done queue)
//!           (only while a slot   (polled only   │            or input order (the order ring)
//!            is free)            when woken)    └─► waiting (back-off) ──► running again
//! ```
//!
//! What an item is and what its attempts return is the business of a [`Mode`]: a plain lane runs one
//! future per item and yields its output unchanged; a timed or retrying lane wraps the outcome in a
//! `Result` and may start several attempts. Timeouts and back-offs are deadlines of this engine
//! ([`timers`]), served by one lazily created timer per lane. A plain lane never touches them.
//!
//! With a rate limit, every attempt start (a new item's first attempt, or a retry) first asks the
//! limiter ([`Limiter`]: GCRA, or the strict window) for a permit: a new item is pulled from the input only once it has one (no
//! read-ahead), and a retry whose back-off is over waits for one in a FIFO, holding its slot. A
//! denial arms the lane's timer for the next permit. With a progress callback, the engine counts
//! outcomes and hands the callback a snapshot just before each output is returned.

mod meta;
mod slots;
mod timers;
mod window;

use std::collections::VecDeque;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

pub(crate) use meta::SlotMeta;
pub(crate) use meta::{Retried, Single};
use slots::{Arena, Polled, NIL, TIMER};
use timers::{BackoffQueue, Link, TimeoutList};
use window::Window;

use crate::progress::{Counters, Progress};
use crate::rate::{Limiter, Rate};
use crate::time::{Clock, Sleep};

/// Polls of user futures (fresh or woken) that one `poll_next` call may make before it yields to the
/// executor: a lane whose futures keep waking themselves must not starve the other tasks of its
/// thread (futures-util's `FuturesUnordered` and futures-buffered bound this the same way).
const BUDGET: u32 = 64;

/// How an attempt ended.
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
#[derive(Debug)]
pub enum Outcome<T> {
    /// The attempt's future finished with this output.
    Finished(T),
    /// The attempt ran out of time and was dropped.
    TimedOut,
}

/// What becomes of an item after an attempt.
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
#[derive(Debug)]
pub enum Settle<O> {
    /// The item is finished with this output.
    Done(O),
    /// Start another attempt after a back-off (or after the error's own hint, if it gave one).
    Retry { hint: Option<Duration> },
}

/// What a lane does with an item. See the module docs.
///
/// Sealed: it is `pub` only so that public bounds can name it; it lives in a private module, so no
/// one outside the crate can name, implement or call it.
#[allow(unreachable_pub)] // reason: sealed, see above
pub trait Mode: Reports {
    /// An input item.
    type Item;
    /// What the slot keeps between attempts (the item, for retries).
    type Keep;
    /// One attempt.
    type Fut: Future;
    /// The lane's output per item.
    type Output;
    /// What each slot keeps for its item besides the future ([`Single`]: nothing).
    type Meta: SlotMeta<Self::Keep>;

    /// The first attempt for an item.
    fn start(&mut self, item: Self::Item) -> (Option<Self::Keep>, Self::Fut);
    /// Another attempt for an item whose earlier attempt failed.
    fn restart(&mut self, keep: &Self::Keep) -> Self::Fut;
    /// Decides after attempt number `attempts` (1-based).
    /// `index` is the item's position in the input (0 for the first item pulled).
    fn settle(
        &mut self,
        outcome: Outcome<<Self::Fut as Future>::Output>,
        attempts: u32,
        index: usize,
    ) -> Settle<Self::Output>;
    /// The back-off in nanoseconds after `attempts` failed attempts, given the item's previous delay
    /// and the error's own hint.
    fn backoff(&mut self, attempts: u32, prev: Option<u64>, hint: Option<Duration>) -> u64;

    /// Whether an output counts as a success in progress snapshots.
    fn succeeded(output: &Self::Output) -> bool;
}

/// What a lane does with its progress (every kind of lane the same way: through its reporter).
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
pub trait Reports {
    /// Whether the lane reports progress (has an `on_progress` callback). When `false`, the engine
    /// keeps no counters and never calls [`Reports::report`].
    const REPORTS: bool;
    /// Hands a progress snapshot to the lane's callback.
    fn report(&mut self, progress: &Progress);
}

type ArenaOf<M> = Arena<<M as Mode>::Fut, <M as Mode>::Output, <M as Mode>::Meta>;

/// Timeouts, back-offs, and the one timer that serves them.
#[derive(Debug)]
pub(crate) struct Timers {
    /// The timeout of each attempt, in nanoseconds (`None`: attempts have no timeout).
    timeout: Option<u64>,
    clock: Clock,
    timeouts: TimeoutList,
    /// Each slot's timeout bookkeeping, by slot index (grown with the slots, only with a timeout).
    links: Vec<Link>,
    /// Slots whose attempt returned `Pending` since the last stamping: they join `timeouts` at the
    /// next stamping if the attempt still runs (most have finished by then).
    recent: Vec<usize>,
    backoffs: BackoffQueue,
    /// Made on first use, then reset in place.
    sleep: Option<Sleep>,
    /// The deadline the sleep is armed for (`None`: not armed).
    armed: Option<u64>,
    /// The last clock reading.
    last_read: u64,
    /// `poll_next` calls that ended with recorded attempts since the last clock reading.
    unread_calls: u32,
    /// Whether a stamping tick (`granularity` after the last reading) has been asked of the timer.
    tick_armed: bool,
    /// Read the clock for stamping at least every this many calls (1 on the manual clock).
    stamp_every: u32,
    /// The longest an attempt may stay unstamped: `timeout / 64`, at least 1 ms.
    granularity: u64,
    /// Attempts have a timeout and the clock is the manual one: every attempt reads the clock as it
    /// starts and joins the timeout list at once, so its deadline is exactly its start plus the
    /// timeout (a manual clock costs nothing to read; the system clock is read only now and then,
    /// see [`Engine::stamp_timeouts`]).
    exact: bool,
}

/// See [`Engine::stamp_timeouts`].
const STAMP_EVERY: u32 = 64;

impl Timers {
    pub(crate) fn new(timeout: Option<Duration>, clock: Clock) -> Self {
        let timeout = timeout.map(crate::backoff::nanos);
        Timers {
            timeout,
            exact: timeout.is_some() && clock.is_manual(),
            stamp_every: if clock.is_manual() { 1 } else { STAMP_EVERY },
            granularity: (timeout.unwrap_or(0) / 64).max(1_000_000),
            clock,
            timeouts: TimeoutList::default(),
            links: Vec::new(),
            recent: Vec::new(),
            backoffs: BackoffQueue::default(),
            sleep: None,
            armed: None,
            last_read: 0,
            unread_calls: 0,
            tick_armed: false,
        }
    }

    /// Reads the clock (and remembers the reading).
    fn read_clock(&mut self) -> u64 {
        self.last_read = self.clock.now();
        self.unread_calls = 0;
        self.last_read
    }

    /// Records a running attempt that returned `Pending`, once per attempt.
    #[inline]
    fn record(&mut self, index: usize) {
        if self.links[index].record() {
            self.recent.push(index);
        }
    }

    /// An attempt ended: takes it out of the timeout list (its `recent` entry, if any, goes stale).
    #[inline]
    fn end(&mut self, index: usize) {
        if self.links[index].is_linked() {
            self.timeouts.remove(&mut self.links, index);
        }
        self.links[index].end();
    }

    /// An attempt starts in slot `index` on an exact clock: it joins the timeout list now, due at its
    /// start plus the timeout (attempts start in order of the clock, so the list stays sorted).
    #[cold]
    fn start_exact(&mut self, index: usize) -> u64 {
        let now = self.read_clock();
        let deadline = now.saturating_add(self.timeout.unwrap_or(0));
        self.links[index].record();
        self.timeouts.push(&mut self.links, index, deadline);
        now
    }

    /// Moves the recorded attempts that still run into the timeout list, due at `now + timeout`.
    fn stamp(&mut self, now: u64) {
        let deadline = now.saturating_add(self.timeout.unwrap_or(0));
        for index in self.recent.drain(..) {
            if self.links[index].awaits_stamp() {
                self.timeouts.push(&mut self.links, index, deadline);
            }
        }
        self.tick_armed = false;
    }
}

/// At most `limit` items in progress; outputs in completion or input order.
///
/// Invariants (between calls):
/// - `occupied` counts the slots that hold an item (running, waiting between attempts, or done); it
///   never exceeds `limit`. `occupied + window.held()` is exactly the number of items pulled and not
///   yet yielded (the window holds finished outputs of an ordered lane outside their slots).
/// - every slot index `< arena.len()` is either in `free` or occupied.
/// - unordered: `queue` holds the `Done` slots in completion order. ordered: `queue` holds every
///   occupied slot in input order, so its front is the next output.
/// - `batch` is a list of woken slots taken from the shared stack and not yet polled (`NIL`: none).
/// - a slot is in `timers.timeouts` exactly while its attempt runs with a timeout, and in
///   `timers.backoffs` exactly while its back-off runs; after that, with a rate limit, it may wait in
///   `permits` for its next attempt's permit. Every timeout entry is stamped.
/// - `permits` is empty unless there is a rate limit; while it is not empty, no new item is pulled
///   (retries come first, and the input is not read ahead of the limiter).
/// - `rate_due` is `Some` exactly while a start was denied and the timer owes the lane a wake-up at
///   that time.
pub(crate) struct Engine<M: Mode> {
    mode: M,
    arena: ArenaOf<M>,
    free: Vec<usize>,
    queue: VecDeque<usize>,
    batch: usize,
    limit: usize,
    occupied: usize,
    ordered: bool,
    /// The reorder window of an ordered lane (off: size 0).
    window: Window<M::Output>,
    /// A slot was freed by moving its output into the window: look at the input before sleeping.
    freed: bool,
    timers: Timers,
    /// The rate limiter (`None`: no rate limit).
    rate: Option<Limiter>,
    /// Slots whose back-off is over and whose next attempt waits for a permit, oldest first.
    permits: VecDeque<usize>,
    /// When the denied start may go (see the invariants).
    rate_due: Option<u64>,
    /// A clock reading taken in this `poll_next` call, for the limiter (`None`: none yet).
    round_now: Option<u64>,
    /// A start was denied in this `poll_next` call.
    denied: bool,
    /// The timer fired for the limiter: look at the input again before sleeping.
    rate_woke: bool,
    /// Progress counters (kept only when `M::REPORTS`).
    counters: Counters,
    /// Polls of user futures left in this `poll_next` call (see [`BUDGET`]).
    budget: u32,
    /// Items pulled from the input so far: the input position of the next one.
    pulled: usize,
    /// The input returned `None`; it is never polled again.
    input_done: bool,
    /// `poll_next` returned `None`; it keeps returning `None`.
    terminated: bool,
    /// Set on entry to `poll_lane` and cleared on every return from it: still set at the next call,
    /// it means that user code panicked out of the last one, which may have left the lane's state
    /// half-updated, so the lane refuses to go on (see [`poisoned`]).
    poisoned: bool,
}

impl<M: Mode> Engine<M> {
    pub(crate) fn new(
        mode: M,
        limit: usize,
        ordered: bool,
        window: usize,
        timers: Timers,
        rate: Option<Rate>,
    ) -> Self {
        debug_assert!(limit > 0);
        Engine {
            mode,
            arena: Arena::new(limit),
            free: Vec::new(),
            queue: VecDeque::new(),
            batch: NIL,
            limit,
            occupied: 0,
            ordered,
            window: Window::new(if ordered { window } else { 0 }),
            freed: false,
            timers,
            rate: rate.map(Limiter::new),
            permits: VecDeque::new(),
            rate_due: None,
            round_now: None,
            denied: false,
            rate_woke: false,
            counters: Counters::default(),
            budget: BUDGET,
            pulled: 0,
            input_done: false,
            terminated: false,
            poisoned: false,
        }
    }

    /// Items pulled from the input and not yet yielded.
    pub(crate) fn occupied(&self) -> usize {
        self.occupied + self.window.held()
    }

    /// Whether `poll_next` has returned `None`.
    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// Whether the lane has a rate limit.
    #[inline]
    pub(crate) fn is_rate_limited(&self) -> bool {
        self.rate.is_some()
    }

    /// Whether the lane would read its input but waits for a rate permit first.
    #[inline]
    pub(crate) fn waits_for_permit_to_pull(&self) -> bool {
        self.rate_due.is_some() && !self.input_done && self.occupied < self.limit
    }

    /// The input says it has nothing left (its `size_hint` is `(0, Some(0))`): treat it as ended.
    pub(crate) fn end_input(&mut self) {
        self.input_done = true;
    }

    /// Starts the progress clock and takes the total from the input's `size_hint`, at the first poll
    /// of a reporting lane (later calls do nothing).
    #[cold]
    pub(crate) fn begin_progress(&mut self, input: (usize, Option<usize>)) {
        if self.counters.started_at.is_some() {
            return;
        }
        self.counters.started_at = Some(self.timers.clock.now());
        self.counters.total = match input {
            (lo, Some(hi)) if lo == hi => Some(lo as u64 + self.occupied() as u64),
            _ => None,
        };
    }

    /// Whether the progress clock still has to be started (see [`Engine::begin_progress`]).
    #[inline]
    pub(crate) fn progress_unstarted(&self) -> bool {
        M::REPORTS && self.counters.started_at.is_none()
    }

    /// `size_hint` of the output, given the input's: every item still to be pulled and every occupied
    /// slot yields exactly one output.
    pub(crate) fn size_hint(&self, input: (usize, Option<usize>)) -> (usize, Option<usize>) {
        if self.terminated {
            return (0, Some(0));
        }
        let (lo, hi) = if self.input_done { (0, Some(0)) } else { input };
        (
            lo.saturating_add(self.occupied()),
            hi.and_then(|hi| hi.checked_add(self.occupied())),
        )
    }

    /// Advances the lane. `pull` polls the input for its next item (it is called only while a slot
    /// is free, and never again after it returned `Ready(None)`).
    ///
    /// With `emit` (`poll_next`), returns an output as soon as one may be yielded, with its item's
    /// input position (0 for the first item pulled). Without it (for
    /// `for_each_async`, while its handler runs), yields nothing: finished outputs stay in their
    /// slots (which stay taken, so the limit holds), every other slot keeps being driven and free
    /// slots are filled; it returns `Ready(None)` once the lane has ended, `Pending` otherwise, with
    /// every waker registered.
    ///
    /// # Panics
    ///
    /// A panic in user code (a future, the attempt maker, a `retry_if` or `retry_after` closure, an
    /// item's `Clone`, a future's `Drop`, the input, the progress callback) propagates out of this
    /// call, and poisons the lane: every later call panics with a message saying so. Dropping a
    /// poisoned lane drops every in-flight future, once.
    ///
    /// `INDEXED`: whether the caller wants the outputs' input positions; without it the position
    /// returned is 0 and costs nothing.
    #[inline]
    pub(crate) fn poll_lane<const INDEXED: bool, P>(
        &mut self,
        cx: &mut Context<'_>,
        pull: P,
        emit: bool,
    ) -> Poll<Option<(usize, M::Output)>>
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        if self.poisoned {
            poisoned();
        }
        self.poisoned = true;
        let result = self.poll_unguarded::<INDEXED, P>(cx, pull, emit);
        self.poisoned = false;
        result
    }

    /// [`Engine::poll_lane`] without its poison guard.
    #[inline(always)]
    fn poll_unguarded<const INDEXED: bool, P>(
        &mut self,
        cx: &mut Context<'_>,
        mut pull: P,
        emit: bool,
    ) -> Poll<Option<(usize, M::Output)>>
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        if self.terminated {
            return Poll::Ready(None);
        }
        self.budget = BUDGET;
        if self.rate.is_some() {
            self.round_now = None;
            self.denied = false;
        }
        let result = loop {
            // Phase 1: retries waiting for a rate permit go first; then fill the free slots from the
            // input, each start with a permit. A fresh attempt is polled at once.
            if self.rate.is_some() {
                self.line_up_due_retries();
                self.serve_permits();
            }
            while self.occupied < self.limit
                && !self.input_done
                && self.budget > 0
                && self.may_pull()
            {
                match pull(cx) {
                    Poll::Ready(Some(item)) => {
                        self.take_permit();
                        let index = match self.free.pop() {
                            Some(index) => index,
                            None => self.grow(),
                        };
                        self.start(index, item);
                    }
                    Poll::Ready(None) => self.input_done = true,
                    Poll::Pending => break,
                }
            }

            // Phase 2: drive every woken slot (even when an output is already waiting), picking up
            // wake-ups that happen meanwhile, until none is left or the budget is spent.
            if self.batch == NIL {
                self.batch = self.arena.take_woken();
            }
            while self.batch != NIL && self.budget > 0 {
                let index = self.batch;
                // NOTE: the list advances before the poll, so a panic in user code leaves it intact.
                self.batch = self.arena.next_woken(index);
                if index == TIMER {
                    self.budget -= 1;
                    self.on_timer();
                } else {
                    self.drive(index);
                }
                if self.batch == NIL {
                    self.batch = self.arena.take_woken();
                }
            }

            // Phase 3: emit one output, refilling its slot first.
            if let Some(output) = if emit {
                self.emit::<INDEXED, P>(cx, &mut pull)
            } else {
                None
            } {
                break Poll::Ready(Some(output));
            }

            // Phase 4: decide termination, or whether to sleep.
            if self.input_done && self.occupied == 0 && self.window.held() == 0 {
                self.terminated = true;
                break Poll::Ready(None);
            }
            if self.budget == 0 {
                // Work is left but the budget is spent: let the executor run other tasks first.
                cx.waker().wake_by_ref();
                break Poll::Pending;
            }
            if std::mem::take(&mut self.rate_woke) {
                continue; // the limiter allows a start again: back to phase 1
            }
            if std::mem::take(&mut self.freed) && self.budget > 0 {
                continue; // a slot was freed by the reorder window: back to phase 1
            }
            if self.batch == NIL {
                self.stamp_timeouts();
                if self.arena.may_sleep(cx.waker()) {
                    // Every attempt holds its slot's waker, the timer the lane's, the input ours.
                    self.sleep_round();
                    return Poll::Pending;
                }
            }
        };
        self.stamp_timeouts();
        result
    }

    /// On the way to sleeping, with a rate limit: unless a start was denied in this call, nothing is
    /// waiting for the limiter (the input has nothing, or the slots are busy), so the next start
    /// restarts the schedule from the present.
    ///
    /// NOTE: only a call that sleeps decides this. A call that returns an output may have stopped
    /// starting because its slots hold finished outputs that the consumer is taking one per call:
    /// the lane is still behind its schedule then, and the next calls catch up.
    #[inline]
    fn sleep_round(&mut self) {
        if let Some(limiter) = &mut self.rate {
            if !self.denied {
                limiter.idle();
            }
        }
    }

    /// Whether an attempt may start now (always, without a rate limit). A denial arms the timer for
    /// the next permit. The permit is taken by [`Engine::take_permit`] once the attempt does start.
    #[inline]
    fn permit(&mut self) -> bool {
        let Some(limiter) = &self.rate else {
            return true;
        };
        let due = limiter.next_allowed();
        if self.round_now.is_some_and(|now| due <= now) {
            return true; // allowed by this call's reading: no need to read the clock again
        }
        if self.denied {
            return false; // denied earlier in this call: the timer will tell when
        }
        self.permit_at_fresh_reading(due)
    }

    /// The rest of [`Engine::permit`]: read the clock, and arm the timer on a denial.
    fn permit_at_fresh_reading(&mut self, due: u64) -> bool {
        let now = self.read_clock();
        self.round_now = Some(now);
        if due <= now {
            return true;
        }
        self.denied = true;
        if let Some(limiter) = &mut self.rate {
            limiter.wait();
        }
        if self.rate_due != Some(due) {
            self.rate_due = Some(due);
            self.arm(now);
        }
        false
    }

    /// Takes the permit that [`Engine::permit`] just granted.
    #[inline]
    fn take_permit(&mut self) {
        if let Some(limiter) = &mut self.rate {
            limiter.start(
                self.round_now
                    .expect("tasklane: a permit comes with a clock reading"),
            );
            self.rate_due = None;
        }
    }

    /// With a rate limit: puts the retries whose back-off is over (by this call's clock reading) in
    /// line for a permit, before a new item may take one. The timer that would do it may not have
    /// fired yet, or fires only in phase 2, after phase 1 has pulled.
    #[inline]
    fn line_up_due_retries(&mut self) {
        if self.rate.is_none() {
            return;
        }
        let Some(earliest) = self.timers.backoffs.earliest() else {
            return;
        };
        // This call's reading if it took one (the timer wakes the lane for a later deadline), else a
        // fresh one, which the permit check that follows uses too.
        let now = match self.round_now {
            Some(now) => now,
            None => {
                let now = self.read_clock();
                self.round_now = Some(now);
                now
            }
        };
        if earliest > now {
            return;
        }
        while let Some(index) = self.timers.backoffs.pop_expired(now) {
            self.permits.push_back(index);
        }
    }

    /// Starts the waiting retries, oldest first, while the limiter allows.
    fn serve_permits(&mut self) {
        while let Some(&index) = self.permits.front() {
            if !self.permit() {
                return;
            }
            self.permits.pop_front();
            self.take_permit();
            self.restart(index);
            self.drive(index);
        }
    }

    /// Whether a new item may be pulled from the input now: always without a rate limit (one branch);
    /// with one, when no retry waits for a permit (retries whose back-off is over by now are put in
    /// line first) and the limiter allows a start.
    #[inline]
    fn may_pull(&mut self) -> bool {
        self.rate.is_none() || self.may_pull_rated()
    }

    /// The rate-limited half of [`Engine::may_pull`].
    fn may_pull_rated(&mut self) -> bool {
        self.line_up_due_retries();
        self.permits.is_empty() && self.permit()
    }

    /// Starts an item's next attempt now if the limiter allows (then it returns `true` and the
    /// caller polls it), or puts the item in line for a permit.
    fn retry_now(&mut self, index: usize) -> bool {
        if self.permits.is_empty() && self.permit() {
            self.take_permit();
            self.restart(index);
            return true;
        }
        self.permits.push_back(index);
        false
    }

    /// Reads the clock, stamping the attempts that wait for a timeout deadline with it.
    fn read_clock(&mut self) -> u64 {
        let now = self.timers.read_clock();
        if !self.timers.recent.is_empty() {
            self.timers.stamp(now);
            self.arm(now);
        }
        now
    }

    /// Creates a slot.
    #[cold]
    fn grow(&mut self) -> usize {
        let index = self.arena.grow();
        if self.timers.timeout.is_some() {
            self.timers.links.push(Link::default());
        }
        index
    }

    /// Puts a new item into a free slot and polls its first attempt once.
    #[inline]
    fn start(&mut self, index: usize, item: M::Item) {
        let (keep, fut) = self.mode.start(item);
        self.arena.meta(index).begin(keep, self.pulled);
        self.pulled = self.pulled.wrapping_add(1);
        self.arena.fill(index, fut);
        if self.timers.exact {
            self.start_exact(index);
        }
        self.occupied += 1;
        if self.ordered {
            self.queue.push_back(index);
            if self.window.is_on() {
                self.window.start();
            }
        }
        self.drive(index);
    }

    /// Polls a slot's attempt; settles the item when the attempt ends, starting the next attempt at
    /// once when no back-off is due.
    ///
    /// NOTE: an attempt with a timeout is recorded only when it first returns `Pending`, and joins
    /// the timeout list only if it still runs at the next stamping (`stamp_timeouts`): attempts that
    /// finish soon never touch the list or the clock.
    ///
    /// Every poll (and every stale wake-up) takes one unit of the call's budget. The slot's current
    /// attempt is always polled once; an attempt started at once after a failure (a zero back-off)
    /// is polled in this call only while budget is left, else the slot is woken for the next call:
    /// zero-delay retries never keep one `poll_next` call (and its executor thread) busy for long.
    #[inline]
    fn drive(&mut self, index: usize) {
        loop {
            self.budget = self.budget.saturating_sub(1);
            let output = match self.arena.poll(index) {
                Polled::Ready(output) => output,
                Polled::Pending => {
                    if self.timers.timeout.is_some() {
                        self.timers.record(index);
                    }
                    return;
                }
                Polled::Idle => return, // a stale wake-up of a slot without an attempt
            };
            if self.timers.timeout.is_some() {
                self.timers.end(index);
            }
            if !self.settle(index, Outcome::Finished(output)) {
                return;
            }
            if self.budget == 0 {
                self.arena.requeue(index); // the next call polls the new attempt
                return;
            }
        }
    }

    /// Settles an item after an attempt ended. Returns `true` when the next attempt was started and
    /// should be polled now.
    // NOTE: always inlined: it is on every item's path, and left out of line it costs ~15 % more
    // instructions per item in timed and retrying lanes (callgrind).
    #[inline(always)]
    fn settle(&mut self, index: usize, outcome: Outcome<<M::Fut as Future>::Output>) -> bool {
        let meta = self.arena.meta(index);
        let (attempts, position) = (meta.attempts(), meta.index());
        match self.mode.settle(outcome, attempts, position) {
            Settle::Done(output) => {
                self.arena.meta(index).finish();
                let output = if self.window.is_on() {
                    match self.window.hold(position, output) {
                        Ok(()) => {
                            self.release(index);
                            return false;
                        }
                        Err(output) => output,
                    }
                } else {
                    output
                };
                self.arena.set_done(index, output);
                if !self.ordered {
                    self.queue.push_back(index);
                }
                false
            }
            Settle::Retry { hint } => self.schedule_retry(index, attempts, hint),
        }
    }

    /// Starts a failed item's back-off (or its next attempt at once, for a zero back-off). Returns
    /// `true` when the next attempt was started and should be polled now.
    #[cold]
    fn schedule_retry(&mut self, index: usize, attempts: u32, hint: Option<Duration>) -> bool {
        let meta = self.arena.meta(index);
        let delay = self.mode.backoff(attempts, meta.prev_delay(), hint);
        meta.set_prev_delay(delay);
        if delay == 0 {
            return self.retry_now(index);
        }
        let now = self.timers.read_clock();
        self.timers.backoffs.push(now.saturating_add(delay), index);
        self.arm(now);
        false
    }

    /// An item's output moved into the reorder window: its slot is free for the next item.
    #[cold]
    fn release(&mut self, index: usize) {
        self.arena.release(index);
        self.occupied -= 1;
        self.free.push(index);
        self.freed = true;
    }

    /// Starts the next attempt of a waiting item (not polled yet).
    fn restart(&mut self, index: usize) {
        if M::REPORTS {
            self.counters.retries += 1;
        }
        let keep = self.arena.meta(index).next_attempt();
        let fut = self.mode.restart(keep);
        self.arena.fill(index, fut);
        if self.timers.exact {
            self.start_exact(index);
        }
    }

    /// An attempt started in slot `index` on an exact clock (see `Timers::exact`): it gets its
    /// deadline now, from this reading.
    #[cold]
    fn start_exact(&mut self, index: usize) {
        let now = self.timers.start_exact(index);
        self.arm(now);
    }

    /// The timer fired (or may have): time out expired attempts, restart items whose back-off is
    /// over, and re-arm for the next deadline.
    fn on_timer(&mut self) {
        let now = self.timers.read_clock();
        self.timers.armed = None;
        // Attempts recorded since the last reading are stamped now, so they cannot expire at once.
        self.timers.stamp(now);
        while let Some(index) = self
            .timers
            .timeouts
            .pop_expired(&mut self.timers.links, now)
        {
            self.timers.links[index].end();
            self.arena.cancel(index); // the attempt is dropped at its deadline
            if self.settle(index, Outcome::TimedOut) {
                self.drive(index);
            }
        }
        while let Some(index) = self.timers.backoffs.pop_expired(now) {
            if self.retry_now(index) {
                self.drive(index);
            }
        }
        if self.rate_due.is_some_and(|due| due <= now) {
            // The limiter's wait is over: serve the waiting retries, and let phase 1 look at the input.
            self.rate_due = None;
            self.round_now = Some(now);
            self.denied = false;
            self.rate_woke = true;
            self.serve_permits();
        }
        self.arm(now);
    }

    /// Gives the attempts recorded since the last clock reading their deadline.
    ///
    /// On the system clock a read costs more than the rest of an item's work, so the lane reads it
    /// only every `STAMP_EVERY` calls that leave unstamped attempts, and a tick of the timer
    /// (`granularity` after the last read) bounds how long an attempt can stay unstamped. An attempt
    /// is stamped with the first reading taken after it started: its deadline is never early, and
    /// late by at most the granularity. The manual clock is read every call, so tests see exact
    /// deadlines.
    #[inline(always)]
    fn stamp_timeouts(&mut self) {
        let timers = &mut self.timers;
        if timers.recent.is_empty() {
            return;
        }
        timers.unread_calls += 1;
        if timers.unread_calls < timers.stamp_every && timers.tick_armed {
            return; // the common case: not yet; the tick bounds the wait
        }
        self.stamp_or_tick();
    }

    /// The rest of [`Engine::stamp_timeouts`]: read the clock and stamp, or ask for the tick.
    #[cold]
    fn stamp_or_tick(&mut self) {
        if self.timers.unread_calls < self.timers.stamp_every {
            self.timers.tick_armed = true;
            let last_read = self.timers.last_read;
            let tick = last_read.saturating_add(self.timers.granularity);
            if self.timers.armed.map_or(true, |armed| armed > tick) {
                self.arm_at(tick, last_read);
            }
            return;
        }
        let now = self.timers.read_clock();
        self.timers.stamp(now);
        self.arm(now);
    }

    /// Arms the timer for the earliest deadline unless it is armed for one at least as early (an
    /// early firing just re-arms).
    fn arm(&mut self, now: u64) {
        let timeout = self.timers.timeouts.earliest(&mut self.timers.links);
        let backoff = self.timers.backoffs.earliest();
        let earliest = match (timeout, backoff.into_iter().chain(self.rate_due).min()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(deadline) => deadline,
                None if !self.timers.recent.is_empty() => {
                    now.saturating_add(self.timers.granularity)
                }
                None => return,
            },
        };
        if self.timers.armed.is_some_and(|armed| armed <= earliest) {
            return;
        }
        self.arm_at(earliest, now);
    }

    /// Resets the timer to fire at `deadline` (`now`: a recent clock reading).
    fn arm_at(&mut self, deadline: u64, now: u64) {
        self.timers.armed = Some(deadline);
        let timers = &mut self.timers;
        let sleep = timers.sleep.get_or_insert_with(|| timers.clock.sleep());
        sleep.reset(&timers.clock, deadline, now);
        // Register the timer's own waker: when it fires, `TIMER` is pushed like a woken slot.
        let waker = self.arena.timer_waker();
        let sleep = self.timers.sleep.as_mut().expect("made above");
        if sleep.poll(&mut Context::from_waker(waker)).is_ready() {
            waker.wake_by_ref();
        }
    }

    /// Takes the next output, if one may be yielded now, and refills its slot from the input (polling
    /// the new attempt once) before handing the output back.
    #[inline]
    fn emit<const INDEXED: bool, P>(
        &mut self,
        cx: &mut Context<'_>,
        pull: &mut P,
    ) -> Option<(usize, M::Output)>
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        let (index, output) = if self.ordered {
            if self.window.is_on() {
                if let Some((position, output)) = self.window.take_front() {
                    // Its slot was freed when the output moved into the window.
                    self.queue.pop_front();
                    self.report(&output);
                    return Some((position, output));
                }
            }
            let &front = self.queue.front()?;
            let output = self.arena.take_output(front)?;
            self.queue.pop_front();
            if self.window.is_on() {
                self.window.pop_front();
            }
            (front, output)
        } else {
            let index = self.queue.pop_front()?;
            let output = self.arena.take_output(index);
            (
                index,
                output.expect("tasklane: a slot in the done queue holds an output"),
            )
        };
        self.occupied -= 1;
        let position = if INDEXED {
            self.arena.meta(index).index()
        } else {
            0
        };
        if !self.input_done && self.may_pull() {
            match pull(cx) {
                Poll::Ready(Some(item)) => {
                    self.take_permit();
                    self.start(index, item);
                    self.report(&output);
                    return Some((position, output));
                }
                Poll::Ready(None) => self.input_done = true,
                Poll::Pending => {}
            }
        }
        self.free.push(index);
        self.report(&output);
        Some((position, output))
    }

    /// Hands the callback the snapshot for an outcome about to be yielded (reporting lanes only).
    #[inline]
    fn report(&mut self, output: &M::Output) {
        if M::REPORTS {
            let now = self.timers.clock.now();
            let success = M::succeeded(output);
            let progress = self.counters.complete(success, self.occupied, now);
            self.mode.report(&progress);
        }
    }
}

/// The panic of a lane polled after user code panicked out of an earlier poll (see
/// [`Engine::poll_lane`]).
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn poisoned() -> ! {
    panic!(
        "tasklane: lane polled after a panic in user code escaped an earlier poll; \
         it is poisoned and can only be dropped"
    )
}

impl<M: Mode> std::fmt::Debug for Engine<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limit", &self.limit)
            .field("ordered", &self.ordered)
            .field("occupied", &self.occupied)
            .field("slots", &self.arena.len())
            .field("input_done", &self.input_done)
            .field("terminated", &self.terminated)
            .finish_non_exhaustive()
    }
}
