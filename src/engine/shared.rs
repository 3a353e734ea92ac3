//! The admission component's shared half: asking a limited lane's shared limiters and keyed
//! budgets (`crate::limit`) for a start, through the [`Admit`] trait, and what a denial means.
//!
//! The limiters are asked in order, the lane's own shared ones ([`Configure::limiter`]
//! (crate::Configure::limiter)) first, then the item's keyed budgets (`Lane::limiter_by`). All
//! must admit the start: when one does not, the grants of those before it are cancelled. The path
//! where every limiter admits at once is inlined and asks nothing else; a denial goes out of line
//! ([`Gate::not_admitted`]), which is where a limiter that can never grant the cost is found
//! (asked only then), where a failing limiter fails the item or lets it go, and where the lane
//! notes the lines it joined (to leave them when it no longer waits).

use std::sync::Arc;
use std::task::{Context, Poll};

use super::admission::{is_passed, Gate};
use super::Refusal;
use crate::limit::{Admit, LimitError, Verdict};

/// The keyed budgets to ask besides the lane's shared limiters ([`Gate::ask_shared`]).
#[derive(Clone, Copy)]
pub(crate) enum Keys<'a> {
    /// Those of a pulled item that has no slot yet.
    Given(&'a [Arc<dyn Admit>]),
    /// Those of the item in this slot (for its next attempt).
    Slot(usize),
}

/// What the shared limiters answered a start ([`Gate::ask_shared`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shared {
    /// Every limiter granted it: the grants are held for the next start (`Gate::granted`).
    Granted,
    /// A limiter's rate allows it after this long (nanoseconds from now).
    NotBefore(u64),
    /// A limiter has the lane in its line and wakes it when it is its turn.
    Queued,
    /// A limiter refused the item for good (it can never admit its cost), or failed and does not
    /// fail open: the item fails, with the refusal in `Gate::refusal` (kept out of this enum so
    /// that the granted path returns a word, not an error).
    Refused,
}

impl Gate {
    /// The limiter at `at` of the list that [`Gate::ask_shared`] asks: the shared ones, then the
    /// keyed budgets `keys`.
    fn limit_at<'a>(&'a self, keys: &'a [Arc<dyn Admit>], at: usize) -> &'a Arc<dyn Admit> {
        match self.shared.get(at) {
            Some(limit) => limit,
            None => &keys[at - self.shared.len()],
        }
    }

    /// Asks every shared limiter for `cost` units for the next start, in order. All must grant:
    /// the grants of the limiters before one that refuses are cancelled.
    ///
    /// `can_fail`: whether the lane's items can fail (a plain lane's cannot: a failing limiter then
    /// lets the start go, as one that fails open does).
    ///
    /// # Panics
    ///
    /// On a lane whose items cannot fail, if a limiter can never grant `cost`.
    #[inline]
    pub(crate) fn ask_shared(&mut self, cost: u32, can_fail: bool, keys: Keys<'_>) -> Shared {
        self.flush();
        match keys {
            Keys::Given(keys) => self.ask_all(cost, can_fail, keys),
            Keys::Slot(index) => self.ask_for_slot(index, cost, can_fail),
        }
    }

    /// [`Gate::ask_shared`] on the quick path (a lane whose only limits are shared limiters, see
    /// `Gate::quick`), for a fresh item of `cost` about to start in slot `index`. `None`: every
    /// limiter granted it, and the slot holds the grants already (what [`Gate::admit_unkeyed`]
    /// does on the other path; the caller keeps a cost other than 1). Else the answer as
    /// `ask_shared` gives it (a `Granted` one after a limiter failed open: then `admit_unkeyed`
    /// takes the grants).
    #[inline(always)]
    pub(crate) fn ask_quick(&mut self, index: usize, cost: u32, can_fail: bool) -> Option<Shared> {
        debug_assert!(self.quick && self.limiter.is_none() && !self.keyed);
        if let Some(local) = &self.local {
            let granted = if self.kept >= u64::from(cost) && local.may_keep() {
                self.kept -= u64::from(cost); // the units of an attempt that ended in this call
                true
            } else {
                local.grant_now(cost)
            };
            if granted {
                self.held[index] = cost;
                self.due = None;
                return None;
            }
        }
        self.flush();
        self.passed = 0;
        match self.ask_from(0, cost, &[]) {
            None => {
                self.held[index] = cost;
                self.due = None;
                self.note_passed(index);
                None
            }
            Some((at, answer)) => Some(self.ask_after_refusal(at, cost, can_fail, &[], answer)),
        }
    }

    /// [`Gate::ask_shared`] for the next attempt of the item in slot `index`, with its keys.
    #[cold]
    fn ask_for_slot(&mut self, index: usize, cost: u32, can_fail: bool) -> Shared {
        if !self.keyed {
            return self.ask_all(cost, can_fail, &[]);
        }
        let keys = std::mem::take(&mut self.slot_keys[index]);
        let answer = self.ask_all(cost, can_fail, &keys);
        self.slot_keys[index] = keys;
        answer
    }

    /// [`Gate::ask_shared`] over the shared limiters, then `keys`.
    #[inline]
    fn ask_all(&mut self, cost: u32, can_fail: bool, keys: &[Arc<dyn Admit>]) -> Shared {
        self.passed = 0;
        match self.ask_from(0, cost, keys) {
            None => {
                self.granted = Some(cost);
                Shared::Granted
            }
            Some((at, answer)) => self.ask_after_refusal(at, cost, can_fail, keys, answer),
        }
    }

    /// Asks the limiters from the one at `from` on (the shared ones, then `keys`), until one does
    /// not admit `cost` units at once: its place and answer (`None`: all admitted).
    #[inline]
    fn ask_from(
        &self,
        from: usize,
        cost: u32,
        keys: &[Arc<dyn Admit>],
    ) -> Option<(usize, Poll<Result<Verdict, LimitError>>)> {
        let waker = self
            .waker
            .as_ref()
            .expect("tasklane: a lane with shared limiters has its task's waker");
        let mut cx = Context::from_waker(waker);
        let shared = self.shared.len();
        let mut at = from;
        while at < shared {
            match self.shared[at].poll_admit(&self.waiter, cost, &mut cx) {
                Poll::Ready(Ok(Verdict::Admitted)) => at += 1,
                answer => return Some((at, answer)),
            }
        }
        while at - shared < keys.len() {
            match keys[at - shared].poll_admit(&self.waiter, cost, &mut cx) {
                Poll::Ready(Ok(Verdict::Admitted)) => at += 1,
                answer => return Some((at, answer)),
            }
        }
        None
    }

    /// [`Gate::ask_all`] after the limiter at `at` did not admit at once: a failing limiter that
    /// lets the start go leaves the rest to ask; anything else is the answer.
    #[cold]
    fn ask_after_refusal(
        &mut self,
        mut at: usize,
        cost: u32,
        can_fail: bool,
        keys: &[Arc<dyn Admit>],
        mut answer: Poll<Result<Verdict, LimitError>>,
    ) -> Shared {
        loop {
            if let Some(denied) = self.not_admitted(at, cost, can_fail, keys, answer) {
                return denied;
            }
            match self.ask_from(at + 1, cost, keys) {
                None => {
                    self.granted = Some(cost);
                    return Shared::Granted;
                }
                Some((next, next_answer)) => (at, answer) = (next, next_answer),
            }
        }
    }

    /// The limiter at `at` (of the shared ones, then `keys`) did not admit `cost` units at once
    /// (see [`Gate::ask_shared`]): `None` when the lane goes on anyway (a failing limiter that
    /// fails open, or on a lane whose items cannot fail), else the denial, with the grants of the
    /// limiters before it cancelled.
    #[cold]
    fn not_admitted(
        &mut self,
        at: usize,
        cost: u32,
        can_fail: bool,
        keys: &[Arc<dyn Admit>],
        answer: Poll<Result<Verdict, LimitError>>,
    ) -> Option<Shared> {
        let limit = self.limit_at(keys, at);
        let denied = match answer {
            Poll::Ready(Ok(Verdict::Admitted)) => return None,
            Poll::Ready(Err(_)) if limit.fails_open() || !can_fail => {
                // It granted nothing: no `release` and no `cancel` for this start.
                if let Some(bit) = u32::try_from(at).ok().and_then(|at| 1u64.checked_shl(at)) {
                    self.passed |= bit;
                }
                return None;
            }
            Poll::Ready(Err(error)) => {
                self.refusal = Some(Refusal::Failed(error));
                Shared::Refused
            }
            // Denied: asked only now (a look-up the granted path never pays) whether it ever
            // could be granted.
            _ if !limit.can_ever_admit(cost) => {
                limit.leave(&self.waiter);
                assert!(
                    can_fail,
                    "tasklane: an item's cost of {cost} is more than a limiter can ever grant, \
                     on a lane whose items cannot fail (give it a `timeout` or `retry`, so that \
                     the item can fail with `Error::is_rejected`)"
                );
                self.refusal = Some(Refusal::Rejected);
                Shared::Refused
            }
            Poll::Ready(Ok(Verdict::NotBefore(wait))) => {
                Shared::NotBefore(crate::backoff::nanos(wait).max(1))
            }
            Poll::Pending => {
                if !self.queued_on.iter().any(|q| Arc::ptr_eq(q, limit)) {
                    let limit = Arc::clone(limit);
                    self.queued_on.push(limit);
                }
                Shared::Queued
            }
        };
        for earlier in 0..at {
            if !is_passed(self.passed, earlier) {
                self.limit_at(keys, earlier).cancel(&self.waiter, cost);
            }
        }
        self.passed = 0;
        self.by_key = at >= self.shared.len();
        if !matches!(denied, Shared::Refused) {
            // A keyed budget's denial is for this item's key only: the call goes on asking for
            // the items of other keys, and keeps its place in that key's line.
            if self.by_key {
                self.keyed_wait = true;
            } else {
                self.denied = true;
            }
        }
        Some(denied)
    }
}
