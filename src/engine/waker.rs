//! The slot wakers and the ready set: what a waker does, and the protocol that loses no wake-up.
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
//! No wake-up is lost, whatever way a future registers its waker (once at its first poll and never
//! again is allowed by the `Future` contract): every write of a signal's word is a read-modify-write
//! and the consumer clears `QUEUED` with an acquiring swap before it polls the slot, so that poll
//! sees everything the waking side did before any wake-up that found the flag still set. The
//! consumer's sleep is a value of the stack's head ([`ASLEEP`]), so the push that ends it knows so
//! from the same read-modify-write. The `loom_model` tests at the bottom check the protocol.
//!
//! A waker may fire after its slot was refilled with a later item: the new future then gets one
//! spurious poll, which every future must tolerate. A waker that outlives the arena keeps its block
//! (and through it the shared state) alive and pushes into a stack that nobody reads any more; it
//! never touches a slot, so the futures and outputs are dropped with the arena as usual.
//!
//! Unsafe code: the waker's vtable and the block pointer it adopts (the alternative, an `Arc` per
//! slot through `std::task::Wake`, costs a 48-byte allocation and a 24-byte `Waker` + `Arc` per
//! slot, which at 10,000 in flight no longer fit in the L2 cache; see BENCHMARKS.md).
#![allow(unsafe_code)] // reason: the slot wakers' vtable

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr;
use std::sync::atomic::AtomicPtr;
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use sync::{AtomicUsize, AtomicWaker, Ordering};

/// The atomics of the wake protocol: `std`'s, or loom's when the protocol is model-checked
/// (`RUSTFLAGS="--cfg tasklane_loom" cargo test --release --lib loom`; see the `loom_model` tests below).
mod sync {
    #[cfg(not(tasklane_loom))]
    pub(super) use futures_util::task::AtomicWaker;
    #[cfg(tasklane_loom)]
    pub(super) use loom::sync::atomic::{AtomicUsize, Ordering};
    #[cfg(not(tasklane_loom))]
    pub(super) use std::sync::atomic::{AtomicUsize, Ordering};

    /// loom's `AtomicWaker` under the name and method that futures-util's has.
    #[cfg(tasklane_loom)]
    #[derive(Debug, Default)]
    pub(super) struct AtomicWaker(loom::future::AtomicWaker);

    #[cfg(tasklane_loom)]
    impl AtomicWaker {
        pub(super) fn new() -> Self {
            AtomicWaker(loom::future::AtomicWaker::new())
        }

        pub(super) fn register(&self, waker: &std::task::Waker) {
            self.0.register_by_ref(waker);
        }

        pub(super) fn wake(&self) {
            self.0.wake();
        }
    }
}

/// The end of a list of slot indices (no slot has this index: an arena never holds `usize::MAX` slots).
pub(crate) const NIL: usize = usize::MAX;

/// The index that the lane's timer pushes on the stack of woken slots.
pub(crate) const TIMER: usize = usize::MAX - 1;

/// State shared between the consumer (the lane) and every slot's waker.
///
/// The consumer's sleep lives in the same word as the stack, so that whether a waker must wake the
/// consumer is decided by the one read-modify-write that pushes its slot: no second flag, and no
/// reliance on sequentially consistent ordering between two locations.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Top of the stack of woken slots, linked through [`Signal::word`]: `NIL` when empty while the
    /// consumer is awake (inside `poll_next`, or it returned an item and will look again), `ASLEEP`
    /// when empty and the consumer returned `Pending` (the waker that pushes onto `ASLEEP` wakes it).
    head: AtomicUsize,
    /// The task that polls the lane, registered before it returns `Pending`.
    consumer: AtomicWaker,
}

/// The head of an empty stack whose consumer sleeps (see [`Shared::head`]); never a link.
const ASLEEP: usize = usize::MAX - 2;

impl Shared {
    pub(super) fn new() -> Self {
        Shared {
            head: AtomicUsize::new(NIL),
            consumer: AtomicWaker::new(),
        }
    }

    /// Whether the stack may hold woken slots (a relaxed load: a hint, [`Shared::take_woken`] decides).
    #[inline]
    pub(super) fn may_have_woken(&self) -> bool {
        self.head.load(Ordering::Relaxed) != NIL
    }

    /// Takes the stack of woken slots, leaving it empty with the consumer awake.
    #[inline]
    pub(super) fn take_woken(&self) -> usize {
        if self.head.load(Ordering::Relaxed) == NIL {
            return NIL; // a plain load is cheaper than a swap on the common empty path
        }
        match self.head.swap(NIL, Ordering::Acquire) {
            ASLEEP => NIL, // woken by something else (the input, the executor): awake now
            top => top,
        }
    }

    /// See [`Arena::may_sleep`](super::arena::Arena::may_sleep).
    pub(super) fn may_sleep(&self, waker: &Waker) -> bool {
        self.consumer.register(waker);
        // Release: the registration is visible to the waker whose push reads `ASLEEP`.
        match self
            .head
            .compare_exchange(NIL, ASLEEP, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) | Err(ASLEEP) => true,
            Err(_) => false, // a slot was woken meanwhile
        }
    }
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
///
/// Invariants of the wake protocol (checked by the loom model below):
/// - every write to `word` is a read-modify-write, by wakers and consumer alike, so the consumer's
///   [`Signal::take`] (an acquiring swap) synchronizes with *every* wake-up ordered before it, not
///   only with the one that pushed the slot;
/// - a wake-up that finds `QUEUED` clear sets it and pushes the slot (exactly one push per set); one
///   that finds it set pushes nothing, because the slot's `take` is still to come and will see it;
/// - the link bits are written only by the waker that set `QUEUED`, before its push publishes the
///   slot, and read only by the consumer after it took the stack.
#[derive(Debug)]
pub(crate) struct Signal {
    /// `QUEUED` (bit 0): the slot is on the stack of woken slots, from the wake-up that pushed it
    /// until the consumer takes it off its list. The other bits: the next slot below it on the stack
    /// ([`encode`]d; `NIL` at the bottom).
    word: AtomicUsize,
    /// The block this signal lives in (a pointer from `Arc::into_raw`, set once in [`Block::new`]
    /// before any waker of it exists). An atomic only so that `Signal` is `Send + Sync` without an
    /// unsafe impl: every access is a relaxed load, which is a plain load.
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

/// The link that a push onto `head` writes: `head` itself, but `NIL` for an empty stack whose
/// consumer sleeps.
#[inline]
fn head_link(head: usize) -> usize {
    if head == ASLEEP {
        NIL
    } else {
        head
    }
}

/// The inverse of [`encode`] (ignoring `QUEUED`).
#[inline]
fn decode(word: usize) -> usize {
    (word >> 1).wrapping_sub(2)
}

/// A slot's waker that borrows its block: it can be used (and cloned, which takes a count of its
/// own) only while the block is borrowed, and it is never dropped, so it never gives back a count it
/// did not take (futures-util's `WakerRef`, for this arena).
pub(crate) struct WakerRef<'a> {
    waker: ManuallyDrop<Waker>,
    _block: PhantomData<&'a Block>,
}

impl Deref for WakerRef<'_> {
    type Target = Waker;

    #[inline]
    fn deref(&self) -> &Waker {
        &self.waker
    }
}

impl Block {
    /// A block of `len` signals for the slots `start .. start + len`.
    pub(super) fn new(shared: &Arc<Shared>, start: usize, len: usize) -> Arc<Block> {
        let block = Arc::new(Block {
            shared: Arc::clone(shared),
            start,
            signals: (0..len).map(|_| Signal::new()).collect(),
        });
        let raw = Arc::into_raw(block);
        // SAFETY: `raw` came from `Arc::into_raw` just above and its count is still held (it is
        // taken back at once): the block is alive, and only shared references are made to it.
        for signal in unsafe { &*raw }.signals.iter() {
            signal.block.store(raw.cast_mut(), Ordering::Relaxed);
        }
        // SAFETY: `raw` came from `Arc::into_raw`, and this takes back the count it gave away.
        // The signals keep the same pointer: the one that the waker vtable passes to
        // `Arc::increment_strong_count` and `Arc::decrement_strong_count`.
        unsafe { Arc::from_raw(raw) }
    }

    /// The signal of slot `start + offset`.
    #[inline]
    pub(super) fn signal(&self, offset: usize) -> &Signal {
        &self.signals[offset]
    }

    /// [`Block::signal`] without the bounds check.
    ///
    /// # Safety
    ///
    /// `offset` is less than the block's length.
    #[inline]
    pub(super) unsafe fn signal_unchecked(&self, offset: usize) -> &Signal {
        // SAFETY: by the caller's contract, `offset` is in bounds.
        unsafe { self.signals.get_unchecked(offset) }
    }

    /// A waker for `signals[offset]` that borrows this block.
    #[inline]
    pub(super) fn waker_ref(&self, offset: usize) -> WakerRef<'_> {
        self.waker_ref_of(&self.signals[offset])
    }

    /// [`Block::waker_ref`] without the bounds check.
    ///
    /// # Safety
    ///
    /// `offset` is less than the block's length.
    #[inline]
    pub(super) unsafe fn waker_ref_unchecked(&self, offset: usize) -> WakerRef<'_> {
        // SAFETY: by the caller's contract, `offset` is in bounds.
        self.waker_ref_of(unsafe { self.signals.get_unchecked(offset) })
    }

    /// A waker for `signal`, one of this block's signals, that borrows this block.
    #[inline]
    fn waker_ref_of(&self, signal: &Signal) -> WakerRef<'_> {
        let data: *const Signal = signal;
        // SAFETY: `data` points at a signal of this block, which outlives the `WakerRef` (it borrows
        // `self`); the vtable's contract holds for it (see `VTABLE`) except that this waker owns no
        // count of the block, which is why `WakerRef` never drops it.
        let waker = unsafe { Waker::from_raw(RawWaker::new(data.cast(), &VTABLE)) };
        WakerRef {
            waker: ManuallyDrop::new(waker),
            _block: PhantomData,
        }
    }
}

/// The vtable of every slot waker. Its data pointer points at a [`Signal`] inside a [`Block`], and
/// each such `Waker` (but those of a [`WakerRef`]) owns one strong count of that block, so the
/// signal stays valid for as long as the waker exists.
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
    // pointer came from `Arc::into_raw` of a block that this waker keeps alive: taking one more
    // count for the clone is what `increment_strong_count` is for.
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
    fn new() -> Self {
        Signal {
            word: AtomicUsize::new(encode(NIL)),
            block: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Pushes slot `index` on the stack of woken slots, unless it is there already, and wakes the
    /// consumer if its push ends the consumer's sleep. See the invariants above [`Signal`].
    pub(super) fn wake(&self, index: usize, shared: &Shared) {
        let mut head = shared.head.load(Ordering::Relaxed);
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            // Both branches write the word with a read-modify-write (AcqRel): a wake-up that pushes
            // nothing still joins the release sequence that the consumer's `take` acquires, so
            // whatever the future's waking side did before calling `wake` is visible to the poll
            // that follows that `take`, however the future registered its waker.
            let new = if word & QUEUED != 0 {
                word // already on the stack: the consumer will poll this slot anyway
            } else {
                encode(head_link(head)) | QUEUED
            };
            match self
                .word
                .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if word & QUEUED != 0 => return,
                Ok(_) => break,
                Err(current) => word = current,
            }
        }
        // This wake-up set `QUEUED`: it owns the push, and nobody else writes the link until the
        // consumer takes the slot.
        loop {
            // AcqRel: release publishes the link to the consumer's acquiring swap of the stack;
            // acquire, on `ASLEEP`, makes the consumer's registration visible before the wake.
            match shared.head.compare_exchange_weak(
                head,
                index,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => {
                    if head_link(current) != head_link(head) {
                        // A swap, not a store: a plain store would end the release sequence of a
                        // wake-up that found `QUEUED` set meanwhile (see above).
                        self.word
                            .swap(encode(head_link(current)) | QUEUED, Ordering::Relaxed);
                    }
                    head = current;
                }
            }
        }
        if head == ASLEEP {
            shared.consumer.wake(); // this push ended the consumer's sleep
        }
    }

    /// The consumer takes this slot off its list: returns the next slot of the list; from here on a
    /// new wake-up pushes this one again.
    ///
    /// A swap (acquire and release), never a plain store: the slot is polled after it, and the poll
    /// must see every event whose wake-up found `QUEUED` still set. With a plain store (the
    /// store-buffering pattern) a future that registers its waker once and then checks an atomic
    /// flag could miss its last wake-up for good.
    #[inline]
    pub(super) fn take(&self) -> usize {
        // The link was written by the waker that set `QUEUED` before its push, which the consumer's
        // swap of the stack acquired.
        decode(self.word.swap(encode(NIL), Ordering::AcqRel))
    }
}

#[cfg(all(test, not(tasklane_loom)))]
mod tests {
    use super::*;

    #[test]
    fn links_round_trip() {
        for link in [NIL, TIMER, 0, 1, 63, 64, 1 << 40] {
            assert_eq!(decode(encode(link)), link);
            assert_eq!(decode(encode(link) | QUEUED), link);
            assert_eq!(encode(link) & QUEUED, 0);
        }
    }
}

#[cfg(all(test, tasklane_loom))]
#[path = "waker_loom.rs"]
mod loom_model;
