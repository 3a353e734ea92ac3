//! Per-attempt timeouts: SCENARIOS.md group F (TO-*).
//!
//! Everything runs on a `ManualClock`, polled by hand, except the real-time smoke test of TO-01. An
//! attempt started at `t` times out once the clock reaches `t + timeout`: on a manual clock each
//! attempt reads the clock as it starts (tests/adversarial.rs moves the clock inside first polls).
//!
//! TO-05 (the timeout does not cover the rate-limit wait) needs the rate limiter and is not here; its
//! other half (the timeout does not cover the back-off) is `to_02_timeout_retries_after_the_backoff_and_covers_only_the_attempt`.

mod common_time;

use std::panic;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use common_time::*;
use futures::future::{FutureExt, LocalBoxFuture};
use futures::StreamExt;
use tasklane::time::ManualClock;
use tasklane::{prelude::*, Backoff};

#[track_caller]
fn assert_timeout<T: std::fmt::Debug, E: std::fmt::Debug>(outcome: &Out<T, E>, attempts: u32) {
    match outcome {
        Err(e) => {
            assert!(e.is_timeout(), "not a timeout: {e:?}");
            assert_eq!(e.attempts(), attempts, "{e:?}");
            assert!(e.inner().is_none());
        }
        Ok(v) => panic!("expected a timeout, got Ok({v:?})"),
    }
}

// ---------------------------------------------------------------------------------------------
// TO-01: the timeout surfaces at the deadline
// ---------------------------------------------------------------------------------------------

#[test]
fn to_01_timeout_surfaces_at_the_deadline() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let mut poller = Poller::new();
        let mut out = order([()].lane(1), ordered)
            .with_clock(&clock)
            .timeout(ms(50))
            .map_async(|()| Attempt::<Result<(), String>>::pending(&log, "slow"));
        assert!(poller.poll(&mut out).is_pending());
        clock.advance(ms(50) - NS);
        assert!(!poller.woken(), "woken before the deadline");
        assert!(poller.poll(&mut out).is_pending());
        assert_eq!(log.names(), ["start slow"], "dropped before the deadline");
        clock.advance(NS);
        assert!(poller.woken(), "the deadline did not wake the lane");
        match poller.poll(&mut out) {
            Poll::Ready(Some(outcome)) => assert_timeout(&outcome, 1),
            other => panic!(
                "expected the timeout at 50 ms, got {other:?} ({})",
                order_name(ordered)
            ),
        }
        assert_eq!(log.events(), events![(0, "start slow"), (50, "drop slow")]);
        assert_done(&mut out);
    }
}

#[test]
fn to_01_each_attempt_gets_its_own_deadline_from_its_start() {
    // Limit 1: item 1 starts at 30 ms, when item 0 finishes, so it times out at 80 ms.
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let gates: Gates<Result<u32, ()>> = Gates::default();
        let mut out = order([0u32, 1].lane(1), ordered)
            .with_clock(&clock)
            .timeout(ms(50))
            .map_async(|id| Attempt::new(&log, id.to_string(), gates.make(id.to_string())));
        assert_pending(&mut out);
        clock.advance(ms(30));
        gates.open("0", Ok(0));
        assert_eq!(next_now(&mut out).unwrap(), 0);
        assert_eq!(log.times_of("start"), [ms(0), ms(30)]);
        clock.advance(ms(50) - NS);
        assert_pending(&mut out);
        assert_eq!(log.count("drop 1"), 0, "item 1 timed out before 30 + 50 ms");
        clock.advance(NS);
        assert_timeout(&next_now(&mut out), 1);
        assert_eq!(log.times_of("drop 1"), [ms(80)]);
        assert_done(&mut out);
    }
}

#[test]
fn to_01_an_attempt_that_finishes_in_time_is_not_timed_out() {
    let clock = ManualClock::new();
    let gates: Gates<Result<u32, ()>> = Gates::default();
    let mut out = [7u32]
        .lane(1)
        .with_clock(&clock)
        .timeout(ms(50))
        .map_async(|id| gates.make(id.to_string()));
    assert_pending(&mut out);
    clock.advance(ms(50) - NS);
    assert_pending(&mut out);
    gates.open("7", Ok(7));
    assert_eq!(next_now(&mut out).unwrap(), 7);
    clock.advance(ms(100));
    assert_done(&mut out);
}

#[test]
#[cfg_attr(miri, ignore = "real time")]
fn to_01_timeout_on_the_real_clock() {
    let start = std::time::Instant::now();
    let out: Vec<Out<(), ()>> = futures::executor::block_on(
        [()].lane(1)
            .timeout(ms(50))
            .map_async(|()| async {
                futures_timer::Delay::new(Duration::from_secs(10)).await;
                Ok(())
            })
            .collect(),
    );
    let elapsed = start.elapsed();
    assert_timeout(&out[0], 1);
    assert!(
        elapsed >= ms(50),
        "timed out after {elapsed:?}, before 50 ms"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "the 50 ms timeout took {elapsed:?}"
    );
}

/// On the system clock the lane reads the clock only now and then (see `Configure::timeout`): an
/// attempt that starts long after the lane's last reading must still get its whole timeout from its
/// own start, never less, and lose it within the documented slack (`max(timeout / 64, 1 ms)` plus
/// the timer's lateness; the bound here is generous for a noisy machine).
#[test]
#[cfg_attr(miri, ignore = "real time")]
fn to_01_a_late_attempt_gets_its_whole_timeout_on_the_real_clock() {
    use futures::stream::{self, StreamExt as _};
    use std::sync::Mutex;
    use std::time::Instant;

    let timeout = ms(100);
    // Item 0 at once (it finishes at once); item 1 arrives 300 ms later and hangs for 10 s; item 2
    // arrives with it and hangs too, so that several attempts are stamped together.
    let input = stream::iter([0u32, 1, 2]).then(|x| async move {
        if x == 1 {
            futures_timer::Delay::new(ms(300)).await;
        }
        x
    });
    let starts = Mutex::new([None::<Instant>; 3]);
    let outcomes: Vec<(Result<(), tasklane::Error<()>>, Instant)> = futures::executor::block_on(
        input
            .lane(3)
            .timeout(timeout)
            .map_async(|x| {
                starts.lock().unwrap()[x as usize] = Some(Instant::now());
                async move {
                    if x > 0 {
                        futures_timer::Delay::new(Duration::from_secs(10)).await;
                    }
                    Ok(())
                }
            })
            .map(|out| (out, Instant::now()))
            .collect(),
    );
    let starts = starts.into_inner().unwrap();
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes[0].0.is_ok(), "the quick item succeeds");
    for (out, at) in &outcomes[1..] {
        let err = out.as_ref().unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        // Which item timed out first does not matter: both started at about the same time.
        let latest_start = starts[1].unwrap().max(starts[2].unwrap());
        let earliest_start = starts[1].unwrap().min(starts[2].unwrap());
        let waited = at.duration_since(latest_start);
        assert!(
            waited >= timeout,
            "a late attempt timed out {waited:?} after it started: before its {timeout:?}"
        );
        assert!(
            at.duration_since(earliest_start) < timeout + Duration::from_secs(1),
            "a late attempt timed out {:?} after it started",
            at.duration_since(earliest_start)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// TO-02: timeouts are retried by default
// ---------------------------------------------------------------------------------------------

#[test]
fn to_02_timeout_is_retryable_by_default() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let calls = Calls::default();
        let mut out = order([5u32].lane(1), ordered)
            .with_clock(&clock)
            .retry(2)
            .backoff(Backoff::constant(Duration::ZERO))
            .timeout(ms(50))
            .map_async(|x| {
                let n = calls.next(0);
                if n == 1 {
                    Attempt::pending(&log, "#1")
                } else {
                    Attempt::ready(&log, format!("#{n}"), Ok::<u32, String>(x))
                }
            });
        assert_pending(&mut out);
        clock.advance(ms(50) - NS);
        assert_pending(&mut out);
        assert_eq!(calls.total(), 1);
        clock.advance(NS);
        assert_eq!(next_now(&mut out).unwrap(), 5, "{}", order_name(ordered));
        assert_eq!(calls.total(), 2, "exactly 2 attempts");
        assert_eq!(
            log.events(),
            events![
                (0, "start #1"),
                (50, "drop #1"),
                (50, "start #2"),
                (50, "end #2"),
                (50, "drop #2")
            ]
        );
        assert_done(&mut out);
    }
}

#[test]
fn to_02_timeout_retries_after_the_backoff_and_covers_only_the_attempt() {
    // Attempt 1 runs 0..50 ms and times out, back-off 20 ms, attempt 2 runs 70..120 ms and times out:
    // its deadline counts from its own start, not from the start of the back-off.
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let calls = Calls::default();
        let mut out = order([()].lane(1), ordered)
            .with_clock(&clock)
            .retry(1)
            .backoff(Backoff::constant(ms(20)))
            .timeout(ms(50))
            .map_async(|()| {
                let n = calls.next(0);
                Attempt::<Result<(), ()>>::pending(&log, format!("#{n}"))
            });
        let mut at = |t: Duration| {
            clock.advance(t - clock.elapsed());
            poll_once(&mut out)
        };
        assert!(at(ms(0)).is_pending());
        assert!(at(ms(50) - NS).is_pending());
        assert!(at(ms(50)).is_pending());
        assert!(at(ms(70) - NS).is_pending());
        assert_eq!(log.events(), events![(0, "start #1"), (50, "drop #1")]);
        assert!(at(ms(70)).is_pending());
        assert!(at(ms(120) - NS).is_pending());
        assert_eq!(
            log.count("drop"),
            1,
            "attempt 2 timed out early: {:?}",
            log.events()
        );
        match at(ms(120)) {
            Poll::Ready(Some(outcome)) => assert_timeout(&outcome, 2),
            other => panic!("expected the timeout at 120 ms, got {other:?}"),
        }
        assert_eq!(
            log.events(),
            events![
                (0, "start #1"),
                (50, "drop #1"),
                (70, "start #2"),
                (120, "drop #2")
            ],
            "{}",
            order_name(ordered)
        );
    }
}

#[test]
fn to_02_a_timeout_never_retried_without_retry() {
    let clock = ManualClock::new();
    let calls = Calls::default();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .timeout(ms(10))
        .map_async(|()| {
            calls.next(0);
            futures::future::pending::<Result<(), ()>>()
        });
    assert_pending(&mut out);
    clock.advance(ms(10));
    assert_timeout(&next_now(&mut out), 1);
    assert_eq!(calls.total(), 1, "retries default to 0");
}

// ---------------------------------------------------------------------------------------------
// TO-03: `run()` with a timeout (gather)
// ---------------------------------------------------------------------------------------------

#[test]
fn to_03_run_with_a_timeout() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let jobs: Vec<Attempt<Result<u32, ()>>> = vec![
            Attempt::pending(&log, "slow"),
            Attempt::ready(&log, "fast", Ok(2)),
        ];
        let mut out = order(jobs.lane(2), ordered)
            .with_clock(&clock)
            .timeout(ms(50))
            .run();
        if ordered {
            assert_pending(&mut out);
        } else {
            assert_eq!(next_now(&mut out).unwrap(), 2);
            assert_pending(&mut out);
        }
        clock.advance(ms(50));
        assert_timeout(&next_now(&mut out), 1);
        if ordered {
            assert_eq!(next_now(&mut out).unwrap(), 2);
        }
        assert_done(&mut out);
        assert_eq!(log.times_of("drop slow"), [ms(50)]);
    }
}

#[test]
fn to_03_gather_of_one_slow_future_times_out() {
    let clock = ManualClock::new();
    let mut out = [futures::future::pending::<Result<(), ()>>()]
        .lane(1)
        .with_clock(&clock)
        .timeout(Duration::from_millis(50))
        .run();
    assert_pending(&mut out);
    clock.advance(Duration::from_secs(1));
    assert_timeout(&next_now(&mut out), 1);
    assert_done(&mut out);
}

// ---------------------------------------------------------------------------------------------
// TO-04: the timeout sits at its index
// ---------------------------------------------------------------------------------------------

#[test]
fn to_04_timeout_sits_at_its_index() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let gates: Gates<Result<u32, ()>> = Gates::default();
        let mut out = order([0u32, 1, 2].lane(3), ordered)
            .with_clock(&clock)
            .timeout(ms(50))
            .map_async(|id| {
                if id == 1 {
                    gates.make("1") // "sleeps 200 ms": opened too late
                } else {
                    async move { Ok(id) }.boxed_local()
                }
            });
        let got = drive_until(&mut out, &clock, ms(10), ms(100));
        let shown: Vec<(Duration, Result<u32, bool>)> = got
            .into_iter()
            .map(|(t, r)| (t, r.map_err(|e| e.is_timeout())))
            .collect();
        if ordered {
            assert_eq!(
                shown,
                [(ms(0), Ok(0)), (ms(50), Err(true)), (ms(50), Ok(2))]
            );
        } else {
            assert_eq!(shown, [(ms(0), Ok(0)), (ms(0), Ok(2)), (ms(50), Err(true))]);
        }
        clock.advance(ms(150));
        gates.open("1", Ok(1)); // the dropped attempt's gate: nobody listens
        assert_done(&mut out);
    }
}

// ---------------------------------------------------------------------------------------------
// TO-06: one error kind for timeouts, distinct from the task's errors
// ---------------------------------------------------------------------------------------------

#[test]
fn to_06_timeout_is_a_distinct_error_that_predicates_can_match() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let calls = Calls::default();
        let seen = std::cell::RefCell::new(Vec::new());
        // Item 0: times out, then fails on its own (not retried). Item 1: fails on its own at once.
        let mut out = order([0u32, 1].lane(2), ordered)
            .with_clock(&clock)
            .retry(5)
            .backoff(Backoff::constant(Duration::ZERO))
            .timeout(ms(50))
            .retry_if(|e| {
                seen.borrow_mut().push((e.is_timeout(), e.attempts()));
                e.is_timeout()
            })
            .map_async(|id| {
                let n = calls.next(id);
                let fut: LocalBoxFuture<'static, Result<(), String>> = if id == 0 && n == 1 {
                    futures::future::pending().boxed_local()
                } else {
                    async move { Err(format!("item {id} attempt {n}")) }.boxed_local()
                };
                fut
            });
        let got = drive_until(&mut out, &clock, ms(10), ms(60));
        let mut shown: Vec<(Duration, bool, u32, String)> = got
            .into_iter()
            .map(|(t, r)| {
                let e = r.unwrap_err();
                (t, e.is_timeout(), e.attempts(), e.into_inner().unwrap())
            })
            .collect();
        shown.sort_by(|a, b| a.3.cmp(&b.3));
        assert_eq!(
            shown,
            [
                (ms(50), false, 2, "item 0 attempt 2".to_string()),
                (
                    if ordered { ms(50) } else { ms(0) },
                    false,
                    1,
                    "item 1 attempt 1".to_string()
                ),
            ],
            "{}",
            order_name(ordered)
        );
        let mut seen = seen.borrow().clone();
        seen.sort_unstable();
        assert_eq!(seen, [(false, 1), (false, 2), (true, 1)]);
        assert_eq!(calls.total(), 3);
        assert_done(&mut out);
    }
}

#[test]
fn to_06_timeout_error_display_debug_and_source() {
    let clock = ManualClock::new();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(2)
        .backoff(Backoff::constant(ms(1)))
        .timeout(ms(10))
        .map_async(|()| futures::future::pending::<Result<(), std::io::Error>>());
    let got = drive_until(&mut out, &clock, ms(1), ms(40));
    let err = got.into_iter().next().unwrap().1.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.to_string(), "task timed out after 3 attempts");
    assert!(format!("{err:?}").contains("timeout"), "{err:?}");
    assert!(std::error::Error::source(&err).is_none());
    assert!(err.inner().is_none());
    assert!(err.into_inner().is_none());
}

// ---------------------------------------------------------------------------------------------
// TO-07: on timeout the attempt's future is dropped at once
// ---------------------------------------------------------------------------------------------

#[test]
fn to_07_a_timed_out_attempt_is_dropped_at_the_deadline() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let mut poller = Poller::new();
        let mut out = order([(), ()].lane(2), ordered)
            .with_clock(&clock)
            .timeout(ms(100))
            .map_async(|()| {
                let label = format!("{}", log.count("start"));
                Attempt::<Result<(), ()>>::pending(&log, label)
            });
        assert!(poller.poll(&mut out).is_pending());
        clock.advance(ms(100) - NS);
        assert!(poller.poll(&mut out).is_pending());
        assert_eq!(log.count("drop"), 0, "dropped before the deadline");
        poller.woken();
        clock.advance(NS);
        assert!(poller.woken(), "the deadline did not wake the lane");
        assert!(poller.poll(&mut out).is_ready());
        assert_eq!(
            log.times_of("drop"),
            [ms(100), ms(100)],
            "both attempts are dropped at their deadline ({})",
            order_name(ordered)
        );
        assert!(poller.poll(&mut out).is_ready());
        assert_done(&mut out);
    }
}

#[test]
fn to_07_timed_out_attempt_is_dropped_even_while_its_output_waits_its_turn() {
    // Ordered. Item 0 fails at once, backs off 30 ms, and its second attempt runs 30..60 ms. Item 1
    // runs from 0 ms and times out at 50 ms (timeouts are not retried here): its output must wait for
    // item 0, but its future is dropped at 50 ms.
    let clock = ManualClock::new();
    let log = Log::new(&clock);
    let calls = Calls::default();
    let gates: Gates<Result<u32, String>> = Gates::default();
    let mut out = [0u32, 1]
        .lane(2)
        .ordered()
        .with_clock(&clock)
        .retry(1)
        .backoff(Backoff::constant(ms(30)))
        .retry_if(|e| !e.is_timeout())
        .timeout(ms(50))
        .map_async(|id| {
            let n = calls.next(id);
            let label = format!("{id}#{n}");
            match (id, n) {
                (0, 1) => Attempt::ready(&log, label, Err("again".to_string())),
                (0, _) => Attempt::new(&log, label.clone(), gates.make(label)),
                _ => Attempt::pending(&log, label),
            }
        });
    assert_pending(&mut out);
    clock.advance(ms(30));
    assert_pending(&mut out);
    clock.advance(ms(20) - NS);
    assert_pending(&mut out);
    assert_eq!(log.count("drop 1#1"), 0, "dropped before its deadline");
    clock.advance(NS);
    assert_pending(&mut out); // item 1's outcome waits for item 0
    assert_eq!(log.times_of("drop 1#1"), [ms(50)], "{:?}", log.events());
    clock.advance(ms(10));
    gates.open("0#2", Ok(0));
    assert_eq!(next_now(&mut out).unwrap(), 0);
    assert_timeout(&next_now(&mut out), 1);
    assert_done(&mut out);
    assert_eq!(
        log.events(),
        events![
            (0, "start 0#1"),
            (0, "end 0#1"),
            (0, "drop 0#1"),
            (0, "start 1#1"),
            (30, "start 0#2"),
            (50, "drop 1#1"),
            (60, "end 0#2"),
            (60, "drop 0#2"),
        ]
    );
}

#[test]
fn to_07_dropping_the_lane_with_armed_timeouts_drops_everything() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let (token, input) = items(4);
        let mut out = order(input.lane(2), ordered)
            .with_clock(&clock)
            .timeout(ms(100))
            .map_async(|item: Item| {
                let label = item.id.to_string();
                Attempt::new(&log, label, async move {
                    let _item = item; // the attempt holds a copy of its item
                    futures::future::pending::<Result<(), ()>>().await
                })
            });
        assert_pending(&mut out);
        clock.advance(ms(30));
        assert_pending(&mut out);
        assert_eq!(log.names(), ["start 0", "start 1"]);
        drop(out);
        assert_eq!(log.count("drop"), 2, "{:?}", log.events());
        assert!(log.times_of("drop").iter().all(|&t| t == ms(30)));
        assert_eq!(Rc::strong_count(&token), 1, "an item outlived the lane");
        clock.advance(Duration::from_secs(1));
        assert_eq!(log.count("start"), 2);
    }
}

#[test]
#[cfg_attr(miri, ignore = "futures-timer's thread")]
fn to_07_dropping_a_lane_on_the_real_timer_frees_everything() {
    let (token, input) = items(3);
    let mut out =
        input
            .lane(2)
            .timeout(Duration::from_secs(3600))
            .map_async(|item: Item| async move {
                let _item = item;
                futures::future::pending::<Result<(), ()>>().await
            });
    assert_pending(&mut out);
    assert_eq!(Rc::strong_count(&token), 4);
    drop(out);
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "the timer kept something alive"
    );
}

// ---------------------------------------------------------------------------------------------
// TO-08: a zero timeout panics naming `timeout`
// ---------------------------------------------------------------------------------------------

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Builds a lane (and drops it).
type Build = Box<dyn Fn() + std::panic::UnwindSafe>;

#[test]
fn to_08_zero_timeout_panics_naming_it() {
    let attempts: [(&str, Build); 4] = [
        (
            "plain",
            Box::new(|| drop([1].lane(1).timeout::<()>(Duration::ZERO))),
        ),
        (
            "timed",
            Box::new(|| drop([1].lane(1).timeout::<()>(ms(1)).timeout(Duration::ZERO))),
        ),
        (
            "retrying",
            Box::new(|| drop([1].lane(1).retry::<()>(1).timeout(Duration::ZERO))),
        ),
        (
            "timed then retrying",
            Box::new(|| {
                drop(
                    [1].lane(1)
                        .timeout::<()>(ms(1))
                        .retry(1)
                        .timeout(Duration::ZERO),
                )
            }),
        ),
    ];
    for (name, build) in attempts {
        let message = panic_message(panic::catch_unwind(build).expect_err(name));
        assert!(message.contains("`timeout`"), "{name}: {message:?}");
    }
    // The smallest positive timeout is fine.
    drop([1].lane(1).timeout::<()>(NS));
}

#[test]
#[should_panic(expected = "`timeout`")]
fn to_08_zero_timeout_panics_at_the_call() {
    let _ = [1].lane(1).timeout::<()>(Duration::ZERO);
}
