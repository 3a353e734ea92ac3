//! Rate limiting: SCENARIOS.md group G (RL-*), RT-15 (retries pass the limiter again), TO-05 (the
//! timeout does not cover the wait for the limiter), and group Q (LN-*: reusable policies).
//!
//! Everything that depends on timing runs on a `ManualClock`, polled by hand, so start times are
//! exact: a start that the schedule allows at `t` happens at `t`, never 1 ns before. Three real-time
//! tests check it on the system clock with loose upper bounds: RL-01, RL-02, and the timer's slack
//! at 100,000 starts per second.

mod common_time;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use common_time::*;
use futures::channel::mpsc;
use futures::StreamExt;
use proptest::prelude::*;
use tasklane::{prelude::*, Backoff, Policy};

/// Start times of `n` instant items at `per_second` with `burst`, limit `limit`, clock steps `step`.
fn instant_starts(
    n: u32,
    limit: usize,
    per_second: f64,
    burst: u32,
    step: Duration,
) -> Vec<Duration> {
    starts_under(Schedule::CatchUp, n, limit, per_second, burst, &[step])
}

/// Which rate schedule a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schedule {
    /// The default.
    CatchUp,
    /// `.strict_rate()`.
    Strict,
}

/// [`instant_starts`] under `schedule`, the clock moving by each of `steps` in turn (cycling):
/// every step longer than the time to the next permit is a timer that woke late by the difference.
fn starts_under(
    schedule: Schedule,
    n: u32,
    limit: usize,
    per_second: f64,
    burst: u32,
    steps: &[Duration],
) -> Vec<Duration> {
    let sim = Sim::default();
    let s = sim.clone();
    let lane = (0..n)
        .lane(limit)
        .with_clock(&sim.clock)
        .rate(per_second)
        .burst(burst);
    let lane = match schedule {
        Schedule::CatchUp => lane,
        Schedule::Strict => lane.strict_rate(),
    };
    let mut out = lane.map_async(move |i| {
        s.start();
        async move { i }
    });
    let mut items = Vec::new();
    let mut steps = steps.iter().cycle();
    while !sim.drain(&mut out, &mut items) {
        assert!(
            sim.now() < Duration::from_secs(100_000),
            "the lane never finished"
        );
        sim.advance(*steps.next().expect("at least one step"));
    }
    assert_eq!(items.len(), n as usize);
    sim.starts()
}

/// The most of `starts` (in time order) that any half-open window `[t, t + width)` holds.
fn most_in_window(starts: &[Duration], width: Duration) -> usize {
    let mut end = 0;
    (0..starts.len())
        .map(|i| {
            // The fullest windows begin at a start.
            while end < starts.len() && starts[end] < starts[i] + width {
                end += 1;
            }
            end - i
        })
        .max()
        .unwrap_or(0)
}

/// The message of a caught panic.
fn panic_message(err: &Box<dyn std::any::Any + Send>) -> String {
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn ms_list(starts: &[Duration]) -> Vec<f64> {
    starts.iter().map(|d| d.as_secs_f64() * 1e3).collect()
}

#[test]
fn rl_01_rate_spaces_out_task_starts() {
    // 20 instant tasks, limit 20, 100/s: one start every 10 ms, the first at once.
    let starts = instant_starts(20, 20, 100.0, 1, ms(1));
    let expect: Vec<Duration> = (0..20).map(|k| ms(10 * k)).collect();
    assert_eq!(starts, expect);
}

#[test]
#[cfg_attr(miri, ignore = "real time")]
fn rl_01_on_the_system_clock() {
    let t0 = std::time::Instant::now();
    let out: Vec<u32> = futures::executor::block_on(
        (0..20u32)
            .lane(20)
            .rate(100.0)
            .map_async(|i| async move { i })
            .collect(),
    );
    let elapsed = t0.elapsed();
    assert_eq!(out.len(), 20);
    assert!(
        elapsed >= ms(189),
        "20 starts at 100/s took only {elapsed:?}"
    );
    assert!(elapsed < ms(2_000), "took {elapsed:?}");
}

/// The catch-up schedule's timer slack on the system clock (250 µs, see `Configure::rate`): at
/// 100,000 starts per second, one wake-up of the lane serves many starts, and the rate holds. The
/// starts come in runs a few hundred ns apart; a run begins after a gap of more than 20 µs (a
/// wake-up of the timer). Without the slack the timer wakes the lane every few tens of µs (about
/// 4,000 runs here); with it, about one run per 200 µs (a stall of the machine only makes runs
/// fewer). The test asks for at most one per 100 µs, and never faster than the rate.
#[test]
#[cfg_attr(miri, ignore = "real time")]
fn at_a_high_rate_one_timer_wake_up_serves_many_starts() {
    const N: usize = 20_000; // 0.2 s at 100,000 per second
    let t0 = std::time::Instant::now();
    let starts = RefCell::new(Vec::with_capacity(N));
    let count = futures::executor::block_on(
        (0..N)
            .lane(64)
            .rate(100_000.0)
            .map_async(|i| {
                starts.borrow_mut().push(t0.elapsed());
                async move { i }
            })
            .count(),
    );
    let elapsed = t0.elapsed();
    let starts = starts.into_inner();
    assert_eq!((count, starts.len()), (N, N));
    let last = *starts.last().unwrap();
    assert!(
        last >= Duration::from_micros(10 * (N as u64 - 1)) - ms(1),
        "never faster than the rate: the last of {N} starts came at {last:?}"
    );
    let runs = 1 + starts
        .windows(2)
        .filter(|w| w[1] - w[0] > Duration::from_micros(20))
        .count();
    let most = (last.as_micros() / 100) as usize + 5;
    assert!(
        runs <= most,
        "{runs} timer wake-ups for {N} starts over {last:?}: more than one per 100 µs ({most})"
    );
    assert!(elapsed < ms(5_000), "took {elapsed:?}");
}

#[test]
fn rl_02_a_burst_allows_initial_concurrency_then_the_sixth_waits() {
    // 50/s, burst 5: five starts at 0, the sixth at 20 ms exactly.
    let starts = instant_starts(7, 10, 50.0, 5, ms(1));
    assert_eq!(starts[..5], [Duration::ZERO; 5]);
    assert_eq!(starts[5], ms(20));
    assert_eq!(starts[6], ms(40));
}

#[test]
#[cfg_attr(miri, ignore = "real time")]
fn rl_02_on_the_system_clock() {
    let t0 = std::time::Instant::now();
    let starts: Vec<Duration> = futures::executor::block_on(
        (0..6)
            .lane(6)
            .rate(50.0)
            .burst(5)
            .map_async(|_| async move { t0.elapsed() })
            .collect(),
    );
    let mut starts = starts;
    starts.sort();
    assert!(starts[4] < ms(50), "the burst took {:?}", starts[4]);
    assert!(
        starts[5] >= ms(19),
        "the sixth started after {:?}",
        starts[5]
    );
}

#[test]
fn rl_03_the_average_rate_is_bounded() {
    // 200/s, burst 1, 40 starts: the last at 39 * 5 ms = 195 ms, none earlier than its turn.
    let starts = instant_starts(40, 1, 200.0, 1, NS * 100_000);
    assert_eq!(starts.last(), Some(&ms(195)));
    for (k, t) in starts.iter().enumerate() {
        assert!(*t >= ms(5 * k as u64), "start {k} at {t:?}");
    }
}

#[test]
fn rl_04_rl_10_invalid_rates_and_bursts_panic_naming_the_argument() {
    for bad in [0.0, -5.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = std::panic::catch_unwind(|| {
            let _ = [1].lane(1).rate(bad);
        })
        .expect_err("a bad rate must panic");
        let msg = panic_message(&err);
        assert!(msg.contains("`rate`"), "{bad}: {msg}");
        let err = std::panic::catch_unwind(|| {
            let _ = Policy::new(1).rate(bad);
        })
        .expect_err("a bad rate must panic in a policy too");
        assert!(panic_message(&err).contains("`rate`"));
    }
    let err = std::panic::catch_unwind(|| {
        let _ = [1].lane(1).rate(1.0).burst(0);
    })
    .expect_err("burst 0 must panic");
    assert!(panic_message(&err).contains("`burst`"));
    let err = std::panic::catch_unwind(|| {
        let _ = Policy::new(1).burst(0);
    })
    .expect_err("burst 0 must panic in a policy too");
    assert!(panic_message(&err).contains("`burst`"));
}

#[test]
#[cfg_attr(miri, ignore = "panic hooks are process-wide")]
fn rl_04_the_panic_points_at_the_caller() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_seen = std::sync::Arc::clone(&seen);
    let previous = std::panic::take_hook();
    // The hook is process-wide: record only this thread's panics, not those that other tests of
    // this binary make on purpose meanwhile.
    let this_thread = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != this_thread {
            return;
        }
        let location = info.location().unwrap();
        hook_seen
            .lock()
            .unwrap()
            .push((location.file().to_string(), location.line()));
    }));
    let lane_line = line!() + 1;
    let lane = std::panic::catch_unwind(|| drop([1].lane(1).rate(0.0)));
    let policy_line = line!() + 1;
    let policy = std::panic::catch_unwind(|| drop(Policy::new(1).burst(0)));
    std::panic::set_hook(previous);
    assert!(lane.is_err() && policy.is_err());
    let seen = seen.lock().unwrap().clone();
    let file = file!().to_string();
    assert_eq!(seen, [(file.clone(), lane_line), (file, policy_line)]);
}

#[test]
fn rl_05_gaps_between_starts_follow_the_rate() {
    for per_second in [5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 70.0, 100.0] {
        let starts = instant_starts(3, 3, per_second, 1, NS * 300_000);
        // The schedule sets the pace: start k is never before k periods, so a start that came late
        // (at the next clock step) is followed by one that is a little less than a period after it.
        let period = period_of(per_second);
        for (k, t) in starts.iter().enumerate() {
            assert!(
                *t >= period * k as u32,
                "{per_second}/s: start {k} at {t:?}"
            );
        }
        for pair in starts.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap + ms(1) >= period, "{per_second}/s: gap {gap:?}");
            assert!(
                gap.as_secs_f64() <= 1.75 / per_second,
                "{per_second}/s: gap {gap:?}"
            );
        }
    }
}

#[test]
fn rl_06_start_times_at_low_rates() {
    assert_eq!(
        ms_list(&instant_starts(6, 6, 20.0, 1, NS * 1_000_000)),
        [0.0, 50.0, 100.0, 150.0, 200.0, 250.0]
    );
    assert_eq!(
        ms_list(&instant_starts(3, 3, 2.5, 1, NS * 1_000_000)),
        [0.0, 400.0, 800.0]
    );
    // Below one per second: 0.2/s is one start every 5 s.
    assert_eq!(
        instant_starts(3, 3, 0.2, 1, ms(100)),
        [
            Duration::ZERO,
            Duration::from_secs(5),
            Duration::from_secs(10)
        ]
    );
}

#[test]
fn rl_07_no_idle_credit_after_a_pause() {
    // 20/s, limit 2, 300 ms tasks: [0, 50, 300, 350, 600, 650].
    let sim = Sim::default();
    let s = sim.clone();
    let mut out = (0..6)
        .lane(2)
        .with_clock(&sim.clock)
        .rate(20.0)
        .map_async(move |i| {
            s.start();
            let sleep = s.sleep(ms(300));
            async move {
                sleep.await;
                i
            }
        });
    sim.run(&mut out, ms(1));
    assert_eq!(
        ms_list(&sim.starts()),
        [0.0, 50.0, 300.0, 350.0, 600.0, 650.0]
    );
}

#[test]
fn rl_07_slots_freed_together_after_a_pause_still_start_a_period_apart() {
    // Both tasks end at 500 ms exactly: the lane was held up by its limit, not by the rate, so the
    // pause earns no credit: the next two start at 500 and 550, never back to back.
    let sim = Sim::default();
    let s = sim.clone();
    let mut out = (0..4u64)
        .lane(2)
        .with_clock(&sim.clock)
        .rate(20.0)
        .map_async(move |i| {
            s.start();
            let end = if i < 2 { ms(500) } else { ms(0) };
            let sleep = s.sleep(end.saturating_sub(s.now()));
            async move {
                sleep.await;
                i
            }
        });
    sim.run(&mut out, ms(10));
    assert_eq!(ms_list(&sim.starts()), [0.0, 50.0, 500.0, 550.0]);
}

#[test]
fn rl_08_rt_15_retries_pass_the_limiter_again() {
    // 10/s, an item failing twice, retries 5, zero back-off: attempts at 0, 100, 200 ms.
    let sim = Sim::default();
    let s = sim.clone();
    let calls = Calls::default();
    let mut out = [0u32]
        .lane(1)
        .with_clock(&sim.clock)
        .rate(10.0)
        .retry(5)
        .backoff(Backoff::constant(Duration::ZERO))
        .map_async(move |id| {
            s.start();
            let n = calls.next(id);
            async move {
                if n <= 2 {
                    Err("flaky")
                } else {
                    Ok(n)
                }
            }
        });
    let items = sim.run(&mut out, ms(1));
    assert_eq!(items.len(), 1);
    assert_eq!(*items[0].as_ref().unwrap(), 3);
    assert_eq!(ms_list(&sim.starts()), [0.0, 100.0, 200.0]);
}

/// Items 0, 1, 2 at 10 starts per second, limit 2, one retry after a constant `backoff`; item 0's
/// first attempt fails. The clock moves in steps of `step`. Returns (ms, item, attempt) of every
/// attempt start, in order.
fn item_0_retries_among_new_items(backoff: Duration, step: Duration) -> Vec<(u64, u32, u32)> {
    let sim = Sim::default();
    let s = sim.clone();
    let calls = Calls::default();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = Rc::clone(&log);
    let mut out = [0u32, 1, 2]
        .lane(2)
        .with_clock(&sim.clock)
        .rate(10.0)
        .retry(1)
        .backoff(Backoff::constant(backoff))
        .map_async(move |id| {
            let n = calls.next(id);
            l.borrow_mut().push((s.now().as_millis() as u64, id, n));
            async move {
                if id == 0 && n == 1 {
                    Err("first attempt fails")
                } else {
                    Ok(id)
                }
            }
        });
    let items = sim.run(&mut out, step);
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    let starts = log.borrow().clone();
    starts
}

/// Item 0 fails at once and its retry (no back-off) waits for a permit. A slot is free, but item 1
/// is not pulled ahead of the waiting retry: the retry takes the permit at 100 ms, item 1 the next
/// at 200 ms, item 2 the one at 300 ms.
#[test]
fn a_retry_waiting_for_a_permit_goes_before_new_items() {
    assert_eq!(
        item_0_retries_among_new_items(Duration::ZERO, ms(1)),
        [(0, 0, 1), (100, 0, 2), (200, 1, 1), (300, 2, 1)]
    );
}

#[test]
fn rl_09_each_run_of_a_policy_has_its_own_limiter() {
    let sim = Sim::default();
    let policy = Policy::new(4).rate(10.0).with_clock(&sim.clock);
    let (a, b) = (sim.clone(), sim.clone());
    let mut first = (0..2).lane_with(&policy).map_async(move |i| {
        a.start();
        async move { i }
    });
    let mut second = (0..2).lane_with(&policy).map_async(move |i| {
        b.start();
        async move { i }
    });
    let mut got = Vec::new();
    sim.drain(&mut first, &mut got);
    sim.drain(&mut second, &mut got);
    // Both runs start their first item at once: they do not share a budget.
    assert_eq!(sim.starts(), [Duration::ZERO, Duration::ZERO]);
    sim.advance(ms(100));
    sim.drain(&mut first, &mut got);
    sim.drain(&mut second, &mut got);
    assert_eq!(sim.starts().len(), 4);
    assert_eq!(got.len(), 4);
}

#[test]
fn to_05_the_timeout_does_not_cover_the_wait_for_the_limiter() {
    // 5 items of 10 ms at 10/s, limit 5, timeout 50 ms: all succeed, the last starting at 400 ms.
    let sim = Sim::default();
    let s = sim.clone();
    let mut out = (0..5)
        .lane(5)
        .with_clock(&sim.clock)
        .rate(10.0)
        .timeout(ms(50))
        .map_async(move |i| {
            s.start();
            let sleep = s.sleep(ms(10));
            async move {
                sleep.await;
                Ok::<_, ()>(i)
            }
        });
    let items = sim.run(&mut out, ms(1));
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    assert_eq!(sim.starts().last(), Some(&ms(400)));
    assert_eq!(sim.now(), ms(410));
}

#[test]
fn the_input_is_not_read_ahead_while_the_lane_waits_for_the_limiter() {
    let sim = Sim::default();
    let pulled = Rc::new(RefCell::new(0));
    let p = Rc::clone(&pulled);
    let input = (0..10).into_stream().inspect(move |_| *p.borrow_mut() += 1);
    let mut out = input
        .lane(8)
        .with_clock(&sim.clock)
        .rate(10.0)
        .map_async(|i| async move { i });
    let mut got = Vec::new();
    sim.drain(&mut out, &mut got);
    assert_eq!(
        (got.len(), *pulled.borrow()),
        (1, 1),
        "free slots, but no permit"
    );
    sim.advance(ms(99));
    sim.drain(&mut out, &mut got);
    assert_eq!(*pulled.borrow(), 1, "pulled 1 ms before its permit");
    sim.advance(ms(1));
    sim.drain(&mut out, &mut got);
    assert_eq!((got.len(), *pulled.borrow()), (2, 2));
}

#[test]
fn a_late_wake_up_releases_every_start_the_schedule_allowed() {
    // 1,000/s (1 ms): the clock jumps 4.5 ms at a time, as if the timer woke late each time. The
    // starts come in bunches, but exactly as many as the schedule allows: by time t, 1 + ⌊t / 1 ms⌋.
    let starts = instant_starts(100, 64, 1_000.0, 1, NS * 4_500_000);
    for (k, t) in starts.iter().enumerate() {
        assert!(*t >= ms(k as u64), "start {k} at {t:?} is early");
    }
    // No throughput lost: the 100th start (k = 99, due at 99 ms) came at the first reading after.
    assert!(starts[99] < ms(99) + NS * 4_500_000, "{:?}", starts[99]);
    let at_9ms = starts.iter().filter(|t| **t <= ms(9)).count();
    assert_eq!(at_9ms, 10);
}

#[test]
fn after_idleness_at_most_the_burst_comes_back_to_back() {
    let sim = Sim::default();
    let (tx, rx) = mpsc::unbounded::<u32>();
    let s = sim.clone();
    let mut out = rx
        .lane(16)
        .with_clock(&sim.clock)
        .rate(100.0)
        .burst(3)
        .map_async(move |i| {
            s.start();
            async move { i }
        });
    let mut got = Vec::new();
    sim.drain(&mut out, &mut got); // idle: nothing to start
    sim.advance(Duration::from_secs(10)); // a long idle time...
    for i in 0..10 {
        tx.unbounded_send(i).unwrap(); // ...then a flood
    }
    sim.drain(&mut out, &mut got);
    assert_eq!(sim.starts().len(), 3, "only the burst at once");
    sim.advance(ms(9));
    sim.drain(&mut out, &mut got);
    assert_eq!(sim.starts().len(), 3);
    sim.advance(ms(1));
    sim.drain(&mut out, &mut got);
    assert_eq!(sim.starts().len(), 4, "then one per period");
}

#[test]
fn dropping_a_lane_that_waits_for_the_limiter_frees_everything() {
    let sim = Sim::default();
    let (token, items) = items(5);
    let mut out = items
        .lane(4)
        .with_clock(&sim.clock)
        .rate(1.0)
        .retry(3)
        .map_async(|item: Item| async move { Err::<u32, _>(item.id) });
    let mut got = Vec::new();
    sim.drain(&mut out, &mut got);
    assert!(std::rc::Rc::strong_count(&token) > 1);
    drop(out);
    assert_eq!(
        std::rc::Rc::strong_count(&token),
        1,
        "everything the lane held is dropped"
    );
}

#[test]
fn ln_01_deriving_a_policy_never_changes_the_original() {
    let base = Policy::new(4).retry::<&str>(1);
    let derived = base.clone().with_limit(8);
    assert_eq!([0].lane_with(&base).limit(), 4);
    assert_eq!([0].lane_with(&derived).limit(), 8);
    // The derived policy kept `retries = 1`: two attempts per failing item.
    for policy in [&base, &derived] {
        let calls = Calls::default();
        let c = calls.clone();
        let out: Vec<_> = futures::executor::block_on(
            [7u32]
                .lane_with(policy)
                .backoff(Backoff::constant(Duration::ZERO))
                .map_async(move |id| {
                    c.next(id);
                    async move { Err::<(), _>("no") }
                })
                .collect(),
        );
        assert_eq!(out[0].as_ref().unwrap_err().attempts(), 2);
        assert_eq!(calls.of(7), 2);
    }
}

#[test]
fn ln_01_a_policy_is_clone_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>(_: &T) {}
    let policy = Policy::new(4)
        .ordered()
        .retry::<std::io::Error>(2)
        .retry_if(|e| e.is_timeout())
        .timeout(ms(100))
        .rate(5.0)
        .burst(2);
    assert_send_sync(&policy);
    let _ = format!("{policy:?}");
}

#[test]
fn ln_02_defaults_of_a_policy() {
    // Unordered, no retry, no timeout, no rate: a plain lane whose outputs are the futures' own.
    let policy = Policy::new(16);
    let lane = (0..3).lane_with(&policy);
    assert_eq!(lane.limit(), 16);
    assert!(!lane.is_ordered());
    let mut out: Vec<u32> =
        futures::executor::block_on(lane.map_async(|x| async move { x }).collect());
    out.sort_unstable();
    assert_eq!(out, [0, 1, 2]);
    let err = std::panic::catch_unwind(|| Policy::new(0)).expect_err("limit 0 panics");
    assert!(panic_message(&err).contains("`limit`"));
    let err =
        std::panic::catch_unwind(|| Policy::new(3).with_limit(0)).expect_err("limit 0 panics");
    assert!(panic_message(&err).contains("`limit`"));
}

/// `limit(n)`, the old name of a policy's `with_limit(n)`, still sets the limit and checks it.
#[test]
#[allow(deprecated)] // reason: the deprecated name must keep working until it is removed
fn ln_02_the_deprecated_limit_setter_of_a_policy_still_works() {
    let policy = Policy::new(4).limit(8);
    assert_eq!([0].lane_with(&policy).limit(), 8);
    assert_eq!(tasklane::Configure::limit(&policy), 8);
    let err = std::panic::catch_unwind(|| Policy::new(3).limit(0)).expect_err("limit 0 panics");
    assert!(panic_message(&err).contains("`limit`"));
}

// Found in review: retries against new items at a shared deadline, stalls, saturation.

/// A retry whose back-off ends when a permit comes due must get that permit before a new item.
/// Item 0 fails at 0 ms and backs off 100 ms (constant); the limiter (10/s) has its next permit at
/// 100 ms too. Both are due at 100 ms: the retry is due "first" by API.md (retries go before new
/// items), so the expected order is: retry of 0 at 100, item 1 at 200, item 2 at 300.
#[test]
fn a_retry_whose_backoff_ends_with_the_permit_goes_before_new_items() {
    assert_eq!(
        item_0_retries_among_new_items(ms(100), ms(1)),
        [(0, 0, 1), (100, 0, 2), (200, 1, 1), (300, 2, 1)]
    );
}

/// The same with a late timer: the back-off is over at 50 ms, the permit at 100 ms, and the lane
/// is next polled at 120 ms (the timer woke late). The retry has been waiting since 50 ms and must
/// take the 100 ms permit; a new item must not jump the line.
#[test]
fn a_retry_waiting_since_before_a_late_wake_up_goes_before_new_items() {
    let log = item_0_retries_among_new_items(ms(50), ms(120));
    let order: Vec<(u32, u32)> = log.iter().map(|&(_, id, n)| (id, n)).collect();
    assert_eq!(order, [(0, 1), (0, 2), (1, 1), (2, 1)], "{log:?}");
}

/// API.md: "idle time earns no credit beyond the burst". A consumer that takes an output and then
/// does its own work for a second (the lane is not polled meanwhile) gets no more than `burst`
/// starts back to back afterwards: a schedule that far behind restarts from the present.
#[test]
fn a_slow_consumer_earns_no_credit_beyond_the_burst() {
    let sim = Sim::default();
    let s = sim.clone();
    let mut out = (0..20u32)
        .lane(16)
        .with_clock(&sim.clock)
        .rate(1_000.0)
        .burst(1)
        .map_async(move |i| {
            s.start();
            async move { i }
        });
    assert_eq!(next_now(&mut out), 0); // start 0 at 0; start 1 denied (due 1 ms)
    sim.advance(Duration::from_secs(1)); // the consumer is busy for a second
    let _ = poll_once(&mut out);
    let at_1s = sim
        .starts()
        .iter()
        .filter(|t| **t == Duration::from_secs(1))
        .count();
    assert!(
        at_1s <= 1,
        "{at_1s} starts back to back at 1 s with burst 1"
    );
}

/// Dropping the lane while a retry waits in the permit line (zero back-off, denied) frees the item.
#[test]
fn dropping_the_lane_with_a_retry_waiting_for_its_permit_frees_everything() {
    let sim = Sim::default();
    let (token, items) = items(3);
    let mut out = items
        .lane(2)
        .with_clock(&sim.clock)
        .rate(1.0)
        .retry(3)
        .backoff(Backoff::constant(Duration::ZERO))
        .map_async(|item: Item| async move { Err::<u32, _>(item.id) });
    let mut got = Vec::new();
    sim.drain(&mut out, &mut got);
    assert!(got.is_empty());
    drop(out);
    assert_eq!(Rc::strong_count(&token), 1);
}

/// The timeout of a retry does not cover its wait in the permit line.
#[test]
fn the_timeout_does_not_cover_a_retry_waiting_for_its_permit() {
    let sim = Sim::default();
    let s = sim.clone();
    let calls = Calls::default();
    let mut out = [0u32]
        .lane(1)
        .with_clock(&sim.clock)
        .rate(10.0) // 100 ms
        .timeout(ms(50))
        .retry(1)
        .backoff(Backoff::constant(Duration::ZERO))
        .map_async(move |id| {
            let n = calls.next(id);
            let sleep = s.sleep(ms(40));
            async move {
                if n == 1 {
                    Err("fails at once")
                } else {
                    sleep.await;
                    Ok(n)
                }
            }
        });
    let items = sim.run(&mut out, ms(1));
    assert_eq!(items.len(), 1);
    assert_eq!(*items[0].as_ref().unwrap(), 2);
}

/// for_each_async over a rate-limited, retrying, ordered lane: every item handled exactly once,
/// starts on schedule.
#[test]
fn for_each_async_with_rate_retries_and_order() {
    use std::task::Poll;
    let sim = Sim::default();
    let s = sim.clone();
    let s2 = sim.clone();
    let calls = Calls::default();
    let handled = Rc::new(RefCell::new(Vec::new()));
    let h = Rc::clone(&handled);
    let fut = (0..30u32)
        .lane(4)
        .with_clock(&sim.clock)
        .rate(100.0)
        .burst(2)
        .retry(2)
        .backoff(Backoff::constant(ms(3)))
        .ordered()
        .map_async(move |id| {
            s.start();
            let n = calls.next(id);
            let sleep = s.sleep(ms(u64::from(id % 7)));
            async move {
                sleep.await;
                if id % 3 == 0 && n == 1 {
                    Err(id)
                } else {
                    Ok(id)
                }
            }
        })
        .for_each_async(move |r| {
            h.borrow_mut().push(r.unwrap());
            s2.sleep(ms(5))
        });
    let mut fut = Box::pin(fut);
    let mut cx = futures_test::task::noop_context();
    let mut steps = 0;
    while fut.as_mut().poll(&mut cx) == Poll::Pending {
        sim.advance(ms(1));
        steps += 1;
        assert!(steps < 100_000);
    }
    assert_eq!(*handled.borrow(), (0..30).collect::<Vec<_>>());
    let starts = sim.starts();
    assert_eq!(starts.len(), 40);
    let t0 = starts[0];
    for (k, t) in starts.iter().enumerate() {
        let bound = t0 + ms(10) * (k as u32 + 1).saturating_sub(2);
        assert!(*t >= bound, "start {k} at {t:?} before {bound:?}");
    }
}

/// rate(10.0), burst 1: never more than 10 starts in any one-second window, also when the consumer
/// pauses for a second after its first output (work waits, the lane is not polled): the pause earns
/// no credit, so the second start after it comes a whole period after the first.
#[test]
fn after_a_consumer_pause_no_second_holds_more_starts_than_the_rate() {
    let sim = Sim::default();
    let s = sim.clone();
    let mut out = (0..40u32)
        .lane(16)
        .with_clock(&sim.clock)
        .rate(10.0)
        .map_async(move |i| {
            s.start();
            async move { i }
        });
    assert_eq!(next_now(&mut out), 0);
    sim.advance(Duration::from_secs(1)); // the consumer handles item 0 for a second
    let mut got = Vec::new();
    while sim.now() < Duration::from_secs(3) {
        sim.drain(&mut out, &mut got);
        sim.advance(ms(1));
    }
    let starts = sim.starts();
    let most = starts
        .iter()
        .map(|a| {
            starts
                .iter()
                .filter(|t| **t >= *a && **t < *a + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most <= 10,
        "{most} starts in one second: {:?}",
        ms_list(&starts[..4])
    );
}

/// A very low rate with a burst: the tolerance `(burst - 1) * T` and `tat` exceed u64::MAX. Had they
/// saturated there, `next_allowed = tat - tau` would be 0 forever (no limit at all); the limiter
/// keeps them exact, so only the burst starts. The strict window (`burst * T`) saturates to "never".
#[test]
fn a_tiny_rate_with_a_burst_still_limits() {
    for schedule in [Schedule::CatchUp, Schedule::Strict] {
        for (per_second, burst) in [(1e-300, 2u32), (1e-10, 3)] {
            let sim = Sim::default();
            let s = sim.clone();
            let lane = (0..10u32)
                .lane(10)
                .with_clock(&sim.clock)
                .rate(per_second)
                .burst(burst);
            let lane = match schedule {
                Schedule::CatchUp => lane,
                Schedule::Strict => lane.strict_rate(),
            };
            let mut out = lane.map_async(move |i| {
                s.start();
                async move { i }
            });
            let mut got = Vec::new();
            sim.drain(&mut out, &mut got);
            sim.advance(Duration::from_secs(1_000_000));
            sim.drain(&mut out, &mut got);
            assert_eq!(
                sim.starts().len(),
                burst as usize,
                "{schedule:?} rate({per_second}).burst({burst}): {} starts",
                sim.starts().len()
            );
        }
    }
}

/// The lane's period for `per_second`, computed as the lane does (rounded up to the nanosecond).
fn period_of(per_second: f64) -> Duration {
    Duration::from_nanos((1e9 / per_second).ceil() as u64)
}

/// Arrival times (ms), task durations (ms) and the lane's shape, for the schedule property.
fn schedule_inputs() -> impl Strategy<Value = (u64, u32, usize, Vec<(u64, u64)>, u64)> {
    (1u64..=20, 1u32..=4, 1usize..=6, 1usize..=40, 1u64..=8).prop_flat_map(
        |(period_ms, burst, limit, n, step_tenths)| {
            (
                Just(period_ms),
                Just(burst),
                Just(limit),
                proptest::collection::vec((0u64..200, 0u64..30), n),
                Just(step_tenths),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 128 },
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    /// Over random rates, bursts, limits, arrival times and task durations: start k is never earlier
    /// than `t0 + (k - burst + 1) T`; at no instant do more than `burst` starts come back to back
    /// (the clock moves in steps shorter than a period, so no late wake-up is ever owed: whatever
    /// comes at once comes from the burst, after idleness or not); and every item yields exactly one
    /// output.
    #[test]
    fn the_schedule_holds_over_random_arrivals(
        (period_ms, burst, limit, jobs, step_tenths) in schedule_inputs()
    ) {
        let sim = Sim::default();
        let per_second = 1_000.0 / period_ms as f64;
        let period = period_of(per_second);
        let (tx, rx) = mpsc::unbounded::<(usize, u64)>();
        let s = sim.clone();
        let mut out = rx
            .lane(limit)
            .with_clock(&sim.clock)
            .rate(per_second)
            .burst(burst)
            .map_async(move |(i, dur)| {
                s.start();
                let sleep = s.sleep(ms(dur));
                async move { sleep.await; i }
            });
        let mut arrivals: Vec<(u64, usize, u64)> =
            jobs.iter().enumerate().map(|(i, &(at, dur))| (at, i, dur)).collect();
        arrivals.sort_unstable();
        let mut pending = arrivals.into_iter().peekable();
        let step = period * step_tenths as u32 / 10;
        let mut got = Vec::new();
        let mut tx = Some(tx);
        loop {
            while let Some(&(at, i, dur)) = pending.peek() {
                if ms(at) > sim.now() { break; }
                tx.as_ref().unwrap().unbounded_send((i, dur)).unwrap();
                pending.next();
            }
            if pending.peek().is_none() { tx = None; }
            if sim.drain(&mut out, &mut got) { break; }
            prop_assert!(sim.now() < Duration::from_secs(3_600));
            sim.advance(step.max(NS));
        }
        got.sort_unstable();
        prop_assert_eq!(got, (0..jobs.len()).collect::<Vec<_>>());
        let starts = sim.starts();
        let t0 = starts[0];
        for (k, t) in starts.iter().enumerate() {
            let due = t0 + period * (k as u32 + 1).saturating_sub(burst);
            prop_assert!(*t >= due, "start {} at {:?}, due {:?}", k, t, due);
        }
        for same in starts.chunk_by(|a, b| a == b) {
            prop_assert!(same.len() <= burst as usize,
                "{} starts at {:?} (burst {})", same.len(), same[0], burst);
        }
    }

    /// With saturated demand (every item there from the start, instant tasks) and the clock moving in
    /// steps of up to 5 ms (late timer wake-ups), no throughput is lost: by each start, exactly as many
    /// have started as the schedule allows.
    #[test]
    #[cfg_attr(miri, ignore = "hundreds of thousands of clock steps")]
    fn late_wake_ups_cost_no_throughput(
        period_us in 10u64..=2_000, burst in 1u32..=4, step_us in 1u64..=5_000, n in 1u32..=300
    ) {
        let per_second = 1e6 / period_us as f64;
        let starts = instant_starts(n, 64, per_second, burst, NS * (step_us as u32 * 1_000));
        let period = period_of(per_second);
        for (k, t) in starts.iter().enumerate() {
            let due = period * (k as u32 + 1).saturating_sub(burst);
            prop_assert!(*t >= due, "start {} at {:?} before {:?}", k, t, due);
            // Not later than the first clock reading at or after its due time.
            prop_assert!(*t < due + NS * (step_us as u32 * 1_000), "start {} at {:?}, due {:?}", k, t, due);
        }
    }
}

// The strict schedule (issue 16, item 6): `.strict_rate()` never puts more than `burst` starts in a
// window of `burst / rate`, however late the timer wakes; the default catches up instead.

/// The issue's own figures: at `rate(100.0)` with the timer waking up to 2 ms late (the clock moves
/// 3 ms at a time), the default catches up and puts 11 starts in one 100 ms window and 101 in one
/// second; the strict schedule never more than 10 and 100, any two starts at least 10 ms apart.
#[test]
fn strict_rate_never_puts_11_starts_in_100_ms_where_the_default_does() {
    let late = [ms(3)];
    let catch_up = starts_under(Schedule::CatchUp, 150, 64, 100.0, 1, &late);
    let strict = starts_under(Schedule::Strict, 150, 64, 100.0, 1, &late);
    let second = Duration::from_secs(1);
    assert_eq!(most_in_window(&catch_up, ms(100)), 11);
    assert_eq!(most_in_window(&catch_up, second), 101);
    assert_eq!(most_in_window(&catch_up, ms(10)), 2);
    assert_eq!(most_in_window(&strict, ms(10)), 1);
    assert_eq!(most_in_window(&strict, ms(100)), 9);
    assert_eq!(most_in_window(&strict, second), 84);
    for pair in strict.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            ms(12),
            "the first reading 10 ms after the last start"
        );
    }
    // The price: the catch-up schedule kept its rate (the 150th start, due at 1.49 s, came at the
    // first reading after it); the strict one lost the lateness on every start.
    assert_eq!(catch_up[149], ms(1_491));
    assert_eq!(strict[149], ms(149 * 12));
}

/// With a burst, the strict window is `burst` periods long: at 100/s and burst 10, at most 10 starts
/// in any 100 ms; the default lets the burst and the following periods share a window.
#[test]
fn strict_rate_with_a_burst_holds_every_window_of_burst_periods() {
    for late in [ms(1), ms(3), ms(15)] {
        let catch_up = starts_under(Schedule::CatchUp, 60, 64, 100.0, 10, &[late]);
        let strict = starts_under(Schedule::Strict, 60, 64, 100.0, 10, &[late]);
        assert!(
            most_in_window(&catch_up, ms(100)) > 10,
            "steps of {late:?}: the default caught up"
        );
        assert_eq!(most_in_window(&strict, ms(100)), 10, "steps of {late:?}");
        // Bunches of ten at 0, 100, 200, ... ms (at the first reading after).
        assert_eq!(strict[..10], [Duration::ZERO; 10]);
        assert!(strict[10] >= ms(100) && strict[10] < ms(100) + late);
    }
}

/// Retries pass the strict limiter too, and idle time earns no credit beyond the burst: after a
/// long pause a flood gets `burst` starts, then the next one when the first of them is a window old.
#[test]
fn strict_rate_after_idleness_and_with_retries() {
    let sim = Sim::default();
    let (tx, rx) = mpsc::unbounded::<u32>();
    let s = sim.clone();
    let calls = Calls::default();
    let mut out = rx
        .lane(16)
        .with_clock(&sim.clock)
        .rate(100.0)
        .burst(3)
        .strict_rate()
        .retry(1)
        .backoff(Backoff::constant(Duration::ZERO))
        .map_async(move |i| {
            s.start();
            let n = calls.next(i);
            async move {
                if i == 0 && n == 1 {
                    Err("the first attempt of item 0 fails")
                } else {
                    Ok(i)
                }
            }
        });
    let mut got = Vec::new();
    sim.drain(&mut out, &mut got); // idle: nothing to start
    sim.advance(Duration::from_secs(10));
    for i in 0..10 {
        tx.unbounded_send(i).unwrap();
    }
    drop(tx);
    sim.drain(&mut out, &mut got);
    assert_eq!(
        sim.starts().len(),
        3,
        "only the burst at once (the retry among them)"
    );
    sim.advance(ms(29));
    sim.drain(&mut out, &mut got);
    assert_eq!(sim.starts().len(), 3, "the window is 30 ms");
    sim.advance(ms(1));
    sim.drain(&mut out, &mut got);
    assert_eq!(sim.starts().len(), 6);
    while !sim.drain(&mut out, &mut got) {
        sim.advance(ms(7));
    }
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(sim.starts().len(), 11, "ten items, one retry");
    assert!(most_in_window(&sim.starts(), ms(30)) <= 3);
}

/// A policy carries the strict schedule to each of its runs, each with its own log.
#[test]
fn strict_rate_in_a_policy_gives_each_run_its_own_window() {
    let sim = Sim::default();
    let policy = Policy::new(4)
        .rate(10.0)
        .burst(2)
        .strict_rate()
        .with_clock(&sim.clock);
    let (a, b) = (sim.clone(), sim.clone());
    let mut first = (0..3).lane_with(&policy).map_async(move |i| {
        a.start();
        async move { i }
    });
    let mut second = (0..3).lane_with(&policy).map_async(move |i| {
        b.start();
        async move { i }
    });
    let mut got = Vec::new();
    sim.drain(&mut first, &mut got);
    sim.drain(&mut second, &mut got);
    assert_eq!(
        sim.starts(),
        [Duration::ZERO; 4],
        "two each, not two in all"
    );
    sim.advance(ms(100)); // catch-up would allow the third now; the strict window is 200 ms
    sim.drain(&mut first, &mut got);
    sim.drain(&mut second, &mut got);
    assert_eq!(sim.starts().len(), 4);
    sim.advance(ms(100));
    sim.drain(&mut first, &mut got);
    sim.drain(&mut second, &mut got);
    assert_eq!(sim.starts().len(), 6);
    assert_eq!(got.len(), 6);
}

/// The strict log holds one time per unit of burst: a burst above 65,536 panics naming `burst`,
/// whichever of `burst` and `strict_rate` comes last, on a lane and on a policy, at the caller.
#[test]
#[cfg_attr(miri, ignore = "panic hooks are process-wide")]
fn strict_rate_with_a_burst_above_the_cap_panics_naming_burst_at_the_caller() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_seen = std::sync::Arc::clone(&seen);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().unwrap();
        hook_seen.lock().unwrap().push(location.line());
    }));
    let mut lines = Vec::new();
    let mut messages = Vec::new();
    let mut expect = |line: u32, result: std::thread::Result<()>| {
        lines.push(line);
        messages.push(panic_message(
            &result.expect_err("a burst above the cap panics"),
        ));
    };
    expect(
        line!() + 1,
        std::panic::catch_unwind(|| drop([1].lane(1).rate(1.0).strict_rate().burst(65_537))),
    );
    expect(
        line!() + 1,
        std::panic::catch_unwind(|| drop([1].lane(1).burst(u32::MAX).strict_rate())),
    );
    expect(
        line!() + 1,
        std::panic::catch_unwind(|| drop(Policy::new(1).strict_rate().burst(1 << 20))),
    );
    expect(
        line!() + 1,
        std::panic::catch_unwind(|| drop(Policy::new(1).burst(65_537).strict_rate())),
    );
    std::panic::set_hook(previous);
    assert_eq!(*seen.lock().unwrap(), lines);
    for msg in &messages {
        assert!(
            msg.contains("`burst` must be at most 65536 with `strict_rate`"),
            "{msg}"
        );
    }
    // At the cap, and any burst without strict_rate, are fine.
    let _ = [1].lane(1).rate(1.0).burst(65_536).strict_rate();
    let _ = Policy::new(1).strict_rate().burst(65_536);
    let _ = [1].lane(1).rate(1.0).burst(u32::MAX);
}

/// A job of [`strict_inputs`]: its arrival (ms), its duration (ms), whether its first attempt fails.
type Job = (u64, u64, bool);

/// Rates, bursts, limits, arrivals, task durations, first-attempt failures and a cycle of clock steps
/// (tenths of a period, up to four periods: timers that wake early, on time and late), for the strict
/// schedule's property.
fn strict_inputs() -> impl Strategy<Value = (u64, u32, usize, Vec<Job>, Vec<u64>)> {
    (1u64..=20, 1u32..=6, 1usize..=6, 1usize..=40, 1usize..=8).prop_flat_map(
        |(period_ms, burst, limit, n, steps)| {
            (
                Just(period_ms),
                Just(burst),
                Just(limit),
                proptest::collection::vec((0u64..200, 0u64..30, any::<bool>()), n),
                proptest::collection::vec(1u64..=40, steps),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 128 },
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    /// Over random rates, bursts, limits, arrivals, durations and retries, with the clock moving by
    /// random steps (timers that wake late by up to three periods): no window of `burst` periods
    /// holds more than `burst` attempt starts, start k is never earlier than `t0 + (k - burst + 1) T`,
    /// and every item yields exactly one output.
    #[test]
    fn the_strict_schedule_holds_over_random_arrivals_and_late_wake_ups(
        (period_ms, burst, limit, jobs, step_tenths) in strict_inputs()
    ) {
        let sim = Sim::default();
        let per_second = 1_000.0 / period_ms as f64;
        let period = period_of(per_second);
        let (tx, rx) = mpsc::unbounded::<(u32, u64, bool)>();
        let s = sim.clone();
        let calls = Calls::default();
        let mut out = rx
            .lane(limit)
            .with_clock(&sim.clock)
            .rate(per_second)
            .burst(burst)
            .strict_rate()
            .retry(1)
            .backoff(Backoff::constant(ms(2)))
            .map_async(move |(i, dur, fails)| {
                s.start();
                let first = calls.next(i) == 1;
                let sleep = s.sleep(ms(dur));
                async move {
                    sleep.await;
                    if fails && first { Err(i) } else { Ok(i) }
                }
            });
        let mut arrivals: Vec<(u64, u32, u64, bool)> = jobs
            .iter()
            .enumerate()
            .map(|(i, &(at, dur, fails))| (at, i as u32, dur, fails))
            .collect();
        arrivals.sort_unstable();
        let mut pending = arrivals.into_iter().peekable();
        let mut steps = step_tenths.iter().cycle().map(|&t| (period * t as u32 / 10).max(NS));
        let mut got = Vec::new();
        let mut tx = Some(tx);
        loop {
            while let Some(&(at, i, dur, fails)) = pending.peek() {
                if ms(at) > sim.now() { break; }
                tx.as_ref().unwrap().unbounded_send((i, dur, fails)).unwrap();
                pending.next();
            }
            if pending.peek().is_none() { tx = None; }
            if sim.drain(&mut out, &mut got) { break; }
            prop_assert!(sim.now() < Duration::from_secs(3_600));
            sim.advance(steps.next().unwrap());
        }
        let mut got: Vec<u32> = got.into_iter().map(|r| r.expect("one retry is enough")).collect();
        got.sort_unstable();
        prop_assert_eq!(got, (0..jobs.len() as u32).collect::<Vec<_>>());
        let starts = sim.starts();
        let retries = jobs.iter().filter(|j| j.2).count();
        prop_assert_eq!(starts.len(), jobs.len() + retries);
        let most = most_in_window(&starts, period * burst);
        prop_assert!(most <= burst as usize, "{} starts in a window of {:?} (burst {})",
            most, period * burst, burst);
        let t0 = starts[0];
        for (k, t) in starts.iter().enumerate() {
            let due = t0 + period * (k as u32 + 1).saturating_sub(burst);
            prop_assert!(*t >= due, "start {} at {:?}, due {:?}", k, t, due);
        }
    }

    /// Saturated demand (every item there from the start, instant tasks), the same random late
    /// wake-ups for both schedules (clock steps of up to 5 ms, the first one at least `burst + 1`
    /// periods): the default catches up, so some window of `burst` periods holds more than `burst`
    /// starts, and no start comes later than under the strict schedule; the strict schedule holds
    /// every window.
    #[test]
    fn under_late_wake_ups_the_default_catches_up_and_the_strict_schedule_holds_every_window(
        period_us in 10u64..=500,
        burst in 1u32..=8,
        first in 0u64..=1_000,
        step_us in proptest::collection::vec(1u64..=5_000, 1..=8),
        n in 20u32..=200,
    ) {
        let per_second = 1e6 / period_us as f64;
        let period = period_of(per_second);
        let window = period * burst;
        // The first wake-up is late by at least a burst and one period, and at most 5 ms (the
        // default catches up from up to 5 ms behind).
        let at_least = period * (burst + 1);
        let first = at_least + (ms(5) - at_least) * first as u32 / 1_000;
        let steps: Vec<Duration> = std::iter::once(first)
            .chain(step_us.iter().map(|&us| Duration::from_micros(us)))
            .collect();
        // The steps after the first cycle without it.
        let catch_up = starts_cycling_after_first(Schedule::CatchUp, n, per_second, burst, &steps);
        let strict = starts_cycling_after_first(Schedule::Strict, n, per_second, burst, &steps);
        let strict_most = most_in_window(&strict, window);
        prop_assert!(strict_most <= burst as usize,
            "strict: {} starts in a window of {:?} (burst {})", strict_most, window, burst);
        let catch_up_most = most_in_window(&catch_up, window);
        prop_assert!(catch_up_most > burst as usize,
            "the default: at most {} starts in a window of {:?} (burst {})",
            catch_up_most, window, burst);
        for (k, (c, s)) in catch_up.iter().zip(&strict).enumerate() {
            prop_assert!(c <= s, "start {}: {:?} catching up, {:?} strict", k, c, s);
            let due = period * (k as u32 + 1).saturating_sub(burst);
            prop_assert!(*s >= due, "strict start {} at {:?} before {:?}", k, s, due);
        }
    }
}

/// [`starts_under`] with limit 64, the clock moving by `steps[0]` once, then by `steps[1..]` in turn.
fn starts_cycling_after_first(
    schedule: Schedule,
    n: u32,
    per_second: f64,
    burst: u32,
    steps: &[Duration],
) -> Vec<Duration> {
    // A cycle long enough that the first step comes round again only after the lane is done.
    let rest = &steps[1..];
    let mut cycle = vec![steps[0]];
    while cycle.len() < 2 * n as usize + 2 {
        cycle.extend_from_slice(rest);
    }
    starts_under(schedule, n, 64, per_second, burst, &cycle)
}
