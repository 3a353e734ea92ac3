//! The lane engine: the no-spawn state machine shared by every terminal.
//!
//! ```text
//! input ──► fill free slots ──► slots (in flight) ──► emit: completion order (done queue)
//!           (only while a slot   polled only when      or input order (the order ring)
//!            is free)            woken                 + eager refill of the freed slot
//! ```

mod slots;

use std::collections::VecDeque;
use std::future::Future;
use std::task::{Context, Poll};

use slots::{Arena, NIL};

/// Polls of user futures (fresh or woken) that one `poll_next` call may make before it yields to the
/// executor: a lane whose futures keep waking themselves must not starve the other tasks of its
/// thread. The same bound as futures-util's `FuturesUnordered` uses in spirit (futures-buffered: 61).
const BUDGET: u32 = 64;

/// At most `limit` futures in flight; outputs in completion or input order.
///
/// Invariants (between calls):
/// - `occupied` counts the slots that hold a running future or a finished output; it never exceeds
///   `limit`, and it is exactly the number of items pulled from the input and not yet yielded.
/// - every slot index `< arena.len()` is in exactly one of: `free`, occupied.
/// - unordered: `queue` holds the `Done` slots in completion order. ordered: `queue` holds every
///   occupied slot in input order, so its front is the next output.
/// - `batch` is a list of woken slots taken from the shared stack and not yet polled (`NIL`: none).
pub(crate) struct Engine<Fut: Future> {
    arena: Arena<Fut>,
    free: Vec<usize>,
    queue: VecDeque<usize>,
    batch: usize,
    limit: usize,
    occupied: usize,
    ordered: bool,
    /// The input returned `None`; it is never polled again.
    input_done: bool,
    /// `poll_next` returned `None`; it keeps returning `None`.
    terminated: bool,
}

impl<Fut: Future> Engine<Fut> {
    pub(crate) fn new(limit: usize, ordered: bool) -> Self {
        debug_assert!(limit > 0);
        Engine {
            arena: Arena::new(limit),
            free: Vec::new(),
            queue: VecDeque::new(),
            batch: NIL,
            limit,
            occupied: 0,
            ordered,
            input_done: false,
            terminated: false,
        }
    }

    /// Items pulled from the input and not yet yielded (in flight or finished and waiting).
    pub(crate) fn occupied(&self) -> usize {
        self.occupied
    }

    /// Whether `poll_next` has returned `None`.
    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// `size_hint` of the output, given the input's: every item still to be pulled and every occupied
    /// slot yields exactly one output.
    pub(crate) fn size_hint(&self, input: (usize, Option<usize>)) -> (usize, Option<usize>) {
        if self.terminated {
            return (0, Some(0));
        }
        let (lo, hi) = if self.input_done { (0, Some(0)) } else { input };
        (
            lo.saturating_add(self.occupied),
            hi.and_then(|hi| hi.checked_add(self.occupied)),
        )
    }

    /// Advances the lane. `pull` polls the input for its next future (it is called only while a slot
    /// is free, and never again after it returned `Ready(None)`).
    pub(crate) fn poll_next<P>(
        &mut self,
        cx: &mut Context<'_>,
        mut pull: P,
    ) -> Poll<Option<Fut::Output>>
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<Fut>>,
    {
        if self.terminated {
            return Poll::Ready(None);
        }
        self.arena.enter();
        let mut budget = BUDGET;
        loop {
            // Phase 1: fill the free slots from the input. A fresh future is polled at once.
            while self.occupied < self.limit && !self.input_done && budget > 0 {
                match pull(cx) {
                    Poll::Ready(Some(fut)) => {
                        let index = self.free.pop().unwrap_or_else(|| self.arena.grow());
                        self.start(index, fut);
                        budget -= 1;
                    }
                    Poll::Ready(None) => self.input_done = true,
                    Poll::Pending => break,
                }
            }

            // Phase 2: drive every woken slot (even when an output is already waiting), picking up
            // wake-ups that happen meanwhile, until none is left or the budget is spent.
            if self.batch == NIL {
                self.batch = self.arena.take_woken();
            }
            while self.batch != NIL && budget > 0 {
                let index = self.batch;
                // NOTE: the list advances before the poll, so a panic in user code leaves it intact.
                self.batch = self.arena.next_woken(index);
                budget -= 1;
                self.drive(index);
                if self.batch == NIL {
                    self.batch = self.arena.take_woken();
                }
            }

            // Phase 3: emit one output, refilling its slot first.
            if let Some(output) = self.emit(cx, &mut pull) {
                return Poll::Ready(Some(output));
            }

            // Phase 4: decide termination, or whether to sleep.
            if self.input_done && self.occupied == 0 {
                self.terminated = true;
                return Poll::Ready(None);
            }
            if budget == 0 {
                // Work is left but the budget is spent: let the executor run other tasks first.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.batch == NIL && self.arena.may_sleep(cx.waker()) {
                // Every in-flight future holds its slot's waker, and the input (if pending) ours.
                return Poll::Pending;
            }
        }
    }

    /// Puts a new future into a free slot and polls it once.
    #[inline]
    fn start(&mut self, index: usize, fut: Fut) {
        self.arena.fill(index, fut);
        self.occupied += 1;
        if self.ordered {
            self.queue.push_back(index);
        }
        self.drive(index);
    }

    /// Polls a slot; a future that finishes queues its output (unordered mode).
    #[inline]
    fn drive(&mut self, index: usize) {
        if self.arena.poll(index).is_ready() && !self.ordered {
            self.queue.push_back(index);
        }
    }

    /// Takes the next output, if one may be yielded now, and refills its slot from the input (polling
    /// the new future once) before handing the output back.
    #[inline]
    fn emit<P>(&mut self, cx: &mut Context<'_>, pull: &mut P) -> Option<Fut::Output>
    where
        P: FnMut(&mut Context<'_>) -> Poll<Option<Fut>>,
    {
        let index = if self.ordered {
            let &front = self.queue.front()?;
            if !self.arena.is_done(front) {
                return None;
            }
            self.queue.pop_front();
            front
        } else {
            self.queue.pop_front()?
        };
        let output = self.arena.take_output(index);
        self.occupied -= 1;
        if !self.input_done {
            match pull(cx) {
                Poll::Ready(Some(fut)) => {
                    self.start(index, fut);
                    return Some(output);
                }
                Poll::Ready(None) => self.input_done = true,
                Poll::Pending => {}
            }
        }
        self.free.push(index);
        Some(output)
    }
}

impl<Fut: Future> std::fmt::Debug for Engine<Fut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limit", &self.limit)
            .field("ordered", &self.ordered)
            .field("occupied", &self.occupied)
            .field("slots", &self.arena.len())
            .field("input_done", &self.input_done)
            .field("terminated", &self.terminated)
            .finish_non_exhaustive()
    }
}
