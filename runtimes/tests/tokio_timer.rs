//! The `tokio` feature: a lane that first reads the time inside a tokio runtime uses the runtime's
//! clock and timer (no futures-timer thread), and so follows tokio's paused clock; outside one, it
//! falls back to the default timer.
//!
//! Run with `cargo test -p tasklane-runtimes --features tokio --test tokio_timer` (the member's
//! `tokio` feature turns on tasklane's). Real time: lower bounds strict, upper bounds generous. The
//! paused-clock tests are the proof that tokio's timer is the one in use: an hour of timeouts,
//! back-offs and rate waits passes in milliseconds of real time, which no other timer would do.
#![cfg(feature = "tokio")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::{prelude::*, Backoff, Error, Jitter};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One pending item times out after `timeout`, one finishes at once.
async fn timeout_scenario(timeout: Duration) {
    let start = tokio::time::Instant::now();
    let out: Vec<Result<u32, Error<()>>> = [0u32, 1]
        .lane(2)
        .ordered()
        .timeout(timeout)
        .map_async(|id| async move {
            if id == 1 {
                futures::future::pending::<()>().await;
            }
            Ok(id)
        })
        .collect()
        .await;
    let elapsed = start.elapsed();
    assert_eq!(out[0], Ok(0));
    let err = out[1].as_ref().unwrap_err();
    assert!(err.is_timeout() && err.attempts() == 1, "{err:?}");
    assert!(elapsed >= timeout, "timed out after {elapsed:?}");
    // A deadline is late by at most `max(timeout / 64, 1 ms)` on a clock that is not manual (see
    // `Configure::timeout`), plus the timer's own lateness.
    let late = (timeout / 64).max(ms(1));
    assert!(
        elapsed <= timeout + late + Duration::from_secs(5),
        "took {elapsed:?}"
    );
}

/// Three retries with exponential back-offs of `base`, 2 `base` and 4 `base`.
async fn backoff_scenario(base: Duration) {
    let start = tokio::time::Instant::now();
    let mut starts = Vec::new();
    let out: Vec<Result<(), Error<u32>>> = [()]
        .lane(1)
        .retry(3)
        .backoff(
            Backoff::exponential(base)
                .with_jitter(Jitter::None)
                .with_max_delay(base * 4),
        )
        .map_async(|()| {
            starts.push(start.elapsed());
            let n = starts.len() as u32;
            async move { Err(n) }
        })
        .collect()
        .await;
    let elapsed = start.elapsed();
    let err = out[0].as_ref().unwrap_err();
    assert_eq!((err.attempts(), err.inner()), (4, Some(&4)));
    assert_eq!(starts.len(), 4);
    for (k, pair) in starts.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        assert!(
            waited >= base * (1 << k),
            "back-off #{k} was only {waited:?}"
        );
    }
    assert!(
        elapsed >= base * 7,
        "7 × {base:?} of back-off took {elapsed:?}"
    );
    assert!(
        elapsed < base * 7 + Duration::from_secs(10),
        "took {elapsed:?}"
    );
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
#[cfg_attr(miri, ignore = "real time, tokio's driver")]
fn tokio_timer_timeout_on_current_thread() {
    current_thread().block_on(timeout_scenario(ms(30)));
}

#[test]
#[cfg_attr(miri, ignore = "real time, tokio's driver")]
fn tokio_timer_backoff_on_current_thread() {
    current_thread().block_on(backoff_scenario(ms(10)));
}

#[test]
#[cfg_attr(miri, ignore = "real time, tokio's driver")]
fn tokio_timer_on_the_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::spawn(async {
            timeout_scenario(ms(30)).await;
            backoff_scenario(ms(10)).await;
        })
        .await
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore = "real time, futures-timer's thread")]
fn off_tokio_the_default_timer_serves() {
    // No tokio runtime here: the lane reads the system clock and sleeps on the default timer.
    futures::executor::block_on(async {
        timeout_scenario(ms(30)).await;
        backoff_scenario(ms(10)).await;
    });
}

#[test]
#[cfg_attr(miri, ignore = "tokio's driver")]
fn an_hour_of_timeouts_and_back_offs_passes_at_once_on_the_paused_clock() {
    let real = Instant::now();
    paused().block_on(async {
        timeout_scenario(Duration::from_secs(3600)).await;
        backoff_scenario(Duration::from_secs(600)).await;
    });
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "the paused clock did not drive the lane: {:?} of real time",
        real.elapsed()
    );
}

#[test]
#[cfg_attr(miri, ignore = "tokio's driver")]
fn a_rate_limit_follows_the_paused_clock() {
    // One start per 10 s: 6 starts take 50 s on tokio's clock, at once in real time, and each
    // start is 10 s after the one before it on that clock.
    let real = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    paused().block_on(async {
        let t0 = tokio::time::Instant::now();
        let seen = Arc::clone(&starts);
        let n = (0..6u32)
            .lane(6)
            .rate(0.1)
            .map_async(move |i| {
                seen.lock().unwrap().push(t0.elapsed());
                async move { i }
            })
            .count()
            .await;
        assert_eq!(n, 6);
    });
    let starts = starts.lock().unwrap();
    for (k, pair) in starts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_secs(10) && gap < Duration::from_secs(11),
            "start {} came {gap:?} after the one before (on tokio's clock)",
            k + 1
        );
    }
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "the paused clock did not drive the rate limit: {:?} of real time",
        real.elapsed()
    );
}
