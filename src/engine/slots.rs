//! The slot arena: pinned in-flight futures, one waker per slot, and the ready set.
//!
//! Slots live in chunks (`Box<[Slot]>`) that are allocated lazily and never move or shrink while the
//! arena lives: chunk 0 holds `min(limit, FIRST_CHUNK)` slots, chunk `k >= 1` holds
//! `FIRST_CHUNK << (k - 1)`, so the whole arena never holds more than twice the slots in use, and
//! `lane(usize::MAX)` allocates nothing until an item arrives. A slot is reused for item after item.
//!
//! Every slot owns a [`Signal`] (an `Arc`, made once with the slot) that is its waker. Waking it pushes
//! the slot's index on a lock-free stack shared with the consumer ([`Shared::head`]); the consumer takes
//! the whole stack with one `swap`, so only woken slots are ever polled, and popping never races with
//! pushing (no ABA: nobody pops but the consumer, and it pops everything at once). A flag per slot
//! (`queued`) keeps a slot on the stack at most once, so a burst of wake-ups costs one push.
//!
//! A waker may fire after its slot was refilled with a later item: the new future then gets one
//! spurious poll, which every future must tolerate. A waker that outlives the arena keeps the shared
//! state alive through its `Arc` and pushes into a stack that nobody reads any more.
//!
//! Unsafe code: one block, pinning a future in its slot. The alternative, a `Box` per slot, costs a
//! pointer chase per poll and scatters the slots in memory (see BENCHMARKS.md).
#![allow(unsafe_code)] // reason: pinning futures inside the arena's chunks (one block, below)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The end of a list of slot indices (no slot has this index: an arena never holds `usize::MAX` slots).
pub(crate) const NIL: usize = usize::MAX;

/// Slots in the first chunk, when the limit is larger.
const FIRST_CHUNK: usize = 64;
const FIRST_CHUNK_SHIFT: u32 = FIRST_CHUNK.trailing_zeros();

/// State shared between the consumer (the lane) and every slot's waker.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Top of the stack of woken slots, linked through [`Signal::next`]; `NIL` when empty.
    head: AtomicUsize,
    /// `true` while the consumer is inside `poll_next` or has returned an item, so it will look at the
    /// stack again before it sleeps: a waker then need not wake it. The consumer sets it to `false` (and
    /// then looks at the stack once more) only on its way to returning `Pending`.
    active: AtomicBool,
    /// The task that polls the lane, registered before it returns `Pending`.
    consumer: AtomicWaker,
}

/// A slot's waker.
#[derive(Debug)]
pub(crate) struct Signal {
    index: usize,
    /// `true` from the wake-up that pushed this slot until the consumer takes it off its list.
    queued: AtomicBool,
    /// The next slot on the stack below this one (`NIL` at the bottom). Written only by the waker that
    /// set `queued`, read only by the consumer after it took the stack.
    next: AtomicUsize,
    shared: Arc<Shared>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return; // already on the stack: the consumer will poll this slot anyway
        }
        let shared = &*self.shared;
        let mut head = shared.head.load(Ordering::Relaxed);
        loop {
            self.next.store(head, Ordering::Relaxed);
            // SeqCst pairs with the consumer's `active.store(false)` then `head.load()`: either the
            // consumer sees this push, or this waker sees `active == false` and wakes it.
            match shared.head.compare_exchange_weak(
                head,
                self.index,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        if !shared.active.load(Ordering::SeqCst) {
            shared.consumer.wake();
        }
    }
}

/// What polling a slot gave.
pub(crate) enum Polled<T> {
    /// The attempt finished with this output (the slot is now `Waiting`).
    Ready(T),
    /// The attempt is still running.
    Pending,
    /// The slot has no running attempt (a stale wake-up).
    Idle,
}

/// What a slot holds.
enum State<Fut, O> {
    /// Free for the next item.
    Empty,
    /// An in-flight attempt, pinned: it is never moved out, only dropped in place.
    Running(Fut),
    /// An item between attempts (backing off): no future, the item's state is in the slot's meta.
    Waiting,
    /// An item's final output, waiting for its turn to be yielded.
    Done(O),
}

struct Slot<Fut, O, M> {
    state: State<Fut, O>,
    /// What the engine keeps per item (the item itself for retries, attempt count, timer links).
    meta: M,
    waker: Waker,
    signal: Arc<Signal>,
}

/// The slot arena. See the module docs.
pub(crate) struct Arena<Fut, O, M> {
    /// Chunk `k` holds the slots `start(k) .. start(k) + len`. Chunks are never moved out of their
    /// boxes, dropped, or shrunk before the arena is dropped: that is what makes pinning sound.
    chunks: Vec<Box<[Slot<Fut, O, M>]>>,
    /// Slots created so far (all chunks but the last are full).
    len: usize,
    /// The most slots this arena will ever create.
    limit: usize,
    shared: Arc<Shared>,
    /// The waker for the lane's timer (made on first use): waking it pushes [`TIMER`].
    timer: Option<(Arc<Signal>, Waker)>,
}

/// The index that the lane's timer pushes on the stack of woken slots.
pub(crate) const TIMER: usize = usize::MAX - 1;

impl<Fut: Future, O, M: Default> Arena<Fut, O, M> {
    pub(crate) fn new(limit: usize) -> Self {
        Arena {
            chunks: Vec::new(),
            len: 0,
            limit,
            shared: Arc::new(Shared {
                head: AtomicUsize::new(NIL),
                active: AtomicBool::new(true),
                consumer: AtomicWaker::new(),
            }),
            timer: None,
        }
    }

    /// Slots created so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Creates one more slot (allocating a chunk if the last one is full) and returns its index.
    ///
    /// NOTE: the caller keeps `len() < limit`.
    pub(crate) fn grow(&mut self) -> usize {
        debug_assert!(self.len < self.limit);
        let capacity = self.chunks.iter().map(|c| c.len()).sum::<usize>();
        if self.len == capacity {
            let want = if self.chunks.is_empty() {
                FIRST_CHUNK
            } else {
                FIRST_CHUNK << (self.chunks.len() - 1)
            };
            let size = want.min(self.limit - capacity);
            let chunk: Box<[Slot<Fut, O, M>]> = (capacity..capacity + size)
                .map(|index| {
                    let signal = Arc::new(Signal {
                        index,
                        queued: AtomicBool::new(false),
                        next: AtomicUsize::new(NIL),
                        shared: Arc::clone(&self.shared),
                    });
                    Slot {
                        state: State::Empty,
                        meta: M::default(),
                        waker: Waker::from(Arc::clone(&signal)),
                        signal,
                    }
                })
                .collect();
            self.chunks.push(chunk);
        }
        self.len += 1;
        self.len - 1
    }

    #[inline]
    fn slot(&mut self, index: usize) -> &mut Slot<Fut, O, M> {
        let (chunk, offset) = locate(index);
        &mut self.chunks[chunk][offset]
    }

    /// The engine's data for a slot.
    #[inline]
    pub(crate) fn meta(&mut self, index: usize) -> &mut M {
        &mut self.slot(index).meta
    }

    /// The waker of the lane's timer (made on first use).
    pub(crate) fn timer_waker(&mut self) -> &Waker {
        let shared = &self.shared;
        &self
            .timer
            .get_or_insert_with(|| {
                let signal = Arc::new(Signal {
                    index: TIMER,
                    queued: AtomicBool::new(false),
                    next: AtomicUsize::new(NIL),
                    shared: Arc::clone(shared),
                });
                let waker = Waker::from(Arc::clone(&signal));
                (signal, waker)
            })
            .1
    }

    /// Puts a new attempt into an empty or waiting slot. It has not been polled yet.
    #[inline]
    pub(crate) fn fill(&mut self, index: usize, fut: Fut) {
        let slot = self.slot(index);
        debug_assert!(matches!(slot.state, State::Empty | State::Waiting));
        slot.state = State::Running(fut);
    }

    /// Drops the slot's running attempt in place (a timeout); the slot is left `Waiting`.
    pub(crate) fn cancel(&mut self, index: usize) {
        let slot = self.slot(index);
        debug_assert!(matches!(slot.state, State::Running(_)));
        slot.state = State::Waiting;
    }

    /// Stores an item's final output in its slot.
    #[inline]
    pub(crate) fn set_done(&mut self, index: usize, output: O) {
        self.slot(index).state = State::Done(output);
    }

    /// Polls the slot's attempt (if it has one) with the slot's own waker. When it finishes, the
    /// future is dropped in place, the slot is left `Waiting`, and its output is returned.
    #[inline]
    pub(crate) fn poll(&mut self, index: usize) -> Polled<Fut::Output> {
        let slot = self.slot(index);
        let fut = match &mut slot.state {
            State::Running(fut) => fut,
            _ => return Polled::Idle, // a stale wake-up of a slot without an attempt
        };
        // SAFETY: the future lives in a chunk that is never moved or freed while the arena lives
        // (see `Arena::chunks`), and it leaves the slot only by being dropped in place: `State` is
        // overwritten by assignment below (which drops the future where it is) and never moved out
        // while it is `Running` (`take_output` moves only `Done`). So the pinning guarantee holds.
        let fut = unsafe { Pin::new_unchecked(fut) };
        let mut cx = Context::from_waker(&slot.waker);
        match fut.poll(&mut cx) {
            Poll::Ready(output) => {
                slot.state = State::Waiting;
                Polled::Ready(output)
            }
            Poll::Pending => Polled::Pending,
        }
    }

    /// Takes a finished output out, leaving the slot empty; `None` (and the slot untouched) when the
    /// slot has no output yet.
    #[inline]
    pub(crate) fn take_output(&mut self, index: usize) -> Option<O> {
        let slot = self.slot(index);
        if !matches!(slot.state, State::Done(_)) {
            return None;
        }
        // Only `Done` is moved out here, never a pinned `Running` future.
        match std::mem::replace(&mut slot.state, State::Empty) {
            State::Done(output) => Some(output),
            _ => unreachable!(),
        }
    }

    /// Takes the stack of woken slots, leaving it empty. Walk it with [`Arena::next_woken`].
    #[inline]
    pub(crate) fn take_woken(&self) -> usize {
        if self.shared.head.load(Ordering::Relaxed) == NIL {
            return NIL; // a plain load is cheaper than a swap on the common empty path
        }
        self.shared.head.swap(NIL, Ordering::Acquire)
    }

    /// Takes `index` off a list obtained from [`Arena::take_woken`] and returns the next slot of that
    /// list. From here on a new wake-up of `index` pushes it again.
    #[inline]
    pub(crate) fn next_woken(&mut self, index: usize) -> usize {
        let signal = if index == TIMER {
            &self
                .timer
                .as_ref()
                .expect("the timer's waker exists once used")
                .0
        } else {
            &self.slot(index).signal
        };
        let next = signal.next.load(Ordering::Relaxed);
        signal.queued.store(false, Ordering::Release);
        next
    }

    /// Marks the consumer as inside `poll_next`: wakers need not wake it.
    #[inline]
    pub(crate) fn enter(&self) {
        self.shared.active.store(true, Ordering::Relaxed);
    }

    /// On the way to returning `Pending`: registers the consumer's waker and reports whether it may
    /// sleep (nothing was woken meanwhile). When it returns `false`, the consumer is active again
    /// and must look at the woken slots.
    pub(crate) fn may_sleep(&self, waker: &Waker) -> bool {
        self.shared.consumer.register(waker);
        self.shared.active.store(false, Ordering::SeqCst);
        if self.shared.head.load(Ordering::SeqCst) == NIL {
            return true;
        }
        self.shared.active.store(true, Ordering::Relaxed);
        false
    }
}

/// Maps a slot index to (chunk, offset): chunk 0 holds `0..FIRST_CHUNK`, chunk `k >= 1` holds
/// `FIRST_CHUNK << (k - 1) .. FIRST_CHUNK << k`.
#[inline]
fn locate(index: usize) -> (usize, usize) {
    if index < FIRST_CHUNK {
        return (0, index);
    }
    let k = usize::BITS - 1 - (index >> FIRST_CHUNK_SHIFT).leading_zeros();
    (k as usize + 1, index - (FIRST_CHUNK << k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_maps_every_index_once() {
        let sizes: Vec<usize> = (0..8)
            .map(|k| {
                if k == 0 {
                    FIRST_CHUNK
                } else {
                    FIRST_CHUNK << (k - 1)
                }
            })
            .collect();
        let mut index = 0;
        for (chunk, &size) in sizes.iter().enumerate() {
            for offset in 0..size {
                assert_eq!(locate(index), (chunk, offset), "index {index}");
                index += 1;
            }
        }
        assert_eq!(
            locate(usize::MAX - 1).0,
            usize::BITS as usize - FIRST_CHUNK_SHIFT as usize
        );
    }

    #[test]
    fn chunks_grow_geometrically_and_stop_at_the_limit() {
        let mut arena = Arena::<std::future::Ready<()>, (), ()>::new(200);
        for i in 0..200 {
            assert_eq!(arena.grow(), i);
        }
        let sizes: Vec<usize> = arena.chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [64, 64, 72]);
        let mut small = Arena::<std::future::Ready<()>, (), ()>::new(3);
        for _ in 0..3 {
            small.grow();
        }
        assert_eq!(small.chunks.len(), 1);
        assert_eq!(small.chunks[0].len(), 3);
    }

    #[test]
    fn a_wake_up_pushes_a_slot_once() {
        let mut arena = Arena::<std::future::Pending<()>, (), ()>::new(4);
        for _ in 0..4 {
            arena.grow();
        }
        let w1 = arena.slot(1).waker.clone();
        let w3 = arena.slot(3).waker.clone();
        w1.wake_by_ref();
        w3.wake_by_ref();
        w1.wake_by_ref(); // already queued: no second push
        let mut seen = Vec::new();
        let mut cur = arena.take_woken();
        while cur != NIL {
            seen.push(cur);
            cur = arena.next_woken(cur);
        }
        seen.sort_unstable();
        assert_eq!(seen, [1, 3]);
        assert_eq!(arena.take_woken(), NIL);
        drop(arena);
        w1.wake(); // a waker that outlives the arena is harmless
        w3.wake_by_ref();
    }
}
