//! Items pulled from the input and not started yet because a shared limiter has not granted them
//! (limited lanes only): taking the next item, asking for it, and parking it when it must wait.
//!
//! A lane with shared limiters pulls an item first and then asks its limiters, for the item's cost
//! and the budgets of its keys ([`Mode::cost`], [`Mode::keys`]). An item they deny is parked, with
//! its input position (given when it was pulled, so `indexed` and `Error::index` stay input
//! positions whatever the start order), and is asked for again before anything more is pulled.
//! What follows a denial:
//! - by a limiter of the lane ([`Configure::limiter`](crate::Configure::limiter)): nothing more is
//!   asked for in this call; the limiter wakes the lane (or its timer does) when it may go;
//! - by a keyed budget, on an unordered lane: the lane reads ahead, up to its own limit counting
//!   the parked items, and starts the items whose keys have room (an ordered lane starts in input
//!   order, so it stops there).
//!
//! Invariants: `parked` holds items in the order they were pulled; `occupied + parked.len()`
//! never exceeds the limit; the key vectors of parked items come from `pool` and go back to it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::admission::Admission;
use super::core::{Begun, Core, Held};
use super::order::Order;
use super::shared::{Keys, Shared};
use super::Mode;
use crate::limit::Admit;

/// An item taken for a start: pulled just now, or parked before.
pub(crate) struct Pulled<T> {
    pub(crate) item: T,
    /// Units of every shared limiter it takes (1 without `Lane::cost`).
    pub(crate) cost: u32,
    /// Its input position, given when it was pulled.
    pub(crate) position: usize,
    /// The budgets of its keys (empty without `Lane::limiter_by`).
    pub(crate) keys: Vec<Arc<dyn Admit>>,
}

/// The parked items, and the key vectors kept for reuse (no allocation per item once every slot
/// and parked item has had one).
pub(crate) struct Parked<T> {
    items: VecDeque<Pulled<T>>,
    pool: Vec<Vec<Arc<dyn Admit>>>,
}

impl<T> Default for Parked<T> {
    fn default() -> Self {
        Parked {
            items: VecDeque::new(),
            pool: Vec::new(),
        }
    }
}

impl<T> Parked<T> {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// An empty key vector, from the pool if it has one.
    pub(crate) fn keys(&mut self) -> Vec<Arc<dyn Admit>> {
        self.pool.pop().unwrap_or_default()
    }

    /// A key vector goes back to the pool, emptied (its budgets are no longer held).
    pub(crate) fn recycle(&mut self, mut keys: Vec<Arc<dyn Admit>>) {
        if keys.capacity() > 0 {
            keys.clear();
            self.pool.push(keys);
        }
    }
}

impl<M: Mode, O: Order<M::Output>, A: Admission> Core<M, O, A> {
    /// Items parked (0 on a lane without limits: no code).
    #[inline(always)]
    pub(super) fn parked_len(&self) -> usize {
        if A::LIMITED {
            self.parked.len()
        } else {
            0
        }
    }

    /// Whether an item is parked (never on a lane without limits: no code).
    #[inline(always)]
    pub(super) fn is_parked(&self) -> bool {
        A::LIMITED && !self.parked.is_empty()
    }

    /// Pulls the next item from the input, with its position, cost and keys (`None` when the input
    /// has nothing now, or has ended: then `input_done` is set).
    #[inline(always)]
    pub(super) fn pull_item<P>(
        &mut self,
        cx: &mut Context<'_>,
        pull: &mut P,
    ) -> Option<Pulled<M::Item>>
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        match pull(cx) {
            Poll::Ready(Some(item)) => {
                let position = self.next_position();
                let cost = self.cost_of(&item);
                let keys = if M::KEYED && A::LIMITED {
                    let mut keys = self.parked.keys();
                    self.mode.keys(&item, &mut keys);
                    keys
                } else {
                    Vec::new()
                };
                Some(Pulled {
                    item,
                    cost,
                    position,
                    keys,
                })
            }
            Poll::Ready(None) => {
                self.input_done = true;
                None
            }
            Poll::Pending => None,
        }
    }

    /// The units of every shared limiter that `item`'s attempts take (1 without `Lane::cost`, and
    /// on a lane without limits: no code).
    #[inline(always)]
    fn cost_of(&mut self, item: &M::Item) -> u32 {
        if M::COSTED && A::LIMITED {
            self.mode.cost(item)
        } else {
            1
        }
    }

    /// Whether a denial by a keyed budget lets the lane read ahead (see the module docs).
    #[inline(always)]
    fn reads_ahead(by_key: bool) -> bool {
        M::KEYED && !O::ORDERED && by_key
    }

    /// Phase 1 of a limited lane: the parked items first, then new ones from the input, while the
    /// lane has room (counting the parked items) and its limits allow. An item that finishes at
    /// once and is next goes into `held` (if it holds nothing yet) without taking its slot.
    #[inline]
    pub(super) fn fill_limited<P>(
        &mut self,
        cx: &mut Context<'_>,
        pull: &mut P,
        emit: bool,
        held: &mut Option<Held<M::Output>>,
    ) where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        if self.is_parked() && !self.start_parked(emit, held) {
            return;
        }
        while self.occupied + self.parked_len() < self.limit
            && !self.input_done
            && self.budget > 0
            && self.may_pull()
        {
            let Some(pulled) = self.pull_item(cx, pull) else {
                break;
            };
            let index = match self.free.last() {
                Some(&index) => index,
                None => self.grow(),
            };
            let direct = emit && held.is_none();
            match self.begin(index, pulled, direct) {
                Begun::Held(position, output) => {
                    *held = Some((None, position, output)); // its slot stays free
                }
                Begun::Taken => {
                    self.free.pop(); // the slot is taken
                }
                Begun::Denied { pulled, by_key } => {
                    if !self.park(pulled, by_key) {
                        break;
                    }
                }
            }
        }
    }

    /// A refill of a limited lane (see `Core::refill`): the oldest parked item, else a new one,
    /// into slot `index`; the slot goes to the free list if none starts.
    #[inline(always)]
    pub(super) fn refill_limited<P>(&mut self, index: usize, cx: &mut Context<'_>, pull: &mut P)
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        if !self.quick_refill(index, cx, pull) {
            self.refill_general(index, cx, pull);
        }
    }

    /// [`Core::refill_limited`] off the quick path.
    #[inline(never)]
    fn refill_general<P>(&mut self, index: usize, cx: &mut Context<'_>, pull: &mut P)
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        if self.budget > 0 && self.may_pull() {
            let (pulled, was_parked) = match self.parked.items.pop_front() {
                Some(pulled) => (Some(pulled), true),
                None if !self.input_done => (self.pull_item(cx, pull), false),
                None => (None, false),
            };
            if let Some(pulled) = pulled {
                match self.begin(index, pulled, false) {
                    Begun::Taken => return,
                    Begun::Denied { pulled, by_key } => {
                        if was_parked {
                            self.parked.items.push_front(pulled); // it stays the oldest
                        } else {
                            self.park(pulled, by_key);
                        }
                    }
                    Begun::Held(..) => {
                        unreachable!("tasklane: a refill is never handed out at once")
                    }
                }
            }
        }
        self.free.push(index);
    }

    /// The quick path of [`Core::refill_limited`], for a lane whose only limits are shared
    /// limiters (`Gate::quick`), while nothing waits in the lane (no parked item, no retry in
    /// line or backing off, no denial in this call): pulls an item, asks the limiters and starts
    /// it, with none of the general path's bookkeeping. Returns whether it settled the slot
    /// (started an item, parked a denied one, or found the input pending or ended: the slot is
    /// free then); `false` leaves it all to the general path.
    #[inline(always)]
    fn quick_refill<P>(&mut self, index: usize, cx: &mut Context<'_>, pull: &mut P) -> bool
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<M::Item>>,
    {
        let gate = self.admission.gate_ref();
        if !(gate.quick
            && !gate.denied
            && gate.permits.is_empty()
            && self.parked.is_empty()
            && self.timers.backoffs.earliest().is_none()
            && !self.input_done
            && self.budget > 0)
        {
            return false;
        }
        match pull(cx) {
            Poll::Ready(Some(item)) => {
                let position = self.next_position();
                let cost = self.cost_of(&item);
                let gate = self.admission.gate();
                match gate.ask_quick(index, cost, M::TIMED) {
                    None => {
                        if M::COSTED {
                            gate.costs[index] = cost;
                        }
                        let direct = self.start(index, item, position, false);
                        debug_assert!(direct.is_none());
                        return true;
                    }
                    Some(answer) => {
                        let pulled = Pulled {
                            item,
                            cost,
                            position,
                            keys: Vec::new(),
                        };
                        match self.begin_answered(index, pulled, answer, false) {
                            Begun::Taken => return true,
                            Begun::Denied { pulled, by_key } => {
                                self.park(pulled, by_key);
                            }
                            Begun::Held(..) => {
                                unreachable!("tasklane: a refill is never handed out at once")
                            }
                        }
                    }
                }
            }
            Poll::Ready(None) => self.input_done = true,
            Poll::Pending => {}
        }
        self.free.push(index);
        true
    }

    /// Phase 1, first part: asks again for the parked items, oldest first, starting those that are
    /// granted. Returns whether new items may be pulled after them.
    #[cold]
    fn start_parked(&mut self, emit: bool, held: &mut Option<Held<M::Output>>) -> bool {
        let mut at = 0;
        while at < self.parked.len() {
            if self.occupied >= self.limit || self.budget == 0 || !self.may_pull() {
                return false;
            }
            let pulled = self.parked.items.remove(at).expect("in range");
            let index = match self.free.last() {
                Some(&index) => index,
                None => self.grow(),
            };
            let direct = emit && held.is_none();
            match self.begin(index, pulled, direct) {
                Begun::Held(position, output) => *held = Some((None, position, output)),
                Begun::Taken => {
                    self.free.pop();
                }
                Begun::Denied { pulled, by_key } => {
                    self.parked.items.insert(at, pulled);
                    if !Self::reads_ahead(by_key) {
                        return false;
                    }
                    at += 1;
                }
            }
        }
        true
    }

    /// A pulled item was denied (see [`Core::begin`]): it is parked. Returns whether the lane may
    /// pull more after it.
    #[inline]
    fn park(&mut self, pulled: Pulled<M::Item>, by_key: bool) -> bool {
        self.parked.items.push_back(pulled);
        Self::reads_ahead(by_key)
    }

    /// Starts an item taken for free slot `index` (see [`Core::start`]). On a lane with shared
    /// limiters they are asked first, for its cost and keys: a denial hands the item back to be
    /// parked (saying whether a keyed budget denied it); a refusal for good fails it without an
    /// attempt.
    #[inline(always)]
    pub(super) fn begin(
        &mut self,
        index: usize,
        pulled: Pulled<M::Item>,
        direct: bool,
    ) -> Begun<M::Item, M::Output> {
        if A::LIMITED && self.admission.gate_ref().has_shared() {
            let answer =
                self.admission
                    .gate()
                    .ask_shared(pulled.cost, M::TIMED, Keys::Given(&pulled.keys));
            return self.begin_answered(index, pulled, answer, direct);
        }
        self.begin_granted(index, pulled, direct)
    }

    /// [`Core::begin`] once the shared limiters answered.
    #[inline(always)]
    fn begin_answered(
        &mut self,
        index: usize,
        pulled: Pulled<M::Item>,
        answer: Shared,
        direct: bool,
    ) -> Begun<M::Item, M::Output> {
        match answer {
            Shared::Granted => self.begin_granted(index, pulled, direct),
            denied => self.begin_denied(index, pulled, denied, direct),
        }
    }

    /// [`Core::begin`] after a shared limiter did not grant the start at once.
    #[cold]
    fn begin_denied(
        &mut self,
        index: usize,
        pulled: Pulled<M::Item>,
        denied: Shared,
        direct: bool,
    ) -> Begun<M::Item, M::Output> {
        match self.denied_shared(denied) {
            Ok(true) => self.begin_granted(index, pulled, direct),
            Ok(false) => {
                let by_key = self.admission.gate_ref().denied_by_key();
                Begun::Denied { pulled, by_key }
            }
            Err(refusal) => {
                let Pulled {
                    item,
                    position,
                    keys,
                    ..
                } = pulled;
                self.parked.recycle(keys);
                self.refuse_fresh(index, item, position, refusal, direct)
            }
        }
    }

    /// [`Core::begin`] once every limit allowed the start: the slot takes the grants, and the item
    /// starts.
    #[inline(always)]
    fn begin_granted(
        &mut self,
        index: usize,
        pulled: Pulled<M::Item>,
        direct: bool,
    ) -> Begun<M::Item, M::Output> {
        if A::LIMITED {
            if M::KEYED {
                let old = self.admission.gate().admit(index, pulled.cost, pulled.keys);
                self.parked.recycle(old);
            } else {
                self.admission.gate().admit_unkeyed(index, pulled.cost);
                // NOTE: `Vec::new()`, never allocated: forgetting it saves a call to its `drop`
                // per item.
                debug_assert_eq!(pulled.keys.capacity(), 0);
                std::mem::forget(pulled.keys);
            }
        }
        match self.start(index, pulled.item, pulled.position, direct) {
            Some((position, output)) => Begun::Held(position, output),
            None => Begun::Taken,
        }
    }
}
