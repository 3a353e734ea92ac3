//! The order component: which finished output is yielded next. Completion order ([`Unordered`]) and
//! input order ([`InOrder`], with its optional reorder window) are two types, chosen when the lane
//! is built; the engine is generic over them, so an unordered lane carries no ring and runs none
//! of its code.
//!
//! Both answer the same questions: may the item that just finished be yielded at once
//! ([`Order::is_next`]: then it never waits in its slot), where does a finished output wait
//! otherwise ([`Order::keep`]), and which output comes next ([`Order::take_next`]).
//!
//! The reorder window (`Lane::window`): without one, an ordered lane keeps each finished output in
//! its slot until every earlier item has been yielded, so a slow head of the line leaves the other
//! slots full of finished outputs and no new item starts. With a window of `n`, up to `n` finished
//! outputs move out of their slots into the window, and the slots take new items; memory stays
//! bounded by `limit + n` outputs.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;

use super::arena::Arena;

/// Where a finished output that is not yielded at once waits (see [`Order::keep`]).
pub(crate) enum Kept<O> {
    /// In its slot, which stays taken: the caller makes it `Done` with this output.
    InSlot(O),
    /// In the reorder window: the caller frees the slot for the next item.
    InWindow,
}

/// The next output to yield (see [`Order::take_next`]).
pub(crate) struct Next<O> {
    /// The slot it came out of, now `Free` (`None`: it came out of the reorder window, whose slot
    /// was freed when it moved there).
    pub(crate) slot: Option<usize>,
    /// Its input position, when the order knows it (input order does; completion order leaves it
    /// to the slot's meta).
    pub(crate) position: Option<usize>,
    pub(crate) output: O,
}

/// Completion order or input order. Poll-free: it only keeps indexes over the slots' states.
pub(crate) trait Order<O>: fmt::Debug + Sized {
    /// Whether outputs come in input order.
    const ORDERED: bool;

    /// The component for a lane with a reorder window of `window` (0: none).
    fn new(window: usize) -> Self;

    /// An item started in slot `index` (its first attempt).
    fn started(&mut self, index: usize);

    /// Whether the item at input position `position`, just finished, is the next output and no
    /// other finished output waits: it may be handed out without waiting in its slot (then the
    /// caller calls [`Order::handed_out`]).
    fn is_next(&self, position: usize) -> bool;

    /// The next output was handed out at once (after [`Order::is_next`]).
    fn handed_out(&mut self);

    /// Whether a new item that finished at its first poll, before [`Order::started`], is the next
    /// output and no finished output waits: it may be handed out at once and never take its slot
    /// (then the caller calls [`Order::fresh_handed_out`]).
    fn fresh_is_next(&self) -> bool;

    /// A new item went out at once (after [`Order::fresh_is_next`]).
    fn fresh_handed_out(&mut self);

    /// The item in slot `index`, at input position `position`, finished with `output` and was not
    /// handed out at once: it waits in its slot or in the window.
    fn keep(&mut self, index: usize, position: usize, output: O) -> Kept<O>;

    /// The next output, if it is finished: out of its slot (which it leaves `Free`) or the window.
    fn take_next<Fut: Future, M: Default>(
        &mut self,
        arena: &mut Arena<Fut, O, M>,
    ) -> Option<Next<O>>;

    /// Finished outputs held outside the slots (in the window).
    fn held(&self) -> usize;
}

/// A FIFO of slot indices: a power-of-two ring that grows (doubling) only when full, so it stops
/// allocating once it holds as many entries as the lane ever has outstanding.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    buf: Box<[usize]>,
    head: usize,
    len: usize,
}

impl Ring {
    /// Doubles the room (keeping the entries held).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let cap = (self.buf.len() * 2).max(4);
        let mut buf = vec![0; cap].into_boxed_slice();
        for (k, entry) in buf.iter_mut().enumerate().take(self.len) {
            *entry = self.buf[(self.head + k) & (self.buf.len() - 1)];
        }
        self.buf = buf;
        self.head = 0;
    }

    // NOTE: always inlined (its growth is out of line): on every kept output's path, and left
    // out of line by LLVM in a limited lane's larger loop (19 instructions per item, callgrind).
    #[inline(always)]
    fn push_back(&mut self, index: usize) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let at = (self.head + self.len) & (self.buf.len() - 1);
        self.buf[at] = index;
        self.len += 1;
    }

    #[inline]
    fn front(&self) -> Option<usize> {
        (self.len != 0).then(|| self.buf[self.head])
    }

    #[inline]
    fn pop_front(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let index = self.buf[self.head];
        self.head = (self.head + 1) & (self.buf.len() - 1);
        self.len -= 1;
        Some(index)
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }
}

/// Completion order: the done queue holds exactly the `Done` slots, oldest first.
#[derive(Default)]
pub(crate) struct Unordered {
    done: Ring,
}

impl fmt::Debug for Unordered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unordered")
            .field("done", &self.done.len())
            .finish()
    }
}

impl<O> Order<O> for Unordered {
    const ORDERED: bool = false;

    fn new(_: usize) -> Self {
        Unordered::default()
    }

    #[inline(always)]
    fn started(&mut self, _: usize) {}

    #[inline(always)]
    fn is_next(&self, _: usize) -> bool {
        self.done.is_empty() // an older output waits: it goes first
    }

    #[inline(always)]
    fn handed_out(&mut self) {}

    #[inline(always)]
    fn fresh_is_next(&self) -> bool {
        self.done.is_empty() // an older output waits: it goes first
    }

    #[inline(always)]
    fn fresh_handed_out(&mut self) {}

    #[inline(always)]
    fn keep(&mut self, index: usize, _: usize, output: O) -> Kept<O> {
        self.done.push_back(index);
        Kept::InSlot(output)
    }

    #[inline(always)]
    fn take_next<Fut: Future, M: Default>(
        &mut self,
        arena: &mut Arena<Fut, O, M>,
    ) -> Option<Next<O>> {
        let index = self.done.pop_front()?;
        let output = arena.slot(index).state.take_output();
        Some(Next {
            slot: Some(index),
            position: None,
            output: output.expect("tasklane: a slot in the done queue holds an output"),
        })
    }

    #[inline(always)]
    fn held(&self) -> usize {
        0
    }
}

/// Input order, with an optional reorder window.
///
/// Invariants (between calls):
/// - `ring` holds one entry per item pulled and not yet yielded, in input order: the slot it
///   started in. An entry whose output moved into the window names a slot that may already run a
///   later item; it is never read as a slot again.
/// - `base` is the input position of the ring's front.
/// - window on (`cap > 0`): `window.len() == ring.len()`, entry for entry; `window[k]` is the
///   output of the ring's `k`-th item once it moved into the window; `held` counts the `Some`
///   entries and never exceeds `cap`. Window off: `window` is empty.
pub(crate) struct InOrder<O> {
    ring: Ring,
    base: usize,
    cap: usize,
    held: usize,
    window: VecDeque<Option<O>>,
}

impl<O> fmt::Debug for InOrder<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InOrder")
            .field("outstanding", &self.ring.len())
            .field("window", &self.cap)
            .field("held", &self.held)
            .finish()
    }
}

impl<O> InOrder<O> {
    /// The front left the ring.
    #[inline]
    fn pop(&mut self) {
        self.ring.pop_front();
        self.base = self.base.wrapping_add(1);
        if self.cap != 0 {
            self.window.pop_front();
        }
    }
}

impl<O> Order<O> for InOrder<O> {
    const ORDERED: bool = true;

    fn new(window: usize) -> Self {
        InOrder {
            ring: Ring::default(),
            base: 0,
            cap: window,
            held: 0,
            window: VecDeque::new(),
        }
    }

    #[inline]
    fn started(&mut self, index: usize) {
        self.ring.push_back(index);
        if self.cap != 0 {
            self.window.push_back(None);
        }
    }

    #[inline]
    fn is_next(&self, position: usize) -> bool {
        position == self.base
    }

    #[inline]
    fn handed_out(&mut self) {
        self.pop();
    }

    #[inline]
    fn fresh_is_next(&self) -> bool {
        self.ring.is_empty()
    }

    #[inline]
    fn fresh_handed_out(&mut self) {
        self.base = self.base.wrapping_add(1);
    }

    #[inline]
    fn keep(&mut self, _: usize, position: usize, output: O) -> Kept<O> {
        if self.held == self.cap {
            return Kept::InSlot(output); // no window, or it is full
        }
        let entry = &mut self.window[position.wrapping_sub(self.base)];
        debug_assert!(entry.is_none(), "one output per item");
        *entry = Some(output);
        self.held += 1;
        Kept::InWindow
    }

    #[inline(always)]
    fn take_next<Fut: Future, M: Default>(
        &mut self,
        arena: &mut Arena<Fut, O, M>,
    ) -> Option<Next<O>> {
        if self.held != 0 {
            if let Some(output) = self.window.front_mut().and_then(Option::take) {
                let position = self.base;
                self.held -= 1;
                self.pop();
                return Some(Next {
                    slot: None,
                    position: Some(position),
                    output,
                });
            }
        }
        let front = self.ring.front()?;
        let output = arena.slot(front).state.take_output()?;
        let position = self.base;
        self.pop();
        Some(Next {
            slot: Some(front),
            position: Some(position),
            output,
        })
    }

    #[inline]
    fn held(&self) -> usize {
        self.held
    }
}

#[cfg(all(test, not(tasklane_loom)))]
mod tests {
    use std::future::Ready;

    use super::*;

    /// An arena of `n` slots whose items finished with `outputs[i]` (`None`: still running).
    fn arena(n: usize) -> Arena<Ready<&'static str>, &'static str, ()> {
        let mut arena = Arena::new(n);
        for _ in 0..n {
            arena.grow();
        }
        arena
    }

    fn finish(
        arena: &mut Arena<Ready<&'static str>, &'static str, ()>,
        index: usize,
        o: &'static str,
    ) {
        let mut state = arena.slot(index).state;
        state.as_mut().start(std::future::ready(o));
        state.done(o);
    }

    #[test]
    fn the_ring_keeps_fifo_order_across_wrapping_and_growth() {
        let mut ring = Ring::default();
        let mut model = VecDeque::new();
        let mut next = 0;
        // Pushes run ahead of pops, so the ring wraps and grows with entries held.
        for round in 0..200 {
            for _ in 0..(round % 7) {
                ring.push_back(next);
                model.push_back(next);
                next += 1;
            }
            for _ in 0..(round % 5) {
                assert_eq!(ring.pop_front(), model.pop_front());
            }
            assert_eq!(ring.front(), model.front().copied());
            assert_eq!(
                (ring.len(), ring.is_empty()),
                (model.len(), model.is_empty())
            );
        }
        assert!(ring.buf.len().is_power_of_two());
    }

    #[test]
    fn completion_order_yields_the_oldest_finished_first() {
        let mut arena = arena(3);
        let mut order = <Unordered as Order<&str>>::new(0);
        assert!(
            Order::<&str>::is_next(&order, 5),
            "anything finished may go out"
        );
        for (index, o) in [(2, "c"), (0, "a")] {
            finish(&mut arena, index, o);
            let Kept::InSlot(_) = order.keep(index, 0, o) else {
                panic!("no window")
            };
        }
        let next: Vec<_> = std::iter::from_fn(|| order.take_next(&mut arena))
            .map(|n| (n.slot, n.output))
            .collect();
        assert_eq!(next, [(Some(2), "c"), (Some(0), "a")]);
    }

    #[test]
    fn input_order_waits_for_the_front() {
        let mut arena = arena(3);
        let mut order = InOrder::new(0);
        for index in 0..3 {
            order.started(index);
        }
        assert!(order.is_next(0) && !order.is_next(1));
        finish(&mut arena, 1, "b");
        assert!(matches!(order.keep(1, 1, "b"), Kept::InSlot("b")));
        assert!(
            order.take_next(&mut arena).is_none(),
            "the front still runs"
        );
        order.handed_out(); // the front finished and went out at once
        let next = order.take_next(&mut arena).expect("b is next");
        assert_eq!((next.slot, next.output), (Some(1), "b"));
        assert!(order.is_next(2));
    }

    #[test]
    fn the_window_holds_outputs_at_their_position_and_frees_their_slots() {
        let mut arena = arena(3);
        let mut order = InOrder::new(2);
        for index in 0..3 {
            order.started(index);
        }
        assert!(matches!(order.keep(2, 2, "c"), Kept::InWindow));
        assert!(matches!(order.keep(1, 1, "b"), Kept::InWindow));
        assert_eq!(order.held(), 2);
        finish(&mut arena, 0, "a");
        assert!(
            matches!(order.keep(0, 0, "a"), Kept::InSlot("a")),
            "full: the output stays in its slot"
        );
        order.started(1); // slot 1 was freed and takes the item at position 3
        let out: Vec<_> = std::iter::from_fn(|| order.take_next(&mut arena))
            .map(|n| (n.slot, n.output))
            .collect();
        assert_eq!(out, [(Some(0), "a"), (None, "b"), (None, "c")]);
        assert_eq!(order.held(), 0);
        assert!(order.is_next(3));
        assert!(matches!(order.keep(1, 3, "d"), Kept::InWindow));
        let next = order.take_next(&mut arena).expect("d is next");
        assert_eq!((next.slot, next.output), (None, "d"));
    }
}
