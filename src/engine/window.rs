//! The reorder window of an ordered lane: finished outputs that wait for their turn outside the
//! slots, so that one slow item does not hold every slot behind it (`Lane::window`).
//!
//! Without a window, an ordered lane keeps each finished output in its slot until every earlier item
//! has been yielded: a slow head of the line leaves the other slots full of finished outputs, and no
//! new item starts. With a window of `n`, up to `n` finished outputs move out of their slots into the
//! window, and the slots take new items; memory stays bounded by `limit + n` outputs.
//!
//! Positions: the engine's ordered queue holds one entry per outstanding item, in input order. The
//! window keeps, beside it, `outputs[k]`: the output of the queue's `k`-th item once it moved into
//! the window (its queue entry then names a slot that may already run a later item, and is skipped).
//! A finishing item finds its entry in O(1) from its input position (which its slot keeps, see
//! `engine::meta`): `position - base`.
//!
//! Invariants (between calls, for a window that is on):
//! - `outputs.len()` is the engine's ordered queue length, entry for entry;
//! - `base` is the input position of the queue's front;
//! - `held` counts the `Some` entries of `outputs`, and never exceeds `cap`.

use std::collections::VecDeque;

/// See the module docs. A window of 0 (`cap == 0`) is off and costs one branch per finished item.
#[derive(Debug)]
pub(crate) struct Window<O> {
    cap: usize,
    held: usize,
    outputs: VecDeque<Option<O>>,
    base: usize,
}

impl<O> Window<O> {
    pub(crate) fn new(cap: usize) -> Self {
        Window {
            cap,
            held: 0,
            outputs: VecDeque::new(),
            base: 0,
        }
    }

    /// Whether the window is on (its size is not 0).
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.cap != 0
    }

    /// Finished outputs held in the window.
    #[inline]
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// A new item starts, at the back of the ordered queue.
    pub(crate) fn start(&mut self) {
        self.outputs.push_back(None);
    }

    /// The item at input position `position` finished with `output`: into the window if it has
    /// room (its slot is then free), else back to the caller, to wait in its slot.
    pub(crate) fn hold(&mut self, position: usize, output: O) -> Result<(), O> {
        if self.held == self.cap {
            return Err(output);
        }
        let entry = &mut self.outputs[position.wrapping_sub(self.base)];
        debug_assert!(entry.is_none(), "one output per item");
        *entry = Some(output);
        self.held += 1;
        Ok(())
    }

    /// The front item's input position and output, if its output waits in the window (its queue
    /// entry is then popped by the caller too).
    #[inline]
    pub(crate) fn take_front(&mut self) -> Option<(usize, O)> {
        let output = self.outputs.front_mut()?.take()?;
        self.outputs.pop_front();
        let position = self.base;
        self.base = self.base.wrapping_add(1);
        self.held -= 1;
        Some((position, output))
    }

    /// The front item was yielded from its slot.
    #[inline]
    pub(crate) fn pop_front(&mut self) {
        debug_assert!(matches!(self.outputs.front(), Some(None)));
        self.outputs.pop_front();
        self.base = self.base.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_wait_at_their_position_and_come_out_in_order() {
        let mut window = Window::new(2);
        for _ in 0..3 {
            window.start();
        }
        assert_eq!(window.hold(2, "c"), Ok(()));
        assert_eq!(window.hold(1, "b"), Ok(()));
        assert_eq!(
            window.hold(0, "a"),
            Err("a"),
            "full: the output stays in its slot"
        );
        assert_eq!(window.take_front(), None, "the front is not in the window");
        window.pop_front(); // the front came out of its slot
        assert_eq!(window.take_front(), Some((1, "b")));
        window.start(); // the next item, at position 3
        assert_eq!(window.take_front(), Some((2, "c")));
        assert_eq!(window.held(), 0);
        assert_eq!(window.hold(3, "d"), Ok(()));
        assert_eq!(window.take_front(), Some((3, "d")));
        assert_eq!(window.take_front(), None);
    }

    #[test]
    fn a_window_of_zero_is_off() {
        let mut window = Window::<u8>::new(0);
        assert!(!window.is_on());
        window.start();
        assert_eq!(window.hold(0, 1), Err(1));
    }
}
