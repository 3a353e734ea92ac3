//! The shared budget of one [`Limiter`](super::Limiter): a concurrency count, a GCRA rate and the
//! line of lanes waiting for them. Poll-free: it is asked with a clock reading and a waiter's id,
//! and answers; the caller holds the lock around it and wakes what it names.
//!
//! Terms as in the lane's own rate limiter (`crate::rate`): the period `T`, the burst `b`, the
//! tolerance `tau = (b - 1) T`, the theoretical arrival time `tat`. A grant of cost `c` needs
//! `c` units of concurrency free and `tat + (c - 1) T - tau <= now`, and moves `tat` on by `c T`
//! (from `tat` itself while lanes wait for the rate and the schedule is at most [`CATCH_UP`] behind,
//! so late timer wake-ups cost no throughput; else from `max(tat, now)`).
//!
//! Fairness: the line is first come, first served. While anyone waits, only the head of the line
//! may be granted anything; everyone else who asks joins the line at its back. A lane granted at the
//! head leaves the line, so its next start waits its turn behind the others: with several lanes
//! waiting, grants go round them one at a time, whatever each has queued up behind its own turn.
//! Without a rate, units that come back while lanes wait are handed to them at once, in line order
//! ([`Budget::hand_off`]): they stay counted in `in_flight`, reserved for the waiter until it asks
//! again, so no lane can take them first, and the count of units in use never dips while lanes
//! wait, however long a waiter takes to wake (on another thread, say).
//!
//! The concurrency count lives in atomics beside the lock, so that a grant of a limiter without a
//! rate, while nobody waits, takes one compare-and-swap and its release one subtraction: no lock.
//! Everything else (the line, the rate's schedule) is behind the lock. Whether a release must wake
//! the line is decided the way a lost wake-up is ruled out in the engine's wakers: a waiter that
//! finds no room publishes the line's length and then looks for room again, a release gives its
//! units back and then reads the line's length (all sequentially consistent), so either the waiter
//! sees the room or the release sees the waiter.
//!
//! Invariants (between calls): `in_flight` is the sum of the costs granted and not yet released or
//! cancelled; `waiting` is the line's length; a waiter id is in `line` at most once; whenever
//! `line` is not empty and there is room under the concurrency, its head has been woken since the
//! room appeared.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use crate::rate::CATCH_UP;

/// No concurrency limit.
pub(crate) const UNLIMITED: u64 = u64::MAX;

/// What [`Budget::ask`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Granted: the units are taken.
    Granted,
    /// Denied by the rate: ask again at this time (nanoseconds on the limiter's clock). The asker
    /// is at the head of the line.
    NotBefore(u64),
    /// Denied: the asker is in the line, and is woken when it is its turn and there is room.
    Queued,
}

/// A lane waiting in line: its waiter id, the waker to wake when it is its turn, what it asked
/// for, and whether units were handed to it (see [`Budget::hand_off`]).
#[derive(Debug)]
struct Waiting {
    id: u64,
    waker: Waker,
    cost: u32,
    /// Its `cost` units are counted in `in_flight` already, kept for it until it asks again (or
    /// leaves, which gives them back).
    reserved: bool,
}

/// The schedule of the rate, if there is one.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    period: u128,
    burst: u32,
    tat: u128,
    /// A lane was denied by the rate since the schedule last caught up with the present: grants
    /// follow the schedule (`tat + c T`) instead of the clock.
    waiting: bool,
}

impl Schedule {
    fn tau(&self) -> u128 {
        self.period * u128::from(self.burst - 1)
    }

    /// The earliest time a grant of `cost` is allowed (`u64::MAX`: never, for a cost above the
    /// burst, which no schedule allows: its `c T` is more than the tolerance of a burst).
    fn next_allowed(&self, cost: u32) -> u64 {
        if cost > self.burst {
            return u64::MAX;
        }
        let last = self.tat + self.period * u128::from(cost.saturating_sub(1));
        u64::try_from(last.saturating_sub(self.tau())).unwrap_or(u64::MAX)
    }

    fn grant(&mut self, cost: u32, now: u64) {
        let now = u128::from(now);
        let from = if self.waiting && now <= self.tat + u128::from(CATCH_UP) {
            self.tat
        } else {
            self.tat.max(now)
        };
        self.tat = from + self.period * u128::from(cost);
        if self.tat.saturating_sub(self.tau()) > now {
            self.waiting = false; // caught up: no credit is owed any more
        }
    }
}

/// What is behind a [`Budget`]'s lock.
#[derive(Debug)]
struct Locked {
    rate: Option<Schedule>,
    line: VecDeque<Waiting>,
    /// The last grant's `tat` before and after, so that a grant cancelled before any other grant
    /// gives its place in the schedule back.
    last_grant: Option<(u128, u128)>,
}

/// A limiter's shared state. See the module docs.
#[derive(Debug)]
pub(crate) struct Budget {
    concurrency: AtomicU64,
    in_flight: AtomicU64,
    /// The line's length, published after every change of the line.
    waiting: AtomicUsize,
    /// Whether there is a rate (then every grant takes the lock).
    rated: AtomicBool,
    locked: Mutex<Locked>,
}

impl Budget {
    pub(crate) fn new(concurrency: u64, rate: Option<(u64, u32)>) -> Self {
        Budget {
            concurrency: AtomicU64::new(concurrency),
            in_flight: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            rated: AtomicBool::new(rate.is_some()),
            locked: Mutex::new(Locked {
                rate: rate.map(|(period, burst)| Schedule {
                    period: u128::from(period),
                    burst,
                    tat: 0,
                    waiting: false,
                }),
                line: VecDeque::new(),
                last_grant: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Locked> {
        // Every change under the lock is made in one step before anything can panic (a waker's
        // `wake` may panic, after it): a poisoned lock is used as it is.
        self.locked.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(SeqCst)
    }

    pub(crate) fn concurrency(&self) -> u64 {
        self.concurrency.load(SeqCst)
    }

    /// Lanes waiting in line.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(SeqCst)
    }

    /// Whether the budget is as a fresh one would be at `now`: nothing in flight, nobody in line,
    /// and the rate's schedule (if any) caught up with the present.
    pub(crate) fn at_rest(&self, now: u64) -> bool {
        self.in_flight() == 0
            && self.waiting() == 0
            && self.lock().rate.map_or(true, |r| r.tat <= u128::from(now))
    }

    /// Whether a grant of `cost` could ever be made (under the concurrency and within the burst).
    pub(crate) fn can_ever(&self, cost: u32) -> bool {
        u64::from(cost) <= self.concurrency() && self.lock().rate.map_or(true, |r| cost <= r.burst)
    }

    /// Whether there is room for `cost` units under the concurrency now.
    fn has_room(&self, cost: u32) -> bool {
        self.in_flight
            .load(SeqCst)
            .checked_add(u64::from(cost))
            .is_some_and(|after| after <= self.concurrency.load(SeqCst))
    }

    /// Takes `cost` units of the concurrency if there is room.
    #[inline]
    fn try_take(&self, cost: u32) -> bool {
        let concurrency = self.concurrency.load(SeqCst);
        let mut now = self.in_flight.load(SeqCst);
        loop {
            let Some(after) = now
                .checked_add(u64::from(cost))
                .filter(|&a| a <= concurrency)
            else {
                return false;
            };
            match self
                .in_flight
                .compare_exchange_weak(now, after, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => now = actual,
            }
        }
    }

    /// Asks for `cost` units for the waiter `id`. See [`Answer`]; a waiter that has to wait keeps
    /// (or takes) its place in line, with `waker`.
    ///
    /// `now` is read only if the budget has a rate. Without a rate and with nobody in line, a
    /// grant takes no lock.
    #[inline]
    pub(crate) fn ask(
        &self,
        id: u64,
        cost: u32,
        now: impl FnOnce() -> u64,
        waker: &Waker,
    ) -> Answer {
        if self.grant_now(cost) {
            return Answer::Granted;
        }
        self.ask_locked(id, cost, now, waker)
    }

    /// The grant that takes no lock: no rate, nobody in line, and room for `cost` units (then they
    /// are taken). `false`: ask with [`Budget::ask`].
    #[inline(always)]
    pub(crate) fn grant_now(&self, cost: u32) -> bool {
        !self.rated.load(SeqCst) && self.waiting.load(SeqCst) == 0 && self.try_take(cost)
    }

    /// [`Budget::ask`] under the lock: there is a rate, someone waits, or there was no room.
    #[cold]
    fn ask_locked(&self, id: u64, cost: u32, now: impl FnOnce() -> u64, waker: &Waker) -> Answer {
        let mut locked = self.lock();
        if locked.rate.is_none() {
            // In line (at its back, if new), then the room there is goes to the line in order
            // (see `hand_off`): this waiter is granted if its turn came and its cost fits.
            self.join(&mut locked, id, waker, cost);
            self.hand_off(&mut locked);
            return match self.claim(&mut locked, id, cost) {
                true => {
                    self.hand_off(&mut locked);
                    Answer::Granted
                }
                false => Answer::Queued,
            };
        }
        if self.claim(&mut locked, id, cost) {
            return Answer::Granted; // units handed to it before the rate was set
        }
        let at_head = match locked.line.front() {
            None => true,
            Some(head) => head.id == id,
        };
        if !at_head {
            self.join(&mut locked, id, waker, cost);
            return Answer::Queued;
        }
        if !self.has_room(cost) {
            self.join(&mut locked, id, waker, cost);
            // Published the line; look for room once more (see the module docs): a release that
            // came in between did not see this waiter.
            if !self.has_room(cost) {
                return Answer::Queued;
            }
        }
        let now = now();
        let rate = locked.rate.as_mut().expect("a rate");
        let due = rate.next_allowed(cost);
        if due > now {
            rate.waiting = true;
            self.join(&mut locked, id, waker, cost);
            return Answer::NotBefore(due);
        }
        if !self.try_take(cost) {
            self.join(&mut locked, id, waker, cost);
            // Published the line; look for room once more (see the module docs).
            if !self.try_take(cost) {
                return Answer::Queued;
            }
        }
        let rate = locked.rate.as_mut().expect("a rate");
        let before = rate.tat;
        rate.grant(cost, now);
        let after = rate.tat;
        locked.last_grant = Some((before, after));
        if locked.line.front().is_some_and(|head| head.id == id) {
            locked.line.pop_front(); // it was the head: its next start waits its turn
            self.waiting.store(locked.line.len(), SeqCst);
        }
        self.hand_off(&mut locked);
        Answer::Granted
    }

    /// Takes waiter `id` out of the line if units were handed to it (they are its grant: for a
    /// cost other than the one it waited with, the difference is settled, and it stays in line if
    /// that does not fit). Returns whether it was granted.
    fn claim(&self, locked: &mut Locked, id: u64, cost: u32) -> bool {
        let Some(at) = locked.line.iter().position(|w| w.id == id && w.reserved) else {
            return false;
        };
        let reserved = locked.line[at].cost;
        if reserved != cost {
            self.in_flight.fetch_sub(u64::from(reserved), SeqCst);
            if !self.try_take(cost) {
                let w = &mut locked.line[at];
                w.reserved = false;
                w.cost = cost;
                return false;
            }
        }
        locked.line.remove(at);
        self.waiting.store(locked.line.len(), SeqCst);
        true
    }

    /// Puts `id` at the back of the line, or updates its waker and cost if it is in line already.
    fn join(&self, locked: &mut Locked, id: u64, waker: &Waker, cost: u32) {
        match locked.line.iter_mut().find(|w| w.id == id) {
            Some(w) => {
                if !w.waker.will_wake(waker) {
                    w.waker = waker.clone();
                }
                if !w.reserved {
                    w.cost = cost;
                }
            }
            None => {
                locked.line.push_back(Waiting {
                    id,
                    waker: waker.clone(),
                    cost,
                    reserved: false,
                });
                self.waiting.store(locked.line.len(), SeqCst);
            }
        }
    }

    /// Hands the room there is to the lanes in line, in order: without a rate, each waiter from
    /// the front whose cost fits gets its units reserved and is woken (the first that does not fit
    /// stops it: nobody is served out of turn); with a rate, the head is woken if there is room,
    /// to ask (the schedule decides then).
    fn hand_off(&self, locked: &mut Locked) {
        if locked.rate.is_some() {
            self.wake_head(locked);
            return;
        }
        for w in locked.line.iter_mut() {
            if w.reserved {
                continue;
            }
            if !self.try_take(w.cost) {
                break;
            }
            w.reserved = true;
            w.waker.wake_by_ref();
        }
    }

    /// Gives back `cost` units of a grant whose attempt ended.
    #[inline]
    pub(crate) fn release(&self, cost: u32) {
        self.release_units(u64::from(cost));
    }

    /// Gives back `units` (the costs of one or more grants whose attempts ended).
    #[inline]
    pub(crate) fn release_units(&self, units: u64) {
        let before = self.in_flight.fetch_sub(units, SeqCst);
        debug_assert!(before >= units);
        if self.waiting.load(SeqCst) > 0 {
            self.wake_head_locked();
        }
    }

    /// Whether a holder of units of an attempt that ended may keep them for its next start instead
    /// of giving them back and asking again: only when that grant would have taken no lock and
    /// made no one wait (no rate, nobody in line) and the units held are within the concurrency
    /// (which may have been lowered since). The count in flight stays what it is.
    #[inline(always)]
    pub(crate) fn may_keep(&self) -> bool {
        !self.rated.load(SeqCst)
            && self.waiting.load(SeqCst) == 0
            && self.in_flight.load(SeqCst) <= self.concurrency.load(SeqCst)
    }

    /// Hands the room to the line ([`Budget::hand_off`]), taking the lock.
    #[cold]
    fn wake_head_locked(&self) {
        self.hand_off(&mut self.lock());
    }

    /// Takes back a grant that was not used (its attempt never started): its units, and its place
    /// in the rate's schedule if no grant came after it.
    pub(crate) fn cancel(&self, cost: u32) {
        {
            let mut locked = self.lock();
            if let Some((before, after)) = locked.last_grant.take() {
                if let Some(rate) = &mut locked.rate {
                    if rate.tat == after {
                        rate.tat = before;
                    }
                }
            }
        }
        self.release(cost);
    }

    /// The waiter `id` no longer waits (its lane is gone, or wants nothing now).
    pub(crate) fn leave(&self, id: u64) {
        if self.waiting.load(SeqCst) == 0 {
            return;
        }
        let mut locked = self.lock();
        let Some(at) = locked.line.iter().position(|w| w.id == id) else {
            return;
        };
        let gone = locked.line.remove(at).expect("found");
        self.waiting.store(locked.line.len(), SeqCst);
        if gone.reserved {
            // The units handed to it go to the next in line.
            self.in_flight.fetch_sub(u64::from(gone.cost), SeqCst);
        }
        if at == 0 || gone.reserved {
            self.hand_off(&mut locked);
        }
    }

    /// Wakes the head of the line if there is room under the concurrency for a grant (it then asks,
    /// and is granted, or told when the rate allows).
    fn wake_head(&self, locked: &Locked) {
        if let Some(head) = locked.line.front() {
            if self.in_flight.load(SeqCst) < self.concurrency.load(SeqCst) {
                head.waker.wake_by_ref();
            }
        }
    }

    /// Wakes every waiter that holds no handed-off units (a setting changed: who can go now is for
    /// each of them to ask; those with units were woken when they got them).
    fn wake_all(locked: &Locked) {
        for w in locked.line.iter().filter(|w| !w.reserved) {
            w.waker.wake_by_ref();
        }
    }

    pub(crate) fn set_concurrency(&self, concurrency: u64) {
        self.concurrency.store(concurrency, SeqCst);
        let mut locked = self.lock();
        self.hand_off(&mut locked);
        Self::wake_all(&locked);
    }

    /// Sets the rate (`None`: none), keeping the schedule's place.
    pub(crate) fn set_rate(&self, rate: Option<(u64, u32)>) {
        let mut locked = self.lock();
        locked.rate = match (locked.rate, rate) {
            (_, None) => None,
            (Some(old), Some((period, burst))) => Some(Schedule {
                period: u128::from(period),
                burst,
                ..old
            }),
            (None, Some((period, burst))) => Some(Schedule {
                period: u128::from(period),
                burst,
                tat: 0,
                waiting: false,
            }),
        };
        self.rated.store(locked.rate.is_some(), SeqCst);
        locked.last_grant = None;
        Self::wake_all(&locked);
    }
}

#[cfg(all(test, not(tasklane_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    const MS: u64 = 1_000_000;

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::Relaxed)
    }

    #[test]
    fn units_may_be_kept_only_without_a_rate_a_line_or_an_excess() {
        let b = Budget::new(2, None);
        let (_, waker) = counter();
        assert_eq!(b.ask(1, 1, || 0, &waker), Answer::Granted);
        assert_eq!(b.ask(1, 1, || 0, &waker), Answer::Granted);
        assert!(b.may_keep(), "full, but within the concurrency");
        assert_eq!(b.ask(2, 1, || 0, &waker), Answer::Queued);
        assert!(!b.may_keep(), "someone waits: the units go to the line");
        b.release_units(2);
        assert_eq!(
            b.waiting(),
            1,
            "handed to the waiter, which is still in line"
        );
        assert!(!b.may_keep());
        assert_eq!(b.ask(2, 1, || 0, &waker), Answer::Granted);
        assert!(b.may_keep());
        assert_eq!(b.ask(3, 1, || 0, &waker), Answer::Granted);
        assert_eq!(b.in_flight(), 2);
        b.set_concurrency(1);
        assert!(!b.may_keep(), "2 in flight, 1 allowed: give it back");
        b.release_units(1);
        assert!(b.may_keep(), "1 in flight, 1 allowed");
        b.set_concurrency(4);
        b.set_rate(Some((1_000, 1)));
        assert!(!b.may_keep(), "a rate: every start asks its schedule");
    }

    #[test]
    fn concurrency_grants_until_full_then_queues_and_wakes_on_release() {
        let b = Budget::new(2, None);
        let (count, waker) = counter();
        assert_eq!(b.ask(1, 1, || 0, &waker), Answer::Granted);
        assert_eq!(b.ask(1, 1, || 0, &waker), Answer::Granted);
        assert_eq!(b.ask(1, 1, || 0, &waker), Answer::Queued);
        assert_eq!((b.in_flight(), b.waiting()), (2, 1));
        b.release(1);
        assert_eq!(woken(&count), 1, "room: the head is woken");
        assert_eq!(b.ask(1, 1, || 0, &waker), Answer::Granted);
        assert_eq!(b.waiting(), 0, "granted at the head: out of line");
    }

    #[test]
    fn the_line_is_first_come_first_served_one_grant_per_turn() {
        let b = Budget::new(1, None);
        let (_, w) = counter();
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::Granted);
        assert_eq!(b.ask(2, 1, || 0, &w), Answer::Queued);
        assert_eq!(b.ask(3, 1, || 0, &w), Answer::Queued);
        b.release(1);
        assert_eq!(
            b.ask(1, 1, || 0, &w),
            Answer::Queued,
            "1 goes behind 2 and 3"
        );
        assert_eq!(b.ask(3, 1, || 0, &w), Answer::Queued, "not 3's turn");
        assert_eq!(b.ask(2, 1, || 0, &w), Answer::Granted);
        b.release(1);
        assert_eq!(b.ask(3, 1, || 0, &w), Answer::Granted);
        b.release(1);
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::Granted);
    }

    #[test]
    fn leaving_the_head_of_the_line_wakes_the_next() {
        let b = Budget::new(1, None);
        let (_, w1) = counter();
        let (c2, w2) = counter();
        assert_eq!(b.ask(9, 1, || 0, &w1), Answer::Granted);
        assert_eq!(b.ask(1, 1, || 0, &w1), Answer::Queued);
        assert_eq!(b.ask(2, 1, || 0, &w2), Answer::Queued);
        b.release(1);
        b.leave(1);
        assert!(woken(&c2) >= 1);
        assert_eq!(b.ask(2, 1, || 0, &w2), Answer::Granted);
    }

    #[test]
    fn the_rate_spaces_grants_and_names_the_next() {
        let b = Budget::new(UNLIMITED, Some((10 * MS, 1)));
        let (_, w) = counter();
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::Granted);
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::NotBefore(10 * MS));
        assert_eq!(b.ask(2, 1, || 0, &w), Answer::Queued, "behind the head");
        assert_eq!(b.ask(1, 1, || 10 * MS, &w), Answer::Granted);
        assert_eq!(b.ask(2, 1, || 10 * MS, &w), Answer::NotBefore(20 * MS));
    }

    #[test]
    fn a_late_wake_up_while_waiting_catches_up() {
        let b = Budget::new(UNLIMITED, Some((10_000, 1))); // 100,000 per second
        let (_, w) = counter();
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::Granted);
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::NotBefore(10_000));
        let mut granted = 0;
        while b.ask(1, 1, || 65_000, &w) == Answer::Granted {
            granted += 1;
        }
        assert_eq!(granted, 6, "the starts due at 10, 20, .., 60 µs");
    }

    #[test]
    fn a_cancelled_grant_gives_back_its_units_and_its_place() {
        let b = Budget::new(3, Some((10 * MS, 1)));
        let (_, w) = counter();
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::Granted);
        b.cancel(1);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(
            b.ask(1, 1, || 0, &w),
            Answer::Granted,
            "the place is given back"
        );
    }

    #[test]
    fn costs_take_units_of_both() {
        let b = Budget::new(4, Some((10 * MS, 4)));
        let (_, w) = counter();
        assert!(b.can_ever(4) && !b.can_ever(5));
        assert_eq!(b.ask(1, 3, || 0, &w), Answer::Granted);
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::Granted);
        assert_eq!(
            b.ask(1, 1, || 0, &w),
            Answer::Queued,
            "4 of 4 units in flight"
        );
        b.release(4);
        assert_eq!(
            b.ask(1, 1, || 0, &w),
            Answer::NotBefore(10 * MS),
            "the burst of 4 is spent"
        );
    }

    #[test]
    fn raising_the_concurrency_wakes_every_waiter() {
        let b = Budget::new(1, None);
        let (c, w) = counter();
        assert_eq!(b.ask(1, 1, || 0, &w), Answer::Granted);
        assert_eq!(b.ask(2, 1, || 0, &w), Answer::Queued);
        assert_eq!(b.ask(3, 1, || 0, &w), Answer::Queued);
        b.set_concurrency(3);
        assert_eq!(woken(&c), 2);
        assert_eq!(b.ask(2, 1, || 0, &w), Answer::Granted);
        assert_eq!(b.ask(3, 1, || 0, &w), Answer::Granted);
    }
}
