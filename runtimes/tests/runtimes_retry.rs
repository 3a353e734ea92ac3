//! The runtime matrix for retries, timeouts and rate limits: the same scenario `async fn`s, on real (small) timers,
//! on tokio (current-thread, and multi-thread as a spawned task, so the lane must be `Send`),
//! async-std, smol and `futures::executor`.
//!
//! The lane's timer is futures-timer's own thread (or async-io's with that feature), whichever
//! runtime polls the lane: these tests show the wake-ups reach every executor. Lower bounds on time
//! are strict, upper bounds generous (a noisy 2-core CI).

#[macro_use]
mod matrix;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future;
use futures::StreamExt;
use futures_timer::Delay;
use tasklane::{prelude::*, Backoff, Error, Jitter};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts the attempts of each of `n` items.
fn counters(n: usize) -> Arc<Vec<AtomicU32>> {
    Arc::new((0..n).map(|_| AtomicU32::new(0)).collect())
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// RT-01 on a runtime: 6 items, limit 2, each fails twice, constant 5 ms back-off.
async fn retries_until_success_with_backoff() {
    let calls = counters(6);
    let start = Instant::now();
    let out: Vec<Result<usize, Error<String>>> = (0..6usize)
        .lane(2)
        .ordered()
        .retry(3)
        .backoff(Backoff::constant(ms(5)))
        .map_async({
            let calls = Arc::clone(&calls);
            move |id| {
                let n = calls[id].fetch_add(1, SeqCst) + 1;
                async move {
                    if n <= 2 {
                        Err(format!("item {id} attempt {n}"))
                    } else {
                        Ok(id)
                    }
                }
            }
        })
        .collect()
        .await;
    let elapsed = start.elapsed();
    assert_eq!(out, (0..6).map(Ok).collect::<Vec<_>>());
    assert!(calls.iter().all(|c| c.load(SeqCst) == 3), "{calls:?}");
    // 3 rounds of 2 items, each item 2 back-offs of 5 ms.
    assert!(elapsed >= ms(30), "done after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

/// TO-02 on a runtime: item 1's first attempt hangs and times out after 30 ms; its retry succeeds.
async fn timeout_then_retry_succeeds() {
    let calls = counters(3);
    let start = Instant::now();
    let out: Vec<Result<usize, Error<()>>> = (0..3usize)
        .lane(3)
        .ordered()
        .retry(2)
        .backoff(Backoff::constant(ms(1)))
        .timeout(ms(30))
        .map_async({
            let calls = Arc::clone(&calls);
            move |id| {
                let n = calls[id].fetch_add(1, SeqCst) + 1;
                async move {
                    if id == 1 && n == 1 {
                        future::pending::<()>().await;
                    }
                    Ok(id)
                }
            }
        })
        .collect()
        .await;
    let elapsed = start.elapsed();
    assert_eq!(out, [Ok(0), Ok(1), Ok(2)]);
    let attempts: Vec<u32> = calls.iter().map(|c| c.load(SeqCst)).collect();
    assert_eq!(attempts, [1, 2, 1]);
    assert!(elapsed >= ms(31), "done after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

/// Every attempt times out: 20 ms timeouts with 5 then 10 ms back-offs, in completion order.
async fn exhausted_timeouts_surface() {
    let calls = counters(2);
    let start = Instant::now();
    let out: Vec<Result<(), Error<()>>> = (0..2usize)
        .lane(2)
        .retry(2)
        .backoff(Backoff::exponential(ms(5)).with_jitter(Jitter::None))
        .timeout(ms(20))
        .map_async({
            let calls = Arc::clone(&calls);
            move |id| {
                calls[id].fetch_add(1, SeqCst);
                async {
                    Delay::new(Duration::from_secs(60)).await;
                    Ok(())
                }
            }
        })
        .collect()
        .await;
    let elapsed = start.elapsed();
    assert_eq!(out.len(), 2);
    for outcome in &out {
        let err = outcome.as_ref().unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(err.attempts(), 3);
    }
    assert!(calls.iter().all(|c| c.load(SeqCst) == 3));
    // 3 timeouts of 20 ms and back-offs of 5 and 10 ms.
    assert!(elapsed >= ms(75), "done after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

/// RL-01 and RT-15 on a runtime: 10 items at 200 starts per second (limit 4), the even ones failing
/// once with no back-off: 15 attempts, never two closer than the period allows, with progress.
async fn rate_limited_retries_hold_the_rate() {
    let calls = counters(10);
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let snapshots = Arc::new(AtomicU32::new(0));
    let t0 = Instant::now();
    let (c, st, sn) = (
        Arc::clone(&calls),
        Arc::clone(&starts),
        Arc::clone(&snapshots),
    );
    let out: Vec<Result<usize, Error<String>>> = (0..10usize)
        .lane(4)
        .rate(200.0)
        .retry(1)
        .backoff(Backoff::constant(Duration::ZERO))
        .on_progress(move |p| {
            assert!(p.in_flight <= 4);
            sn.store(p.completed as u32, SeqCst);
        })
        .map_async(move |i| {
            st.lock().unwrap().push(t0.elapsed());
            let n = c[i].fetch_add(1, SeqCst);
            async move {
                if i % 2 == 0 && n == 0 {
                    Err("fails once".to_string())
                } else {
                    Ok(i)
                }
            }
        })
        .collect()
        .await;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    assert_eq!(snapshots.load(SeqCst), 10);
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 15);
    // Start k is never earlier than k periods of 5 ms after the first (burst 1).
    for (k, t) in starts.iter().enumerate() {
        assert!(*t + ms(1) >= ms(5) * k as u32, "start {k} at {t:?}");
    }
    assert!(t0.elapsed() < Duration::from_secs(20));
}

// ---------------------------------------------------------------------------------------------
// Runtimes
// ---------------------------------------------------------------------------------------------

runtime_matrix!(
    retries_until_success_with_backoff,
    timeout_then_retry_succeeds,
    exhausted_timeouts_surface,
    rate_limited_retries_hold_the_rate,
);
