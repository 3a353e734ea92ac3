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

mod meta;
mod slots;
mod timers;

use std::collections::VecDeque;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use meta::SlotMeta;
pub(crate) use meta::{Retried, Single};
use slots::{Arena, Polled, NIL, TIMER};
use timers::{BackoffQueue, Link, TimeoutList};

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
pub trait Mode {
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
    fn settle(
        &mut self,
        outcome: Outcome<<Self::Fut as Future>::Output>,
        attempts: u32,
    ) -> Settle<Self::Output>;
    /// The back-off in nanoseconds after `attempts` failed attempts, given the item's previous delay
    /// and the error's own hint.
    fn backoff(&mut self, attempts: u32, prev: Option<u64>, hint: Option<Duration>) -> u64;
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
}

/// See [`Engine::stamp_timeouts`].
const STAMP_EVERY: u32 = 64;

impl Timers {
    pub(crate) fn new(timeout: Option<Duration>, clock: Clock) -> Self {
        let timeout = timeout.map(crate::backoff::nanos);
        Timers {
            timeout,
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
///   never exceeds `limit`, and it is exactly the number of items pulled and not yet yielded.
/// - every slot index `< arena.len()` is either in `free` or occupied.
/// - unordered: `queue` holds the `Done` slots in completion order. ordered: `queue` holds every
///   occupied slot in input order, so its front is the next output.
/// - `batch` is a list of woken slots taken from the shared stack and not yet polled (`NIL`: none).
/// - a slot is in `timers.timeouts` exactly while its attempt runs with a timeout, and in
///   `timers.backoffs` exactly while it waits between attempts; every timeout entry is stamped.
pub(crate) struct Engine<M: Mode> {
    mode: M,
    arena: ArenaOf<M>,
    free: Vec<usize>,
    queue: VecDeque<usize>,
    batch: usize,
    limit: usize,
    occupied: usize,
    ordered: bool,
    timers: Timers,
    /// The input returned `None`; it is never polled again.
    input_done: bool,
    /// `poll_next` returned `None`; it keeps returning `None`.
    terminated: bool,
}

impl<M: Mode> Engine<M> {
    pub(crate) fn new(mode: M, limit: usize, ordered: bool, timers: Timers) -> Self {
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
            timers,
            input_done: false,
            terminated: false,
        }
    }

    /// Items pulled from the input and not yet yielded.
    pub(crate) fn occupied(&self) -> usize {
        self.occupied
    }

    /// Whether `poll_next` has returned `None`.
    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// `size_hint` of the output, given the input's: every item still to be pulled and every occupied
    /// slot yields exactly one output.
    pub(crate) fn size_hint(&self, input: (usize, Option<usize>)) -> (usize, Option<usize>) {
        if self.terminated {
            return (0, Some(0));
        }
        let (lo, hi) = if self.input_done { (0, Some(0)) } else { input };
        (
            lo.saturating_add(self.occupied),
            hi.and_then(|hi| hi.checked_add(self.occupied)),
        )
    }

    /// Advances the lane. `pull` polls the input for its next item (it is called only while a slot
    /// is free, and never again after it returned `Ready(None)`).
    pub(crate) fn poll_next<P>(
        &mut self,
        cx: &mut Context<'_>,
        mut pull: P,
    ) -> Poll<Option<M::Output>>
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        if self.terminated {
            return Poll::Ready(None);
        }
        self.arena.enter();
        let mut budget = BUDGET;
        let result = loop {
            // Phase 1: fill the free slots from the input. A fresh attempt is polled at once.
            while self.occupied < self.limit && !self.input_done && budget > 0 {
                match pull(cx) {
                    Poll::Ready(Some(item)) => {
                        let index = match self.free.pop() {
                            Some(index) => index,
                            None => self.grow(),
                        };
                        self.start(index, item);
                        budget -= 1;
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
            while self.batch != NIL && budget > 0 {
                let index = self.batch;
                // NOTE: the list advances before the poll, so a panic in user code leaves it intact.
                self.batch = self.arena.next_woken(index);
                budget -= 1;
                if index == TIMER {
                    self.on_timer();
                } else {
                    self.drive(index);
                }
                if self.batch == NIL {
                    self.batch = self.arena.take_woken();
                }
            }

            // Phase 3: emit one output, refilling its slot first.
            if let Some(output) = self.emit(cx, &mut pull) {
                break Poll::Ready(Some(output));
            }

            // Phase 4: decide termination, or whether to sleep.
            if self.input_done && self.occupied == 0 {
                self.terminated = true;
                break Poll::Ready(None);
            }
            if budget == 0 {
                // Work is left but the budget is spent: let the executor run other tasks first.
                cx.waker().wake_by_ref();
                break Poll::Pending;
            }
            if self.batch == NIL {
                self.stamp_timeouts();
                if self.arena.may_sleep(cx.waker()) {
                    // Every attempt holds its slot's waker, the timer the lane's, the input ours.
                    return Poll::Pending;
                }
            }
        };
        self.stamp_timeouts();
        result
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
        self.arena.meta(index).begin(keep);
        self.arena.fill(index, fut);
        self.occupied += 1;
        if self.ordered {
            self.queue.push_back(index);
        }
        self.drive(index);
    }

    /// Polls a slot's attempt; settles the item when the attempt ends, starting the next attempt at
    /// once when no back-off is due.
    ///
    /// NOTE: an attempt with a timeout is recorded only when it first returns `Pending`, and joins
    /// the timeout list only if it still runs at the next stamping (`stamp_timeouts`): attempts that
    /// finish soon never touch the list or the clock.
    #[inline]
    fn drive(&mut self, index: usize) {
        loop {
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
        }
    }

    /// Settles an item after an attempt ended. Returns `true` when the next attempt was started and
    /// should be polled now.
    // NOTE: always inlined: it is on every item's path, and left out of line it costs ~15 % more
    // instructions per item in timed and retrying lanes (callgrind).
    #[inline(always)]
    fn settle(&mut self, index: usize, outcome: Outcome<<M::Fut as Future>::Output>) -> bool {
        let attempts = self.arena.meta(index).attempts();
        match self.mode.settle(outcome, attempts) {
            Settle::Done(output) => {
                self.arena.meta(index).finish();
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
            self.restart(index);
            return true;
        }
        let now = self.timers.read_clock();
        self.timers.backoffs.push(now.saturating_add(delay), index);
        self.arm(now);
        false
    }

    /// Starts the next attempt of a waiting item (not polled yet).
    fn restart(&mut self, index: usize) {
        let keep = self.arena.meta(index).next_attempt();
        let fut = self.mode.restart(keep);
        self.arena.fill(index, fut);
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
            self.restart(index);
            self.drive(index);
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
        let earliest = match (timeout, self.timers.backoffs.earliest()) {
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
    fn emit<P>(&mut self, cx: &mut Context<'_>, pull: &mut P) -> Option<M::Output>
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        let (index, output) = if self.ordered {
            let &front = self.queue.front()?;
            let output = self.arena.take_output(front)?;
            self.queue.pop_front();
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
        if !self.input_done {
            match pull(cx) {
                Poll::Ready(Some(item)) => {
                    self.start(index, item);
                    return Some(output);
                }
                Poll::Ready(None) => self.input_done = true,
                Poll::Pending => {}
            }
        }
        self.free.push(index);
        Some(output)
    }
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
