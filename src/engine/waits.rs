//! The engine's slow paths: an item waiting for something other than its own future. Retries and
//! their back-offs, attempt timeouts, the lane timer, and rate permits. A plain lane never runs
//! any of this (`Mode::TIMED` is `false` and its admission is `Unlimited`).

use std::time::Duration;

use super::admission::{Admission, NotUntil};
use super::core::{Begun, Core, Settled};
use super::deadlines::Stamp;
use super::order::{Kept, Order};
use super::shared::{Keys, Shared};
use super::{Mode, Outcome, Refusal, Settle, SlotMeta};

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
        if self.admission.gate().permits.is_empty() {
            match self.permit(index) {
                Ok(true) => {
                    self.admission.gate().readmit(index);
                    self.restart(index);
                    return true;
                }
                Ok(false) => {}
                Err(refusal) => {
                    self.refuse_waiting(index, refusal);
                    return false;
                }
            }
        }
        self.arena.slot(index).state.await_permit();
        self.admission.gate().permits.push_back(index);
        false
    }

    /// A limiter refused the next attempt of the waiting item in slot `index` (`BackingOff` or
    /// `AwaitingPermit`): the item fails with the refusal, and its output is kept.
    #[cold]
    fn refuse_waiting(&mut self, index: usize, refusal: Refusal) {
        let meta = self.arena.meta(index);
        let (attempts, position) = (meta.attempts(), meta.index());
        let Settle::Done(output) = self
            .mode
            .settle(Outcome::Refused(refusal), attempts, position)
        else {
            unreachable!("tasklane: a refused item is not retried")
        };
        self.arena.meta(index).finish();
        self.keep_refused(index, position, output);
    }

    /// A limiter refused a fresh item, pulled into free slot `index` (the last of the free list):
    /// it fails without an attempt. With `direct`, an output that is next is handed back (the slot
    /// stays free); otherwise it is kept, and the caller takes the slot off the free list, as after
    /// `Core::start`.
    #[cold]
    pub(super) fn refuse_fresh(
        &mut self,
        index: usize,
        item: M::Item,
        position: usize,
        refusal: Refusal,
        direct: bool,
    ) -> Begun<M::Item, M::Output> {
        drop(item);
        let Settle::Done(output) = self.mode.settle(Outcome::Refused(refusal), 0, position) else {
            unreachable!("tasklane: a refused item is not retried")
        };
        if direct && self.order.fresh_is_next() {
            self.order.fresh_handed_out();
            return Begun::Held(position, output);
        }
        let slot = self.arena.slot(index);
        slot.meta.begin(None, position);
        slot.meta.finish();
        self.occupied += 1;
        self.order.started(index);
        self.keep_refused(index, position, output);
        Begun::Taken
    }

    /// Keeps the output of a refused item, whose slot holds no attempt: in the slot (`Done`) or in
    /// the window (the slot is freed).
    fn keep_refused(&mut self, index: usize, position: usize, output: M::Output) {
        match self.order.keep(index, position, output) {
            Kept::InSlot(output) => self.arena.slot(index).state.refused(output),
            Kept::InWindow => {
                self.arena.slot(index).state.refused_free();
                self.occupied -= 1;
                self.free.push(index);
                self.freed = true;
            }
        }
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
            if A::LIMITED {
                self.admission.gate().ended(index);
            }
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

    /// This call's clock reading (limited lanes): the one it took, else a fresh one, which the rest
    /// of the call reuses.
    fn round_reading(&mut self) -> u64 {
        match self.admission.gate().round_now() {
            Some(now) => now,
            None => {
                let now = self.read_clock();
                self.admission.gate().set_round_now(now);
                now
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

    /// Whether a new item may be pulled from the input now (or the parked one tried again): always
    /// without limits (no code); on a limited lane, when no retry waits for a permit (retries whose
    /// back-off is over by now are put in line first) and the lane's own rate allows a start. The
    /// shared limiters are asked once the item is pulled, for its cost (`Core::begin`).
    #[inline(always)]
    pub(super) fn may_pull(&mut self) -> bool {
        !A::LIMITED || self.may_pull_rated()
    }

    /// The rate-limited half of [`Core::may_pull`].
    #[inline]
    fn may_pull_rated(&mut self) -> bool {
        self.line_up_due_retries();
        self.admission.gate().permits.is_empty() && self.permit_local()
    }

    /// Whether the lane's own rate allows a start now (limited lanes). A denial arms the timer
    /// for when it does. The permit is taken by `Gate::admit` once the attempt does start.
    #[inline]
    fn permit_local(&mut self) -> bool {
        match self.admission.gate().known() {
            Some(known) => known, // this call's reading decides: no need to read the clock again
            None => {
                let now = self.read_clock();
                match self.admission.gate().check(now) {
                    Ok(()) => true,
                    Err(NotUntil(due)) => {
                        let slack = self.admission.gate_ref().own_slack();
                        self.deny_until(due, now, slack);
                        false
                    }
                }
            }
        }
    }

    /// What a lane does with a shared limiter's denial of a start (`Gate::ask_shared`). A
    /// denial by a rate arms the timer for when it allows the start; a limiter that puts the lane
    /// in its line wakes it. `Ok(true)`: the start goes after all (a limiter failed open).
    ///
    /// A limiter that refuses the start for good (it can never grant the cost), or failed and does
    /// not fail open, makes it `Err`: the attempt is not to start, and the item fails (only on
    /// lanes whose items can fail).
    #[cold]
    pub(super) fn denied_shared(&mut self, denied: Shared) -> Result<bool, Refusal> {
        match denied {
            Shared::Granted => Ok(true),
            Shared::Queued => Ok(false),
            Shared::NotBefore(wait) => {
                let now = self.round_reading();
                let slack = self.admission.gate_ref().shared_slack();
                self.deny_until(now.saturating_add(wait), now, slack);
                Ok(false)
            }
            Shared::Refused => Err(self
                .admission
                .gate()
                .refusal
                .take()
                .expect("tasklane: a refusal says why")),
        }
    }

    /// Whether the next attempt of the item in slot `index` may start now: the lane's own rate,
    /// then the shared limiters for the item's cost (see [`Core::ask_shared`]).
    fn permit(&mut self, index: usize) -> Result<bool, Refusal> {
        if !self.permit_local() {
            return Ok(false);
        }
        if !self.admission.gate_ref().has_shared() {
            return Ok(true);
        }
        let cost = self.admission.gate_ref().cost_of(index);
        match self
            .admission
            .gate()
            .ask_shared(cost, M::TIMED, Keys::Slot(index))
        {
            Shared::Granted => Ok(true),
            denied => self.denied_shared(denied),
        }
    }

    /// A start was denied until `due` (`now`: the reading it was denied at): the timer wakes the
    /// lane then, or up to `slack` later on the system clock (see [`RATE_SLACK`](super::admission::RATE_SLACK)), so that at a
    /// high rate one wake-up serves many starts. A timer armed already for a time in that range
    /// is kept.
    fn deny_until(&mut self, due: u64, now: u64, slack: u64) {
        let slack = if self.timers.clock.is_manual() {
            0
        } else {
            slack
        };
        let gate = self.admission.gate();
        if gate
            .due
            .is_some_and(|armed| due <= armed && armed <= due.saturating_add(slack))
        {
            return;
        }
        gate.due = Some(due.max(now.saturating_add(slack)));
        self.arm(now);
    }

    /// With a rate limit: puts the retries whose back-off is over (by this call's clock reading) in
    /// line for a permit, before a new item may take one. The timer that would do it may not have
    /// fired yet, or fires only in phase 2, after phase 1 has pulled.
    #[inline]
    pub(super) fn line_up_due_retries(&mut self) {
        if let Some(earliest) = self.timers.backoffs.earliest() {
            self.line_up_retries_due_by(earliest);
        }
    }

    /// [`Core::line_up_due_retries`] once a back-off is known to be running (the earliest ends at
    /// `earliest`).
    #[cold]
    fn line_up_retries_due_by(&mut self, earliest: u64) {
        // This call's reading if it took one (the timer wakes the lane for a later deadline), else a
        // fresh one, which the permit check that follows uses too.
        let now = self.round_reading();
        if earliest > now {
            return;
        }
        while let Some(index) = self.timers.backoffs.pop_expired(now) {
            self.arena.slot(index).state.await_permit();
            self.admission.gate().permits.push_back(index);
        }
    }

    /// Starts the waiting retries, oldest first, while the limiter allows.
    #[inline]
    pub(super) fn serve_permits(&mut self) {
        if !self.admission.gate_ref().permits.is_empty() {
            self.serve_waiting_permits();
        }
    }

    /// [`Core::serve_permits`] once a retry is known to wait.
    #[cold]
    fn serve_waiting_permits(&mut self) {
        while let Some(&index) = self.admission.gate().permits.front() {
            match self.permit(index) {
                Ok(false) => return,
                Ok(true) => {
                    self.admission.gate().permits.pop_front();
                    self.admission.gate().readmit(index);
                    self.restart(index);
                    self.drive_restarted(index);
                }
                Err(refusal) => {
                    self.admission.gate().permits.pop_front();
                    self.refuse_waiting(index, refusal);
                }
            }
        }
    }
}
