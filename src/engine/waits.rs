//! The engine's slow paths: an item waiting for something other than its own future. Retries and
//! their back-offs, attempt timeouts, the lane timer, and rate permits. A plain lane never runs
//! any of this (`Mode::TIMED` is `false` and its admission is `Unlimited`).

use std::time::Duration;

use super::admission::{Admission, NotUntil};
use super::core::{Core, Settled};
use super::deadlines::Stamp;
use super::order::Order;
use super::{Mode, Outcome, SlotMeta};

impl<M: Mode, O: Order<M::Output>, A: Admission> Core<M, O, A> {
    /// Starts a failed item's back-off (or its next attempt at once, for a zero back-off). Returns
    /// `true` when the next attempt was started and should be polled now.
    ///
    /// The failed (or timed-out) attempt is dropped first, before the back-off is chosen and
    /// before the next attempt is made.
    #[cold]
    pub(super) fn schedule_retry(
        &mut self,
        index: usize,
        attempts: u32,
        hint: Option<Duration>,
    ) -> bool {
        let slot = self.arena.slot(index);
        slot.state.back_off();
        let meta = slot.meta;
        let delay = self.mode.backoff(attempts, meta.prev_delay(), hint);
        meta.set_prev_delay(delay);
        if delay == 0 {
            return self.retry_now(index);
        }
        let now = self.timers.now();
        self.timers.backoffs.push(now.saturating_add(delay), index);
        self.arm(now);
        false
    }

    /// Polls an attempt that was just started after a failure, if the call's budget allows (else
    /// the slot is woken for the next call), keeping the item if it finishes.
    pub(super) fn drive_restarted(&mut self, index: usize) {
        if self.budget == 0 {
            self.arena.requeue(index);
        } else {
            self.drive(index, false);
        }
    }

    /// Starts the next attempt of a waiting item (not polled yet).
    fn restart(&mut self, index: usize) {
        if M::REPORTS {
            self.counters.retries += 1;
        }
        let keep = self.arena.meta(index).next_attempt();
        let fut = self.mode.restart(keep);
        self.arena.slot(index).state.start(fut);
        if M::TIMED && self.timers.exact {
            self.start_exact(index);
        }
    }

    /// An attempt started in slot `index` on an exact clock (see `Timers::exact`): it gets its
    /// deadline now, from this reading.
    #[cold]
    pub(super) fn start_exact(&mut self, index: usize) {
        let now = self.timers.start_exact(index);
        self.arm(now);
    }

    /// Starts an item's next attempt now if the limiter allows (then it returns `true` and the
    /// caller polls it), or puts the item in line for a permit.
    fn retry_now(&mut self, index: usize) -> bool {
        if !A::LIMITED {
            self.restart(index);
            return true;
        }
        if self.admission.gate().permits.is_empty() && self.permit() {
            self.admission.gate().admit();
            self.restart(index);
            return true;
        }
        self.arena.slot(index).state.await_permit();
        self.admission.gate().permits.push_back(index);
        false
    }

    /// The timer fired (or may have): time out expired attempts, restart items whose back-off is
    /// over, let the limiter's wait end, and re-arm for the next deadline.
    pub(super) fn on_timer(&mut self) {
        let now = self.timers.now();
        self.timers.fired();
        // Attempts recorded since the last reading are stamped now, so they cannot expire at once.
        self.timers.stamp(now);
        while let Some(index) = self
            .timers
            .timeouts
            .pop_expired(&mut self.timers.links, now)
        {
            self.timers.links[index].end();
            // The attempt is dropped at its deadline, by the transition its settling makes.
            match self.settle(index, Outcome::TimedOut) {
                Settled::Done(output) => {
                    let position = self.arena.meta(index).index();
                    self.keep(index, position, output);
                }
                Settled::Restarted => self.drive_restarted(index),
                Settled::Waiting => {}
            }
        }
        while let Some(index) = self.timers.backoffs.pop_expired(now) {
            if self.retry_now(index) {
                self.drive_restarted(index);
            }
        }
        if A::LIMITED && self.admission.gate().on_timer(now) {
            // The limiter's wait is over: serve the waiting retries, and let phase 1 look at the input.
            self.serve_permits();
        }
        self.arm(now);
    }

    /// Gives the attempts recorded since the last clock reading their deadline, when it is time
    /// (see `engine::deadlines`).
    #[inline(always)]
    pub(super) fn stamp_timeouts(&mut self) {
        if !M::TIMED || !self.timers.has_recent() {
            return;
        }
        match self.timers.stamp_due() {
            Stamp::Wait => {}
            Stamp::Tick(tick) => {
                let last_read = self.timers.last_read();
                self.arm_at(tick, last_read);
            }
            Stamp::Now => {
                let now = self.timers.now();
                self.timers.stamp(now);
                self.arm(now);
            }
        }
    }

    /// Reads the clock, stamping the attempts that wait for a timeout deadline with it.
    fn read_clock(&mut self) -> u64 {
        let now = self.timers.now();
        if M::TIMED && self.timers.has_recent() {
            self.timers.stamp(now);
            self.arm(now);
        }
        now
    }

    /// Arms the timer for the earliest deadline unless it is armed for one at least as early.
    pub(super) fn arm(&mut self, now: u64) {
        let rate_due = if A::LIMITED {
            self.admission.gate_ref().due
        } else {
            None
        };
        if let Some(deadline) = self.timers.next_arming(now, rate_due) {
            self.arm_at(deadline, now);
        }
    }

    /// Resets the timer to fire at `deadline` (`now`: a recent clock reading).
    fn arm_at(&mut self, deadline: u64, now: u64) {
        let waker = self.arena.timer_waker();
        if self.timers.arm_at(deadline, now, waker) {
            waker.wake_by_ref();
        }
    }

    /// Whether a new item may be pulled from the input now: always without a rate limit (no code);
    /// with one, when no retry waits for a permit (retries whose back-off is over by now are put in
    /// line first) and the limiter allows a start.
    #[inline(always)]
    pub(super) fn may_pull(&mut self) -> bool {
        !A::LIMITED || self.may_pull_rated()
    }

    /// The rate-limited half of [`Core::may_pull`].
    fn may_pull_rated(&mut self) -> bool {
        self.line_up_due_retries();
        self.admission.gate().permits.is_empty() && self.permit()
    }

    /// Whether an attempt may start now (rate-limited lanes). A denial arms the timer for the next
    /// permit. The permit is taken by `Gate::admit` once the attempt does start.
    fn permit(&mut self) -> bool {
        if let Some(known) = self.admission.gate().known() {
            return known; // this call's reading decides: no need to read the clock again
        }
        let now = self.read_clock();
        match self.admission.gate().check(now) {
            Ok(()) => true,
            Err(NotUntil(due)) => {
                let gate = self.admission.gate();
                if gate.due != Some(due) {
                    gate.due = Some(due);
                    self.arm(now);
                }
                false
            }
        }
    }

    /// With a rate limit: puts the retries whose back-off is over (by this call's clock reading) in
    /// line for a permit, before a new item may take one. The timer that would do it may not have
    /// fired yet, or fires only in phase 2, after phase 1 has pulled.
    pub(super) fn line_up_due_retries(&mut self) {
        let Some(earliest) = self.timers.backoffs.earliest() else {
            return;
        };
        // This call's reading if it took one (the timer wakes the lane for a later deadline), else a
        // fresh one, which the permit check that follows uses too.
        let now = match self.admission.gate().round_now() {
            Some(now) => now,
            None => {
                let now = self.read_clock();
                self.admission.gate().set_round_now(now);
                now
            }
        };
        if earliest > now {
            return;
        }
        while let Some(index) = self.timers.backoffs.pop_expired(now) {
            self.arena.slot(index).state.await_permit();
            self.admission.gate().permits.push_back(index);
        }
    }

    /// Starts the waiting retries, oldest first, while the limiter allows.
    pub(super) fn serve_permits(&mut self) {
        while let Some(&index) = self.admission.gate().permits.front() {
            if !self.permit() {
                return;
            }
            self.admission.gate().permits.pop_front();
            self.admission.gate().admit();
            self.restart(index);
            self.drive_restarted(index);
        }
    }
}
