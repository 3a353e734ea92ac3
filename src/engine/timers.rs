//! Deadlines of one lane: attempt timeouts and back-offs, in two structures and no allocation per item.
//!
//! - Timeouts all have the same length, so in order of their start they are also in order of their
//!   deadline: a FIFO is a priority queue here. It is an intrusive doubly linked list through the
//!   slots ([`Link`], kept in each slot), so a finished attempt leaves it in O(1) and nothing stale
//!   piles up. An attempt joins it only at a clock reading after it first returned `Pending` (see
//!   `Timers::stamp_due`); until then it is one entry in a plain vector of recent attempts, so
//!   an attempt that finishes before that reading never touches the list or the clock.
//! - Back-off deadlines are random (jitter), so they go into a binary heap; an item stays in it until
//!   its deadline (a slot in back-off has nothing else to do), so it holds at most `limit` entries and
//!   stops allocating once it has grown to that.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::waker::NIL;

/// A slot's timeout bookkeeping: its place in the timeout list, and its current attempt's record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    prev: usize,
    next: usize,
    /// Nanoseconds since the clock's origin, while linked.
    deadline: u64,
    /// Whether the slot is in the list.
    linked: bool,
    /// Whether the slot's current attempt has been recorded (it returned `Pending`).
    recorded: bool,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            prev: NIL,
            next: NIL,
            deadline: 0,
            linked: false,
            recorded: false,
        }
    }
}

impl Link {
    /// Whether the slot is in the list.
    #[inline]
    pub(crate) fn is_linked(&self) -> bool {
        self.linked
    }

    /// Records the slot's current attempt: `true` the first time for this attempt.
    #[inline]
    pub(crate) fn record(&mut self) -> bool {
        !std::mem::replace(&mut self.recorded, true)
    }

    /// The slot's attempt ended (the slot must not be linked any more).
    #[inline]
    pub(crate) fn end(&mut self) {
        debug_assert!(!self.linked);
        self.recorded = false;
    }

    /// Whether the slot has a recorded attempt that is not in the list yet.
    ///
    /// NOTE: a record made for an earlier attempt of the slot may find the slot's *current* attempt
    /// here; that attempt was recorded after the last stamping too (records are emptied at every
    /// stamping), so stamping it now gives it the same deadline its own record would.
    #[inline]
    pub(crate) fn awaits_stamp(&self) -> bool {
        self.recorded && !self.linked
    }
}

/// Gives the list access to the links kept by slot index.
pub(crate) trait Links {
    fn link(&mut self, index: usize) -> &mut Link;
}

impl Links for Vec<Link> {
    #[inline]
    fn link(&mut self, index: usize) -> &mut Link {
        &mut self[index]
    }
}

/// The FIFO of running attempts with a deadline, earliest first.
///
/// Invariant: deadlines are non-decreasing from `head` to `tail` (every entry has the same timeout
/// and entries are appended in order of their stamping).
#[derive(Debug)]
pub(crate) struct TimeoutList {
    head: usize,
    tail: usize,
}

impl Default for TimeoutList {
    fn default() -> Self {
        TimeoutList {
            head: NIL,
            tail: NIL,
        }
    }
}

impl TimeoutList {
    /// Appends an attempt due at `deadline` (not earlier than any deadline in the list).
    pub(crate) fn push(&mut self, links: &mut impl Links, index: usize, deadline: u64) {
        let tail = self.tail;
        let link = links.link(index);
        link.prev = tail;
        link.next = NIL;
        link.deadline = deadline;
        link.linked = true;
        if tail == NIL {
            self.head = index;
        } else {
            links.link(tail).next = index;
        }
        self.tail = index;
    }

    /// Takes an attempt out; a no-op if it is not in the list.
    pub(crate) fn remove(&mut self, links: &mut impl Links, index: usize) {
        let link = links.link(index);
        if !link.linked {
            return;
        }
        link.linked = false;
        let (prev, next) = (link.prev, link.next);
        if prev == NIL {
            self.head = next;
        } else {
            links.link(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            links.link(next).prev = prev;
        }
    }

    /// The earliest deadline.
    pub(crate) fn earliest(&self, links: &mut impl Links) -> Option<u64> {
        if self.head == NIL {
            return None;
        }
        Some(links.link(self.head).deadline)
    }

    /// Takes out and returns the oldest attempt if its deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, links: &mut impl Links, now: u64) -> Option<usize> {
        let head = self.head;
        if self.earliest(links)? > now {
            return None;
        }
        self.remove(links, head);
        Some(head)
    }
}

/// Slots backing off, by deadline.
#[derive(Debug, Default)]
pub(crate) struct BackoffQueue {
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

impl BackoffQueue {
    pub(crate) fn push(&mut self, deadline: u64, index: usize) {
        self.heap.push(Reverse((deadline, index)));
    }

    pub(crate) fn earliest(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    pub(crate) fn pop_expired(&mut self, now: u64) -> Option<usize> {
        if self.earliest()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, index))| index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_expires_in_order_and_removes_anywhere() {
        let mut links = vec![Link::default(); 8];
        let mut list = TimeoutList::default();
        for i in 0..4 {
            list.push(&mut links, i, 100);
        }
        list.push(&mut links, 4, 200);
        list.remove(&mut links, 1);
        list.remove(&mut links, 1); // twice is a no-op
        assert_eq!(list.earliest(&mut links), Some(100));
        assert_eq!(list.pop_expired(&mut links, 99), None);
        assert_eq!(list.pop_expired(&mut links, 100), Some(0));
        assert_eq!(list.pop_expired(&mut links, 100), Some(2));
        list.remove(&mut links, 3);
        assert_eq!(list.pop_expired(&mut links, 199), None);
        assert_eq!(list.pop_expired(&mut links, 250), Some(4));
        assert_eq!(list.earliest(&mut links), None);
        list.push(&mut links, 5, 300);
        list.remove(&mut links, 5);
        assert_eq!(list.earliest(&mut links), None);
    }

    #[test]
    fn an_attempt_is_recorded_once_and_stamped_once() {
        let mut links = vec![Link::default(); 2];
        assert!(links[0].record());
        assert!(!links[0].record()); // once per attempt
        assert!(links[0].awaits_stamp());
        let mut list = TimeoutList::default();
        list.push(&mut links, 0, 10);
        assert!(!links[0].awaits_stamp()); // stamped
        list.remove(&mut links, 0);
        links[0].end();
        assert!(!links[0].awaits_stamp());
        assert!(links[0].record()); // the next attempt
    }

    #[test]
    fn backoffs_come_out_by_deadline() {
        let mut q = BackoffQueue::default();
        q.push(30, 1);
        q.push(10, 2);
        q.push(20, 3);
        assert_eq!(q.pop_expired(5), None);
        assert_eq!(q.pop_expired(25), Some(2));
        assert_eq!(q.pop_expired(25), Some(3));
        assert_eq!(q.earliest(), Some(30));
    }
}
