//! The timing scenarios that every timer feature is tested with (tests/async_io_timer.rs,
//! tests/tokio_timer.rs), on a clock of the test's choosing: real time, or tokio's (paused).
//! Lower bounds strict, upper bounds generous.

use std::time::Duration;

use futures::StreamExt;
use tasklane::{prelude::*, Backoff, Error, Jitter};

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One pending item times out after `timeout`, one finishes at once. `now` reads the clock the
/// lane runs on (time since any fixed origin).
pub(crate) async fn timeout_scenario(timeout: Duration, now: impl Fn() -> Duration) {
    let start = now();
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
    let elapsed = now() - start;
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
pub(crate) async fn backoff_scenario(base: Duration, now: impl Fn() -> Duration) {
    let start = now();
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
            starts.push(now() - start);
            let n = starts.len() as u32;
            async move { Err(n) }
        })
        .collect()
        .await;
    let elapsed = now() - start;
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
