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

use crate::rate::{Limiter, Rate};

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

/// A rate-limited lane's admission. See the module docs.
///
/// Invariants (between calls): `permits` holds exactly the slots that are `AwaitingPermit`; `due`
/// is `Some` exactly while a start was denied and the lane's timer is armed for at most that time.
#[derive(Debug)]
pub(crate) struct Gate {
    limiter: Limiter,
    /// Slots whose next attempt waits for a permit, oldest first.
    pub(crate) permits: VecDeque<usize>,
    /// When the denied start may go.
    pub(crate) due: Option<u64>,
    /// The clock reading taken in this `poll_next` call (`None`: none yet).
    round_now: Option<u64>,
    /// A start was denied in this `poll_next` call.
    denied: bool,
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
    pub(crate) fn new(rate: Rate) -> Self {
        Gate {
            limiter: Limiter::new(rate),
            permits: VecDeque::new(),
            due: None,
            round_now: None,
            denied: false,
            woke: false,
        }
    }

    /// A `poll_next` call begins: no reading, no denial yet.
    #[inline]
    pub(crate) fn begin_round(&mut self) {
        self.round_now = None;
        self.denied = false;
    }

    /// The verdict for a start by what this call already knows: `Some(true)` when its reading
    /// allows it, `Some(false)` when a start was denied in it, `None` when a fresh reading is needed
    /// (then ask [`Gate::check`]).
    #[inline]
    pub(crate) fn known(&self) -> Option<bool> {
        let due = self.limiter.next_allowed();
        if self.round_now.is_some_and(|now| due <= now) {
            return Some(true);
        }
        if self.denied {
            return Some(false);
        }
        None
    }

    /// Whether a start is allowed at `now` (a fresh reading, which the rest of the call reuses).
    /// A denial says when the start may go; the engine arms its timer for that time.
    pub(crate) fn check(&mut self, now: u64) -> Result<(), NotUntil> {
        self.round_now = Some(now);
        let due = self.limiter.next_allowed();
        if due <= now {
            return Ok(());
        }
        self.denied = true;
        self.limiter.wait();
        Err(NotUntil(due))
    }

    /// A start that [`Gate::known`] or [`Gate::check`] allowed happens: it takes its permit.
    #[inline]
    pub(crate) fn admit(&mut self) {
        let now = self
            .round_now
            .expect("tasklane: a permit comes with a clock reading");
        self.limiter.start(now);
        self.due = None;
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

    /// On the way to sleeping: unless a start was denied in this call, nothing waits for the
    /// limiter (the input has nothing, or the slots are busy), so the next start restarts the
    /// schedule from the present.
    ///
    /// NOTE: only a call that sleeps decides this. A call that returns an output may have stopped
    /// starting because its slots hold finished outputs that the consumer is taking one per call:
    /// the lane is still behind its schedule then, and the next calls catch up.
    #[inline]
    pub(crate) fn sleep(&mut self) {
        if !self.denied {
            self.limiter.idle();
        }
    }
}

#[cfg(all(test, not(tasklane_loom)))]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn gate(per_second: f64, burst: u32) -> Gate {
        Gate::new(Rate {
            period: Rate::period(per_second),
            burst,
            strict: false,
        })
    }

    #[test]
    fn a_gate_allows_one_start_per_period_and_names_the_next() {
        let mut gate = gate(100.0, 1); // one start per 10 ms
        gate.begin_round();
        assert_eq!(gate.known(), None, "no reading yet");
        assert_eq!(gate.check(0), Ok(()));
        gate.admit();
        assert_eq!(gate.known(), None, "the reading no longer allows a start");
        assert_eq!(gate.check(0), Err(NotUntil(10 * MS)));
        assert_eq!(
            gate.known(),
            Some(false),
            "denied in this round: ask nothing more"
        );
        gate.begin_round();
        assert_eq!(gate.check(10 * MS), Ok(()));
        assert_eq!(gate.known(), Some(true), "this round's reading allows it");
    }

    #[test]
    fn the_timer_reopens_the_round_only_when_the_wait_is_over() {
        let mut gate = gate(100.0, 1);
        gate.begin_round();
        assert_eq!(gate.check(0), Ok(()));
        gate.admit();
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
