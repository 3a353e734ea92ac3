//! What the engine keeps in each slot besides its future, sized by the kind of lane: a lane that
//! runs each item once keeps nothing ([`Single`]), a retrying lane keeps the item, its attempt count
//! and its last back-off ([`Retried`]).

/// The engine's per-slot data for one item, as a [`Mode`](super::Mode) chooses it.
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
pub trait SlotMeta<K>: Default {
    /// A new item, at input position `index`, starts its first attempt; `keep` is what its retries
    /// need.
    fn begin(&mut self, keep: Option<K>, index: usize);
    /// The input position of the slot's item.
    fn index(&self) -> usize;
    /// Attempts started for the item (1-based).
    fn attempts(&self) -> u32;
    /// The item is finished: let go of what it kept.
    fn finish(&mut self);
    /// The item's last back-off in nanoseconds (for decorrelated jitter).
    fn prev_delay(&self) -> Option<u64>;
    /// Records the item's back-off.
    fn set_prev_delay(&mut self, delay: u64);
    /// Counts another attempt and returns what the item kept for it.
    fn next_attempt(&mut self) -> &K;
}

/// The per-slot data of a lane that never retries (each item has exactly one attempt): only the
/// item's input position (for `Error::index` and the indexed terminals).
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
#[derive(Debug, Default)]
pub struct Single {
    index: usize,
}

impl SlotMeta<()> for Single {
    #[inline]
    fn begin(&mut self, _: Option<()>, index: usize) {
        self.index = index;
    }

    #[inline]
    fn index(&self) -> usize {
        self.index
    }

    #[inline]
    fn attempts(&self) -> u32 {
        1
    }

    #[inline]
    fn finish(&mut self) {}

    fn prev_delay(&self) -> Option<u64> {
        None
    }

    fn set_prev_delay(&mut self, _: u64) {
        unreachable!("tasklane: a lane without retry never backs off")
    }

    fn next_attempt(&mut self) -> &() {
        unreachable!("tasklane: a lane without retry never retries")
    }
}

/// The per-slot data of a retrying lane.
#[allow(unreachable_pub)] // reason: part of the sealed `Mode` trait, unnameable outside the crate
#[derive(Debug)]
pub struct Retried<K> {
    keep: Option<K>,
    /// The item's input position.
    index: usize,
    /// Attempts started for the slot's item.
    attempts: u32,
    /// The item's last back-off (for decorrelated jitter).
    prev_delay: Option<u64>,
}

impl<K> Default for Retried<K> {
    fn default() -> Self {
        Retried {
            keep: None,
            index: 0,
            attempts: 0,
            prev_delay: None,
        }
    }
}

#[cfg(test)]
impl<K> Retried<K> {
    /// An item that has made `u32::MAX` attempts (for the saturation test).
    pub(crate) fn saturated(keep: K) -> Self {
        Retried {
            keep: Some(keep),
            index: 0,
            attempts: u32::MAX,
            prev_delay: None,
        }
    }
}

impl<K> SlotMeta<K> for Retried<K> {
    #[inline]
    fn begin(&mut self, keep: Option<K>, index: usize) {
        self.keep = keep;
        self.index = index;
        self.attempts = 1;
        self.prev_delay = None;
    }

    #[inline]
    fn attempts(&self) -> u32 {
        self.attempts
    }

    #[inline]
    fn index(&self) -> usize {
        self.index
    }

    #[inline]
    fn finish(&mut self) {
        self.keep = None;
    }

    fn prev_delay(&self) -> Option<u64> {
        self.prev_delay
    }

    fn set_prev_delay(&mut self, delay: u64) {
        self.prev_delay = Some(delay);
    }

    fn next_attempt(&mut self) -> &K {
        // Saturating: `settle` never asks for an attempt past `u32::MAX` (see `Retrying::settle`).
        self.attempts = self.attempts.saturating_add(1);
        self.keep.as_ref().expect("a retried item keeps its input")
    }
}
