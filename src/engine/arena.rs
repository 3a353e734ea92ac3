//! The slot arena: pinned slots in chunks that never move, each with its waker.
//!
//! Slots live in chunks (`Pin<Box<[Slot]>>`) that are allocated lazily and never move or shrink
//! while the arena lives: every chunk holds `CHUNK` slots (the last one fewer when the limit ends
//! it), so slot `i` is slot `i % CHUNK` of chunk `i / CHUNK`, a shift and a mask away; the arena
//! never holds more than `CHUNK - 1` slots beyond those in use, and
//! `lane(usize::MAX)` allocates nothing until an item arrives. A slot is reused for item after item.
//! A slot holds only its state ([`State`](super::lifecycle::State): the future or the output) and
//! the engine's per-slot data (see `engine::meta`). Each chunk has one [`Block`] of signals, the
//! slots' wakers (see `engine::waker`).
//!
//! Unsafe code: indexing a pinned chunk (`Pin<&mut Slot>` out of `Pin<Box<[Slot]>>`; the
//! projections from there are pin-project-lite's). The alternative, a `Box` per slot, costs a
//! pointer chase per poll and scatters the slots in memory. A look-up checks once that the slot
//! exists (`Arena::live`) and then indexes the chunk, the slots and the signals without checking
//! again: the three bounds checks it saves are 11 to 30 instructions per item (callgrind, L = 16,
//! ready and yield-once futures: 188 -> 177 and 344 -> 326).
#![allow(unsafe_code)] // reason: pinning futures inside the arena's chunks

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Waker;

use super::lifecycle::{Slot, SlotProj};
use super::waker::{Block, Shared, Signal, WakerRef, TIMER};

/// Slots per chunk (a power of two), when the limit is larger. 64 made the wake cost at 10,000
/// slots 1.35 times that at 100 (a chunk and its signals are two allocations each: 157 pairs of
/// them), 256 makes it 1.29 times with both faster (see BENCHMARKS.md, "wake").
const CHUNK: usize = 256;
const CHUNK_SHIFT: u32 = CHUNK.trailing_zeros();

/// A chunk's slots, pinned: the futures in them are polled in place.
type Slots<Fut, O, M> = Pin<Box<[Slot<Fut, O, M>]>>;

/// A chunk of slots and their signals (`block.signals[i]` is the signal of `slots[i]`).
struct Chunk<Fut, O, M> {
    slots: Slots<Fut, O, M>,
    block: Arc<Block>,
}

/// Slot `offset` of a chunk's pinned slots, without a bounds check.
///
/// # Safety
///
/// `offset < slots.len()`.
#[inline]
unsafe fn pinned_unchecked<Fut, O, M>(
    slots: &mut Slots<Fut, O, M>,
    offset: usize,
) -> Pin<&mut Slot<Fut, O, M>> {
    // SAFETY: an element of a pinned slice is pinned as the slice is: the boxed slice is never
    // moved out of, resized or freed before it is dropped, so no element moves either; and the
    // caller guarantees that `offset` is in bounds.
    unsafe {
        slots
            .as_mut()
            .map_unchecked_mut(|s| s.get_unchecked_mut(offset))
    }
}

/// The slot arena. See the module docs.
pub(crate) struct Arena<Fut, O, M> {
    /// Chunk `k` holds the slots `start(k) .. start(k) + len`.
    chunks: Vec<Chunk<Fut, O, M>>,
    /// Slots created so far (all chunks but the last are full).
    len: usize,
    /// The most slots this arena will ever create.
    limit: usize,
    shared: Arc<Shared>,
    /// The lane timer's signal (made on first use): waking it pushes [`TIMER`]; and its waker.
    timer: Option<(Arc<Block>, Waker)>,
}

impl<Fut: Future, O, M: Default> Arena<Fut, O, M> {
    pub(crate) fn new(limit: usize) -> Self {
        Arena {
            chunks: Vec::new(),
            len: 0,
            limit,
            shared: Arc::new(Shared::new()),
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
    #[cfg(all(test, not(tasklane_loom)))]
    pub(crate) fn grow(&mut self) -> usize {
        debug_assert!(self.len < self.limit);
        self.allocate_chunk_if_full();
        self.len += 1;
        self.len - 1
    }

    /// Creates every slot left in the last chunk, allocating a chunk first if it is full (within
    /// the limit), and returns the range of slots made: a lane that needs a slot takes the rest of
    /// its chunk at once.
    ///
    /// NOTE: the caller keeps `len() < limit`.
    pub(crate) fn grow_chunk(&mut self) -> std::ops::Range<usize> {
        debug_assert!(self.len < self.limit);
        self.allocate_chunk_if_full();
        let first = self.len;
        let last = self.chunks.len() - 1; // one at least, as the slot `len` is in one
        self.len = last * CHUNK + self.chunks[last].slots.len();
        first..self.len
    }

    /// Every chunk but the last is full (and the last is full unless the limit ended it): when the
    /// last is full too, allocates the next.
    fn allocate_chunk_if_full(&mut self) {
        let capacity = self.chunks.len() * CHUNK;
        if self.len == capacity {
            let size = CHUNK.min(self.limit - capacity);
            let slots: Box<[Slot<Fut, O, M>]> = (0..size).map(|_| Slot::new()).collect();
            let block = Block::new(&self.shared, capacity, size);
            self.chunks.push(Chunk {
                slots: Box::into_pin(slots),
                block,
            });
        }
    }

    /// The chunk of slot `index` and the slot's offset in it.
    ///
    /// # Panics
    ///
    /// If the slot does not exist (`index >= len()`): the one bounds check of a slot look-up. The
    /// chunks cover `0..len()` as [`locate`] maps them (see [`Arena::grow`]), so after it both the
    /// chunk and the offset are in bounds, and the look-ups below index without checking again.
    #[inline]
    fn live(&self, index: usize) -> (usize, usize) {
        assert!(index < self.len, "tasklane: slot {index} does not exist");
        locate(index)
    }

    /// Chunk `chunk` of a slot that [`Arena::live`] located.
    ///
    /// # Safety
    ///
    /// `chunk` came from [`Arena::live`].
    #[inline]
    unsafe fn chunk_unchecked(&mut self, chunk: usize) -> &mut Chunk<Fut, O, M> {
        // SAFETY: by the caller's contract, `chunk` is a live slot's chunk (see `live`).
        unsafe { self.chunks.get_unchecked_mut(chunk) }
    }

    /// Slot `index`: its pinned state and its meta.
    #[inline]
    pub(crate) fn slot(&mut self, index: usize) -> SlotProj<'_, Fut, O, M> {
        let (chunk, offset) = self.live(index);
        // SAFETY: `chunk` and `offset` locate a live slot (see `live`), so both are in bounds.
        unsafe { pinned_unchecked(&mut self.chunk_unchecked(chunk).slots, offset) }.project()
    }

    /// The engine's data for a slot.
    #[inline]
    pub(crate) fn meta(&mut self, index: usize) -> &mut M {
        self.slot(index).meta
    }

    /// The waker of the lane's timer (made on first use).
    pub(crate) fn timer_waker(&mut self) -> &Waker {
        let shared = &self.shared;
        &self
            .timer
            .get_or_insert_with(|| {
                let block = Block::new(shared, TIMER, 1);
                let waker = Waker::clone(&block.waker_ref(0));
                (block, waker)
            })
            .1
    }

    /// Slot `index` with its waker: one look-up for a start and its first poll.
    // NOTE: always inlined: on every start and poll, and left out of line by LLVM in a limited
    // lane's larger loop (24 instructions per item, callgrind).
    #[inline(always)]
    pub(crate) fn slot_and_waker(
        &mut self,
        index: usize,
    ) -> (SlotProj<'_, Fut, O, M>, WakerRef<'_>) {
        let (chunk, offset) = self.live(index);
        // SAFETY: `chunk` came from `live`.
        let Chunk { slots, block } = unsafe { self.chunk_unchecked(chunk) };
        // SAFETY: `offset` locates a live slot in this chunk, which has as many signals as slots
        // (see `live` and `grow`).
        let (slot, waker) = unsafe {
            (
                pinned_unchecked(slots, offset),
                block.waker_ref_unchecked(offset),
            )
        };
        (slot.project(), waker)
    }

    /// Whether a slot (or the timer) may have been woken since the last [`Arena::take_woken`]:
    /// one relaxed load.
    #[inline]
    pub(crate) fn may_have_woken(&self) -> bool {
        self.shared.may_have_woken()
    }

    /// Takes the stack of woken slots, leaving it empty. Walk it with [`Arena::next_woken`].
    #[inline]
    pub(crate) fn take_woken(&self) -> usize {
        self.shared.take_woken()
    }

    /// The signal of slot `index` (or of the timer).
    #[inline]
    fn signal(&self, index: usize) -> &Signal {
        if index == TIMER {
            self.timer
                .as_ref()
                .expect("the timer's waker exists once used")
                .0
                .signal(0)
        } else {
            let (chunk, offset) = self.live(index);
            // SAFETY: `chunk` and `offset` locate a live slot (see `live`), and a chunk's block has
            // a signal per slot.
            unsafe {
                self.chunks
                    .get_unchecked(chunk)
                    .block
                    .signal_unchecked(offset)
            }
        }
    }

    /// Takes `index` off a list obtained from [`Arena::take_woken`] and returns the next slot of that
    /// list. From here on a new wake-up of `index` pushes it again.
    #[inline]
    pub(crate) fn next_woken(&mut self, index: usize) -> usize {
        self.signal(index).take()
    }

    /// Wakes slot `index` as its own waker would: it is polled in a later round (a slot whose
    /// fresh attempt is left for the next `poll_next` call when the budget is spent).
    pub(crate) fn requeue(&self, index: usize) {
        self.signal(index).wake(index, &self.shared);
    }

    /// On the way to returning `Pending`: registers the consumer's waker and reports whether it may
    /// sleep (nothing was woken meanwhile). When it returns `false`, the consumer is active again
    /// and must look at the woken slots.
    pub(crate) fn may_sleep(&self, waker: &Waker) -> bool {
        self.shared.may_sleep(waker)
    }
}

/// Maps a slot index to (chunk, offset): chunk `k` holds `k * CHUNK .. (k + 1) * CHUNK`.
#[inline]
fn locate(index: usize) -> (usize, usize) {
    (index >> CHUNK_SHIFT, index & (CHUNK - 1))
}

#[cfg(all(test, not(tasklane_loom)))]
mod tests {
    use super::super::waker::NIL;
    use super::*;

    #[test]
    fn locate_maps_every_index_once() {
        let mut index = 0;
        for chunk in 0..8 {
            for offset in 0..CHUNK {
                assert_eq!(locate(index), (chunk, offset), "index {index}");
                index += 1;
            }
        }
        assert_eq!(
            locate(usize::MAX - 1),
            (usize::MAX >> CHUNK_SHIFT, CHUNK - 2)
        );
    }

    #[test]
    fn a_chunk_is_made_whole_and_the_last_stops_at_the_limit() {
        let mut arena = Arena::<std::future::Ready<()>, (), ()>::new(600);
        assert_eq!(arena.grow_chunk(), 0..256);
        assert_eq!(arena.grow_chunk(), 256..512);
        assert_eq!(
            arena.grow_chunk(),
            512..600,
            "the limit ends the last chunk"
        );
        assert_eq!(arena.len(), 600);
        let mut arena = Arena::<std::future::Ready<()>, (), ()>::new(usize::MAX);
        assert_eq!(arena.grow(), 0);
        assert_eq!(
            arena.grow_chunk(),
            1..256,
            "the rest of a chunk begun one by one"
        );
        assert_eq!(arena.grow_chunk(), 256..512);
    }

    #[test]
    fn chunks_grow_one_at_a_time_and_stop_at_the_limit() {
        let mut arena = Arena::<std::future::Ready<()>, (), ()>::new(600);
        for i in 0..600 {
            assert_eq!(arena.grow(), i);
            assert_eq!(
                arena.chunks.len(),
                i / CHUNK + 1,
                "a chunk only when one is full"
            );
        }
        let sizes: Vec<usize> = arena.chunks.iter().map(|c| c.slots.len()).collect();
        assert_eq!(sizes, [256, 256, 88]);
        let mut small = Arena::<std::future::Ready<()>, (), ()>::new(3);
        for _ in 0..3 {
            small.grow();
        }
        assert_eq!(small.chunks.len(), 1);
        assert_eq!(small.chunks[0].slots.len(), 3);
    }

    impl<Fut: Future, O, M: Default> Arena<Fut, O, M> {
        /// An owned waker of slot `index`, as a future would clone it from its context.
        fn waker(&self, index: usize) -> Waker {
            let (chunk, offset) = locate(index);
            Waker::clone(&self.chunks[chunk].block.waker_ref(offset))
        }

        /// Takes every woken slot, in any order.
        fn woken(&mut self) -> Vec<usize> {
            let mut seen = Vec::new();
            let mut cur = self.take_woken();
            while cur != NIL {
                seen.push(cur);
                cur = self.next_woken(cur);
            }
            seen.sort_unstable();
            seen
        }
    }

    #[test]
    fn a_wake_up_pushes_a_slot_once() {
        let mut arena = Arena::<std::future::Pending<()>, (), ()>::new(4);
        for _ in 0..4 {
            arena.grow();
        }
        let w1 = arena.waker(1);
        let w3 = arena.waker(3);
        w1.wake_by_ref();
        w3.wake_by_ref();
        w1.wake_by_ref(); // already queued: no second push
        assert_eq!(arena.woken(), [1, 3]);
        assert_eq!(arena.take_woken(), NIL);
        w3.wake_by_ref(); // taken off: pushed again
        assert_eq!(arena.woken(), [3]);
        drop(arena);
        w1.wake(); // a waker that outlives the arena is harmless
        w3.wake_by_ref();
    }

    #[test]
    fn wakers_of_every_chunk_and_the_timer_push_their_own_index() {
        let mut arena = Arena::<std::future::Pending<()>, (), ()>::new(300);
        for _ in 0..300 {
            arena.grow();
        }
        let indices = [0, 63, 64, 127, 128, 255, 256, 299];
        let wakers: Vec<Waker> = indices.iter().map(|&i| arena.waker(i)).collect();
        for waker in &wakers {
            waker.wake_by_ref();
        }
        assert_eq!(arena.woken(), indices);
        let timer = arena.timer_waker().clone();
        timer.wake_by_ref();
        wakers[2].wake_by_ref();
        assert_eq!(arena.woken(), [64, TIMER]);
        // Clones share the slot's signal, and `will_wake` sees it.
        let clone = wakers[1].clone();
        assert!(clone.will_wake(&wakers[1]));
        assert!(!clone.will_wake(&wakers[0]));
        drop(wakers);
        clone.wake();
        assert_eq!(arena.woken(), [63]);
    }

    #[test]
    fn the_last_waker_frees_the_block() {
        let mut arena = Arena::<std::future::Pending<()>, (), ()>::new(2);
        arena.grow();
        let block = Arc::clone(&arena.chunks[0].block);
        let waker = arena.waker(0);
        let clone = waker.clone();
        assert_eq!(Arc::strong_count(&block), 4); // arena, test, two wakers
        drop(arena);
        drop(waker);
        assert_eq!(Arc::strong_count(&block), 2);
        clone.wake();
        assert_eq!(Arc::strong_count(&block), 1);
    }

    #[test]
    fn wake_ups_from_other_threads_are_never_lost() {
        const SLOTS: usize = 100;
        const THREADS: usize = 3;
        const ROUNDS: usize = if cfg!(miri) { 3 } else { 200 };
        let mut arena = Arena::<std::future::Pending<()>, (), ()>::new(SLOTS);
        for _ in 0..SLOTS {
            arena.grow();
        }
        for _ in 0..ROUNDS {
            // Each slot is woken by one thread or another (some twice); each must come out once.
            let wakers: Vec<Vec<Waker>> = (0..THREADS)
                .map(|t| {
                    (0..SLOTS)
                        .filter(|i| i % THREADS == t || i % 7 == t)
                        .map(|i| arena.waker(i))
                        .collect()
                })
                .collect();
            let threads: Vec<_> = wakers
                .into_iter()
                .map(|ws| {
                    std::thread::spawn(move || {
                        for w in ws {
                            w.wake();
                        }
                    })
                })
                .collect();
            let mut seen = Vec::new();
            while seen.len() < SLOTS || threads.iter().any(|t| !t.is_finished()) {
                let mut cur = arena.take_woken();
                while cur != NIL {
                    seen.push(cur);
                    cur = arena.next_woken(cur);
                }
                std::thread::yield_now();
            }
            for t in threads {
                t.join().unwrap();
            }
            seen.extend(arena.woken());
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen, (0..SLOTS).collect::<Vec<_>>());
        }
    }
}
