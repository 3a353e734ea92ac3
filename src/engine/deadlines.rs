//! The deadlines component: attempt timeouts and back-offs of one lane, and the one timer that
//! serves them (and the rate limiter's wait). Poll-free but for [`Timers::arm_at`], which registers
//! the timer with the lane's timer waker; the lists themselves are in `engine::timers`.
//!
//! A lane whose kind has no timeouts and never retries (`Mode::TIMED` is `false`) and has no rate
//! limit never reads the clock, never makes the timer, and runs none of this code.
//!
//! Stamping. On the system clock a reading costs more than the rest of an item's work, so an
//! attempt does not read the clock when it starts: it is *recorded* when it first returns
//! `Pending`, and gets its deadline (`stamp`) from the first reading taken after that. The lane
//! reads the clock for stamping only every `STAMP_EVERY` calls that leave unstamped attempts, and
//! a tick of the timer (`granularity` after the last reading) bounds how long an attempt can stay
//! unstamped. So a deadline is never early, and late by at most the granularity; attempts that
//! finish before the next reading never touch the list or the clock. On the manual clock every
//! attempt reads the clock as it starts (`exact`), so tests see exact deadlines.

use std::task::{Context, Waker};
use std::time::Duration;

use super::timers::{BackoffQueue, Link, TimeoutList};
use crate::time::{Clock, Sleep};

/// See the module docs.
const STAMP_EVERY: u32 = 64;

/// What [`Timers::stamp_due`] asks of the engine.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stamp {
    /// Nothing to do now.
    Wait,
    /// Arm the timer for this tick (nothing read the clock for a while).
    Tick(u64),
    /// Read the clock and stamp now.
    Now,
}

/// Timeouts, back-offs, and the one timer that serves them.
///
/// Invariants (between calls): a slot is in `timeouts` exactly while its attempt runs with a
/// timeout and has been stamped, and in `recent` (at most once per attempt) while it awaits its
/// stamp; a slot is in `backoffs` exactly while it is `BackingOff`; `armed` is the deadline the
/// sleep is set for, never later than the earliest deadline in the lists.
#[derive(Debug)]
pub(crate) struct Timers {
    /// The timeout of each attempt, in nanoseconds (`None`: attempts have no timeout).
    pub(crate) timeout: Option<u64>,
    pub(crate) clock: Clock,
    pub(crate) timeouts: TimeoutList,
    /// Each slot's timeout bookkeeping, by slot index (grown with the slots, only with a timeout).
    pub(crate) links: Vec<Link>,
    /// Slots whose attempt returned `Pending` since the last stamping: they join `timeouts` at the
    /// next stamping if the attempt still runs (most have finished by then).
    recent: Vec<usize>,
    pub(crate) backoffs: BackoffQueue,
    /// Made on first use, then reset in place.
    sleep: Option<Sleep>,
    /// The deadline the sleep is armed for (`None`: not armed).
    pub(crate) armed: Option<u64>,
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
    /// timeout (a manual clock costs nothing to read).
    pub(crate) exact: bool,
}

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

    /// Reads the clock (and remembers the reading). Stamps nothing: see [`Timers::stamp`].
    pub(crate) fn now(&mut self) -> u64 {
        self.last_read = self.clock.now();
        self.unread_calls = 0;
        self.last_read
    }

    /// A slot was created: it gets its timeout bookkeeping.
    #[cfg(all(test, not(tasklane_loom)))]
    pub(crate) fn grow(&mut self) {
        if self.timeout.is_some() {
            self.links.push(Link::default());
        }
    }

    /// Slots were made, up to `slots` in all ([`Timers::grow`] for each).
    pub(crate) fn grow_to(&mut self, slots: usize) {
        if self.timeout.is_some() {
            self.links.resize_with(slots, Link::default);
        }
    }

    /// Records a running attempt that returned `Pending`, once per attempt.
    #[inline]
    pub(crate) fn record(&mut self, index: usize) {
        if self.links[index].record() {
            self.recent.push(index);
        }
    }

    /// An attempt ended: takes it out of the timeout list (its `recent` entry, if any, goes stale).
    #[inline]
    pub(crate) fn end(&mut self, index: usize) {
        if self.links[index].is_linked() {
            self.timeouts.remove(&mut self.links, index);
        }
        self.links[index].end();
    }

    /// An attempt starts in slot `index` on an exact clock: it joins the timeout list now, due at its
    /// start plus the timeout (attempts start in order of the clock, so the list stays sorted).
    /// Returns the reading.
    #[cold]
    pub(crate) fn start_exact(&mut self, index: usize) -> u64 {
        let now = self.now();
        let deadline = now.saturating_add(self.timeout.unwrap_or(0));
        self.links[index].record();
        self.timeouts.push(&mut self.links, index, deadline);
        now
    }

    /// Whether attempts await their stamp.
    #[inline]
    pub(crate) fn has_recent(&self) -> bool {
        !self.recent.is_empty()
    }

    /// Moves the recorded attempts that still run into the timeout list, due at `now + timeout`.
    pub(crate) fn stamp(&mut self, now: u64) {
        let deadline = now.saturating_add(self.timeout.unwrap_or(0));
        for index in self.recent.drain(..) {
            if self.links[index].awaits_stamp() {
                self.timeouts.push(&mut self.links, index, deadline);
            }
        }
        self.tick_armed = false;
    }

    /// At the end of a `poll_next` call that leaves recorded attempts: whether to stamp them now,
    /// ask the timer for a tick, or wait (see the module docs).
    #[inline(always)]
    pub(crate) fn stamp_due(&mut self) -> Stamp {
        self.unread_calls += 1;
        if self.unread_calls < self.stamp_every && self.tick_armed {
            return Stamp::Wait; // the common case: not yet; the tick bounds the wait
        }
        self.stamp_or_tick()
    }

    #[cold]
    fn stamp_or_tick(&mut self) -> Stamp {
        if self.unread_calls < self.stamp_every {
            self.tick_armed = true;
            let tick = self.last_read.saturating_add(self.granularity);
            if self.armed.map_or(true, |armed| armed > tick) {
                return Stamp::Tick(tick);
            }
            return Stamp::Wait;
        }
        Stamp::Now
    }

    /// The last clock reading.
    pub(crate) fn last_read(&self) -> u64 {
        self.last_read
    }

    /// The deadline the timer should be armed for, given the limiter's (`rate_due`), or `None` when
    /// it is armed for one at least as early already or nothing is due (an early firing just
    /// re-arms).
    pub(crate) fn next_arming(&mut self, now: u64, rate_due: Option<u64>) -> Option<u64> {
        let timeout = self.timeouts.earliest(&mut self.links);
        let other = self.backoffs.earliest().into_iter().chain(rate_due).min();
        let earliest = match (timeout, other) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(deadline) => deadline,
                None if self.has_recent() => now.saturating_add(self.granularity),
                None => return None,
            },
        };
        if self.armed.is_some_and(|armed| armed <= earliest) {
            return None;
        }
        Some(earliest)
    }

    /// Resets the timer to fire at `deadline` (`now`: a recent reading) and registers `waker` with
    /// it (the lane's timer waker: when it fires, the timer is pushed like a woken slot). Returns
    /// whether it is due already (then the caller wakes the waker).
    pub(crate) fn arm_at(&mut self, deadline: u64, now: u64, waker: &Waker) -> bool {
        self.armed = Some(deadline);
        let sleep = self.sleep.get_or_insert_with(|| self.clock.sleep());
        sleep.reset(&self.clock, deadline, now);
        sleep.poll(&mut Context::from_waker(waker)).is_ready()
    }

    /// The timer fired (or may have): it is no longer armed.
    pub(crate) fn fired(&mut self) {
        self.armed = None;
    }
}

#[cfg(all(test, not(tasklane_loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_gets_its_deadline_at_the_first_reading_after_it_is_recorded() {
        let mut timers = Timers::new(Some(Duration::from_millis(10)), Clock::default());
        assert!(!timers.exact, "the system clock is stamped lazily");
        for _ in 0..3 {
            timers.grow();
        }
        timers.record(1);
        timers.record(1); // once per attempt
        timers.record(2);
        timers.end(2); // finished before the reading: never joins the list
        timers.stamp(5);
        assert_eq!(
            timers.timeouts.earliest(&mut timers.links),
            Some(5 + 10_000_000)
        );
        assert_eq!(
            timers.timeouts.pop_expired(&mut timers.links, 10_000_004),
            None
        );
        assert_eq!(
            timers.timeouts.pop_expired(&mut timers.links, 10_000_005),
            Some(1)
        );
    }

    #[test]
    fn stamping_waits_for_a_tick_or_for_enough_calls() {
        let mut timers = Timers::new(Some(Duration::from_secs(1)), Clock::default());
        timers.grow();
        timers.record(0);
        let tick = 1_000_000_000 / 64;
        assert_eq!(
            timers.stamp_due(),
            Stamp::Tick(tick),
            "first: ask for a tick"
        );
        timers.armed = Some(tick);
        for _ in 2..STAMP_EVERY {
            assert_eq!(timers.stamp_due(), Stamp::Wait);
        }
        assert_eq!(
            timers.stamp_due(),
            Stamp::Now,
            "enough calls: read the clock"
        );
    }

    #[test]
    fn the_timer_is_armed_for_the_earliest_deadline_only_when_earlier() {
        let mut timers = Timers::new(None, Clock::default());
        assert_eq!(timers.next_arming(0, None), None, "nothing due");
        timers.backoffs.push(50, 0);
        assert_eq!(timers.next_arming(0, Some(70)), Some(50));
        assert_eq!(timers.next_arming(0, Some(20)), Some(20));
        timers.armed = Some(20);
        assert_eq!(
            timers.next_arming(0, Some(30)),
            None,
            "armed earlier already"
        );
    }
}
