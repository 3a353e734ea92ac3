//! Limits shared by many lanes (`tasklane::limit`, issue "Shared limits"): one concurrency budget
//! over two threads and two executors, one GCRA rate over four lanes (exact on the manual clock,
//! within 2 % on the real one), settings changed while running, a dropped lane's permits, fairness
//! between lanes, retries and timeouts giving permits back, and limiters that fail.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::StreamExt;
use futures::FutureExt;
use tasklane::limit::{Admit, LimitError, Verdict, Waiter};
use tasklane::prelude::*;
use tasklane::time::ManualClock;
use tasklane::Limiter;

mod common;
use common::{block_on_sync, watchdog, yield_times, Gauge, Poller};

/// Steps the manual clock by `step` and polls `fut` until it is ready, at most `rounds` times.
fn run_on_clock<F: std::future::Future>(
    clock: &ManualClock,
    step: Duration,
    rounds: usize,
    fut: F,
) -> F::Output {
    let mut fut = pin!(fut);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for _ in 0..rounds {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        clock.advance(step);
    }
    panic!("not done after {rounds} steps of {step:?}");
}

/// Four lanes share `rate(1000.0)` on the manual clock: sorted, start `k` is never before `k`
/// periods after the first (the GCRA bound with burst 1), and the lanes keep up with the rate.
#[test]
fn four_lanes_share_one_rate_exactly_on_the_manual_clock() {
    let clock = ManualClock::new();
    let limiter = Limiter::new().rate(1000.0).with_clock(&clock);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let lanes: Vec<_> = (0..4)
        .map(|_| {
            let (clock2, starts) = (clock.clone(), Arc::clone(&starts));
            (0..100)
                .lane(4)
                .with_clock(&clock)
                .limiter(&limiter)
                .map_async(move |_| {
                    starts.lock().unwrap().push(clock2.elapsed());
                    async {}
                })
                .count()
        })
        .collect();
    let counts = run_on_clock(
        &clock,
        Duration::from_micros(250),
        10_000,
        futures::future::join_all(lanes),
    );
    assert_eq!(counts, [100; 4]);
    let mut starts = starts.lock().unwrap().clone();
    starts.sort();
    assert_eq!(starts.len(), 400);
    let period = Duration::from_millis(1);
    for (k, at) in starts.iter().enumerate() {
        assert!(
            *at >= starts[0] + period * k as u32,
            "start {k} at {at:?}: before {:?}",
            starts[0] + period * k as u32
        );
    }
    let last = *starts.last().unwrap();
    assert!(
        last <= starts[0] + period * 400,
        "the lanes kept up with the shared rate: the last start at {last:?}"
    );
}

/// `set_concurrency` 10 → 2 mid-run, then 2 → 12: the count follows at once (nothing new starts
/// until fewer than 2 run; then 12 run at the next poll), and every item yields its output.
#[test]
fn set_concurrency_takes_effect_at_the_next_start() {
    let clock = ManualClock::new();
    let limiter = Limiter::new().concurrency(10);
    let live = Gauge::new();
    let (l, c) = (live.clone(), clock.clone());
    let mut p = Poller::new(
        (0..100u64)
            .lane(20)
            .with_clock(&clock)
            .limiter(&limiter)
            .map_async(move |i| {
                let (l, sleep) = (l.clone(), c.sleep_for(Duration::from_millis(10)));
                let guard = l.enter();
                async move {
                    sleep.await;
                    guard.leave();
                    i
                }
            }),
    );
    let mut out = p.settle();
    assert_eq!(live.active(), 10);
    limiter.set_concurrency(2);
    clock.advance(Duration::from_millis(5));
    out.extend(p.settle());
    assert_eq!(live.active(), 10, "lowering stops nothing");
    clock.advance(Duration::from_millis(5)); // the 10 end
    out.extend(p.settle());
    assert_eq!(out.len(), 10);
    assert_eq!(live.active(), 2, "then at most 2 start");
    assert_eq!(limiter.in_flight(), 2);
    limiter.set_concurrency(12);
    out.extend(p.settle());
    assert_eq!(live.active(), 12, "raising fills the room at once");
    for _ in 0..100 {
        clock.advance(Duration::from_millis(10));
        out.extend(p.settle());
        assert!(live.active() <= 12);
    }
    assert!(p.is_done());
    out.sort_unstable();
    assert_eq!(out, (0..100).collect::<Vec<_>>(), "nothing lost");
    assert_eq!(limiter.in_flight(), 0);
}

/// Dropping one of two lanes mid-run gives back its permits at once: the other starts into them at
/// its next poll.
#[test]
fn a_dropped_lane_gives_its_permits_to_the_other() {
    let limiter = Limiter::new().concurrency(4);
    let live = Gauge::new();
    let lane = |live: &Gauge| {
        let live = live.clone();
        (0..10).lane(4).limiter(&limiter).map_async(move |_| {
            let live = live.clone();
            async move {
                let _running = live.enter();
                futures::future::pending::<()>().await;
            }
        })
    };
    let (live_a, live_b) = (Gauge::new(), Gauge::new());
    let mut a = Poller::new(lane(&live_a));
    let mut b = Poller::new(lane(&live_b));
    assert!(a.settle().is_empty());
    assert!(b.settle().is_empty());
    assert_eq!(live_a.active(), 4);
    assert_eq!(live_b.active(), 0, "b waits in line");
    assert_eq!(limiter.waiting(), 1);
    drop(a);
    assert_eq!(
        limiter.in_flight(),
        1,
        "a's 4 permits came back with it, and one was handed to b, first in line"
    );
    assert!(b.settle().is_empty());
    assert_eq!(live_b.active(), 4, "b took them at its next poll");
    assert_eq!(limiter.in_flight(), 4);
    drop(b);
    assert_eq!((limiter.in_flight(), limiter.waiting()), (0, 0));
    drop(live);
}

/// Three lanes with unequal inputs share `concurrency(3)`: while all three have work, each gets a
/// third of the starts (± 10 %), however many items it has waiting.
#[test]
fn lanes_waiting_on_one_limiter_share_it_fairly() {
    let clock = ManualClock::new();
    let limiter = Limiter::new().concurrency(3);
    let starts: Arc<Mutex<Vec<usize>>> = Arc::default();
    let all_busy = Arc::new(AtomicBool::new(true));
    let lanes: Vec<_> = [3000usize, 900, 600]
        .into_iter()
        .enumerate()
        .map(|(lane, n)| {
            let (clock2, starts, busy) =
                (clock.clone(), Arc::clone(&starts), Arc::clone(&all_busy));
            (0..n)
                .lane(8)
                .with_clock(&clock)
                .limiter(&limiter)
                .map_async(move |_| {
                    if busy.load(Ordering::SeqCst) {
                        starts.lock().unwrap().push(lane);
                    }
                    clock2.sleep_for(Duration::from_millis(1))
                })
                .count()
                .map({
                    let busy = Arc::clone(&all_busy);
                    move |n| {
                        busy.store(false, Ordering::SeqCst);
                        n
                    }
                })
        })
        .collect();
    // Run until the smallest input is done (its `count` ends and flips `all_busy`).
    let mut lanes = pin!(futures::future::select_all(lanes.into_iter().map(Box::pin)));
    run_on_clock(&clock, Duration::from_millis(1), 100_000, lanes.as_mut());
    let starts = starts.lock().unwrap();
    let total = starts.len();
    assert!(total >= 1500, "{total} starts");
    for lane in 0..3 {
        let share = starts.iter().filter(|&&l| l == lane).count() as f64 / total as f64;
        assert!(
            (share - 1.0 / 3.0).abs() <= 0.1 / 3.0,
            "lane {lane} got {:.1} % of {total} starts",
            share * 100.0
        );
    }
}

/// A retry is an attempt: it takes a permit again, and a timed-out attempt gives its permit back.
#[test]
fn retries_and_timeouts_take_and_give_back_permits() {
    let clock = ManualClock::new();
    let limiter = Limiter::new().concurrency(1);
    let live = Gauge::new();
    let attempts: Arc<Vec<AtomicU32>> = Arc::new((0..5).map(|_| AtomicU32::new(0)).collect());
    let (l, a, c) = (live.clone(), Arc::clone(&attempts), clock.clone());
    let run = (0..5u32)
        .lane(5)
        .with_clock(&clock)
        .limiter(&limiter)
        .retry(2)
        .backoff(tasklane::Backoff::constant(Duration::from_millis(1)))
        .timeout(Duration::from_millis(10))
        .map_async(move |i| {
            let attempt = a[i as usize].fetch_add(1, Ordering::SeqCst);
            let guard = l.enter();
            assert_eq!(l.active(), 1, "one attempt at a time over 5 slots");
            let sleep = c.sleep_for(Duration::from_millis(if i == 3 { 50 } else { 2 }));
            async move {
                sleep.await;
                drop(guard);
                // Every item's first attempt fails; its retry succeeds.
                if attempt == 0 {
                    Err("flaky")
                } else {
                    Ok(i)
                }
            }
        })
        .collect::<Vec<_>>();
    let out = run_on_clock(&clock, Duration::from_millis(1), 10_000, run);
    assert_eq!(out.len(), 5);
    for (i, o) in out.iter().enumerate() {
        match o {
            Ok(v) => assert_ne!(*v, 3),
            Err(e) => assert!(e.is_timeout() && e.attempts() == 3, "{i}: {e:?}"),
        }
    }
    assert_eq!(out.iter().filter(|o| o.is_err()).count(), 1, "{out:?}");
    let made: Vec<u32> = attempts.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    assert_eq!(
        made,
        [2, 2, 2, 3, 2],
        "each retry asked for its permit again"
    );
    assert_eq!(live.peak(), 1);
    assert_eq!(limiter.in_flight(), 0);
}

/// A limiter for the failure tests: every `fail_every`-th call fails; it fails open or closed.
#[derive(Debug, Clone)]
struct Flaky {
    calls: Arc<AtomicU32>,
    fail_every: u32,
    open: bool,
    /// Attempts it admitted, and the units it got back for them (`release` or `cancel`): equal at
    /// the end, whatever failed (a failure grants nothing, so nothing comes back for it).
    admitted: Arc<AtomicU32>,
    given_back: Arc<AtomicU32>,
}

impl Flaky {
    fn new(fail_every: u32, open: bool) -> Self {
        Flaky {
            calls: Arc::default(),
            fail_every,
            open,
            admitted: Arc::default(),
            given_back: Arc::default(),
        }
    }

    /// Asserts that every admitted attempt was given back once, and nothing else.
    fn assert_balanced(&self, what: &str) {
        let (admitted, back) = (
            self.admitted.load(Ordering::SeqCst),
            self.given_back.load(Ordering::SeqCst),
        );
        assert!(admitted > 0, "{what}: it admitted something");
        assert_eq!(
            back, admitted,
            "{what}: {back} units given back for {admitted} admitted attempts"
        );
    }
}

impl Admit for Flaky {
    fn poll_admit(
        &self,
        _: &Waiter,
        _: u32,
        _: &mut Context<'_>,
    ) -> Poll<Result<Verdict, LimitError>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call % self.fail_every == 0 {
            Poll::Ready(Err(LimitError::new("backend down")))
        } else {
            self.admitted.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Ok(Verdict::Admitted))
        }
    }
    fn release(&self, _: u32) {
        self.given_back.fetch_add(1, Ordering::SeqCst);
    }
    fn cancel(&self, _: &Waiter, _: u32) {
        self.given_back.fetch_add(1, Ordering::SeqCst);
    }
    fn leave(&self, _: &Waiter) {}
    fn fails_open(&self) -> bool {
        self.open
    }
}

/// A backend that fails: failing open lets every item through; failing closed fails the items it
/// failed for, with the backend's error, and the rest complete. Nothing hangs.
#[test]
fn a_failing_limiter_fails_open_or_closed() {
    for open in [true, false] {
        let flaky = Flaky::new(3, open);
        let shared = Limiter::new().concurrency(2);
        let out: Vec<Result<u32, tasklane::Error<String>>> = watchdog(Duration::from_secs(10), {
            let (flaky, shared) = (flaky.clone(), shared.clone());
            move || {
                block_on_sync(
                    (0..30u32)
                        .lane(4)
                        .limiter(&shared)
                        .limiter(&flaky)
                        .timeout(Duration::from_secs(60))
                        .map_async(|x| async move { Ok::<u32, String>(x) })
                        .collect(),
                )
            }
        });
        assert_eq!(out.len(), 30, "open {open}: every item yields one output");
        let failed: Vec<_> = out.iter().filter_map(|o| o.as_ref().err()).collect();
        if open {
            assert!(failed.is_empty(), "{failed:?}");
        } else {
            assert_eq!(failed.len(), 10, "every third call failed: {failed:?}");
            for err in failed {
                assert_eq!(err.limit_error().unwrap().message(), "backend down");
                assert_eq!(err.attempts(), 0);
                assert!(!err.is_rejected() && !err.is_timeout());
                assert_eq!(
                    err.to_string(),
                    "task not started: limiter failed: backend down"
                );
            }
        }
        flaky.assert_balanced(&format!("open {open}"));
        assert_eq!(shared.in_flight(), 0, "open {open}: every permit came back");
    }
}

/// On a plain lane (whose items cannot fail) a failing limiter lets the attempt start.
#[test]
fn a_failing_limiter_on_a_plain_lane_lets_items_through() {
    let flaky = Flaky::new(2, false);
    let out: Vec<u32> = block_on_sync(
        (0..10u32)
            .lane(2)
            .limiter(&flaky)
            .map_async(|x| async move { x })
            .collect(),
    );
    assert_eq!(out.len(), 10);
    flaky.assert_balanced("plain lane");
}

/// A limiter that failed and let a start go granted nothing: it gets neither a `release` when the
/// attempt ends nor a `cancel` when a limiter after it denies the start (the `Admit` contract), on
/// a plain lane and on one failing open, with a second limiter whose concurrency makes starts wait.
#[test]
fn a_limiter_that_failed_gets_nothing_back_for_the_starts_it_let_go() {
    for (open, timed) in [(false, false), (true, false), (true, true)] {
        let flaky = Flaky::new(3, open);
        let after = Limiter::new().concurrency(1);
        let out = watchdog(Duration::from_secs(10), {
            let (flaky, after) = (flaky.clone(), after.clone());
            move || {
                let lane = (0..40u32).lane(4).limiter(&flaky).limiter(&after);
                if timed {
                    let out: Vec<Result<u32, tasklane::Error<()>>> = block_on_sync(
                        lane.timeout(Duration::from_secs(60))
                            .map_async(|x| async move {
                                yield_times(1).await;
                                Ok(x)
                            })
                            .collect(),
                    );
                    out.len()
                } else {
                    let out: Vec<u32> = block_on_sync(
                        lane.map_async(|x| async move {
                            yield_times(1).await;
                            x
                        })
                        .collect(),
                    );
                    out.len()
                }
            }
        });
        assert_eq!(out, 40, "open {open}, timed {timed}: one output per item");
        flaky.assert_balanced(&format!("open {open}, timed {timed}"));
        assert_eq!(after.in_flight(), 0);
    }
}

/// Weighted items: under `concurrency(4)` an item of cost 3 runs beside one of cost 1 and never
/// beside another 3; an item of cost 5 can never be granted and fails at once with `is_rejected`,
/// and the rest complete.
#[test]
fn costs_take_units_and_a_cost_above_the_limit_is_rejected() {
    let clock = ManualClock::new();
    let limiter = Limiter::new().concurrency(4);
    let units = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let (u, pk, c) = (Arc::clone(&units), Arc::clone(&peak), clock.clone());
    let costs = [3u32, 1, 3, 1, 5, 1, 3, 3];
    let run = costs
        .iter()
        .copied()
        .enumerate()
        .lane(8)
        .with_clock(&clock)
        .limiter(&limiter)
        .timeout(Duration::from_secs(60))
        .cost(|&(_, cost)| cost)
        .map_async(move |(i, cost)| {
            let now = u.fetch_add(cost, Ordering::SeqCst) + cost;
            pk.fetch_max(now, Ordering::SeqCst);
            assert!(now <= 4, "{now} units in flight");
            let (u, sleep) = (Arc::clone(&u), c.sleep_for(Duration::from_millis(10)));
            async move {
                sleep.await;
                u.fetch_sub(cost, Ordering::SeqCst);
                Ok::<usize, ()>(i)
            }
        })
        .collect::<Vec<_>>();
    let out = run_on_clock(&clock, Duration::from_millis(1), 1_000, run);
    assert_eq!(out.len(), costs.len());
    let rejected: Vec<usize> = out
        .iter()
        .filter_map(|o| o.as_ref().err())
        .map(|e| {
            assert!(e.is_rejected(), "{e:?}");
            assert_eq!(e.attempts(), 0);
            e.index()
        })
        .collect();
    assert_eq!(rejected, [4], "only the item of cost 5");
    let mut done: Vec<usize> = out
        .iter()
        .filter_map(|o| o.as_ref().ok().copied())
        .collect();
    done.sort_unstable();
    assert_eq!(done, [0, 1, 2, 3, 5, 6, 7]);
    assert_eq!(peak.load(Ordering::SeqCst), 4, "a 3 ran beside a 1");
    assert_eq!(limiter.in_flight(), 0);
}

/// A cost takes that many units of a shared rate too: cost 2 at `rate(1000.0)` with burst 2 is one
/// item per 2 ms; a cost above the burst can never be granted.
#[test]
fn costs_take_units_of_a_shared_rate() {
    let clock = ManualClock::new();
    let limiter = Limiter::new().rate(1000.0).burst(2).with_clock(&clock);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let (st, c) = (Arc::clone(&starts), clock.clone());
    let run = [2u32, 2, 2, 2, 3]
        .lane(5)
        .with_clock(&clock)
        .limiter(&limiter)
        .timeout(Duration::from_secs(60))
        .cost(|&cost| cost)
        .map_async(move |cost| {
            st.lock().unwrap().push(c.elapsed());
            async move { Ok::<u32, ()>(cost) }
        })
        .collect::<Vec<_>>();
    let out = run_on_clock(&clock, Duration::from_micros(100), 1_000, run);
    assert_eq!(out.len(), 5);
    assert!(out[4].as_ref().is_err_and(|e| e.is_rejected()), "{out:?}");
    let starts = starts.lock().unwrap();
    assert_eq!(
        *starts,
        [0, 2, 4, 6].map(Duration::from_millis),
        "2 units per item, 1 unit per ms"
    );
}

/// On a plain lane an item has no way to fail: a cost that can never be granted panics (documented
/// under `Lane::cost`'s `# Panics`), rather than letting the item wait forever.
#[test]
#[should_panic(expected = "more than a limiter can ever grant")]
fn a_cost_never_granted_on_a_plain_lane_panics() {
    let limiter = Limiter::new().concurrency(2);
    let _: Vec<u32> = block_on_sync(
        [1u32, 3]
            .lane(2)
            .limiter(&limiter)
            .cost(|&cost| cost)
            .map_async(|x| async move { x })
            .collect(),
    );
}

/// Keyed: 1,000 keys × `concurrency(2)`, 10,000 items of 1–5 ms in random key order: never more
/// than 2 at once per key, and the lane keeps its 64 slots busy by reading ahead past the keys
/// that are full.
#[test]
fn keyed_limits_hold_per_key() {
    let clock = ManualClock::new();
    let per_key = Limiter::keyed::<u32>().concurrency(2).with_clock(&clock);
    let running: Arc<Vec<AtomicUsize>> = Arc::new((0..1000).map(|_| AtomicUsize::new(0)).collect());
    let live = Gauge::new();
    let mut rng = fastrand::Rng::with_seed(11);
    let items: Vec<(u32, u64)> = (0..10_000)
        .map(|_| (rng.u32(0..1000), rng.u64(1..=5)))
        .collect();
    let (r, l, c) = (Arc::clone(&running), live.clone(), clock.clone());
    let run = items
        .lane(64)
        .with_clock(&clock)
        .limiter_by(&per_key, |&(key, _)| key)
        .map_async(move |(key, ms)| {
            let now = r[key as usize].fetch_add(1, Ordering::SeqCst) + 1;
            assert!(now <= 2, "key {key}: {now} at once");
            let guard = l.enter();
            let (r, sleep) = (Arc::clone(&r), c.sleep_for(Duration::from_millis(ms)));
            async move {
                sleep.await;
                r[key as usize].fetch_sub(1, Ordering::SeqCst);
                drop(guard);
                key
            }
        })
        .count();
    let n = run_on_clock(&clock, Duration::from_millis(1), 100_000, run);
    assert_eq!(n, 10_000);
    assert_eq!(live.peak(), 64, "the lane read ahead to fill its slots");
    assert!(running.iter().all(|r| r.load(Ordering::SeqCst) == 0));
}

/// Keyed: a key whose futures never finish delays no other key. Items of key 0 (5 of them: 2 run
/// forever, 3 wait for them) are scattered among 1,000 items of other keys in a lane of limit 16:
/// the others finish no later than in a lane of limit 11 without key 0, that is, they lose only
/// the 5 places that key 0's items hold in progress (the lane reads ahead past the waiting ones,
/// within its own limit), never wait behind them.
#[test]
fn a_stuck_key_does_not_delay_the_others() {
    let run = |with_stuck_key: bool, limit: usize| {
        let clock = ManualClock::new();
        let per_key = Limiter::keyed::<u32>().concurrency(2).with_clock(&clock);
        let mut items: Vec<u32> = (0..1000).map(|i| 1 + i % 50).collect();
        if with_stuck_key {
            for at in [0, 1, 10, 200, 700] {
                items.insert(at, 0);
            }
        }
        let c = clock.clone();
        let finished = Arc::new(AtomicUsize::new(0));
        let f = Arc::clone(&finished);
        let lane = items
            .lane(limit)
            .with_clock(&clock)
            .limiter_by(&per_key, |&key| key)
            .map_async(move |key| {
                let (f, sleep) = (Arc::clone(&f), c.sleep_for(Duration::from_millis(1)));
                async move {
                    if key == 0 {
                        futures::future::pending::<()>().await;
                    }
                    sleep.await;
                    f.fetch_add(1, Ordering::SeqCst);
                }
            });
        let mut p = Poller::new(lane);
        let mut ticks = 0;
        while finished.load(Ordering::SeqCst) < 1000 {
            p.settle();
            clock.advance(Duration::from_millis(1));
            ticks += 1;
            assert!(
                ticks < 10_000,
                "with_stuck_key {with_stuck_key}: stuck after {} items, {} in progress, key 1 {} key 2 {}",
                finished.load(Ordering::SeqCst),
                p.get().in_progress(),
                per_key.in_flight(&1),
                per_key.in_flight(&2)
            );
        }
        let waiting = p.get().in_progress();
        (ticks, waiting)
    };
    let (without, _) = run(false, 11);
    let (with, waiting) = run(true, 16);
    assert!(
        with <= without + 1,
        "the other keys took {with} ticks beside a stuck key, {without} in a lane of limit 11"
    );
    assert_eq!(waiting, 5, "key 0's items: 2 running, 3 waiting");
}

/// Keyed: 1,000,000 distinct keys (each used once, 10 µs apart on the manual clock) with a 1 s
/// idle time: the table stays bounded (keys are forgotten once idle), at most twice the keys of
/// the last idle time plus the slack of a sweep.
#[test]
#[cfg_attr(miri, ignore = "a million keys")]
fn a_million_distinct_keys_keep_the_table_bounded() {
    let clock = ManualClock::new();
    let per_key = Limiter::keyed::<u64>()
        .concurrency(2)
        .idle(Duration::from_secs(1))
        .with_clock(&clock);
    let n: u64 = if cfg!(debug_assertions) {
        300_000
    } else {
        1_000_000
    };
    let most = Arc::new(AtomicUsize::new(0));
    let (c, k, m) = (clock.clone(), per_key.clone(), Arc::clone(&most));
    let run = (0..n)
        .lane(16)
        .with_clock(&clock)
        .limiter_by(&per_key, |&key| key)
        .map_async(move |key| {
            c.advance(Duration::from_micros(10));
            if key % 1000 == 0 {
                m.fetch_max(k.len(), Ordering::SeqCst);
            }
            async move { key }
        })
        .count();
    assert_eq!(block_on_sync(run) as u64, n);
    // 1 s of keys at 10 µs each: 100,000 in use or not yet idle; the table sweeps when it doubles.
    let bound = 2 * 100_000 + 1_000;
    let most = most.load(Ordering::SeqCst).max(per_key.len());
    assert!(
        most <= bound,
        "{most} keys in the table (bound {bound}) after {n} distinct keys"
    );
    assert!(most >= 100_000, "{most}: keys are kept while not idle");
}

/// A pool and a lane share one `concurrency(3)`: together never more than 3 at once, the pool's
/// jobs give their permits back when they end or are cancelled, and everything completes.
#[test]
fn a_pool_and_a_lane_share_one_limiter() {
    let clock = ManualClock::new();
    let limiter = Limiter::new().concurrency(3);
    let live = Gauge::new();
    let (pool, driver) = tasklane::pool::TaskPool::with_limiter(8, &limiter);
    let jobs: Vec<_> = (0..10)
        .map(|i| {
            let (l, sleep) = (live.clone(), clock.sleep_for(Duration::from_millis(2)));
            pool.submit(async move {
                let _guard = l.enter();
                assert!(l.active() <= 3);
                sleep.await;
                i
            })
        })
        .collect();
    let cancelled = pool.submit(futures::future::pending::<u32>());
    drop(pool);
    let (l, c) = (live.clone(), clock.clone());
    let lane = (0..10u32)
        .lane(8)
        .with_clock(&clock)
        .limiter(&limiter)
        .map_async(move |i| {
            let guard = l.enter();
            assert!(l.active() <= 3);
            let sleep = c.sleep_for(Duration::from_millis(3));
            async move {
                sleep.await;
                drop(guard);
                i
            }
        })
        .count();
    let cancel = {
        let clock = clock.clone();
        async move {
            // Cancel the job that would never end once it runs (or before), then let time pass.
            while clock.elapsed() < Duration::from_millis(5) {
                futures::pending!();
            }
            cancelled.cancel();
            cancelled.await
        }
    };
    let jobs = futures::future::join_all(jobs);
    let ((), n, outs, cancelled) = run_on_clock(&clock, Duration::from_millis(1), 1_000, async {
        futures::join!(driver, lane, jobs, cancel)
    });
    assert_eq!(n, 10);
    assert!(outs.iter().all(|o| o.is_ok()));
    assert!(cancelled.is_err());
    assert_eq!(live.peak(), 3);
    assert_eq!(limiter.in_flight(), 0);
}

/// Many lanes on several threads hammer one `concurrency(1)` with instant items: a lost wake-up
/// between a release and a waiter joining the line would leave a lane asleep forever, which the
/// watchdog catches. Every item comes out, and the count is back to 0.
#[test]
#[cfg_attr(miri, ignore = "threads and many items")]
fn no_waiter_is_lost_between_a_release_and_the_line() {
    watchdog(Duration::from_secs(60), || {
        for round in 0..20 {
            let limiter = Limiter::new().concurrency(1 + round % 3);
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let limiter = limiter.clone();
                    std::thread::spawn(move || {
                        let lanes: Vec<_> = (0..3)
                            .map(|_| {
                                (0..500u32)
                                    .lane(4)
                                    .limiter(&limiter)
                                    .map_async(|x| async move {
                                        if x % 7 == 0 {
                                            yield_times(1).await; // wakes itself, once
                                        }
                                        x
                                    })
                                    .count()
                            })
                            .collect();
                        futures::executor::block_on(futures::future::join_all(lanes))
                    })
                })
                .collect();
            for t in threads {
                assert_eq!(t.join().unwrap(), [500; 3]);
            }
            assert_eq!(limiter.in_flight(), 0);
            assert_eq!(limiter.waiting(), 0);
        }
    });
}

/// A keyed limiter's settings change while it runs: `set_concurrency` 1 → 3 lets each key run 3
/// at once from the next start, for the keys already seen and the new ones.
#[test]
fn keyed_settings_change_while_running() {
    let clock = ManualClock::new();
    let per_key = Limiter::keyed::<u32>().concurrency(1).with_clock(&clock);
    let running: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let peak: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let (r, pk, c) = (Arc::clone(&running), Arc::clone(&peak), clock.clone());
    let mut p = Poller::new(
        (0..200u32)
            .lane(32)
            .with_clock(&clock)
            .limiter_by(&per_key, |&i| i % 4)
            .map_async(move |i| {
                let key = (i % 4) as usize;
                let now = r[key].fetch_add(1, Ordering::SeqCst) + 1;
                pk[key].fetch_max(now, Ordering::SeqCst);
                let (r, sleep) = (Arc::clone(&r), c.sleep_for(Duration::from_millis(1)));
                async move {
                    sleep.await;
                    r[key].fetch_sub(1, Ordering::SeqCst);
                    i
                }
            }),
    );
    let mut out = p.settle();
    for _ in 0..5 {
        clock.advance(Duration::from_millis(1));
        out.extend(p.settle());
    }
    assert!(
        peak.iter().all(|p| p.load(Ordering::SeqCst) == 1),
        "1 per key"
    );
    per_key.set_concurrency(3);
    out.extend(p.settle());
    assert!(
        running.iter().all(|r| r.load(Ordering::SeqCst) == 3),
        "3 per key at the next poll"
    );
    while !p.is_done() {
        clock.advance(Duration::from_millis(1));
        out.extend(p.settle());
    }
    assert_eq!(out.len(), 200);
    assert!(peak.iter().all(|p| p.load(Ordering::SeqCst) == 3));
}

/// Reading ahead keeps every output's input position: an unordered keyed lane starts items out of
/// input order, yet `indexed` gives each output its own position; an ordered keyed lane yields in
/// input order.
#[test]
fn keyed_lanes_keep_input_positions_and_order() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let per_key = Limiter::keyed::<u32>().concurrency(1).with_clock(&clock);
        let c = clock.clone();
        let lane = (0..60u32).lane(8).with_clock(&clock);
        let lane = if ordered { lane.ordered() } else { lane };
        let run = lane
            .limiter_by(&per_key, |&i| i % 3)
            .map_async(move |i| {
                // Key 0's items are slow: the others overtake them.
                let ms = if i % 3 == 0 { 5 } else { 1 };
                let sleep = c.sleep_for(Duration::from_millis(ms));
                async move {
                    sleep.await;
                    i
                }
            })
            .indexed()
            .collect::<Vec<(usize, u32)>>();
        let out = run_on_clock(&clock, Duration::from_millis(1), 10_000, run);
        assert_eq!(out.len(), 60);
        for &(position, i) in &out {
            assert_eq!(position, i as usize, "ordered {ordered}: {out:?}");
        }
        let values: Vec<u32> = out.iter().map(|&(_, i)| i).collect();
        if ordered {
            assert_eq!(values, (0..60).collect::<Vec<_>>());
        } else {
            assert_ne!(
                values,
                (0..60).collect::<Vec<_>>(),
                "the fast keys overtook"
            );
        }
    }
}
