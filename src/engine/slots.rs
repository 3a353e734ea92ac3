//! The slot arena: pinned in-flight futures, one waker per slot, and the ready set.
//!
//! Slots live in chunks (`Box<[Slot]>`) that are allocated lazily and never move or shrink while the
//! arena lives: chunk 0 holds `min(limit, FIRST_CHUNK)` slots, chunk `k >= 1` holds
//! `FIRST_CHUNK << (k - 1)`, so the whole arena never holds more than twice the slots in use, and
//! `lane(usize::MAX)` allocates nothing until an item arrives. A slot is reused for item after item.
//! A slot holds only its state (the future or the output) and the engine's per-slot data, which is
//! nothing for a lane that never retries (see `engine::meta`).
//!
//! Every slot has a [`Signal`] that is its waker. The signals of a chunk live side by side in one
//! [`Block`] (16 bytes each, four to a cache line), shared by reference count with every waker made
//! for them: a waker is a hand-written [`RawWaker`] whose data pointer is its slot's signal, and it
//! holds one count of the signal's block, so cloning or dropping a waker touches the block's count
//! and nothing per slot, and a slot stores no waker at all. Waking a signal pushes the slot's index
//! on a lock-free stack shared with the consumer ([`Shared::head`]); the consumer takes the whole
//! stack with one `swap`, so only woken slots are ever polled, and popping never races with pushing
//! (no ABA: nobody pops but the consumer, and it pops everything at once). A flag per slot (the
//! `QUEUED` bit of [`Signal::word`]) keeps a slot on the stack at most once, so a burst of wake-ups
//! costs one push.
//!
//! A waker may fire after its slot was refilled with a later item: the new future then gets one
//! spurious poll, which every future must tolerate. A waker that outlives the arena keeps its block
//! (and through it the shared state) alive and pushes into a stack that nobody reads any more; it
//! never touches a slot, so the futures and outputs are dropped with the arena as usual.
//!
//! Unsafe code, all in this file: pinning a future in its slot (the alternative, a `Box` per slot,
//! costs a pointer chase per poll and scatters the slots in memory), and the waker's vtable (the
//! alternative, an `Arc` per slot through `std::task::Wake`, costs a 48-byte allocation and a
//! 24-byte `Waker` + `Arc` per slot, which at 10,000 in flight no longer fit in the L2 cache; see
//! BENCHMARKS.md).
#![allow(unsafe_code)] // reason: pinning futures inside the arena's chunks, and the slot wakers

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use futures_util::task::AtomicWaker;

/// The end of a list of slot indices (no slot has this index: an arena never holds `usize::MAX` slots).
pub(crate) const NIL: usize = usize::MAX;

/// Slots in the first chunk, when the limit is larger.
const FIRST_CHUNK: usize = 64;
const FIRST_CHUNK_SHIFT: u32 = FIRST_CHUNK.trailing_zeros();

/// State shared between the consumer (the lane) and every slot's waker.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Top of the stack of woken slots, linked through [`Signal::word`]; `NIL` when empty.
    head: AtomicUsize,
    /// `true` while the consumer is inside `poll_next` or has returned an item, so it will look at the
    /// stack again before it sleeps: a waker then need not wake it. The consumer sets it to `false` (and
    /// then looks at the stack once more) only on its way to returning `Pending`.
    active: AtomicBool,
    /// The task that polls the lane, registered before it returns `Pending`.
    consumer: AtomicWaker,
}

/// The signals of one chunk of slots (or the lane timer's one signal), shared by count with every
/// waker made for them. Never mutated after it is made, except through the signals' atomics.
#[derive(Debug)]
pub(crate) struct Block {
    shared: Arc<Shared>,
    /// The index of `signals[0]`'s slot ([`TIMER`] for the timer's block).
    start: usize,
    signals: Box<[Signal]>,
}

/// A slot's waker: see the module docs.
#[derive(Debug)]
pub(crate) struct Signal {
    /// `QUEUED` (bit 0): the slot is on the stack of woken slots, from the wake-up that pushed it
    /// until the consumer takes it off its list. The other bits: the next slot below it on the stack
    /// ([`encode`]d; `NIL` at the bottom), written only by the waker that set `QUEUED`, read only by
    /// the consumer after it took the stack (see [`Signal::take`]).
    word: AtomicUsize,
    /// The block this signal lives in (set once, right after the block is made, before any waker of
    /// it exists). An atomic only so that `Signal` is `Send + Sync` without an unsafe impl: every
    /// access is a relaxed load, which is a plain load.
    block: AtomicPtr<Block>,
}

const QUEUED: usize = 1;

/// A stack link (a slot index, [`TIMER`] or [`NIL`]) as stored above `QUEUED`: the two special
/// values map to 0 and 2, every index `i` to `(i + 2) << 1`, which does not overflow because an
/// arena holds far fewer than `usize::MAX / 2` slots (a slot's signal alone is 16 bytes).
#[inline]
fn encode(link: usize) -> usize {
    link.wrapping_add(2) << 1
}

/// The inverse of [`encode`] (ignoring `QUEUED`).
#[inline]
fn decode(word: usize) -> usize {
    (word >> 1).wrapping_sub(2)
}

impl Block {
    /// A block of `len` signals for the slots `start .. start + len`.
    fn new(shared: &Arc<Shared>, start: usize, len: usize) -> Arc<Block> {
        let block = Arc::new(Block {
            shared: Arc::clone(shared),
            start,
            signals: (0..len)
                .map(|_| Signal {
                    word: AtomicUsize::new(encode(NIL)),
                    block: AtomicPtr::new(ptr::null_mut()),
                })
                .collect(),
        });
        // `Arc::as_ptr` is the pointer `Arc::into_raw` would give: the one the waker vtable passes
        // to `Arc::increment_strong_count` and `Arc::decrement_strong_count`.
        let raw = Arc::as_ptr(&block).cast_mut();
        for signal in block.signals.iter() {
            signal.block.store(raw, Ordering::Relaxed);
        }
        block
    }

    /// A waker for `signals[offset]` that borrows the arena's count of this block: it must not be
    /// dropped (only cloned, which takes a count of its own) and must not outlive `self`.
    #[inline]
    fn borrowed_waker(&self, offset: usize) -> ManuallyDrop<Waker> {
        let data: *const Signal = &self.signals[offset];
        // SAFETY: `data` points at a signal of a block that lives as long as the arena's `Arc` of it,
        // which outlives this waker (see above); the vtable's contract holds for it (see `VTABLE`),
        // and `ManuallyDrop` keeps it from giving back a count it never took.
        ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(data.cast(), &VTABLE)) })
    }
}

/// The vtable of every slot waker. Its data pointer points at a [`Signal`] inside a [`Block`], and
/// each such `Waker` (but the arena's borrowed ones, see [`Block::borrowed_waker`]) owns one strong
/// count of that block, so the signal stays valid for as long as the waker exists.
static VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_waker, wake_waker, wake_by_ref_waker, drop_waker);

/// The block of the signal that a slot waker's data points at.
///
/// # Safety
/// `data` is the data pointer of a live waker made with [`VTABLE`].
#[inline]
unsafe fn block_of(data: *const ()) -> *const Block {
    // SAFETY: by the caller's contract the signal is alive (its waker holds a count of its block).
    let signal = unsafe { &*data.cast::<Signal>() };
    signal.block.load(Ordering::Relaxed)
}

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live waker's (the vtable is only called on live wakers), and its block
    // pointer came from `Arc::as_ptr` of a block that this waker keeps alive: taking one more count
    // for the clone is what `increment_strong_count` is for.
    unsafe { Arc::increment_strong_count(block_of(data)) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake_waker(data: *const ()) {
    // SAFETY: `wake` is called on a live waker, which it consumes: wake it, then give back its count.
    unsafe {
        wake_by_ref_waker(data);
        drop_waker(data);
    }
}

unsafe fn wake_by_ref_waker(data: *const ()) {
    // SAFETY: `data` is a live waker's, so its signal and block are alive for this call.
    let (signal, block) = unsafe { (&*data.cast::<Signal>(), &*block_of(data)) };
    // SAFETY: `signal` is an element of `block.signals` (set up in `Block::new`).
    let offset = unsafe { (signal as *const Signal).offset_from(block.signals.as_ptr()) };
    signal.wake(block.start + offset as usize, &block.shared);
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: the waker being dropped owns one count of its block (see `VTABLE`), given back here;
    // the block is freed when the arena and every other waker have let go of it too.
    unsafe { Arc::decrement_strong_count(block_of(data)) };
}

impl Signal {
    /// Pushes slot `index` on the stack of woken slots, unless it is there already.
    fn wake(&self, index: usize, shared: &Shared) {
        if self.word.fetch_or(QUEUED, Ordering::AcqRel) & QUEUED != 0 {
            return; // already on the stack: the consumer will poll this slot anyway
        }
        let mut head = shared.head.load(Ordering::Relaxed);
        loop {
            self.word.store(encode(head) | QUEUED, Ordering::Relaxed);
            // SeqCst pairs with the consumer's `active.store(false)` then `head.load()`: either the
            // consumer sees this push, or this waker sees `active == false` and wakes it.
            match shared.head.compare_exchange_weak(
                head,
                index,
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

    /// The consumer takes this slot off its list: returns the next slot of the list; from here on a
    /// new wake-up pushes this one again.
    ///
    /// NOTE: a plain store, not a read-modify-write (which costs 3–5 ns per woken item, see
    /// BENCHMARKS.md). It is enough, as it was for the `Arc` wakers before: the slot is polled after
    /// this store, and a future that returns `Pending` registers its waker with its waking side
    /// through some synchronization (a lock, an `AtomicWaker`) and then checks its event again. A
    /// wake-up ordered after that registration is ordered after this store too, so it finds the flag
    /// clear and pushes the slot again; one ordered before it is seen by the future's check.
    #[inline]
    fn take(&self) -> usize {
        // Only the consumer writes the word while `QUEUED` is set, and the waker that set it wrote the
        // link before its push, which the consumer's `swap` of the stack acquired.
        let word = self.word.load(Ordering::Relaxed);
        self.word.store(word & !QUEUED, Ordering::Release);
        decode(word)
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
    /// What the engine keeps per item (nothing for a plain lane; the item and its attempt count for
    /// retries).
    meta: M,
}

/// A chunk of slots and their signals (`block.signals[i]` is the signal of `slots[i]`).
struct Chunk<Fut, O, M> {
    slots: Box<[Slot<Fut, O, M>]>,
    block: Arc<Block>,
}

/// The slot arena. See the module docs.
pub(crate) struct Arena<Fut, O, M> {
    /// Chunk `k` holds the slots `start(k) .. start(k) + len`. Slots are never moved out of their
    /// boxes, dropped, or shrunk before the arena is dropped: that is what makes pinning sound.
    chunks: Vec<Chunk<Fut, O, M>>,
    /// Slots created so far (all chunks but the last are full).
    len: usize,
    /// The most slots this arena will ever create.
    limit: usize,
    shared: Arc<Shared>,
    /// The lane timer's signal (made on first use): waking it pushes [`TIMER`]; and its waker.
    timer: Option<(Arc<Block>, Waker)>,
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
        let capacity = self.chunks.iter().map(|c| c.slots.len()).sum::<usize>();
        if self.len == capacity {
            let want = if self.chunks.is_empty() {
                FIRST_CHUNK
            } else {
                FIRST_CHUNK << (self.chunks.len() - 1)
            };
            let size = want.min(self.limit - capacity);
            let slots: Box<[Slot<Fut, O, M>]> = (0..size)
                .map(|_| Slot {
                    state: State::Empty,
                    meta: M::default(),
                })
                .collect();
            let block = Block::new(&self.shared, capacity, size);
            self.chunks.push(Chunk { slots, block });
        }
        self.len += 1;
        self.len - 1
    }

    #[inline]
    fn slot(&mut self, index: usize) -> &mut Slot<Fut, O, M> {
        let (chunk, offset) = locate(index);
        &mut self.chunks[chunk].slots[offset]
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
                let block = Block::new(shared, TIMER, 1);
                let waker = Waker::clone(&block.borrowed_waker(0));
                (block, waker)
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
        let (chunk, offset) = locate(index);
        let Chunk { slots, block } = &mut self.chunks[chunk];
        let slot = &mut slots[offset];
        let fut = match &mut slot.state {
            State::Running(fut) => fut,
            _ => return Polled::Idle, // a stale wake-up of a slot without an attempt
        };
        // SAFETY: the future lives in a chunk that is never moved or freed while the arena lives
        // (see `Arena::chunks`), and it leaves the slot only by being dropped in place: `State` is
        // overwritten by assignment below (which drops the future where it is) and never moved out
        // while it is `Running` (`take_output` moves only `Done`). So the pinning guarantee holds.
        let fut = unsafe { Pin::new_unchecked(fut) };
        let waker = block.borrowed_waker(offset);
        let mut cx = Context::from_waker(&waker);
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
                .signals[0]
        } else {
            let (chunk, offset) = locate(index);
            &self.chunks[chunk].block.signals[offset]
        };
        signal.take()
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
        let sizes: Vec<usize> = arena.chunks.iter().map(|c| c.slots.len()).collect();
        assert_eq!(sizes, [64, 64, 72]);
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
            Waker::clone(&self.chunks[chunk].block.borrowed_waker(offset))
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
    fn links_round_trip() {
        for link in [NIL, TIMER, 0, 1, 63, 64, 1 << 40] {
            assert_eq!(decode(encode(link)), link);
            assert_eq!(decode(encode(link) | QUEUED), link);
            assert_eq!(encode(link) & QUEUED, 0);
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
