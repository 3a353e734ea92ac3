//! The life of an item in its slot: one enum, and every transition it makes.
//!
//! ```text
//!          start (with a permit, if rate-limited)
//!   Free ─────────────────────────────────────► Running ◄─────────────────────────────┐
//!    ▲ ▲                                          │                                 │
//!    │ │ finished, next: handed out at once        │ attempt ended (or timed out)    │ back-off over
//!    │ └──────────────────────────────────────────┤                                 │ (or zero), and
//!    │                                            │ finished, not next               │ a permit
//!    │ yielded                                    ├──────────► Done ──► Free         │
//!    │                                            │            (or the window: Free) │
//!    │                                            │ failed: the attempt is dropped   │
//!    │                                            └──────────► BackingOff ───────────┤
//!    │                                                            │ over, permit     │
//!    │                                                            │ denied           │
//!    │                                                            ▼                  │
//!    │                                                       AwaitingPermit ─────────┘
//! ```
//!
//! The engine's side containers are indexes over these states, never a second source of truth:
//! the free list holds exactly the `Free` slots, the done queue of an unordered lane exactly the
//! `Done` ones (in completion order), the back-off queue exactly the `BackingOff` ones, the permit
//! queue exactly the `AwaitingPermit` ones, and the timeout list some of the `Running` ones (those
//! with a deadline). Each transition below checks its origin in debug builds.
//!
//! A `Running` attempt that returned `Ready` (or timed out) is transitioned (to `Free`, `Done` or
//! `BackingOff`) before the engine polls anything else, so a finished future is never polled again;
//! it is dropped in place by that transition, before the item's next attempt is made.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

pin_project! {
    /// What a slot holds: the state of its item. See the module docs for the transitions.
    #[project = StateProj]
    #[project_replace = StateTaken]
    pub(crate) enum State<Fut, O> {
        /// No item: the slot is in the free list (or about to be).
        Free,
        /// An attempt in flight, pinned in its slot: it is dropped in place, never moved.
        Running { #[pin] fut: Fut },
        /// A failed attempt's back-off runs (the slot is in the back-off queue); the item's state is
        /// in the slot's meta.
        BackingOff,
        /// The next attempt waits for a rate permit (the slot is in the permit queue).
        AwaitingPermit,
        /// The item's final output, waiting for its turn to be yielded.
        Done { output: O },
    }
}

pin_project! {
    /// One slot of the arena: its state, and what the engine keeps for its item.
    #[project = SlotProj]
    pub(crate) struct Slot<Fut, O, M> {
        #[pin]
        pub(crate) state: State<Fut, O>,
        // What the engine keeps per item (the input position for a plain lane; the item and its
        // attempt count for retries).
        pub(crate) meta: M,
    }
}

impl<Fut, O, M: Default> Slot<Fut, O, M> {
    pub(crate) fn new() -> Self {
        Slot {
            state: State::Free,
            meta: M::default(),
        }
    }
}

/// What polling a slot gave.
pub(crate) enum Polled<T> {
    /// The attempt finished with this output; the slot must be transitioned at once (see the
    /// module docs).
    Ready(T),
    /// The attempt is still running.
    Pending,
    /// The slot has no running attempt (a stale wake-up).
    Idle,
}

impl<Fut: Future, O> State<Fut, O> {
    /// `Free`, `BackingOff` or `AwaitingPermit` → `Running`: an attempt starts (not polled yet).
    #[inline]
    pub(crate) fn start(mut self: Pin<&mut Self>, fut: Fut) {
        debug_assert!(matches!(
            self.as_mut().project(),
            StateProj::Free | StateProj::BackingOff | StateProj::AwaitingPermit
        ));
        self.set(State::Running { fut });
    }

    /// Polls the running attempt, if there is one.
    #[inline]
    pub(crate) fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled<Fut::Output> {
        match self.project() {
            StateProj::Running { fut } => match fut.poll(cx) {
                Poll::Ready(output) => Polled::Ready(output),
                Poll::Pending => Polled::Pending,
            },
            _ => Polled::Idle,
        }
    }

    /// `Running` (ended, handed out or moved into the reorder window) or `Done` → `Free`.
    #[inline]
    pub(crate) fn free(mut self: Pin<&mut Self>) {
        debug_assert!(matches!(
            self.as_mut().project(),
            StateProj::Running { .. } | StateProj::Free
        ));
        self.set(State::Free);
    }

    /// `Running` (ended) → `Done`: the final output waits in the slot.
    #[inline]
    pub(crate) fn done(mut self: Pin<&mut Self>, output: O) {
        debug_assert!(matches!(self.as_mut().project(), StateProj::Running { .. }));
        self.set(State::Done { output });
    }

    /// `Free`, `BackingOff` or `AwaitingPermit` → `Done`: a limiter refused the item's next attempt,
    /// which was never made; its failure waits in the slot.
    #[cold]
    pub(crate) fn refused(mut self: Pin<&mut Self>, output: O) {
        debug_assert!(matches!(
            self.as_mut().project(),
            StateProj::Free | StateProj::BackingOff | StateProj::AwaitingPermit
        ));
        self.set(State::Done { output });
    }

    /// `Free`, `BackingOff` or `AwaitingPermit` → `Free`: a refused item's failure went into the
    /// reorder window.
    #[cold]
    pub(crate) fn refused_free(mut self: Pin<&mut Self>) {
        debug_assert!(matches!(
            self.as_mut().project(),
            StateProj::Free | StateProj::BackingOff | StateProj::AwaitingPermit
        ));
        self.set(State::Free);
    }

    /// `Running` (failed, or timed out: the attempt is dropped here) → `BackingOff`.
    pub(crate) fn back_off(mut self: Pin<&mut Self>) {
        debug_assert!(matches!(self.as_mut().project(), StateProj::Running { .. }));
        self.set(State::BackingOff);
    }

    /// `BackingOff` (over, or a zero back-off) → `AwaitingPermit`.
    pub(crate) fn await_permit(mut self: Pin<&mut Self>) {
        debug_assert!(matches!(self.as_mut().project(), StateProj::BackingOff));
        self.set(State::AwaitingPermit);
    }

    /// `Done` → `Free`, giving the output; `None` (and the slot untouched) when it is not `Done`.
    #[inline]
    pub(crate) fn take_output(mut self: Pin<&mut Self>) -> Option<O> {
        if !matches!(self.as_mut().project(), StateProj::Done { .. }) {
            return None;
        }
        match self.project_replace(State::Free) {
            StateTaken::Done { output } => Some(output),
            _ => unreachable!("checked above"),
        }
    }
}

#[cfg(all(test, not(tasklane_loom)))]
mod tests {
    use std::pin::pin;
    use std::task::Context;

    use super::*;

    fn cx() -> Context<'static> {
        Context::from_waker(futures_util::task::noop_waker_ref())
    }

    #[test]
    fn an_item_runs_finishes_and_is_taken() {
        let mut state = pin!(State::<std::future::Ready<u8>, u8>::Free);
        state.as_mut().start(std::future::ready(7));
        let Polled::Ready(out) = state.as_mut().poll(&mut cx()) else {
            panic!("a ready future is ready")
        };
        state.as_mut().done(out);
        assert!(matches!(state.as_mut().poll(&mut cx()), Polled::Idle));
        assert_eq!(state.as_mut().take_output(), Some(7));
        assert_eq!(state.as_mut().take_output(), None);
        assert!(matches!(state.as_mut().project(), StateProj::Free));
    }

    #[test]
    fn a_failed_item_backs_off_waits_for_a_permit_and_runs_again() {
        let mut state = pin!(State::<std::future::Ready<u8>, u8>::Free);
        state.as_mut().start(std::future::ready(1));
        assert!(matches!(state.as_mut().poll(&mut cx()), Polled::Ready(1)));
        state.as_mut().back_off();
        assert!(matches!(state.as_mut().poll(&mut cx()), Polled::Idle));
        state.as_mut().await_permit();
        state.as_mut().start(std::future::ready(2));
        assert!(matches!(state.as_mut().poll(&mut cx()), Polled::Ready(2)));
        state.as_mut().free();
        assert!(matches!(state.as_mut().project(), StateProj::Free));
    }

    #[test]
    fn a_pending_attempt_stays_running() {
        let mut state = pin!(State::<std::future::Pending<u8>, u8>::Free);
        state.as_mut().start(std::future::pending());
        assert!(matches!(state.as_mut().poll(&mut cx()), Polled::Pending));
        assert!(matches!(
            state.as_mut().project(),
            StateProj::Running { .. }
        ));
        assert_eq!(state.as_mut().take_output(), None);
    }
}
