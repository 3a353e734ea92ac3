//! The `tokio` feature: a lane that first reads the time inside a tokio runtime uses the runtime's
//! clock and timer (no futures-timer thread), and so follows tokio's paused clock; outside one, it
//! falls back to the default timer.
//!
//! Run with `cargo test -p tasklane-runtimes --features tokio --test tokio_timer` (the member's
//! `tokio` feature turns on tasklane's). Real time: lower bounds strict, upper bounds generous. The
//! paused-clock tests are the proof that tokio's timer is the one in use: an hour of timeouts,
//! back-offs and rate waits passes in milliseconds of real time, which no other timer would do.
#![cfg(feature = "tokio")]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::prelude::*;

mod timers;
use timers::{backoff_scenario, ms, timeout_scenario};

/// Time on tokio's clock (paused or not) since the first reading.
fn now() -> Duration {
    static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
    ORIGIN.get_or_init(tokio::time::Instant::now).elapsed()
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
    current_thread().block_on(timeout_scenario(ms(30), now));
}

#[test]
#[cfg_attr(miri, ignore = "real time, tokio's driver")]
fn tokio_timer_backoff_on_current_thread() {
    current_thread().block_on(backoff_scenario(ms(10), now));
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
            timeout_scenario(ms(30), now).await;
            backoff_scenario(ms(10), now).await;
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
        timeout_scenario(ms(30), now).await;
        backoff_scenario(ms(10), now).await;
    });
}

#[test]
#[cfg_attr(miri, ignore = "tokio's driver")]
fn an_hour_of_timeouts_and_back_offs_passes_at_once_on_the_paused_clock() {
    let real = Instant::now();
    paused().block_on(async {
        timeout_scenario(Duration::from_secs(3600), now).await;
        backoff_scenario(Duration::from_secs(600), now).await;
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
