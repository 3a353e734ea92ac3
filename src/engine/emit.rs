//! Phase 3 of the engine's loop: finished outputs waiting their turn, and handing one out (its
//! slot refilled from the input first, so a call that returns an output leaves every slot busy).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::admission::Admission;
use super::core::Core;
use super::lifecycle::State;
use super::order::{Kept, Next, Order};
use super::{Mode, SlotMeta};

impl<M: Mode, O: Order<M::Output>, A: Admission> Core<M, O, A> {
    /// A finished item that is not handed out at once waits in its slot (`Done`), or in the window
    /// (its slot freed).
    #[inline]
    pub(super) fn keep(&mut self, index: usize, position: usize, output: M::Output) {
        let state = self.arena.slot(index).state;
        if keep_in(
            &mut self.order,
            &mut self.occupied,
            &mut self.free,
            state,
            index,
            position,
            output,
        ) {
            self.freed = true;
        }
    }

    /// Hands out the output that [`Order::take_next`] gave.
    #[inline]
    pub(super) fn hand_out_next<const INDEXED: bool, P>(
        &mut self,
        next: Next<M::Output>,
        cx: &mut Context<'_>,
        pull: &mut P,
    ) -> (usize, M::Output)
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        match next.slot {
            Some(index) => {
                let position = match next.position {
                    Some(position) => position,
                    None if INDEXED => self.arena.meta(index).index(),
                    None => 0,
                };
                self.hand_out::<INDEXED, P>(index, position, next.output, cx, pull)
            }
            None => {
                // From the window: its slot was freed when it moved there.
                self.report(&next.output);
                (next.position.unwrap_or(0), next.output)
            }
        }
    }

    /// Hands out the output of the item at `position` whose slot `index` is now `Free`, refilling
    /// the slot from the input first (its new attempt is polled once and kept if it finishes).
    #[inline(always)]
    pub(super) fn hand_out<const INDEXED: bool, P>(
        &mut self,
        index: usize,
        position: usize,
        output: M::Output,
        cx: &mut Context<'_>,
        pull: &mut P,
    ) -> (usize, M::Output)
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        self.occupied -= 1;
        self.refill(index, cx, pull);
        self.report(&output);
        (if INDEXED { position } else { 0 }, output)
    }

    /// Hands out a fresh item's output that never took its slot.
    #[inline]
    pub(super) fn hand_out_fresh<const INDEXED: bool>(
        &mut self,
        position: usize,
        output: M::Output,
    ) -> (usize, M::Output) {
        self.report(&output);
        (if INDEXED { position } else { 0 }, output)
    }

    /// Starts the next input item in slot `index`, just freed; puts the slot in the free list if
    /// none may start now (nor when the call's budget is spent: the next call fills it).
    #[inline(always)]
    pub(super) fn refill<P>(&mut self, index: usize, cx: &mut Context<'_>, pull: &mut P)
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        if A::LIMITED {
            self.refill_limited(index, cx, pull);
            return;
        }
        if !self.input_done && self.budget > 0 {
            match pull(cx) {
                Poll::Ready(Some(item)) => {
                    let position = self.next_position();
                    let direct = self.start(index, item, position, false);
                    debug_assert!(direct.is_none());
                    return;
                }
                Poll::Ready(None) => self.input_done = true,
                Poll::Pending => {}
            }
        }
        self.free.push(index);
    }

    /// Hands the callback the snapshot for an outcome about to be yielded (reporting lanes only).
    #[inline]
    pub(super) fn report(&mut self, output: &M::Output) {
        if M::REPORTS {
            let now = self.timers.clock.now();
            let success = M::succeeded(output);
            let progress = self.counters.complete(success, self.occupied, now);
            self.mode.report(&progress);
        }
    }
}

/// [`Core::keep`] on the fields it touches, for callers that hold the slot's state already: the
/// output waits in its slot (`Done`) or in the window (the slot is freed: then it returns `true`,
/// and the caller sets `Core::freed`).
#[inline(always)]
pub(super) fn keep_in<Fut: Future, O, Ord: Order<O>>(
    order: &mut Ord,
    occupied: &mut usize,
    free: &mut Vec<usize>,
    state: Pin<&mut State<Fut, O>>,
    index: usize,
    position: usize,
    output: O,
) -> bool {
    match order.keep(index, position, output) {
        Kept::InSlot(output) => {
            state.done(output);
            false
        }
        Kept::InWindow => {
            state.free();
            *occupied -= 1;
            free.push(index);
            true
        }
    }
}
