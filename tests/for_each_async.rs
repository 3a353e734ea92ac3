//! `for_each_async`: the handler and the lane are driven together (the answer to the
//! buffered-streams trap, rust-lang/futures-rs#2387), one handler at a time, within the limit.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{block_on_sync, counting_iter, gate, gates, sleep, DropCounter, Gauge, Tracker};
use futures::channel::oneshot;
use futures::future::FusedFuture;
use futures::{FutureExt, StreamExt};
use futures_test::task::new_count_waker;
use tasklane::prelude::*;

/// The trap's deadlock, made deterministic: the handler of item 0 waits for item 1 to finish. With
/// `for_each_async` the lane keeps polling item 1 while the handler waits, so both finish.
#[test]
fn regression_futures_rs_2387_handler_waits_on_in_flight_work() {
    let (open1, gate1) = gate();
    let (done1_tx, done1_rx) = oneshot::channel::<()>();
    let done1_tx = RefCell::new(Some(done1_tx));
    let open1 = RefCell::new(Some(open1));
    let done1_rx = RefCell::new(Some(done1_rx));
    let handled = RefCell::new(Vec::new());
    let gate1 = RefCell::new(Some(gate1));
    let fut = (0..2)
        .lane(2)
        .map_async(|i| {
            let gate1 = if i == 1 {
                gate1.borrow_mut().take()
            } else {
                None
            };
            let done1 = if i == 1 {
                done1_tx.borrow_mut().take()
            } else {
                None
            };
            async move {
                if let (Some(gate1), Some(done1)) = (gate1, done1) {
                    gate1.await;
                    done1.send(()).unwrap();
                }
                i
            }
        })
        .for_each_async(|i| {
            handled.borrow_mut().push(i);
            let wait = (i == 0).then(|| {
                open1.borrow_mut().take().unwrap().open();
                done1_rx.borrow_mut().take().unwrap()
            });
            async move {
                if let Some(wait) = wait {
                    wait.await.unwrap(); // item 1 must finish while this handler waits
                }
            }
        });
    block_on_sync(fut);
    assert_eq!(*handled.borrow(), [0, 1]);
}

/// The same shape with a plain `next()` loop stalls for good: while the loop body awaits, nothing
/// polls the lane, so item 1 never runs and the handler never finishes.
#[test]
fn regression_futures_rs_2387_plain_next_loop_stalls() {
    let tracker = Tracker::new();
    let (open1, gate1) = gate();
    let (done1_tx, done1_rx) = oneshot::channel::<()>();
    let mut lane = vec![
        tracker.track(0, async { None }.boxed()),
        tracker.track(
            1,
            async move {
                gate1.await;
                Some(done1_tx)
            }
            .boxed(),
        ),
    ]
    .lane(2)
    .run();
    let mut open1 = Some(open1);
    let mut done1_rx = Some(done1_rx);
    let mut plain_loop = async move {
        while let Some(out) = lane.next().await {
            if let Some(tx) = out {
                tx.send(()).unwrap();
            } else {
                open1.take().unwrap().open();
                done1_rx.take().unwrap().await.unwrap(); // waits for item 1: forever
            }
        }
    }
    .boxed();
    let (waker, woken) = new_count_waker();
    let mut cx = Context::from_waker(&waker);
    for _ in 0..10 {
        assert!(plain_loop.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(tracker.completed(), [0], "item 1 never ran to completion");
    assert_eq!(woken.get(), 0, "and nothing will ever wake the loop");
}

/// In-flight futures finish on time while the handler sleeps (real time, generous bounds); with a
/// plain `next()` loop they finish only when the handler is done.
#[test]
#[cfg_attr(miri, ignore = "real time")]
fn regression_futures_rs_2387_in_flight_work_finishes_while_handler_sleeps() {
    const WORK: u64 = 30;
    const HANDLER: u64 = 400;
    let finished = |start: Instant, log: &Arc<std::sync::Mutex<Vec<Duration>>>| {
        let log = Arc::clone(log);
        move |i: u32| {
            let log = Arc::clone(&log);
            async move {
                sleep(WORK * (u64::from(i) + 1)).await;
                log.lock().unwrap().push(start.elapsed());
            }
        }
    };

    // for_each_async: item i finishes at about (i + 1) * WORK, long before the first handler ends.
    let log = Arc::default();
    let start = Instant::now();
    futures::executor::block_on(
        (0..4u32)
            .lane(4)
            .map_async(finished(start, &log))
            .for_each_async(|()| sleep(HANDLER).map(drop)),
    );
    let times = log.lock().unwrap().clone();
    assert_eq!(times.len(), 4);
    assert!(
        times
            .iter()
            .all(|t| *t < Duration::from_millis(HANDLER / 2)),
        "{times:?}"
    );

    // A plain loop: items 1..3 are polled again only after the first handler's sleep.
    let log = Arc::default();
    let start = Instant::now();
    futures::executor::block_on(async {
        let mut out = (0..4u32).lane(4).map_async(finished(start, &log));
        while let Some(()) = out.next().await {
            sleep(HANDLER).await;
        }
    });
    let times = log.lock().unwrap().clone();
    assert_eq!(times.len(), 4);
    assert!(
        times[1..]
            .iter()
            .all(|t| *t >= Duration::from_millis(HANDLER)),
        "{times:?}"
    );
}

/// One handler at a time; at most `limit` items pulled and not yet handed to the handler, even while
/// a handler waits and outputs pile up; and eager refill: when a handler gets an output, its slot
/// was already refilled.
#[test]
fn one_handler_at_a_time_within_the_limit_with_eager_refill() {
    const LIMIT: usize = 3;
    const N: usize = 20;
    let (mut openers, gates) = gates(N);
    let (input, probe) = counting_iter(gates.into_iter().enumerate());
    let handled = Cell::new(0usize);
    let handlers = Gauge::new();
    let fut = input
        .lane(LIMIT)
        .map_async(|(i, g)| async move {
            g.await;
            i
        })
        .for_each_async(|_| {
            let guard = handlers.enter();
            handled.set(handled.get() + 1);
            let pulled = probe.pulled();
            assert_eq!(pulled, N.min(handled.get() + LIMIT), "eager refill");
            let probe = probe.clone();
            let handled = handled.get();
            async move {
                futures::future::ready(()).await;
                assert!(probe.pulled() - handled <= LIMIT);
                guard.leave();
            }
        });
    let mut fut = Box::pin(fut);
    let (waker, _) = new_count_waker();
    let mut cx = Context::from_waker(&waker);
    // Open every gate in an order of our choosing, polling in between.
    for i in [
        2, 0, 1, 5, 3, 4, 8, 6, 7, 11, 9, 10, 14, 12, 13, 17, 15, 16, 19, 18,
    ] {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(probe.pulled() - handled.get() <= LIMIT);
        openers[i].take().unwrap().open();
    }
    assert!(fut.as_mut().poll(&mut cx).is_ready());
    assert!(fut.is_terminated());
    assert_eq!(handled.get(), N);
    assert_eq!(handlers.peak(), 1, "handlers never overlap");
}

/// While a handler waits, finished outputs stay in the lane (their slots stay taken): no new item
/// is pulled beyond the limit, and the waiting outputs are handed over in order afterwards.
#[test]
fn outputs_wait_in_their_slots_while_the_handler_runs() {
    let (open_handler, handler_gate) = gate();
    let handler_gate = RefCell::new(Some(handler_gate));
    let (input, probe) = counting_iter(0..10u32);
    let seen = RefCell::new(Vec::new());
    let mut fut = Box::pin(
        input
            .lane(2)
            .ordered()
            .map_async(|x| async move { x })
            .for_each_async(|x| {
                seen.borrow_mut().push(x);
                let g = handler_gate.borrow_mut().take();
                async move {
                    if let Some(g) = g {
                        g.await;
                    }
                }
            }),
    );
    let (waker, _) = new_count_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    // Item 0 is with the handler; items 1 and 2 finished and wait in the two slots.
    assert_eq!(*seen.borrow(), [0]);
    assert_eq!(probe.pulled(), 3);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        probe.pulled(),
        3,
        "nothing more is pulled while the slots hold outputs"
    );
    open_handler.open();
    assert!(fut.as_mut().poll(&mut cx).is_ready());
    assert_eq!(*seen.borrow(), (0..10).collect::<Vec<_>>());
}

/// Dropping the future mid-handler drops the handler, every in-flight future and the input.
#[test]
fn dropping_mid_handler_drops_everything() {
    let tracker = Tracker::new();
    let handler_drops = Arc::new(AtomicUsize::new(0));
    let (input, probe) = counting_iter(0..10usize);
    let t = tracker.clone();
    let hd = Arc::clone(&handler_drops);
    let mut fut = Box::pin(
        input
            .lane(3)
            .map_async(move |i| {
                t.track(i, async move {
                    if i == 0 {
                        0
                    } else {
                        futures::future::pending().await
                    }
                })
            })
            .for_each_async(move |_| {
                let guard = DropCounter::new(&hd);
                async move {
                    let _guard = guard;
                    futures::future::pending::<()>().await
                }
            }),
    );
    let (waker, _) = new_count_waker();
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(tracker.alive(), [1, 2, 3]);
    drop(fut);
    assert!(tracker.alive().is_empty());
    assert_eq!(tracker.cancelled(), [1, 2, 3]);
    assert_eq!(handler_drops.load(SeqCst), 1);
    assert!(probe.dropped());
}

/// With always-ready outputs and handlers, one poll does a bounded amount of work and wakes itself.
#[test]
fn a_poll_is_bounded_and_wakes_itself() {
    let handled = Cell::new(0);
    let mut fut = Box::pin(
        (0..10_000)
            .lane(4)
            .map_async(futures::future::ready)
            .for_each_async(|_| {
                handled.set(handled.get() + 1);
                futures::future::ready(())
            }),
    );
    let (waker, woken) = new_count_waker();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
    assert!(handled.get() > 0 && handled.get() < 10_000);
    assert_eq!(woken.get(), 1);
    while fut.as_mut().poll(&mut cx).is_pending() {}
    assert_eq!(handled.get(), 10_000);
}

/// A panic in the handler propagates out of `poll`, and the future stays safe to drop.
#[test]
fn a_handler_panic_propagates() {
    let tracker = Tracker::new();
    let t = tracker.clone();
    let mut fut = Box::pin(
        (0..4usize)
            .lane(2)
            .map_async(move |i| t.track(i, async move { i }))
            .for_each_async(|i| {
                assert!(i != 1, "handler failed on 1");
                futures::future::ready(())
            }),
    );
    let (waker, _) = new_count_waker();
    let caught = common::catch_panic(|| fut.as_mut().poll(&mut Context::from_waker(&waker)));
    assert_eq!(caught.unwrap_err().message, "handler failed on 1");
    drop(fut);
    assert!(tracker.alive().is_empty());
}
