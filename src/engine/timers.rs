//! Deadlines of one lane: attempt timeouts and back-offs, in two structures and no allocation per item.
//!
//! - Timeouts all have the same length, so in order of their start they are also in order of their
//!   deadline: a FIFO is a priority queue here. It is an intrusive doubly linked list through the
//!   slots ([`Link`], kept in each slot), so a finished attempt leaves it in O(1) and nothing stale
//!   piles up. New entries are *unstamped*: the lane reads the clock once for many of them (see
//!   `Engine::stamp_timeouts`) and stamps all of them with `now + timeout`; an attempt that finishes
//!   before that never costs a clock read.
//! - Back-off deadlines are random (jitter), so they go into a binary heap; an item stays in it until
//!   its deadline (a slot in back-off has nothing else to do), so it holds at most `limit` entries and
//!   stops allocating once it has grown to that.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::slots::NIL;

/// A slot's place in the timeout list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    prev: usize,
    next: usize,
    /// Nanoseconds since the clock's origin; meaningless while unstamped.
    deadline: u64,
    /// Whether the slot is in the list.
    linked: bool,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            prev: NIL,
            next: NIL,
            deadline: 0,
            linked: false,
        }
    }
}

impl Link {
    /// Whether the slot is in the list.
    #[inline]
    pub(crate) fn is_linked(&self) -> bool {
        self.linked
    }
}

/// Gives the list access to the links kept in the slots.
pub(crate) trait Links {
    fn link(&mut self, index: usize) -> &mut Link;
}

/// The FIFO of running attempts with a timeout, oldest first.
///
/// Invariant: entries from `head` up to (excluding) `unstamped` have deadlines in non-decreasing
/// order; entries from `unstamped` to `tail` have none yet.
#[derive(Debug)]
pub(crate) struct TimeoutList {
    head: usize,
    tail: usize,
    /// The first unstamped entry (`NIL`: all are stamped).
    unstamped: usize,
}

impl Default for TimeoutList {
    fn default() -> Self {
        TimeoutList {
            head: NIL,
            tail: NIL,
            unstamped: NIL,
        }
    }
}

impl TimeoutList {
    /// Appends a just-started attempt, unstamped.
    pub(crate) fn push(&mut self, links: &mut impl Links, index: usize) {
        let tail = self.tail;
        *links.link(index) = Link {
            prev: tail,
            next: NIL,
            deadline: 0,
            linked: true,
        };
        if tail == NIL {
            self.head = index;
        } else {
            links.link(tail).next = index;
        }
        self.tail = index;
        if self.unstamped == NIL {
            self.unstamped = index;
        }
    }

    /// Takes an attempt out (it finished or was dropped); a no-op if it is not in the list.
    pub(crate) fn remove(&mut self, links: &mut impl Links, index: usize) {
        let link = *links.link(index);
        if !link.linked {
            return;
        }
        links.link(index).linked = false;
        if link.prev == NIL {
            self.head = link.next;
        } else {
            links.link(link.prev).next = link.next;
        }
        if link.next == NIL {
            self.tail = link.prev;
        } else {
            links.link(link.next).prev = link.prev;
        }
        if self.unstamped == index {
            self.unstamped = link.next;
        }
    }

    /// Whether some entries wait for their deadline.
    pub(crate) fn has_unstamped(&self) -> bool {
        self.unstamped != NIL
    }

    /// Gives every unstamped entry the deadline `deadline` (which is not earlier than any stamped one).
    pub(crate) fn stamp(&mut self, links: &mut impl Links, deadline: u64) {
        let mut cur = self.unstamped;
        while cur != NIL {
            let link = links.link(cur);
            link.deadline = deadline;
            cur = link.next;
        }
        self.unstamped = NIL;
    }

    /// The earliest stamped deadline.
    pub(crate) fn earliest(&mut self, links: &mut impl Links) -> Option<u64> {
        if self.head == NIL || self.head == self.unstamped {
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

    struct Store(Vec<Link>);
    impl Links for Store {
        fn link(&mut self, index: usize) -> &mut Link {
            &mut self.0[index]
        }
    }

    #[test]
    fn unstamped_entries_never_expire_and_removal_is_anywhere() {
        let mut store = Store(vec![Link::default(); 8]);
        let mut list = TimeoutList::default();
        for i in 0..4 {
            list.push(&mut store, i);
        }
        assert_eq!(list.pop_expired(&mut store, u64::MAX), None);
        list.stamp(&mut store, 100);
        list.push(&mut store, 4); // started later: unstamped
        list.remove(&mut store, 1);
        list.remove(&mut store, 1); // twice is a no-op
        assert_eq!(list.earliest(&mut store), Some(100));
        assert_eq!(list.pop_expired(&mut store, 99), None);
        assert_eq!(list.pop_expired(&mut store, 100), Some(0));
        assert_eq!(list.pop_expired(&mut store, 100), Some(2));
        list.remove(&mut store, 3);
        assert_eq!(list.pop_expired(&mut store, u64::MAX), None); // 4 is unstamped
        assert!(list.has_unstamped());
        list.stamp(&mut store, 200);
        assert_eq!(list.pop_expired(&mut store, 250), Some(4));
        assert_eq!(list.earliest(&mut store), None);
        list.push(&mut store, 5);
        list.remove(&mut store, 5);
        assert!(!list.has_unstamped());
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
