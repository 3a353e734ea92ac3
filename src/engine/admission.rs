//! The admission component: whether an attempt may start now. A lane without a rate limit carries
//! [`Unlimited`], a zero-sized type whose `LIMITED` is `false`, so the engine compiles every
//! admission step away; a rate-limited lane carries a [`Gate`].
//!
//! A gate is Poll-free: it is asked with a clock reading and answers like governor's
//! `check(now) -> Result<(), NotUntil>` ([`Gate::check`]); the engine reads the clock, arms its
//! timer for the time a denial names, and puts retries in line. What a gate holds:
//! - the limiter ([`Limiter`]: GCRA with catch-up, or the strict window log);
//! - the permit queue: slots whose next attempt waits for a permit (`AwaitingPermit`), oldest
//!   first. While it is not empty, no new item is pulled: retries come first, and the input is
//!   never read ahead of the limiter;
//! - the round's state: the clock reading taken in this `poll_next` call (so one reading serves
//!   every start of a call), and whether a start was denied in it (then the rest of the call asks
//!   nothing more: the timer will tell);
//! - `due`, the time the timer owes the lane a wake-up for a denied start.
//!
//! This is the seam where limiters shared by many lanes plug in: they are more implementations
//! of the same check.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::task::Waker;

use super::Refusal;
use crate::limit::{Admit, Limiters, Waiter};
use crate::rate::{Limiter, Rate};

/// How much later than a rate allows a start the lane's timer may wake it on the system clock
/// (nanoseconds): the timer slack of rate waits. At a high rate the starts the schedule allowed
/// meanwhile all go at that wake-up (the catch-up of [`CATCH_UP`](crate::rate::CATCH_UP), of which this is a twentieth,
/// so it costs no throughput), and one wake-up of the timer thread and the executor serves many
/// starts instead of one: at 100,000 starts per second, about 25 instead of one to five. At a
/// rate below 4,000 per second a wait is longer than this anyway, and nothing changes. A
/// [`ManualClock`](crate::time::ManualClock) has no slack: tests see exact times.
pub(crate) const RATE_SLACK: u64 = 250_000;

/// A denied start may go at this time (nanoseconds on the lane's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotUntil(pub(crate) u64);

/// What decides whether an attempt may start. See the module docs.
pub(crate) trait Admission: fmt::Debug {
    /// Whether starts are limited at all. When `false`, the engine never calls [`Admission::gate`].
    const LIMITED: bool;

    /// The gate of a limited lane.
    fn gate(&mut self) -> &mut Gate;

    /// The gate of a limited lane, shared.
    fn gate_ref(&self) -> &Gate;
}

/// No admission control: every start is allowed, and no code of the component runs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Unlimited;

impl Admission for Unlimited {
    const LIMITED: bool = false;

    fn gate(&mut self) -> &mut Gate {
        unreachable!("tasklane: a lane without a rate limit has no gate")
    }

    fn gate_ref(&self) -> &Gate {
        unreachable!("tasklane: a lane without a rate limit has no gate")
    }
}

/// A limited lane's admission: its own rate, the shared limiters, or both. See the module docs.
///
/// Invariants (between calls): `permits` holds exactly the slots that are `AwaitingPermit`; `due`
/// is `Some` exactly while a start was denied and the lane's timer is armed for at most that time;
/// `held[i]` is non-zero exactly while slot `i`'s attempt holds a grant of every shared limiter
/// (the cost it was granted); `granted` is `Some` only inside a `poll_next` call, between a grant
/// and the start it is for.
#[derive(Debug)]
pub(crate) struct Gate {
    /// The lane's own rate limit, if it has one.
    pub(super) limiter: Option<Limiter>,
    /// The limiters shared with other lanes ([`Configure::limiter`](crate::Configure::limiter)).
    pub(super) shared: Vec<Arc<dyn Admit>>,
    /// Whether items pick keyed budgets besides (`Lane::limiter_by`).
    pub(super) keyed: bool,
    /// Per slot: the keyed budgets of its item (kept until the slot takes another item).
    pub(super) slot_keys: Vec<Vec<Arc<dyn Admit>>>,
    /// The last denial in this call came from a keyed budget.
    pub(super) by_key: bool,
    /// A keyed budget denied an item in this call (the lane waits in its line).
    pub(super) keyed_wait: bool,
    /// This lane's place in the shared limiters' lines.
    pub(super) waiter: Waiter,
    /// The lane's only limits are shared limiters (no rate of its own, no keyed budgets): a refill
    /// may take the quick path ([`Gate::ask_quick`]). Kept, though `limiter` and `keyed` tell it:
    /// read on every refill, one flag costs 9 instructions per item less than the two (callgrind).
    pub(super) quick: bool,
    /// The budget of the lane's one shared limiter, when it is an in-process
    /// [`Limiter`](crate::Limiter) (the same as `shared[0]`): the quick path asks it and gives its
    /// units back directly, without a call through the trait object.
    pub(crate) local: Option<Arc<crate::limit::Local>>,
    /// Units of `local` whose attempts ended in this `poll_next` call on the quick path and that
    /// have not been given back yet: a start later in the same call takes them over when nobody
    /// waits for the limiter and it has room for them ([`Gate::ask_quick`]), so that an item that
    /// ends and the one that refills its slot cost no atomic read-modify-write between them; the
    /// rest go back as the call returns ([`Gate::flush`]), or before any other ask. Always 0
    /// between calls (and given back when the lane is dropped, even after a panic).
    pub(super) kept: u64,
    /// Per slot: the cost its running attempt was granted by every shared limiter (0: none).
    pub(super) held: Vec<u32>,
    /// Per slot: its item's cost, which every attempt asks for (`Lane::cost`; 1 without).
    pub(super) costs: Vec<u32>,
    /// Why the last `Shared::Refused` refused (taken by the engine at once).
    pub(super) refusal: Option<Refusal>,
    /// Grants taken from every shared limiter by `ask_shared`, for the start that `admit` makes
    /// next in the same step: their cost.
    pub(super) granted: Option<u32>,
    /// The limiters (bit `i`: the one at `i` of the shared ones, then the keys) that failed during
    /// the last ask and let the start go anyway (they fail open, or the lane's items cannot fail):
    /// they granted nothing, so they get no `release` and no `cancel` for it (the `Admit`
    /// contract). Limiters past the 64th are not tracked (they would be given back units).
    pub(super) passed: u64,
    /// Per slot: `passed` of its running attempt. Empty until a limiter first fails and lets a
    /// start go (then as long as `held`): a lane whose limiters never fail pays nothing for it.
    pub(super) passed_slots: Vec<u64>,
    /// The limiters (shared, or keyed budgets) that may have this lane in their line, each once.
    pub(super) queued_on: Vec<Arc<dyn Admit>>,
    /// The waker of the task polling the lane, for the shared limiters to wake.
    pub(super) waker: Option<Waker>,
    /// Slots whose next attempt waits for a permit, oldest first.
    pub(crate) permits: VecDeque<usize>,
    /// When the denied start may go.
    pub(crate) due: Option<u64>,
    /// The clock reading taken in this `poll_next` call (`None`: none yet).
    pub(super) round_now: Option<u64>,
    /// A start was denied in this `poll_next` call.
    pub(super) denied: bool,
    /// The timer let a denied start go, after phase 1 looked at the input: the engine goes back to
    /// phase 1 before sleeping.
    pub(crate) woke: bool,
}

impl Admission for Gate {
    const LIMITED: bool = true;

    #[inline]
    fn gate(&mut self) -> &mut Gate {
        self
    }

    #[inline]
    fn gate_ref(&self) -> &Gate {
        self
    }
}

impl Gate {
    pub(crate) fn new(rate: Option<Rate>, shared: Limiters, keyed: bool) -> Self {
        debug_assert!(rate.is_some() || !shared.is_empty() || keyed);
        let local = shared.only_local();
        let shared = shared.all;
        Gate {
            limiter: rate.map(Limiter::new),
            shared,
            keyed,
            slot_keys: Vec::new(),
            by_key: false,
            keyed_wait: false,
            waiter: Waiter::new(),
            quick: rate.is_none() && !keyed,
            local,
            kept: 0,
            held: Vec::new(),
            costs: Vec::new(),
            granted: None,
            passed: 0,
            passed_slots: Vec::new(),
            refusal: None,
            queued_on: Vec::new(),
            waker: None,
            permits: VecDeque::new(),
            due: None,
            round_now: None,
            denied: false,
            woke: false,
        }
    }

    /// A `poll_next` call begins: no reading, no denial yet; `waker` is the task's.
    #[inline]
    pub(crate) fn begin_round(&mut self, waker: &Waker) {
        self.round_now = None;
        self.denied = false;
        self.keyed_wait = false;
        if self.has_shared() && !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    /// A slot was made.
    pub(crate) fn grow(&mut self, slots: usize) {
        if self.has_shared() {
            self.held.resize(slots, 0);
            self.costs.resize(slots, 1);
            if !self.passed_slots.is_empty() {
                self.passed_slots.resize(slots, 0);
            }
        }
        if self.keyed {
            self.slot_keys.resize_with(slots, Vec::new);
        }
    }

    /// Whether the lane has limiters shared with others, or keyed budgets.
    #[inline]
    pub(crate) fn has_shared(&self) -> bool {
        !self.shared.is_empty() || self.keyed
    }

    /// Whether the last denial in this call came from a keyed budget.
    #[inline]
    pub(crate) fn denied_by_key(&self) -> bool {
        self.by_key
    }

    /// The verdict for a start by what this call already knows: `Some(true)` when it holds the
    /// grants or its reading allows it, `Some(false)` when a start was denied in it, `None` when a
    /// fresh reading is needed (then ask [`Gate::check`]).
    #[inline]
    pub(crate) fn known(&self) -> Option<bool> {
        if self.denied {
            return Some(false);
        }
        match &self.limiter {
            Some(limiter) => {
                let due = limiter.next_allowed();
                self.round_now.is_some_and(|now| due <= now).then_some(true)
            }
            None => Some(true),
        }
    }

    /// Whether the lane's own rate allows a start at `now` (a fresh reading, which the rest of the
    /// call reuses). A denial says when the start may go; the engine arms its timer for that time.
    pub(crate) fn check(&mut self, now: u64) -> Result<(), NotUntil> {
        self.round_now = Some(now);
        let Some(limiter) = &mut self.limiter else {
            return Ok(());
        };
        let due = limiter.next_allowed();
        if due <= now {
            return Ok(());
        }
        self.denied = true;
        limiter.wait();
        Err(NotUntil(due))
    }

    /// The cost of the item in slot `index`.
    #[inline]
    pub(crate) fn cost_of(&self, index: usize) -> u32 {
        self.costs.get(index).copied().unwrap_or(1)
    }

    /// A start that [`Gate::known`], [`Gate::check`] and [`Gate::ask_shared`] allowed happens in
    /// slot `index`, for an item of `cost`: it takes the lane's own permit, and the shared grants
    /// are held by the slot.
    ///
    /// Returns the key vector the slot held for its previous item, for reuse.
    #[inline]
    pub(crate) fn admit(
        &mut self,
        index: usize,
        cost: u32,
        keys: Vec<Arc<dyn Admit>>,
    ) -> Vec<Arc<dyn Admit>> {
        self.admit_unkeyed(index, cost);
        std::mem::replace(&mut self.slot_keys[index], keys)
    }

    /// [`Gate::admit`] on a lane without keyed budgets.
    #[inline]
    pub(crate) fn admit_unkeyed(&mut self, index: usize, cost: u32) {
        self.readmit(index);
        if let Some(kept) = self.costs.get_mut(index) {
            *kept = cost; // only a lane with shared limiters keeps costs
        }
    }

    /// [`Gate::admit`] for the next attempt of the item in slot `index` (its cost and keys kept).
    #[inline]
    pub(crate) fn readmit(&mut self, index: usize) {
        if let Some(limiter) = &mut self.limiter {
            let now = self
                .round_now
                .expect("tasklane: a permit comes with a clock reading");
            limiter.start(now);
        }
        if let Some(granted) = self.granted.take() {
            self.held[index] = granted;
            self.note_passed(index);
        }
        self.due = None;
    }

    /// The attempt in slot `index` ended (finished, failed, timed out): its shared grants come back.
    #[inline(always)]
    pub(crate) fn ended(&mut self, index: usize) {
        if let Some(held) = self.held.get_mut(index) {
            let cost = std::mem::take(held);
            if cost > 0 {
                if let Some(local) = &self.local {
                    if self.quick {
                        self.kept += u64::from(cost); // see `kept`
                    } else {
                        local.release_units(u64::from(cost));
                    }
                } else {
                    let passed = self.passed_slots.get(index).copied().unwrap_or(0);
                    if passed == 0 {
                        for limit in &self.shared {
                            limit.release(cost);
                        }
                    } else {
                        self.release_granted(index, cost, passed);
                        return;
                    }
                }
                if let Some(keys) = self.slot_keys.get(index) {
                    for limit in keys {
                        limit.release(cost);
                    }
                }
            }
        }
    }

    /// Slot `index` starts an attempt with the grants of the last ask: notes which limiters let it
    /// go after failing (see `passed`), if any ever did.
    #[inline]
    pub(crate) fn note_passed(&mut self, index: usize) {
        if self.passed != 0 && self.passed_slots.is_empty() {
            self.passed_slots.resize(self.held.len(), 0);
        }
        if let Some(slot) = self.passed_slots.get_mut(index) {
            *slot = std::mem::take(&mut self.passed);
        }
    }

    /// [`Gate::ended`] for an attempt that some limiters let go after failing (`passed`): only
    /// the others get their units back.
    #[cold]
    fn release_granted(&mut self, index: usize, cost: u32, passed: u64) {
        self.passed_slots[index] = 0;
        let keys = self.slot_keys.get(index).map(Vec::as_slice).unwrap_or(&[]);
        for (at, limit) in self.shared.iter().chain(keys).enumerate() {
            if !is_passed(passed, at) {
                limit.release(cost);
            }
        }
    }

    /// Gives back the units kept in this call (see `kept`): as the call returns, and before an ask
    /// other than the quick one, so that it sees the limiter as others do.
    #[inline]
    pub(crate) fn flush(&mut self) {
        if self.kept > 0 {
            if let Some(local) = &self.local {
                local.release_units(self.kept);
            }
            self.kept = 0;
        }
    }

    /// How much later than a denial of the lane's own rate names its timer may wake it (see
    /// [`RATE_SLACK`]): only a catch-up schedule makes up for the lateness; the strict one would
    /// lose it.
    #[inline]
    pub(crate) fn own_slack(&self) -> u64 {
        match &self.limiter {
            Some(limiter) if !limiter.is_strict() => RATE_SLACK,
            _ => 0,
        }
    }

    /// [`Gate::own_slack`] for a denial by a shared limiter: the in-process [`Limiter`]'s schedule
    /// catches up as the lane's own does; another limiter's is not known, and its time is kept.
    ///
    /// [`Limiter`]: crate::Limiter
    #[inline]
    pub(crate) fn shared_slack(&self) -> u64 {
        if self.local.is_some() {
            RATE_SLACK
        } else {
            0
        }
    }

    /// This call's reading, if it took one.
    #[inline]
    pub(crate) fn round_now(&self) -> Option<u64> {
        self.round_now
    }

    /// Records a reading taken for this call.
    #[inline]
    pub(crate) fn set_round_now(&mut self, now: u64) {
        self.round_now = Some(now);
    }

    /// The timer fired at `now`: if the denied start may go, the round starts over from this
    /// reading, the engine serves the waiting retries, and goes back to phase 1 to look at the input
    /// (`woke`).
    pub(crate) fn on_timer(&mut self, now: u64) -> bool {
        if !self.due.is_some_and(|due| due <= now) {
            return false;
        }
        self.due = None;
        self.round_now = Some(now);
        self.denied = false;
        self.woke = true;
        true
    }

    /// On the way to sleeping: unless a start was denied in this call, nothing waits for a limiter
    /// (the input has nothing, or the slots are busy), so the next start restarts the lane's own
    /// schedule from the present, and the lane leaves the shared limiters' lines.
    ///
    /// NOTE: only a call that sleeps decides this. A call that returns an output may have stopped
    /// starting because its slots hold finished outputs that the consumer is taking one per call:
    /// the lane is still behind its schedule then, and the next calls catch up.
    #[inline]
    pub(crate) fn sleep(&mut self) {
        if self.denied || self.keyed_wait {
            return;
        }
        if let Some(limiter) = &mut self.limiter {
            limiter.idle();
        }
        self.leave();
    }

    /// Leaves every shared limiter's line.
    fn leave(&mut self) {
        for limit in self.queued_on.drain(..) {
            limit.leave(&self.waiter);
        }
    }
}

impl Drop for Gate {
    /// The lane is gone: its grants come back and it leaves every line.
    fn drop(&mut self) {
        for index in 0..self.held.len() {
            self.ended(index);
        }
        self.flush();
        self.leave();
    }
}

#[cfg(all(test, not(tasklane_loom)))]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn gate(per_second: f64, burst: u32) -> Gate {
        Gate::new(
            Some(Rate {
                period: Rate::period(per_second),
                burst,
                strict: false,
            }),
            Limiters::default(),
            false,
        )
    }

    #[test]
    fn a_gate_allows_one_start_per_period_and_names_the_next() {
        let mut gate = gate(100.0, 1); // one start per 10 ms
        gate.begin_round(futures_util::task::noop_waker_ref());
        assert_eq!(gate.known(), None, "no reading yet");
        assert_eq!(gate.check(0), Ok(()));
        gate.readmit(0);
        assert_eq!(gate.known(), None, "the reading no longer allows a start");
        assert_eq!(gate.check(0), Err(NotUntil(10 * MS)));
        assert_eq!(
            gate.known(),
            Some(false),
            "denied in this round: ask nothing more"
        );
        gate.begin_round(futures_util::task::noop_waker_ref());
        assert_eq!(gate.check(10 * MS), Ok(()));
        assert_eq!(gate.known(), Some(true), "this round's reading allows it");
    }

    #[test]
    fn the_timer_reopens_the_round_only_when_the_wait_is_over() {
        let mut gate = gate(100.0, 1);
        gate.begin_round(futures_util::task::noop_waker_ref());
        assert_eq!(gate.check(0), Ok(()));
        gate.readmit(0);
        let Err(NotUntil(due)) = gate.check(MS) else {
            panic!("denied")
        };
        gate.due = Some(due);
        assert!(!gate.on_timer(due - 1), "early: still waiting");
        assert!(gate.on_timer(due));
        assert!(gate.woke && gate.due.is_none());
        assert_eq!(
            gate.known(),
            Some(true),
            "the timer's reading allows the start"
        );
    }

    #[test]
    fn unlimited_is_zero_sized() {
        assert_eq!(std::mem::size_of::<Unlimited>(), 0);
        const _: () = assert!(!Unlimited::LIMITED);
    }
}

/// Whether bit `at` of `passed` (see `Gate::passed`) is set.
#[inline]
pub(super) fn is_passed(passed: u64, at: usize) -> bool {
    u32::try_from(at)
        .ok()
        .and_then(|at| 1u64.checked_shl(at))
        .is_some_and(|bit| passed & bit != 0)
}
