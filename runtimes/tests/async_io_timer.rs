//! The `async-io` feature: the lane's timeouts and back-offs sleep on async-io's timer (smol's
//! reactor) instead of futures-timer's thread.
//!
//! Run with `cargo test -p tasklane-runtimes --features async-io --test async_io_timer` (the
//! member's `async-io` feature turns on tasklane's). Real time: lower bounds strict, upper bounds
//! generous.
#![cfg(feature = "async-io")]

use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::{prelude::*, Backoff, Error, Jitter};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn timeout_scenario() {
    let start = Instant::now();
    let out: Vec<Result<u32, Error<()>>> = [0u32, 1]
        .lane(2)
        .ordered()
        .timeout(ms(30))
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
    assert!(elapsed >= ms(30), "timed out after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

async fn backoff_scenario() {
    let start = Instant::now();
    let mut starts = Vec::new();
    let out: Vec<Result<(), Error<u32>>> = [()]
        .lane(1)
        .retry(3)
        .backoff(Backoff::exponential(ms(10)).with_jitter(Jitter::None))
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
            waited >= ms(10) * (1 << k),
            "back-off #{k} was only {waited:?}"
        );
    }
    assert!(
        elapsed >= ms(70),
        "10 + 20 + 40 ms of back-off took {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
#[cfg_attr(miri, ignore = "real time, async-io's reactor")]
fn async_io_timeout_under_smol() {
    smol::block_on(timeout_scenario());
}

#[test]
#[cfg_attr(miri, ignore = "real time, async-io's reactor")]
fn async_io_backoff_under_smol() {
    smol::block_on(backoff_scenario());
}

#[test]
#[cfg_attr(miri, ignore = "real time, async-io's reactor")]
fn async_io_timer_works_off_smol_too() {
    // async-io drives its reactor from a thread of its own when no `block_on` of its runs.
    futures::executor::block_on(async {
        timeout_scenario().await;
        backoff_scenario().await;
    });
}
