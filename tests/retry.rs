//! Retries, back-off and jitter: SCENARIOS.md group E (RT-*), and CL-10 (an item keeps its slot while
//! it backs off).
//!
//! Everything runs on a `ManualClock`, polled by hand, except the one real-time smoke test (RT-13),
//! so delays are checked exactly: an attempt does not start 1 ns before its back-off ends, and does
//! start at that instant. Attempts are `Attempt` futures that log their start, end and drop, so the
//! tests see when the lane lets go of a failed attempt.
//!
//! RT-15 (retries pass the rate limiter again) needs the rate limiter and is not here. RT-18 (`run()`
//! after `retry` does not compile) is the `compile_fail` doctest on `Lane::run`.

mod common_time;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use common_time::*;
use futures::StreamExt;
use tasklane::time::ManualClock;
use tasklane::{prelude::*, Backoff, Error, Jitter};

/// Moves the clock to `at` (since its start) in two steps and checks that exactly `at` is the moment
/// something new starts: at `at - 1 ns` the log has no more `start` events than `starts_before`, at
/// `at` it has more. Returns what the poll at `at` gave.
#[track_caller]
fn assert_next_start_exactly_at<S>(
    out: &mut S,
    clock: &ManualClock,
    log: &Log,
    at: Duration,
    starts_before: usize,
) -> Poll<Option<S::Item>>
where
    S: futures::Stream + Unpin,
    S::Item: std::fmt::Debug,
{
    assert_eq!(log.count("start"), starts_before, "starts before {at:?}");
    let before = at - NS;
    assert!(
        clock.elapsed() <= before,
        "the clock is already past {before:?}"
    );
    clock.advance(before - clock.elapsed());
    assert_pending(out);
    assert_eq!(
        log.count("start"),
        starts_before,
        "an attempt started at {before:?}, 1 ns before its back-off ended at {at:?}"
    );
    clock.advance(NS);
    let polled = poll_once(out);
    assert!(
        log.count("start") > starts_before,
        "no attempt started at {at:?}, when its back-off ended (log: {:?})",
        log.events()
    );
    assert_eq!(log.times_of("start").last(), Some(&at));
    polled
}

// ---------------------------------------------------------------------------------------------
// RT-01 .. RT-05, RT-11: how many attempts, and which error comes back
// ---------------------------------------------------------------------------------------------

#[test]
fn rt_01_retries_until_success() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let calls = Calls::default();
        let mut out = order([42u32].lane(1), ordered)
            .with_clock(&clock)
            .retry(5)
            .backoff(Backoff::constant(Duration::ZERO))
            .map_async(|x: u32| {
                let n = calls.next(0);
                let result = if n <= 2 {
                    Err(format!("fail {n}"))
                } else {
                    Ok(x)
                };
                Attempt::ready(&log, format!("#{n}"), result)
            });
        let first: Out<u32, String> = next_now(&mut out);
        assert_eq!(first.unwrap(), 42, "{}", order_name(ordered));
        assert_done(&mut out);
        assert_eq!(
            calls.total(),
            3,
            "exactly 3 attempts ({})",
            order_name(ordered)
        );
        // Each attempt is a fresh future, and the failed one is gone before the next starts.
        assert_eq!(
            log.names(),
            [
                "start #1", "end #1", "drop #1", "start #2", "end #2", "drop #2", "start #3",
                "end #3", "drop #3",
            ]
        );
    }
}

#[test]
fn rt_02_exhausted_retries_return_the_last_error_and_make_n_plus_1_attempts() {
    for retries in [0u32, 1, 2, 3, 10] {
        for ordered in [false, true] {
            let clock = ManualClock::new();
            let log = Log::new(&clock);
            let calls = Calls::default();
            let mut out = order(["job"].lane(1), ordered)
                .with_clock(&clock)
                .retry(retries)
                .backoff(Backoff::constant(ms(10)))
                .map_async(|_| {
                    let n = calls.next(0);
                    Attempt::ready(
                        &log,
                        format!("#{n}"),
                        Err::<(), _>(format!("permanent {n}")),
                    )
                });
            let got = drive_until(&mut out, &clock, ms(10), ms(10) * (retries + 1));
            let case = format!("retry({retries}), {}", order_name(ordered));
            assert_eq!(got.len(), 1, "{case}");
            let (at, outcome) = got.into_iter().next().unwrap();
            // The outcome comes when the last attempt fails: after `retries` back-offs of 10 ms.
            assert_eq!(at, ms(10) * retries, "{case}");
            let err = outcome.unwrap_err();
            assert_eq!(err.attempts(), retries + 1, "{case}");
            assert_eq!(calls.total(), retries + 1, "{case}");
            assert!(!err.is_timeout(), "{case}");
            let last = format!("permanent {}", retries + 1);
            assert_eq!(
                err.inner(),
                Some(&last),
                "the last attempt's error, not the first ({case})"
            );
            assert_eq!(err.clone().into_inner(), Some(last), "{case}");
            assert_eq!(
                err.to_string(),
                if retries == 0 {
                    "task failed after 1 attempt".to_string()
                } else {
                    format!("task failed after {} attempts", retries + 1)
                }
            );
            assert_done(&mut out);
            assert_eq!(log.count("start"), log.count("drop"), "{case}");
        }
    }
}

#[test]
fn rt_02_error_keeps_the_task_error_as_its_source() {
    let clock = ManualClock::new();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(1)
        .backoff(Backoff::constant(Duration::ZERO))
        .map_async(|()| async { Err::<(), _>(std::io::Error::other("disk on fire")) });
    let err = next_now(&mut out).unwrap_err();
    assert_eq!(err.attempts(), 2);
    let source = std::error::Error::source(&err).expect("the task's error is the source");
    assert_eq!(source.to_string(), "disk on fire");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&err);
}

/// Issue 16, item 3: `Display` is the phrase alone (the cause is the `source`), `{:#}` adds the cause.
#[test]
fn rt_02_alternate_display_adds_the_task_error() {
    let clock = ManualClock::new();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(3)
        .backoff(Backoff::constant(Duration::ZERO))
        .map_async(|()| async { Err::<(), _>(std::io::Error::other("HTTP status 503")) });
    let err = next_now(&mut out).unwrap_err();
    assert_eq!(format!("{err}"), "task failed after 4 attempts");
    assert_eq!(
        format!("{err:#}"),
        "task failed after 4 attempts: HTTP status 503"
    );
    let source = std::error::Error::source(&err).expect("the task's error is the source");
    assert_eq!(source.to_string(), "HTTP status 503");
}

/// A timeout has no cause: `{:#}` is the phrase alone.
#[test]
fn rt_02_alternate_display_of_a_timeout_is_the_phrase() {
    let clock = ManualClock::new();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(1)
        .backoff(Backoff::constant(Duration::ZERO))
        .timeout(ms(10))
        .map_async(|()| futures::future::pending::<Result<(), std::io::Error>>());
    assert_pending(&mut out);
    clock.advance(ms(10));
    assert_pending(&mut out);
    clock.advance(ms(10));
    let err = next_now(&mut out).unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(format!("{err}"), "task timed out after 2 attempts");
    assert_eq!(format!("{err:#}"), "task timed out after 2 attempts");
    assert!(std::error::Error::source(&err).is_none());
}

/// The cause is itself formatted with `{:#}`, so a chain whose links print their own cause in their
/// alternate form (here a task that runs a lane of its own) is printed whole, `": "` between links.
#[test]
fn rt_02_alternate_display_prints_a_nested_chain() {
    let clock = ManualClock::new();
    let inner_clock = clock.clone();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(1)
        .backoff(Backoff::constant(Duration::ZERO))
        .map_async(move |()| {
            let mut inner = ["disk full"]
                .lane(1)
                .with_clock(&inner_clock)
                .retry(2)
                .backoff(Backoff::constant(Duration::ZERO))
                .map_async(|cause| async move { Err::<(), _>(std::io::Error::other(cause)) });
            async move { inner.next().await.unwrap() }
        });
    let err: Error<Error<std::io::Error>> = next_now(&mut out).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "task failed after 2 attempts: task failed after 3 attempts: disk full"
    );
    assert_eq!(format!("{err}"), "task failed after 2 attempts");
    // The same chain, walked the std way through `source()`.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    assert_eq!(chain, format!("{err:#}"));
}

#[derive(Clone, Debug, PartialEq)]
enum Failure {
    Key,
    Value,
}

#[test]
fn rt_03_retry_if_rejecting_the_error_stops_after_one_attempt() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let calls = Calls::default();
        let seen = RefCell::new(Vec::new());
        let mut out = order([0u32, 1].lane(2), ordered)
            .with_clock(&clock)
            .retry(5)
            .backoff(Backoff::constant(Duration::ZERO))
            .retry_if(|e: &Error<Failure>| {
                seen.borrow_mut().push((e.inner().cloned(), e.attempts()));
                matches!(e.inner(), Some(Failure::Value))
            })
            .map_async(|id| {
                let n = calls.next(id);
                async move {
                    match (id, n) {
                        (0, _) => Err(Failure::Key),
                        (_, 1) => Err(Failure::Value),
                        _ => Ok(id),
                    }
                }
            });
        let mut got: Vec<Out<u32, Failure>> = vec![next_now(&mut out), next_now(&mut out)];
        assert_done(&mut out);
        if !ordered {
            got.sort_by_key(|r| r.is_ok());
        }
        let err = got[0].as_ref().unwrap_err();
        assert_eq!(err.inner(), Some(&Failure::Key));
        assert_eq!(err.attempts(), 1);
        assert_eq!(calls.of(0), 1, "a rejected failure is never retried");
        assert_eq!(*got[1].as_ref().unwrap(), 1);
        assert_eq!(calls.of(1), 2);
        let mut seen = seen.into_inner();
        seen.sort_by_key(|(e, _)| format!("{e:?}"));
        assert_eq!(
            seen,
            [(Some(Failure::Key), 1), (Some(Failure::Value), 1)],
            "the predicate sees each failure once, with its attempt count"
        );
    }
}

#[test]
fn rt_04_retry_if_predicate_on_the_message() {
    let calls = Calls::default();
    let clock = ManualClock::new();
    let out: Vec<Out<u32, String>> = futures::executor::block_on(
        ["please", "never"]
            .lane(2)
            .ordered()
            .with_clock(&clock)
            .retry(3)
            .backoff(Backoff::constant(Duration::ZERO))
            .retry_if(|e: &Error<String>| e.inner().is_some_and(|m| m.contains("retry")))
            .map_async(|word| {
                let n = calls.next(u32::from(word == "never"));
                async move {
                    match (word, n) {
                        ("please", 1) => Err("please retry".to_string()),
                        ("please", _) => Ok(7),
                        _ => Err("do not".to_string()),
                    }
                }
            })
            .collect(),
    );
    assert_eq!(*out[0].as_ref().unwrap(), 7);
    assert_eq!(calls.of(0), 2, "exactly 2 attempts");
    assert_eq!(out[1].as_ref().unwrap_err().inner().unwrap(), "do not");
    assert_eq!(out[1].as_ref().unwrap_err().attempts(), 1);
    assert_eq!(calls.of(1), 1);
}

#[test]
fn rt_05_a_predicate_that_matches_nothing_means_one_attempt() {
    let clock = ManualClock::new();
    let calls = Calls::default();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(10)
        .backoff(Backoff::constant(Duration::ZERO))
        .retry_if(|_| false)
        .map_async(|()| {
            calls.next(0);
            async { Err::<(), _>("nope") }
        });
    assert_eq!(next_now(&mut out).unwrap_err().attempts(), 1);
    assert_eq!(calls.total(), 1);

    // A predicate on the attempt count: it sees 1, 2, 3 and stops the third.
    let clock = ManualClock::new();
    let calls = Calls::default();
    let seen = RefCell::new(Vec::new());
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(10)
        .backoff(Backoff::constant(Duration::ZERO))
        .retry_if(|e| {
            seen.borrow_mut().push(e.attempts());
            e.attempts() < 3
        })
        .map_async(|()| {
            let n = calls.next(0);
            async move { Err::<(), _>(n) }
        });
    let err = next_now(&mut out).unwrap_err();
    assert_eq!((err.attempts(), err.inner()), (3, Some(&3)));
    assert_eq!(*seen.borrow(), [1, 2, 3]);
    assert_eq!(calls.total(), 3);
}

#[test]
fn rt_11_lane_retries_a_call_that_fails_once() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let calls = Calls::default();
        let mut out: Vec<u32> = futures::executor::block_on(
            order([99u32, 100, 101].lane(3), ordered)
                .with_clock(&clock)
                .retry(3)
                .backoff(Backoff::constant(Duration::ZERO))
                .map_async(|x| {
                    let n = calls.next(x);
                    async move {
                        if n == 1 {
                            Err("once")
                        } else {
                            Ok(x)
                        }
                    }
                })
                .map(|r: Out<u32, &str>| r.unwrap())
                .collect(),
        );
        if !ordered {
            out.sort_unstable();
        }
        assert_eq!(out, [99, 100, 101], "{}", order_name(ordered));
        assert_eq!(calls.total(), 6);
    }
}

// ---------------------------------------------------------------------------------------------
// RT-06 .. RT-10, RT-17: the back-off arithmetic
// ---------------------------------------------------------------------------------------------

#[test]
fn rt_06_exponential_math() {
    let b = Backoff::exponential(ms(100))
        .with_factor(2.0)
        .with_max_delay(ms(1000))
        .with_jitter(Jitter::None);
    assert_eq!(b.delay(0), ms(100));
    assert_eq!(b.delay(1), ms(200));
    assert_eq!(b.delay(2), ms(400));
    assert_eq!(b.delay(3), ms(800));
    assert_eq!(b.delay(5), ms(1000), "raw 3.2 s, capped at 1 s");
    let b3 = Backoff::exponential(ms(10))
        .with_factor(3.0)
        .with_jitter(Jitter::None);
    assert_eq!(
        (0..4).map(|k| b3.delay(k)).collect::<Vec<_>>(),
        [ms(10), ms(30), ms(90), ms(270)]
    );
}

#[test]
fn rt_06_lane_sleeps_exactly_the_exponential_delays() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let calls = Calls::default();
        let mut out = order([()].lane(1), ordered)
            .with_clock(&clock)
            .retry(3)
            .backoff(Backoff::exponential(ms(10)).with_jitter(Jitter::None))
            .map_async(|()| {
                let n = calls.next(0);
                Attempt::ready(&log, format!("#{n}"), Err::<(), _>(n))
            });
        assert_pending(&mut out);
        assert_eq!(log.count("start"), 1);
        // 10, 20, 40 ms back-offs: attempts at 0, 10, 30, 70 ms.
        for (k, at) in [(1, 10), (2, 30)] {
            let polled = assert_next_start_exactly_at(&mut out, &clock, &log, ms(at), k);
            assert!(polled.is_pending(), "{}", order_name(ordered));
        }
        let last = assert_next_start_exactly_at(&mut out, &clock, &log, ms(70), 3);
        match last {
            Poll::Ready(Some(Err(e))) => assert_eq!((e.attempts(), e.inner()), (4, Some(&4))),
            other => panic!("expected the final error at 70 ms, got {other:?}"),
        }
        assert_done(&mut out);
    }
}

#[test]
fn rt_07_linear_math() {
    let b = Backoff::linear(ms(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter(Jitter::None);
    assert_eq!(
        [b.delay(0), b.delay(1), b.delay(2)],
        [ms(100), ms(200), ms(300)]
    );
    let capped = b.with_max_delay(ms(250));
    assert_eq!(
        (0..4).map(|k| capped.delay(k)).collect::<Vec<_>>(),
        [ms(100), ms(200), ms(250), ms(250)]
    );
}

#[test]
fn rt_07_lane_sleeps_exactly_the_capped_linear_delays() {
    let clock = ManualClock::new();
    let log = Log::new(&clock);
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(4)
        .backoff(
            Backoff::linear(ms(10))
                .with_max_delay(ms(25))
                .with_jitter(Jitter::None),
        )
        .map_async(|()| Attempt::ready(&log, "attempt", Err::<(), _>(())));
    assert_pending(&mut out);
    // 10, 20, 25, 25 ms: attempts at 0, 10, 30, 55, 80 ms.
    for (k, at) in [(1, 10), (2, 30), (3, 55)] {
        assert!(assert_next_start_exactly_at(&mut out, &clock, &log, ms(at), k).is_pending());
    }
    let last = assert_next_start_exactly_at(&mut out, &clock, &log, ms(80), 4);
    assert!(matches!(last, Poll::Ready(Some(Err(ref e))) if e.attempts() == 5));
}

#[test]
fn rt_08_constant_math_has_no_jitter_by_default() {
    let b = Backoff::constant(ms(500));
    assert_eq!(b.jitter(), Jitter::None);
    assert_eq!(b.delay(0), ms(500));
    assert_eq!(b.delay(9), ms(500));
    assert_eq!(b.delay(u32::MAX), ms(500));
}

#[test]
fn rt_08_lane_sleeps_exactly_the_constant_delay() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let calls = Calls::default();
        let mut out = order([5u32].lane(1), ordered)
            .with_clock(&clock)
            .retry(5)
            .backoff(Backoff::constant(ms(100)))
            .map_async(|x| {
                let n = calls.next(0);
                Attempt::ready(&log, format!("#{n}"), if n < 3 { Err(n) } else { Ok(x) })
            });
        assert_pending(&mut out);
        assert!(assert_next_start_exactly_at(&mut out, &clock, &log, ms(100), 1).is_pending());
        let done = assert_next_start_exactly_at(&mut out, &clock, &log, ms(200), 2);
        assert!(matches!(done, Poll::Ready(Some(Ok(5)))), "{done:?}");
        assert_done(&mut out);
        assert_eq!(log.times_of("start"), [ms(0), ms(100), ms(200)]);
        // Each failed attempt was dropped when it failed, before its back-off.
        assert_eq!(log.times_of("drop"), [ms(0), ms(100), ms(200)]);
    }
}

#[test]
fn rt_09_jitter_stays_within_its_band_and_is_random() {
    let max = Duration::from_secs(5);
    for attempt in 0..=5u32 {
        let curve = (ms(100) * 2u32.pow(attempt)).min(max);
        for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let b = Backoff::exponential(ms(100))
                .with_factor(2.0)
                .with_max_delay(max)
                .with_jitter(jitter);
            let samples: Vec<Duration> = (0..50).map(|_| b.delay(attempt)).collect();
            for &d in &samples {
                match jitter {
                    Jitter::Full => assert!(d <= curve, "{jitter:?} #{attempt}: {d:?}"),
                    Jitter::Equal => {
                        assert!(d >= curve / 2 && d <= curve, "{jitter:?} #{attempt}: {d:?}")
                    }
                    _ => assert!(d >= ms(100) && d <= max, "{jitter:?} #{attempt}: {d:?}"),
                }
            }
            assert!(
                samples.iter().any(|&d| d != samples[0]),
                "{jitter:?} #{attempt}: 50 equal samples, the jitter is not random"
            );
        }
    }
}

#[test]
fn rt_09_seeded_delays_are_reproducible() {
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let b = Backoff::exponential(ms(100))
            .with_jitter(jitter)
            .with_seed(42);
        let run = |b: &Backoff| (0..20).map(|k| b.delay(k)).collect::<Vec<_>>();
        assert_eq!(run(&b), run(&b.clone()), "{jitter:?}");
        let other = b.clone().with_seed(43);
        assert_ne!(run(&b), run(&other), "{jitter:?}: the seed changes nothing");
    }
}

/// Runs one always-failing item with `backoff` and `retries` on a fresh manual clock, advancing in
/// steps of 1 µs, and returns the back-off before each retry as measured on the clock (each rounded
/// up to the next microsecond).
fn measured_backoffs(backoff: Backoff, retries: u32) -> Vec<Duration> {
    let clock = ManualClock::new();
    let log = Log::new(&clock);
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(retries)
        .backoff(backoff)
        .map_async(|()| Attempt::ready(&log, "attempt", Err::<(), _>(())));
    let step = Duration::from_micros(1);
    let mut outcome = None;
    while outcome.is_none() {
        match poll_once(&mut out) {
            Poll::Ready(Some(r)) => outcome = Some(r),
            Poll::Ready(None) => panic!("ended without an outcome"),
            Poll::Pending => clock.advance(step),
        }
        assert!(clock.elapsed() < Duration::from_secs(10), "no progress");
    }
    assert_eq!(outcome.unwrap().unwrap_err().attempts(), retries + 1);
    let starts = log.times_of("start");
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
#[cfg_attr(miri, ignore)] // steps the clock by 1 µs: too many polls for Miri
fn rt_09_lane_sleeps_seeded_jitter_within_bands_and_reproducibly() {
    let us = Duration::from_micros(1);
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let backoff = Backoff::exponential(ms(1))
            .with_max_delay(ms(6))
            .with_jitter(jitter)
            .with_seed(7);
        let first = measured_backoffs(backoff.clone(), 5);
        let second = measured_backoffs(backoff.clone(), 5);
        assert_eq!(first, second, "{jitter:?}: the same seed gave other delays");
        let other = measured_backoffs(backoff.with_seed(8), 5);
        assert_ne!(first, other, "{jitter:?}: the seed has no effect in a lane");
        let mut prev = ms(1);
        for (k, &d) in first.iter().enumerate() {
            let curve = (ms(1) * 2u32.pow(k as u32)).min(ms(6));
            match jitter {
                Jitter::Full => assert!(d <= curve + us, "{jitter:?} #{k}: {d:?}"),
                Jitter::Equal => assert!(
                    d + us >= curve / 2 && d <= curve + us,
                    "{jitter:?} #{k}: {d:?}"
                ),
                _ => {
                    let upper = (prev * 3).clamp(ms(1), ms(6));
                    assert!(d + us >= ms(1) && d <= upper + us, "{jitter:?} #{k}: {d:?}");
                }
            }
            prev = d;
        }
    }
}

// NOTE: a lane does not sleep exactly `backoff.delay(k)` with a seed: it draws every item's jitter
// from one seeded generator, so that items failing together do not retry in lockstep (`Lane`'s
// `# Order`, point 5). Its delays stay in `delay(k)`'s band and repeat from run to run: see
// `rt_09_lane_sleeps_seeded_jitter_within_bands_and_reproducibly`.

#[test]
fn rt_10_bad_factor_panics_naming_it() {
    for factor in [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let result = panic::catch_unwind(|| Backoff::exponential(ms(1)).with_factor(factor));
        let payload = result.expect_err(&format!("factor {factor} was accepted"));
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(
            message.contains("`factor`"),
            "factor {factor}: the message does not name `factor`: {message:?}"
        );
    }
    // Valid factors, shrinking ones included, are fine.
    for factor in [f64::MIN_POSITIVE, 0.5, 1.0, 2.0, f64::MAX] {
        let b = Backoff::exponential(ms(1))
            .with_factor(factor)
            .with_jitter(Jitter::None);
        assert!(b.delay(3) <= b.max_delay());
    }
}

#[test]
fn rt_17_delay_saturates_at_max_delay_for_any_attempt() {
    let max = Duration::from_secs(30);
    let huge = [
        Backoff::exponential(ms(100)),
        Backoff::exponential(Duration::MAX).with_factor(f64::MAX),
        Backoff::linear(Duration::MAX),
        Backoff::linear(ms(100)),
        Backoff::constant(Duration::MAX),
    ];
    for b in huge {
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            let b = b.clone().with_jitter(jitter);
            for attempt in [2000, 1 << 20, u32::MAX - 1, u32::MAX] {
                let d = b.delay(attempt);
                assert!(d <= max, "{b:?} #{attempt}: {d:?}");
                if jitter == Jitter::None {
                    assert_eq!(d, max, "{b:?} #{attempt}");
                }
            }
        }
    }
    let small = Backoff::exponential(ms(100))
        .with_max_delay(ms(250))
        .with_jitter(Jitter::None);
    assert_eq!(small.delay(u32::MAX), ms(250));
    assert_eq!(small.delay(2000), ms(250));
}

#[test]
fn rt_17_lane_back_offs_saturate_at_max_delay() {
    // The curve overflows to infinity at the second retry: the lane must sleep max_delay, not panic.
    let clock = ManualClock::new();
    let log = Log::new(&clock);
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(4)
        .backoff(
            Backoff::exponential(ms(1))
                .with_factor(f64::MAX)
                .with_max_delay(ms(7))
                .with_jitter(Jitter::None),
        )
        .map_async(|()| Attempt::ready(&log, "attempt", Err::<(), _>(())));
    assert_pending(&mut out);
    for (k, at) in [(1, 1), (2, 8), (3, 15)] {
        assert!(assert_next_start_exactly_at(&mut out, &clock, &log, ms(at), k).is_pending());
    }
    let last = assert_next_start_exactly_at(&mut out, &clock, &log, ms(22), 4);
    assert!(matches!(last, Poll::Ready(Some(Err(ref e))) if e.attempts() == 5));
}

// ---------------------------------------------------------------------------------------------
// RT-12: defaults
// ---------------------------------------------------------------------------------------------

#[test]
fn rt_12_default_backoff_is_exponential_100ms_factor_2_capped_30s_full_jitter() {
    let expected = Backoff::exponential(ms(100))
        .with_factor(2.0)
        .with_max_delay(Duration::from_secs(30))
        .with_jitter(Jitter::Full);
    assert_eq!(Backoff::default(), expected);
    assert_eq!(Backoff::default().jitter(), Jitter::Full);
    assert_eq!(Backoff::default().max_delay(), Duration::from_secs(30));
    assert_eq!(Backoff::exponential(ms(1)).jitter(), Jitter::Full);
    assert_eq!(Backoff::linear(ms(1)).jitter(), Jitter::Full);
}

#[test]
fn rt_12_a_lane_without_backoff_uses_the_default() {
    // 20 items fail once: each retries within [0, 100 ms] (full jitter of 100 ms), not all at once.
    let clock = ManualClock::new();
    let log = Log::new(&clock);
    let calls = Calls::default();
    let mut out = (0..20u32)
        .lane(20)
        .with_clock(&clock)
        .retry(1)
        .map_async(|id| {
            let n = calls.next(id);
            Attempt::ready(
                &log,
                format!("{id}#{n}"),
                if n == 1 { Err(()) } else { Ok(id) },
            )
        });
    let got = drive_until(&mut out, &clock, ms(1), ms(100));
    assert_eq!(got.len(), 20, "every retry started within 100 ms");
    assert!(got.iter().all(|(_, r)| r.is_ok()));
    let retries: Vec<Duration> = log
        .events()
        .into_iter()
        .filter(|(_, e)| e.starts_with("start") && e.ends_with("#2"))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(retries.len(), 20);
    assert!(
        retries.iter().any(|&t| t != retries[0]),
        "all 20 retries at {:?}: no jitter",
        retries[0]
    );
}

#[test]
fn rt_12_every_failure_is_retried_by_default_and_no_error_gives_its_own_delay() {
    let clock = ManualClock::new();
    let calls = Calls::default();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(2)
        .backoff(Backoff::constant(ms(10)))
        .map_async(|()| {
            let n = calls.next(0);
            async move { Err::<(), _>(Duration::from_secs(u64::from(n))) }
        });
    // Errors that look like delays do not change the back-off without `retry_after`.
    let got = drive_until(&mut out, &clock, ms(10), ms(20));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, ms(20));
    assert_eq!(got[0].1.as_ref().unwrap_err().attempts(), 3);
}

// ---------------------------------------------------------------------------------------------
// retry_after: the error's own delay
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Http {
    TooMany(Duration),
    Busy,
}

#[test]
#[cfg_attr(miri, ignore)] // steps the clock by 100 µs: too many polls for Miri
fn rt_12_retry_after_hint_replaces_the_backoff_and_is_capped_at_max_delay() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let calls = Calls::default();
        let hints = RefCell::new(Vec::new());
        let mut out = order([()].lane(1), ordered)
            .with_clock(&clock)
            .retry(4)
            // Full jitter: a hint that were jittered would not land on the exact instant.
            .backoff(
                Backoff::exponential(ms(10))
                    .with_jitter(Jitter::Full)
                    .with_max_delay(ms(500)),
            )
            .retry_after(|e: &Http| {
                hints.borrow_mut().push(e.clone());
                match e {
                    Http::TooMany(d) => Some(*d),
                    Http::Busy => None,
                }
            })
            .map_async(|()| {
                let n = calls.next(0);
                let result = match n {
                    1 => Err(Http::TooMany(ms(30))),        // hint: 30 ms
                    2 => Err(Http::TooMany(Duration::MAX)), // hint capped at max_delay: 500 ms
                    3 => Err(Http::Busy),                   // no hint: the back-off (<= 40 ms)
                    _ => Ok(n),
                };
                Attempt::ready(&log, format!("#{n}"), result)
            });
        assert_pending(&mut out);
        assert!(assert_next_start_exactly_at(&mut out, &clock, &log, ms(30), 1).is_pending());
        assert!(assert_next_start_exactly_at(&mut out, &clock, &log, ms(530), 2).is_pending());
        // The third back-off is the exponential one with full jitter: at most 10 * 2^2 = 40 ms.
        let got = drive_until(&mut out, &clock, Duration::from_micros(100), ms(570));
        assert_eq!(got.len(), 1, "{}", order_name(ordered));
        assert_eq!(*got[0].1.as_ref().unwrap(), 4);
        let retry3 = log.times_of("start")[3];
        assert!(retry3 >= ms(530) && retry3 <= ms(570), "{retry3:?}");
        assert_eq!(
            *hints.borrow(),
            [
                Http::TooMany(ms(30)),
                Http::TooMany(Duration::MAX),
                Http::Busy
            ]
        );
    }
}

#[test]
fn rt_12_retry_after_is_not_asked_about_failures_that_are_not_retried() {
    let clock = ManualClock::new();
    let hints = Cell::new(0);
    let mut out = [(), ()]
        .lane(2)
        .with_clock(&clock)
        .retry(3)
        .retry_if(|e: &Error<Http>| e.inner() != Some(&Http::Busy))
        .retry_after(|_: &Http| {
            hints.set(hints.get() + 1);
            Some(Duration::ZERO)
        })
        .map_async(|()| async { Err::<(), _>(Http::Busy) });
    assert_eq!(next_now(&mut out).unwrap_err().attempts(), 1);
    assert_eq!(next_now(&mut out).unwrap_err().attempts(), 1);
    assert_eq!(hints.get(), 0);
}

// ---------------------------------------------------------------------------------------------
// RT-13: total time
// ---------------------------------------------------------------------------------------------

#[test]
fn rt_13_total_delay_is_the_sum_of_the_backoffs() {
    let clock = ManualClock::new();
    let log = Log::new(&clock);
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(3)
        .backoff(Backoff::exponential(ms(50)).with_jitter(Jitter::None))
        .map_async(|()| Attempt::ready(&log, "attempt", Err::<(), _>("always")));
    let got = drive_until(&mut out, &clock, ms(1), ms(400));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, ms(350), "0.05 + 0.10 + 0.20 s");
    assert_eq!(got[0].1.as_ref().unwrap_err().attempts(), 4);
    assert_eq!(log.times_of("start"), [ms(0), ms(50), ms(150), ms(350)]);
}

#[test]
#[cfg_attr(miri, ignore = "real time")]
fn rt_13_total_delay_on_the_real_clock() {
    let start = std::time::Instant::now();
    let calls = std::sync::atomic::AtomicU32::new(0);
    let out: Vec<Out<(), &str>> = futures::executor::block_on(
        [()].lane(1)
            .retry(3)
            .backoff(Backoff::exponential(ms(10)).with_jitter(Jitter::None))
            .map_async(|()| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Err("always") }
            })
            .collect(),
    );
    let elapsed = start.elapsed();
    assert_eq!(out[0].as_ref().unwrap_err().attempts(), 4);
    assert_eq!(calls.into_inner(), 4);
    assert!(
        elapsed >= ms(70),
        "10 + 20 + 40 ms of back-off took only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// RT-14: a fresh call per attempt; the failed attempt is dropped before the back-off
// ---------------------------------------------------------------------------------------------

/// An item that counts its clones.
#[derive(Debug)]
struct Counted {
    id: u32,
    clones: Rc<Cell<u32>>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.set(self.clones.get() + 1);
        Counted {
            id: self.id,
            clones: Rc::clone(&self.clones),
        }
    }
}

#[test]
fn rt_14_each_attempt_calls_f_anew_and_the_failed_future_is_dropped_before_the_backoff() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let clones = Rc::new(Cell::new(0));
        let (token, items) = items(1);
        let item = Counted {
            id: 7,
            clones: Rc::clone(&clones),
        };
        let gates: Gates<Result<u32, String>> = Gates::default();
        let mut out = order([(item, items.into_iter().next().unwrap())].lane(1), ordered)
            .with_clock(&clock)
            .retry(2)
            .backoff(Backoff::constant(ms(100)))
            .map_async(|(item, tok): (Counted, Item)| {
                let label = format!("{}#{}", item.id, log.count("start") + 1);
                let _keep = tok; // moved into the call and dropped with it
                Attempt::new(&log, label.clone(), gates.make(label))
            });
        assert_pending(&mut out);
        assert_eq!(log.names(), ["start 7#1"]);

        // The first attempt fails at 5 ms: the lane drops its future within that poll, before any
        // time passes, and the retry waits for the whole back-off.
        clock.advance(ms(5));
        gates.open("7#1", Err("boom".into()));
        assert_pending(&mut out);
        assert_eq!(
            log.events(),
            events![(0, "start 7#1"), (5, "end 7#1"), (5, "drop 7#1")]
        );
        clock.advance(ms(100) - NS);
        assert_pending(&mut out);
        assert_eq!(log.count("start"), 1, "retried before the back-off ended");
        clock.advance(NS);
        assert_pending(&mut out);
        assert_eq!(log.times_of("start"), [ms(0), ms(105)]);
        assert_eq!(log.names().last().unwrap(), "start 7#2");

        gates.open("7#2", Ok(1));
        let done: Out<u32, String> = next_now(&mut out);
        assert_eq!(done.unwrap(), 1);
        assert_eq!(log.count("start"), 2, "no third call after a success");
        assert_eq!(log.count("drop"), 2);
        // One clone per attempt, and the lane keeps no copy of a finished item.
        assert!(
            clones.get() >= 1 && clones.get() <= 2,
            "{} clones",
            clones.get()
        );
        assert_eq!(Rc::strong_count(&token), 1, "a finished item is still held");
        assert_done(&mut out);
    }
}

#[test]
fn rt_14_a_failed_attempt_is_dropped_before_the_backoff_begins_even_with_a_timeout() {
    // The attempt times out at 50 ms: dropped then, and its retry starts 20 ms of back-off later.
    let clock = ManualClock::new();
    let log = Log::new(&clock);
    let calls = Calls::default();
    let mut out = [()]
        .lane(1)
        .with_clock(&clock)
        .retry(1)
        .backoff(Backoff::constant(ms(20)))
        .timeout(ms(50))
        .map_async(|()| {
            let n = calls.next(0);
            if n == 1 {
                Attempt::pending(&log, "#1")
            } else {
                Attempt::ready(&log, "#2", Ok::<u32, ()>(n))
            }
        });
    assert_pending(&mut out);
    clock.advance(ms(50));
    assert_pending(&mut out);
    assert_eq!(log.events(), events![(0, "start #1"), (50, "drop #1")]);
    let polled = assert_next_start_exactly_at(&mut out, &clock, &log, ms(70), 1);
    assert!(matches!(polled, Poll::Ready(Some(Ok(2)))), "{polled:?}");
}

#[test]
fn rt_14_dropping_the_lane_during_backoff_drops_everything() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let (token, input) = items(3);
        let mut out = order(input.lane(2), ordered)
            .with_clock(&clock)
            .retry(3)
            .backoff(Backoff::constant(ms(100)))
            .timeout(ms(1000))
            .map_async(|item: Item| {
                if item.id == 0 {
                    Attempt::ready(&log, format!("{}", item.id), Err::<u32, _>(item))
                } else {
                    Attempt::pending(&log, format!("{}", item.id))
                }
            });
        assert_pending(&mut out);
        clock.advance(ms(50));
        assert_pending(&mut out);
        // Item 0 backs off, item 1 runs (its timeout armed), item 2 waits in the input.
        assert_eq!(log.names(), ["start 0", "end 0", "drop 0", "start 1"]);
        drop(out);
        assert_eq!(log.names().last().unwrap(), "drop 1");
        assert_eq!(log.count("start"), log.count("drop"));
        assert_eq!(
            Rc::strong_count(&token),
            1,
            "a copy of an item outlived the lane ({})",
            order_name(ordered)
        );
        // No timer of the dropped lane fires or restarts anything.
        clock.advance(Duration::from_secs(10));
        assert_eq!(log.count("start"), 2);
    }
}

#[test]
#[cfg_attr(miri, ignore = "futures-timer's thread")]
fn rt_14_dropping_a_lane_on_the_real_timer_during_backoff_frees_the_item() {
    let (token, input) = items(1);
    let mut out = input
        .lane(1)
        .retry(3)
        .backoff(Backoff::constant(Duration::from_secs(3600)))
        .map_async(|item: Item| async move { Err::<(), _>(item.id) });
    assert_pending(&mut out);
    assert_eq!(
        Rc::strong_count(&token),
        2,
        "the lane keeps the item for its retries"
    );
    drop(out);
    assert_eq!(Rc::strong_count(&token), 1, "the timer kept the item alive");
}

// ---------------------------------------------------------------------------------------------
// CL-10: an item keeps its slot while it backs off
// ---------------------------------------------------------------------------------------------

#[test]
fn cl_10_item_keeps_its_slot_during_backoff() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let calls = Calls::default();
        let mut out = order([0u32, 1].lane(1), ordered)
            .with_clock(&clock)
            .retry(2)
            .backoff(Backoff::constant(ms(100)))
            .map_async(|id| {
                let n = calls.next(id);
                let result = if id == 0 && n <= 2 { Err(n) } else { Ok(id) };
                Attempt::ready(&log, format!("{id}#{n}"), result)
            });
        let got = drive_until(&mut out, &clock, ms(10), ms(300));
        let got: Vec<(Duration, u32)> = got.into_iter().map(|(t, r)| (t, r.unwrap())).collect();
        assert_eq!(got, [(ms(200), 0), (ms(200), 1)], "{}", order_name(ordered));
        let starts: Vec<(Duration, String)> = log
            .events()
            .into_iter()
            .filter(|(_, e)| e.starts_with("start"))
            .collect();
        assert_eq!(
            starts,
            events![
                (0, "start 0#1"),
                (100, "start 0#2"),
                (200, "start 0#3"),
                (200, "start 1#1"),
            ],
            "item 1 started before item 0 left its slot ({})",
            order_name(ordered)
        );
    }
}

#[test]
fn cl_10_in_progress_counts_items_backing_off() {
    let clock = ManualClock::new();
    let pulled = Cell::new(0);
    let input = (0..4u32).inspect(|_| pulled.set(pulled.get() + 1));
    let mut out = input
        .lane(2)
        .with_clock(&clock)
        .retry(1)
        .backoff(Backoff::constant(ms(100)))
        .map_async(|id| async move { Err::<(), _>(id) });
    assert_pending(&mut out);
    assert_eq!(out.in_progress(), 2, "both items back off in their slots");
    assert_eq!(
        pulled.get(),
        2,
        "the lane pulled a third item while two back off"
    );
    clock.advance(ms(100));
    let mut finished = vec![next_now(&mut out).unwrap_err().into_inner().unwrap()];
    finished.push(next_now(&mut out).unwrap_err().into_inner().unwrap());
    finished.sort_unstable();
    assert_eq!(finished, [0, 1]);
}

// ---------------------------------------------------------------------------------------------
// RT-16: a panicking predicate
// ---------------------------------------------------------------------------------------------

#[test]
fn rt_16_a_panicking_retry_if_propagates_out_of_poll_next_and_the_lane_drops_cleanly() {
    for ordered in [false, true] {
        let clock = ManualClock::new();
        let log = Log::new(&clock);
        let (token, input) = items(4);
        let gates: Gates<Result<(), u32>> = Gates::default();
        let mut out = order(input.lane(3), ordered)
            .with_clock(&clock)
            .retry(5)
            .timeout(ms(100))
            .retry_if(|e: &Error<u32>| -> bool { panic!("predicate exploded on {:?}", e.inner()) })
            .map_async(|item: Item| {
                let label = item.id.to_string();
                Attempt::new(&log, label.clone(), gates.make(label))
            });
        assert_pending(&mut out);
        assert_eq!(log.count("start"), 3);
        gates.open("1", Err(1));
        let result = panic::catch_unwind(AssertUnwindSafe(|| poll_once(&mut out)));
        let payload = result.expect_err("the predicate's panic did not propagate");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert_eq!(message, "predicate exploded on Some(1)");
        drop(out);
        assert_eq!(log.count("start"), log.count("drop"), "{:?}", log.events());
        assert_eq!(Rc::strong_count(&token), 1, "an item outlived the lane");
        clock.advance(Duration::from_secs(1));
        assert_eq!(log.count("start"), 3);
    }
}
