//! Progress snapshots: SCENARIOS.md group H (PG-*), and the invariants of API.md section 5 in every
//! snapshot, under random completion orders and retries (a property test).

mod common_time;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use common_time::*;
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use tasklane::time::ManualClock;
use tasklane::{prelude::*, Backoff, Progress};

/// The snapshots a lane handed its callback, shared with the test.
#[derive(Clone, Default)]
struct Snapshots(Rc<RefCell<Vec<Progress>>>);

impl Snapshots {
    fn push(&self) -> impl FnMut(&Progress) + '_ {
        move |p| self.0.borrow_mut().push(*p)
    }

    fn recorder(&self) -> impl FnMut(&Progress) {
        let all = Rc::clone(&self.0);
        move |p| all.borrow_mut().push(*p)
    }

    fn all(&self) -> Vec<Progress> {
        self.0.borrow().clone()
    }

    fn len(&self) -> usize {
        self.0.borrow().len()
    }

    fn last(&self) -> Progress {
        *self.0.borrow().last().expect("at least one snapshot")
    }
}

#[test]
fn pg_01_helpers_with_a_total() {
    let p = Progress {
        completed: 2,
        succeeded: 2,
        failed: 0,
        in_flight: 3,
        retries: 0,
        total: Some(8),
        elapsed: Duration::from_secs(1),
    };
    assert_eq!(p.remaining(), Some(6));
    assert_eq!(p.fraction(), Some(0.25));
    assert_eq!(p.rate(), 2.0);
}

#[test]
fn pg_02_helpers_without_a_total() {
    let p = Progress {
        completed: 5,
        total: None,
        elapsed: Duration::ZERO,
        ..Progress::default()
    };
    assert_eq!(p.remaining(), None);
    assert_eq!(p.fraction(), None);
    assert_eq!(p.rate(), 0.0);
    let empty = Progress {
        total: Some(0),
        ..Progress::default()
    };
    assert_eq!(empty.fraction(), None);
}

#[test]
fn pg_03_one_callback_per_item_in_order_of_completion() {
    // 10 items of 5 ms, limit 3.
    let sim = Sim::default();
    let snaps = Snapshots::default();
    let s = sim.clone();
    let mut out = (0..10u32)
        .lane(3)
        .with_clock(&sim.clock)
        .on_progress(snaps.recorder())
        .map_async(move |i| {
            let sleep = s.sleep(ms(5));
            async move {
                sleep.await;
                i
            }
        });
    let got = sim.run(&mut out, ms(1));
    assert_eq!(got.len(), 10);
    let all = snaps.all();
    assert_eq!(all.len(), 10);
    let completed: Vec<u64> = all.iter().map(|p| p.completed).collect();
    assert_eq!(completed, (1..=10).collect::<Vec<_>>());
    let last = snaps.last();
    assert_eq!(
        (last.total, last.succeeded, last.failed, last.in_flight),
        (Some(10), 10, 0, 0)
    );
    assert_eq!(last.elapsed, ms(20)); // four rounds of 5 ms at limit 3
}

#[test]
fn pg_04_failures_are_counted() {
    // 0..=3, item 0 fails, collect-all: the last snapshot has failed 1, succeeded 3.
    let snaps = Snapshots::default();
    let out: Vec<Result<u32, tasklane::Error<String>>> = futures::executor::block_on(
        (0..=3u32)
            .lane(2)
            .retry(0)
            .on_progress(snaps.push())
            .map_async(|i| async move {
                if i == 0 {
                    Err(format!("item {i} failed"))
                } else {
                    Ok(i)
                }
            })
            .collect(),
    );
    assert_eq!(out.iter().filter(|r| r.is_err()).count(), 1);
    let last = snaps.last();
    assert_eq!((last.completed, last.succeeded, last.failed), (4, 3, 1));
}

#[test]
fn a_plain_lane_counts_every_output_as_a_success() {
    // A plain lane's outputs are the user's own, even `Result`s: documented on `Progress::failed`.
    let snaps = Snapshots::default();
    let _: Vec<Result<u32, ()>> = futures::executor::block_on(
        (0..3u32)
            .lane(2)
            .on_progress(snaps.push())
            .map_async(|i| async move {
                if i == 0 {
                    Err(())
                } else {
                    Ok(i)
                }
            })
            .collect(),
    );
    let last = snaps.last();
    assert_eq!((last.completed, last.succeeded, last.failed), (3, 3, 0));
}

#[test]
fn pg_05_the_total_is_known_only_for_exactly_sized_inputs() {
    let sized = Snapshots::default();
    let _: Vec<u32> = futures::executor::block_on(
        vec![1, 2, 3]
            .lane(2)
            .on_progress(sized.push())
            .map_async(|x| async move { x })
            .collect(),
    );
    assert!(sized.all().iter().all(|p| p.total == Some(3)));

    // A stream with an inexact size_hint (a filter) or none (a channel): no total, ever.
    let filtered = Snapshots::default();
    let _: Vec<u32> = futures::executor::block_on(
        futures::stream::iter(0..6u32)
            .filter(|x| std::future::ready(x % 2 == 0))
            .lane(2)
            .on_progress(filtered.push())
            .map_async(|x| async move { x })
            .collect(),
    );
    assert_eq!(filtered.len(), 3);
    assert!(filtered.all().iter().all(|p| p.total.is_none()));
    // A stream that knows nothing of its length (`unfold`'s size_hint is `(0, None)`).
    let counter = futures::stream::unfold(0u32, |n| async move { (n < 4).then_some((n, n + 1)) });
    let channel = Snapshots::default();
    let _: Vec<u32> = futures::executor::block_on(
        counter
            .lane(2)
            .on_progress(channel.push())
            .map_async(|x| async move { x })
            .collect(),
    );
    assert_eq!(channel.len(), 4);
    assert!(channel.all().iter().all(|p| p.total.is_none()));
}

/// PG-06's lane: items 0..8, limit 3, in input order, item 4 fails; snapshots into `snaps`.
fn item_4_fails(
    snaps: &Snapshots,
) -> impl futures::Stream<Item = Result<u32, tasklane::Error<u32>>> + '_ {
    (0..8u32)
        .lane(3)
        .ordered()
        .retry(0)
        .on_progress(snaps.push())
        .map_async(|i| std::future::ready(if i == 4 { Err(i) } else { Ok(i) }))
}

#[test]
fn pg_06_fail_fast_sees_the_failing_items_snapshot_and_none_after() {
    // `try_collect` stops at item 4.
    let snaps = Snapshots::default();
    let result: Result<Vec<u32>, _> =
        futures::executor::block_on(item_4_fails(&snaps).try_collect());
    assert_eq!(result.unwrap_err().into_inner(), Some(4));
    let last = snaps.last();
    assert_eq!((last.completed, last.succeeded, last.failed), (5, 4, 1));
    assert_eq!(snaps.len(), 5, "no snapshot after the failure surfaced");

    // Collect-all goes on to the end.
    let all = Snapshots::default();
    let out: Vec<_> = futures::executor::block_on(item_4_fails(&all).collect());
    assert_eq!(out.len(), 8);
    let last = all.last();
    assert_eq!(
        (last.completed, last.succeeded, last.failed, last.in_flight),
        (8, 7, 1, 0)
    );
}

#[test]
fn pg_07_in_flight_never_exceeds_the_limit_and_is_zero_at_the_end() {
    // The newest started item always finishes first, so outputs come in an order unlike the input.
    let gates: Gates<u32> = Gates::default();
    let open: Rc<RefCell<Vec<u32>>> = Rc::default();
    let snaps = Snapshots::default();
    let pulled = Rc::new(RefCell::new(0u64));
    let (p, g, o) = (Rc::clone(&pulled), gates.clone(), Rc::clone(&open));
    let mut out = (0..12u32)
        .into_stream()
        .inspect(move |_| *p.borrow_mut() += 1)
        .lane(3)
        .on_progress(snaps.recorder())
        .map_async(move |i| {
            o.borrow_mut().push(i);
            g.make(format!("{i}"))
        });
    let mut seen = Vec::new();
    loop {
        match poll_once(&mut out) {
            Poll::Ready(Some(i)) => seen.push(i),
            Poll::Ready(None) => break,
            Poll::Pending => {
                let newest = open
                    .borrow_mut()
                    .pop()
                    .expect("pending with nothing in flight");
                gates.open(&format!("{newest}"), newest);
            }
        }
        for snap in snaps.all() {
            assert!(snap.in_flight <= 3, "{snap:?}");
            assert_eq!(snap.succeeded + snap.failed, snap.completed);
            assert!(
                snap.completed + snap.in_flight <= *pulled.borrow(),
                "{snap:?}"
            );
        }
    }
    assert_ne!(
        seen,
        (0..12).collect::<Vec<_>>(),
        "completion order differs from input order"
    );
    assert_eq!(seen.len(), 12);
    assert_eq!((snaps.last().completed, snaps.last().in_flight), (12, 0));
}

#[test]
fn pg_08_one_snapshot_per_outcome_never_per_attempt_and_before_the_outcome_is_yielded() {
    let clock = ManualClock::new();
    let snaps = Snapshots::default();
    let calls = Calls::default();
    let c = calls.clone();
    let mut out = (0..3u32)
        .lane(3)
        .with_clock(&clock)
        .retry(5)
        .backoff(Backoff::constant(ms(10)))
        .on_progress(snaps.recorder())
        .map_async(move |id| {
            let n = c.next(id);
            async move {
                if n <= 2 {
                    Err("again")
                } else {
                    Ok(id)
                }
            }
        });
    let mut yielded = 0;
    for _ in 0..10 {
        while let Poll::Ready(Some(item)) = poll_once(&mut out) {
            yielded += 1;
            assert!(item.is_ok());
            // Delivered synchronously, before the outcome: one snapshot per outcome so far.
            assert_eq!(snaps.len(), yielded);
        }
        clock.advance(ms(10));
    }
    assert_eq!(yielded, 3);
    assert_eq!(calls.total(), 9);
    let last = snaps.last();
    assert_eq!((last.completed, last.retries), (3, 6));
}

#[test]
fn pg_08_a_panicking_callback_propagates_and_the_lane_drops_cleanly() {
    let (token, items) = items(6);
    let mut out = items
        .lane(3)
        .on_progress(|p| {
            if p.completed == 2 {
                panic!("callback failed at 2");
            }
        })
        .map_async(|item: Item| async move {
            let _keep = item;
            yield_once().await; // so that several are in flight at the panic
            1u32
        });
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(async { while out.next().await.is_some() {} })
    }));
    let err = caught.expect_err("the callback's panic propagates");
    assert_eq!(err.downcast_ref::<&str>(), Some(&"callback failed at 2"));
    assert!(Rc::strong_count(&token) > 1, "work was still in flight");
    drop(out);
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "dropping the lane drops it all"
    );
}

/// Returns `Pending` once, waking itself first.
async fn yield_once() {
    let mut yielded = false;
    futures::future::poll_fn(move |cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

#[test]
fn pg_09_elapsed_runs_from_the_first_poll() {
    let clock = ManualClock::new();
    let snaps = Snapshots::default();
    let mut out = (0..2u32)
        .lane(1)
        .with_clock(&clock)
        .timeout(ms(100))
        .on_progress(snaps.recorder())
        .map_async(|i| async move { Ok::<_, ()>(i) });
    clock.advance(Duration::from_secs(5)); // before the first poll: not counted
    assert!(next_now(&mut out).is_ok());
    assert_eq!(snaps.last().elapsed, Duration::ZERO);
    clock.advance(ms(250));
    assert!(next_now(&mut out).is_ok());
    assert_eq!(snaps.last().elapsed, ms(250));
    assert_eq!(snaps.last().rate(), 8.0);
    assert_done(&mut out);
}

#[test]
fn progress_works_with_run_and_policies() {
    let snaps = Snapshots::default();
    let policy = tasklane::Policy::new(2).ordered();
    let out: Vec<u32> = futures::executor::block_on(
        (0..3u32)
            .map(|x| async move { x })
            .lane_with(&policy)
            .on_progress(snaps.push())
            .run()
            .collect(),
    );
    assert_eq!(out, [0, 1, 2]);
    assert_eq!(snaps.last().completed, 3);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 128 },
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    /// Under random completion orders, failures and retries: in every snapshot
    /// `succeeded + failed == completed`, `in_flight <= limit`, `completed + in_flight <= pulled`,
    /// `completed` goes up by one each time, and the last snapshot of the drained run has
    /// `in_flight == 0` and `completed == n`.
    #[test]
    fn progress_invariants_hold_in_every_snapshot(
        n in 0usize..30,
        limit in 1usize..6,
        ordered in any::<bool>(),
        fails in proptest::collection::vec(0u32..3, 30),
        order in proptest::collection::vec(any::<proptest::sample::Index>(), 200),
    ) {
        let clock = ManualClock::new();
        let snaps = Snapshots::default();
        let pulled = Rc::new(RefCell::new(0u64));
        let p = Rc::clone(&pulled);
        let gates: Gates<()> = Gates::default();
        let open: Rc<RefCell<Vec<String>>> = Rc::default();
        let calls = Calls::default();
        let (g, o, c) = (gates.clone(), Rc::clone(&open), calls.clone());
        let fails_of = fails.clone();
        let lane = (0..n as u32)
            .into_stream()
            .inspect(move |_| *p.borrow_mut() += 1)
            .lane(limit)
            .with_clock(&clock)
            .retry(1)
            .backoff(Backoff::constant(Duration::ZERO));
        let mut out = order_lane(lane, ordered)
            .on_progress(snaps.recorder())
            .map_async(move |id| {
                let attempt = c.next(id);
                let name = format!("{id}/{attempt}");
                o.borrow_mut().push(name.clone());
                let gate = g.make(name);
                let fails = fails_of[id as usize] >= attempt;
                async move { gate.await; if fails { Err(id) } else { Ok(id) } }
            });
        let mut yielded = 0;
        let mut picks = order.into_iter();
        loop {
            match poll_once(&mut out) {
                Poll::Ready(Some(_)) => { yielded += 1; continue; }
                Poll::Ready(None) => break,
                Poll::Pending => {}
            }
            let name = {
                let mut open = open.borrow_mut();
                prop_assert!(!open.is_empty(), "pending with nothing to release");
                let i = picks.next().map_or(0, |ix| ix.index(open.len()));
                open.remove(i)
            };
            gates.open(&name, ());
        }
        prop_assert_eq!(yielded, n);
        let all = snaps.all();
        prop_assert_eq!(all.len(), n);
        for (k, snap) in all.iter().enumerate() {
            prop_assert_eq!(snap.completed, k as u64 + 1);
            prop_assert_eq!(snap.succeeded + snap.failed, snap.completed);
            prop_assert!(snap.in_flight <= limit as u64);
            prop_assert!(snap.completed + snap.in_flight <= *pulled.borrow());
            prop_assert_eq!(snap.total, Some(n as u64));
        }
        if let Some(last) = all.last() {
            prop_assert_eq!(last.in_flight, 0);
            let expected_failed = (0..n).filter(|&i| fails[i] >= 2).count() as u64;
            prop_assert_eq!(last.failed, expected_failed);
            let expected_retries = (0..n).filter(|&i| fails[i] >= 1).count() as u64;
            prop_assert_eq!(last.retries, expected_retries);
        }
    }
}

/// `order` from common_time, for a lane with any progress reporter.
fn order_lane<St, P>(lane: tasklane::Lane<St, P>, ordered: bool) -> tasklane::Lane<St, P> {
    order(lane, ordered)
}
