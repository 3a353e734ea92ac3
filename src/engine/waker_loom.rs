//! A model of the wake protocol, checked by loom under every interleaving (and every weak-memory
//! outcome loom explores) within its preemption bound: `RUSTFLAGS="--cfg tasklane_loom" cargo test --release
//! --lib loom`. It runs the real [`Signal::wake`], [`Signal::take`] and the consumer's
//! [`Shared::take_woken`] / [`Shared::may_sleep`]; only the waker vtable is left out (it only finds
//! the signal and calls `wake`).
//!
//! Each future in the models is of the kind that broke the old protocol: it registers nothing at
//! all after its first poll and only checks an `AtomicBool` (Acquire) that its waking side sets
//! (Release) before it calls `wake`. A model passes when the consumer sees every event; a lost
//! wake-up leaves the consumer parked in `block_on` with every other thread finished, which loom
//! reports as a deadlock. Interleavings covered:
//!
//! - `a_wake_up_while_the_slot_is_queued_is_not_lost`: a spurious wake-up pushes the slot, and the
//!   real one (event, then `wake`) comes while it is still queued, just before, during or after the
//!   consumer's `take` and poll: the store-buffering race of the old plain-store `take`.
//! - `two_wakers_of_one_slot_and_the_consumer`: the same with the spurious and the real wake-up on
//!   two threads, so the real one can find `QUEUED` set by the other between its fetch and its
//!   push (the release-sequence case that made the link write a swap).
//! - `two_slots_pushed_concurrently_are_both_polled`: two slots woken from two threads race on the
//!   stack's head (the link rewrite after a failed push) and on the consumer's sleep (`ASLEEP`).
//! - `a_link_rewritten_after_a_lost_race_keeps_every_wake_up_visible` (four threads, ignored by
//!   default: about 5 minutes): slot 0 woken spuriously and for real on two threads while slot 1's
//!   push races for the head, so the spurious push can lose the race and rewrite its link after
//!   the real wake-up found `QUEUED` set.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use loom::sync::atomic::AtomicBool;
use loom::thread;

use super::{Ordering, Shared, Signal, NIL};

/// The consumer's side: slots whose futures check `events[i]`; done when every event was seen.
struct Consumer {
    shared: Arc<Shared>,
    signals: Arc<Vec<Signal>>,
    events: Arc<Vec<AtomicBool>>,
    seen: Vec<bool>,
}

impl Consumer {
    /// Polls slot `index`'s future: it sees its event or not.
    fn poll_slot(&mut self, index: usize) {
        if self.events[index].load(Ordering::Acquire) {
            self.seen[index] = true;
        }
    }
}

impl Future for Consumer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut cur = self.shared.take_woken();
            while cur != NIL {
                let next = self.signals[cur].take();
                self.poll_slot(cur);
                cur = next;
            }
            if self.seen.iter().all(|&s| s) {
                return Poll::Ready(());
            }
            if self.shared.may_sleep(cx.waker()) {
                return Poll::Pending;
            }
        }
    }
}

fn setup(slots: usize) -> (Arc<Shared>, Arc<Vec<Signal>>, Arc<Vec<AtomicBool>>) {
    let shared = Arc::new(Shared::new());
    let signals = Arc::new((0..slots).map(|_| Signal::new()).collect::<Vec<_>>());
    let events = Arc::new(
        (0..slots)
            .map(|_| AtomicBool::new(false))
            .collect::<Vec<_>>(),
    );
    (shared, signals, events)
}

fn consume(shared: Arc<Shared>, signals: Arc<Vec<Signal>>, events: Arc<Vec<AtomicBool>>) {
    let slots = signals.len();
    let mut consumer = Consumer {
        shared,
        signals,
        events,
        seen: vec![false; slots],
    };
    // The first poll of every slot, which stored its waker for good.
    for index in 0..slots {
        consumer.poll_slot(index);
    }
    loom::future::block_on(consumer);
}

/// Checks `f` under every interleaving with at most `preemptions` preemptions (3 for the
/// models of two or three threads; the four-thread one needs 2 to finish in seconds).
fn model_with(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_with(3, f);
}

#[test]
fn a_wake_up_while_the_slot_is_queued_is_not_lost() {
    model(|| {
        let (shared, signals, events) = setup(1);
        let waker = {
            let (shared, signals, events) = (shared.clone(), signals.clone(), events.clone());
            thread::spawn(move || {
                signals[0].wake(0, &shared); // spurious
                events[0].store(true, Ordering::Release);
                signals[0].wake(0, &shared);
            })
        };
        consume(shared, signals, events);
        waker.join().unwrap();
    });
}

#[test]
fn two_wakers_of_one_slot_and_the_consumer() {
    model(|| {
        let (shared, signals, events) = setup(1);
        let spurious = {
            let (shared, signals) = (shared.clone(), signals.clone());
            thread::spawn(move || signals[0].wake(0, &shared))
        };
        let real = {
            let (shared, signals, events) = (shared.clone(), signals.clone(), events.clone());
            thread::spawn(move || {
                events[0].store(true, Ordering::Release);
                signals[0].wake(0, &shared);
            })
        };
        consume(shared, signals, events);
        spurious.join().unwrap();
        real.join().unwrap();
    });
}

#[test]
#[ignore = "four threads: about 5 minutes on 2 cores; run with `-- --ignored`"]
fn a_link_rewritten_after_a_lost_race_keeps_every_wake_up_visible() {
    model_with(2, || {
        let (shared, signals, events) = setup(2);
        let spawn = |index: usize, real: bool| {
            let (shared, signals, events) = (shared.clone(), signals.clone(), events.clone());
            thread::spawn(move || {
                if real {
                    events[index].store(true, Ordering::Release);
                }
                signals[index].wake(index, &shared);
            })
        };
        // Slot 0 woken spuriously and for real on two threads, while slot 1's push races for
        // the head: the spurious push may lose that race and rewrite its link after the real
        // wake-up found `QUEUED` set.
        let threads = [spawn(0, false), spawn(0, true), spawn(1, true)];
        consume(shared, signals, events);
        for thread in threads {
            thread.join().unwrap();
        }
    });
}

#[test]
fn two_slots_pushed_concurrently_are_both_polled() {
    model(|| {
        let (shared, signals, events) = setup(2);
        let wakers: Vec<_> = (0..2)
            .map(|index| {
                let (shared, signals, events) = (shared.clone(), signals.clone(), events.clone());
                thread::spawn(move || {
                    events[index].store(true, Ordering::Release);
                    signals[index].wake(index, &shared);
                })
            })
            .collect();
        consume(shared, signals, events);
        for waker in wakers {
            waker.join().unwrap();
        }
    });
}
