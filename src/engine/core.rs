//! The engine's poll loop, generic over its order and admission components, and the hot path of an
//! item: start, poll, settle, hand out. The slow paths (retries, timeouts, rate waits) are in
//! `engine::waits`.

use std::future::Future;
use std::task::{Context, Poll};

use super::admission::Admission;
use super::arena::Arena;
use super::deadlines::Timers;
use super::emit::keep_in;
use super::lifecycle::Polled;
use super::order::Order;
use super::parked::{Parked, Pulled};
use super::waker::{NIL, TIMER};
use super::{poisoned, Mode, Outcome, Settle, SlotMeta, BUDGET};
use crate::progress::Counters;

pub(super) type ArenaOf<M> = Arena<<M as Mode>::Fut, <M as Mode>::Output, <M as Mode>::Meta>;

/// An output held for phase 3 of the call: the slot it came out of (`Free`, still counted as
/// occupied, to be refilled; `None`: a fresh item that never took its slot), its input position,
/// and the output.
pub(super) type Held<O> = (Option<usize>, usize, O);

/// What [`Core::begin`] made of an item.
pub(super) enum Begun<T, O> {
    /// It finished at once and is next: its input position and output (its slot stays free).
    Held(usize, O),
    /// It took its slot (or its slot was handed back to the free list: see [`Core::start`]).
    Taken,
    /// A shared limiter did not grant it yet: the caller parks it (its slot stays free). `by_key`:
    /// a keyed budget denied it.
    Denied { pulled: Pulled<T>, by_key: bool },
}

/// What became of an item after one of its attempts ended (see [`Core::settle`]).
pub(super) enum Settled<O> {
    /// The item is finished: the caller hands the output out or keeps it (the slot is still
    /// `Running` with the ended attempt, or `Free` after a timeout).
    Done(O),
    /// Its next attempt was started in the slot, not polled yet.
    Restarted,
    /// It backs off or waits for a permit.
    Waiting,
}

/// At most `limit` items in progress, in the order `O` chooses, started as `A` admits them.
///
/// Invariants (between calls):
/// - `occupied` counts the slots that hold an item (`Running`, `BackingOff`, `AwaitingPermit` or
///   `Done`); it never exceeds `limit`. `occupied + order.held()` is exactly the number of items
///   pulled and not yet yielded (the window holds finished outputs outside their slots).
/// - `free` holds exactly the `Free` slots; every slot index `< arena.len()` is free or occupied.
/// - `batch` is a list of woken slots taken from the shared stack and not yet polled (`NIL`: none).
/// - `pulled` is the input position of the next item.
/// - see `engine::order`, `engine::deadlines` and `engine::admission` for their own.
pub(crate) struct Core<M: Mode, O, A> {
    pub(super) mode: M,
    pub(super) arena: ArenaOf<M>,
    pub(super) free: Vec<usize>,
    pub(super) batch: usize,
    pub(super) limit: usize,
    pub(super) occupied: usize,
    pub(super) order: O,
    pub(super) timers: Timers,
    pub(super) admission: A,
    /// Progress counters (kept only when `M::REPORTS`).
    pub(super) counters: Counters,
    /// A slot was freed by moving its output into the reorder window after phase 1 looked at the
    /// input: go back to phase 1 before sleeping.
    pub(super) freed: bool,
    /// Polls of user futures left in this `poll_next` call (see [`BUDGET`]).
    pub(super) budget: u32,
    pub(super) pulled: usize,
    /// The input returned `None`; it is never polled again.
    pub(super) input_done: bool,
    /// `poll_next` returned `None`; it keeps returning `None`.
    pub(super) terminated: bool,
    /// Items pulled whose shared limiters have not granted them yet (limited lanes only; always
    /// empty on the others): see `engine::parked`.
    pub(super) parked: Parked<M::Item>,
    /// Set on entry to `poll_lane` and cleared on every return from it: still set at the next call,
    /// it means that user code panicked out of the last one, which may have left the lane's state
    /// half-updated, so the lane refuses to go on (see [`poisoned`]).
    pub(super) poisoned: bool,
}

impl<M: Mode, O: Order<M::Output>, A: Admission> Core<M, O, A> {
    pub(super) fn new(mode: M, limit: usize, window: usize, timers: Timers, admission: A) -> Self {
        debug_assert!(limit > 0);
        Core {
            mode,
            arena: Arena::new(limit),
            free: Vec::new(),
            batch: NIL,
            limit,
            occupied: 0,
            order: O::new(window),
            timers,
            admission,
            counters: Counters::default(),
            freed: false,
            budget: BUDGET,
            pulled: 0,
            input_done: false,
            terminated: false,
            parked: Parked::default(),
            poisoned: false,
        }
    }

    /// Advances the lane (of whichever kind: [`Engine`](super::Engine) holds the core for it).
    /// `pull` polls the input for its next item (it is called only while a slot is free, and never
    /// again after it returned `Ready(None)`).
    ///
    /// With `emit` (`poll_next`), returns an output as soon as one may be yielded, with its item's
    /// input position (0 for the first item pulled). Without it (for `for_each_async`, while its
    /// handler runs), yields nothing: finished outputs stay in their slots (which stay taken, so the
    /// limit holds), every other slot keeps being driven and free slots are filled; it returns
    /// `Ready(None)` once the lane has ended, `Pending` otherwise, with every waker registered.
    ///
    /// `INDEXED`: whether the caller wants the outputs' input positions; without it the position
    /// returned is 0 and costs nothing.
    ///
    /// # Panics
    ///
    /// A panic in user code (a future, the attempt maker, a `retry_if` or `retry_after` closure, an
    /// item's `Clone`, a future's `Drop`, the input, the progress callback) propagates out of this
    /// call, and poisons the lane: every later call panics with a message saying so. Dropping a
    /// poisoned lane drops every in-flight future, once.
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
        if A::LIMITED {
            self.admission.gate().flush(); // units kept in this call go back (see `Gate::kept`)
        }
        self.poisoned = false;
        result
    }

    /// The four-phase loop: admit and start new items, drive the woken slots, hand out the next
    /// finished output, then end or sleep.
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
        if A::LIMITED {
            self.admission.gate().begin_round(cx.waker());
        }
        let result = loop {
            // Phase 1: admission, then fill the free slots. Retries waiting for a permit go first.
            // A fresh attempt is polled at once; finished, next, and with no other output waiting,
            // it is held for phase 3 without ever taking its slot (the next item may take it).
            // NOTE: before phase 2, so that woken work that spends the budget never keeps the lane
            // from filling up to its limit.
            let mut held = None;
            self.freed = false;
            if A::LIMITED {
                self.line_up_due_retries();
                self.serve_permits();
            }
            if A::LIMITED {
                self.fill_limited(cx, &mut pull, emit, &mut held);
            } else {
                while self.occupied < self.limit && !self.input_done && self.budget > 0 {
                    match pull(cx) {
                        Poll::Ready(Some(item)) => {
                            let position = self.next_position();
                            let index = match self.free.last() {
                                Some(&index) => index,
                                None => self.grow(),
                            };
                            let direct = emit && held.is_none();
                            match self.start(index, item, position, direct) {
                                Some((position, output)) => {
                                    held = Some((None, position, output)); // its slot stays free
                                }
                                None => {
                                    self.free.pop(); // the slot is taken
                                }
                            }
                        }
                        Poll::Ready(None) => self.input_done = true,
                        Poll::Pending => break,
                    }
                }
            }

            // Phase 2: drive every woken slot (even when an output is already waiting, picking up
            // wake-ups that happen meanwhile) until none is left or the budget is spent. The first
            // item to finish that is next is held out of its slot, unless phase 1 holds one.
            if self.batch != NIL || self.arena.may_have_woken() {
                let woken = self.drive_woken(emit && held.is_none());
                if woken.is_some() {
                    held = woken;
                }
            }

            // Phase 3: hand out the output held in phase 1 or 2, or the next one waiting in its slot or
            // the window, refilling its slot first.
            if let Some((slot, position, output)) = held {
                break Poll::Ready(Some(match slot {
                    Some(index) => {
                        self.hand_out::<INDEXED, P>(index, position, output, cx, &mut pull)
                    }
                    None => self.hand_out_fresh::<INDEXED>(position, output),
                }));
            }
            if emit {
                if let Some(next) = self.order.take_next(&mut self.arena) {
                    break Poll::Ready(Some(self.hand_out_next::<INDEXED, P>(next, cx, &mut pull)));
                }
            }

            // Phase 4: end, or sleep once nothing is left to do.
            if self.input_done && self.occupied == 0 && self.order.held() == 0 && !self.is_parked()
            {
                self.terminated = true;
                break Poll::Ready(None);
            }
            if self.budget == 0 {
                // Work is left but the budget is spent: let the executor run other tasks first.
                cx.waker().wake_by_ref();
                break Poll::Pending;
            }
            if A::LIMITED && std::mem::take(&mut self.admission.gate().woke) {
                continue; // the timer let the limiter allow a start again: back to phase 1
            }
            if self.freed {
                continue; // the reorder window freed a slot: back to phase 1
            }
            if self.batch == NIL {
                self.stamp_timeouts();
                if self.arena.may_sleep(cx.waker()) {
                    // Every attempt holds its slot's waker, the timer the lane's, the input ours.
                    if A::LIMITED {
                        self.admission.gate().sleep();
                    }
                    return Poll::Pending;
                }
            }
        };
        self.stamp_timeouts();
        result
    }

    /// Phase 2: drives the woken slots. With `hold`, returns the first item that finished and is
    /// next, out of its slot (which is `Free` but still counted as occupied): its slot index, input
    /// position and output. Every other finished item is kept.
    ///
    /// Always inlined, as is [`Core::drive`]: LLVM kept both out of line in a limited lane's bigger
    /// poll, which cost it 20 instructions per woken item.
    #[inline(always)]
    fn drive_woken(&mut self, hold: bool) -> Option<Held<M::Output>> {
        let mut held = None;
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
            } else if let Some((position, output)) = self.drive(index, hold && held.is_none()) {
                held = Some((Some(index), position, output));
            }
            if self.batch == NIL {
                self.batch = self.arena.take_woken();
            }
        }
        held
    }

    /// The input position of the item just pulled (0 for the first).
    #[inline(always)]
    pub(super) fn next_position(&mut self) -> usize {
        let position = self.pulled;
        self.pulled = self.pulled.wrapping_add(1);
        position
    }

    /// Creates slots (the free list being empty): the rest of the arena's current chunk, or a new
    /// chunk, within the limit. They go to the free list, the lowest index on top, which it
    /// returns: slots are still taken in index order, and a lane that fills up one slot at a time
    /// (an unbounded `gather`) makes one call here per chunk, not per slot.
    #[cold]
    pub(super) fn grow(&mut self) -> usize {
        debug_assert!(self.free.is_empty());
        let made = self.arena.grow_chunk();
        self.timers.grow_to(made.end);
        if A::LIMITED {
            self.admission.gate().grow(made.end);
        }
        let first = made.start;
        self.free.extend(made.rev());
        first
    }

    /// Starts a new item in free slot `index` and polls its first attempt. With `direct`, an item
    /// that finishes at once and is next is handed back (with its input position) and its slot
    /// stays free; otherwise the slot is taken (the caller takes it off the free list, if it was
    /// there).
    #[inline(always)]
    pub(super) fn start(
        &mut self,
        index: usize,
        item: M::Item,
        position: usize,
        direct: bool,
    ) -> Option<(usize, M::Output)> {
        let (keep, fut) = self.mode.start(item);
        if M::TIMED && self.timers.exact {
            self.start_exact(index);
        }
        self.budget = self.budget.saturating_sub(1);
        // NOTE: one look-up of the slot for the whole start (fields are borrowed one by one).
        let (slot, waker) = self.arena.slot_and_waker(index);
        slot.meta.begin(keep, position);
        let mut state = slot.state;
        state.as_mut().start(fut);
        let output = match state.as_mut().poll(&mut Context::from_waker(&waker)) {
            Polled::Ready(output) => output,
            Polled::Pending => {
                self.occupied += 1;
                self.order.started(index);
                if M::TIMED && self.timers.timeout.is_some() {
                    self.timers.record(index);
                }
                return None;
            }
            Polled::Idle => unreachable!("tasklane: a fresh attempt runs"),
        };
        if A::LIMITED {
            self.admission.gate().ended(index);
        }
        if M::TIMED && self.timers.timeout.is_some() {
            self.timers.end(index);
        }
        if M::STOPS && self.mode.stops(&output) {
            self.input_done = true; // the stop-pulling hook: nothing more is pulled
        }
        match self.mode.settle(Outcome::Finished(output), 1, position) {
            Settle::Done(output) => {
                slot.meta.finish();
                if direct && self.order.fresh_is_next() {
                    state.free();
                    self.order.fresh_handed_out();
                    return Some((position, output));
                }
                self.occupied += 1;
                self.order.started(index);
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
            Settle::Retry { hint } => {
                self.commit(index);
                if self.schedule_retry(index, 1, hint) {
                    self.drive_restarted(index);
                }
            }
        }
        None
    }

    /// A started item takes its slot.
    #[inline]
    fn commit(&mut self, index: usize) {
        self.occupied += 1;
        self.order.started(index);
    }

    /// Polls a slot's attempt; settles the item when the attempt ends, starting and polling the
    /// next attempt at once when no back-off is due. Once the item is finished, it is kept (see
    /// [`Core::keep`]), or with `hold`, if it is next, taken out of its slot (left `Free`, still
    /// counted as occupied) and returned with its input position.
    ///
    /// Every poll (and every stale wake-up) takes one unit of the call's budget. The slot's current
    /// attempt is always polled once; an attempt started at once after a failure (a zero back-off)
    /// is polled in this call only while budget is left, else the slot is woken for the next call:
    /// zero-delay retries never keep one `poll_next` call (and its executor thread) busy for long.
    #[inline(always)]
    pub(super) fn drive(&mut self, index: usize, hold: bool) -> Option<(usize, M::Output)> {
        loop {
            self.budget = self.budget.saturating_sub(1);
            // NOTE: one look-up of the slot for the poll and the settling (fields borrowed apart).
            let (slot, waker) = self.arena.slot_and_waker(index);
            let mut state = slot.state;
            let output = match state.as_mut().poll(&mut Context::from_waker(&waker)) {
                Polled::Ready(output) => output,
                Polled::Pending => {
                    if M::TIMED && self.timers.timeout.is_some() {
                        self.timers.record(index);
                    }
                    return None;
                }
                Polled::Idle => return None, // a stale wake-up of a slot without an attempt
            };
            if A::LIMITED {
                self.admission.gate().ended(index);
            }
            if M::TIMED && self.timers.timeout.is_some() {
                self.timers.end(index);
            }
            if M::STOPS && self.mode.stops(&output) {
                self.input_done = true; // the stop-pulling hook: nothing more is pulled
            }
            let (attempts, position) = (slot.meta.attempts(), slot.meta.index());
            match self
                .mode
                .settle(Outcome::Finished(output), attempts, position)
            {
                Settle::Done(output) => {
                    slot.meta.finish();
                    if hold && self.order.is_next(position) {
                        state.free();
                        self.order.handed_out();
                        return Some((position, output));
                    }
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
                    return None;
                }
                Settle::Retry { hint } => {
                    if !self.schedule_retry(index, attempts, hint) {
                        return None;
                    }
                    if self.budget == 0 {
                        self.arena.requeue(index); // the next call polls the new attempt
                        return None;
                    }
                }
            }
        }
    }

    /// Settles an item after an attempt ended.
    // NOTE: always inlined: it is on every item's path, and left out of line it costs ~15 % more
    // instructions per item in timed and retrying lanes (callgrind).
    #[inline(always)]
    pub(super) fn settle(
        &mut self,
        index: usize,
        outcome: Outcome<<M::Fut as Future>::Output>,
    ) -> Settled<M::Output> {
        let meta = self.arena.meta(index);
        let (attempts, position) = (meta.attempts(), meta.index());
        match self.mode.settle(outcome, attempts, position) {
            Settle::Done(output) => {
                self.arena.meta(index).finish();
                Settled::Done(output)
            }
            Settle::Retry { hint } => {
                if self.schedule_retry(index, attempts, hint) {
                    Settled::Restarted
                } else {
                    Settled::Waiting
                }
            }
        }
    }
}
