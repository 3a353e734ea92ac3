//! Issue 16, item 1: a retrying or timed lane whose error type borrows can be spawned.
//!
//! The bug: `Err("...")` (an `Error<&'static str>`), or a `Box<dyn Error + Send + Sync>` (whose
//! `'static` is a lifetime too), through `.retry(n)` or `.timeout(d)` inside `tokio::spawn` did not
//! compile ("one type is more general than the other", "implementation of `FnOnce` is not general
//! enough"). To prove that the spawned future is `Send`, the compiler proves the lane's bounds with
//! every lifetime in its type replaced by a lifetime of its own; the lane's bounds tied its error
//! type (and the default `fn(&Error<E>) -> bool` predicate, and any `retry_if` closure) to the
//! futures' error type, which cannot be proven that way. Each test here compiles only because the
//! lane's bounds no longer tie them (see `mode::Settles`).
//!
//! Every scenario runs as a `tokio::spawn`ed task on a multi-thread runtime, on real (small) timers.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures::{future, StreamExt};
use tasklane::{prelude::*, Backoff, Error, Policy};

type BoxError = Box<dyn StdError + Send + Sync>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `scenario` as a spawned task on a 2-thread tokio runtime and returns its output.
fn spawned<T, Fut>(scenario: Fut) -> T
where
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        match tokio::spawn(scenario).await {
            Ok(out) => out,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => panic!("the spawned task failed: {err}"),
        }
    })
}

/// Counts the attempts of each of `n` items.
fn counters(n: usize) -> Arc<Vec<AtomicU32>> {
    Arc::new((0..n).map(|_| AtomicU32::new(0)).collect())
}

fn attempts(calls: &[AtomicU32]) -> Vec<u32> {
    calls.iter().map(|c| c.load(SeqCst)).collect()
}

/// What the items of the scenarios below do on their attempt `n` (1-based): item 1 always fails,
/// item 2 fails once, item 3's first attempt hangs (and times out); the others succeed.
enum Step {
    Fail,
    Hang,
    Succeed,
}

fn step(id: usize, n: u32) -> Step {
    match (id, n) {
        (1, _) | (2, 1) => Step::Fail,
        (3, 1) => Step::Hang,
        _ => Step::Succeed,
    }
}

#[test]
fn a_retrying_timed_lane_with_a_str_error_spawns() {
    let calls = counters(5);
    let c = Arc::clone(&calls);
    let out = spawned(async move {
        (0..5usize)
            .lane(5)
            .ordered()
            .retry(3)
            .backoff(Backoff::constant(ms(1)))
            .timeout(ms(50))
            .map_async(move |id| {
                let n = c[id].fetch_add(1, SeqCst) + 1;
                async move {
                    match step(id, n) {
                        Step::Fail => Err("HTTP status 503"),
                        Step::Hang => future::pending().await,
                        Step::Succeed => Ok(id * 10),
                    }
                }
            })
            .collect::<Vec<Result<usize, Error<&'static str>>>>()
            .await
    });
    assert_eq!(out.len(), 5);
    assert_eq!(out[0], Ok(0));
    let err = out[1].as_ref().unwrap_err();
    assert_eq!((err.inner(), err.attempts()), (Some(&"HTTP status 503"), 4));
    assert_eq!(
        format!("{err:#}"),
        "task failed after 4 attempts: HTTP status 503"
    );
    assert_eq!(out[2..], [Ok(20), Ok(30), Ok(40)]);
    assert_eq!(attempts(&calls), [1, 4, 2, 2, 1]);
}

#[test]
fn a_retrying_timed_lane_with_a_boxed_error_spawns() {
    let calls = counters(5);
    let c = Arc::clone(&calls);
    let out = spawned(async move {
        (0..5usize)
            .lane(5)
            .ordered()
            .retry(3)
            .backoff(Backoff::constant(ms(1)))
            .timeout(ms(50))
            .map_async(move |id| {
                let n = c[id].fetch_add(1, SeqCst) + 1;
                async move {
                    match step(id, n) {
                        Step::Fail => Err(BoxError::from(std::io::Error::other("disk full"))),
                        Step::Hang => future::pending().await,
                        Step::Succeed => Ok(id * 10),
                    }
                }
            })
            .collect::<Vec<Result<usize, Error<BoxError>>>>()
            .await
    });
    assert_eq!(out.len(), 5);
    assert_eq!(*out[0].as_ref().unwrap(), 0);
    let err = out[1].as_ref().unwrap_err();
    assert_eq!(err.attempts(), 4);
    let inner = err.inner().expect("a task error, not a timeout");
    assert!(inner.downcast_ref::<std::io::Error>().is_some());
    assert_eq!(
        format!("{err:#}"),
        "task failed after 4 attempts: disk full"
    );
    let rest: Vec<usize> = out[2..].iter().map(|o| *o.as_ref().unwrap()).collect();
    assert_eq!(rest, [20, 30, 40]);
    assert_eq!(attempts(&calls), [1, 4, 2, 2, 1]);
}

#[test]
fn a_timed_lane_with_a_str_error_spawns() {
    let out = spawned(async {
        (0..3usize)
            .lane(3)
            .ordered()
            .timeout(ms(20))
            .map_async(|id| async move {
                match id {
                    0 => Ok(id),
                    1 => Err("no such item"),
                    _ => future::pending().await,
                }
            })
            .collect::<Vec<Result<usize, Error<&'static str>>>>()
            .await
    });
    assert_eq!(out[0], Ok(0));
    assert_eq!(out[1].as_ref().unwrap_err().inner(), Some(&"no such item"));
    let timed_out = out[2].as_ref().unwrap_err();
    assert!(
        timed_out.is_timeout() && timed_out.attempts() == 1,
        "{timed_out:?}"
    );
}

/// The closures of `retry_if` and `retry_after` name the error type, lifetime and all: they spawn
/// too.
#[test]
fn retry_if_and_retry_after_closures_over_a_str_error_spawn() {
    let calls = counters(3);
    let c = Arc::clone(&calls);
    let out = spawned(async move {
        (0..3usize)
            .lane(3)
            .ordered()
            .retry(3)
            .backoff(Backoff::constant(Duration::from_secs(3600))) // never waited for
            .retry_if(|e| e.inner() != Some(&"fatal"))
            .retry_after(|e| (*e == "slow down").then(|| ms(1)))
            .timeout(ms(50))
            .map_async(move |id| {
                let n = c[id].fetch_add(1, SeqCst) + 1;
                async move {
                    match (id, n) {
                        (1, _) => Err("fatal"),
                        (2, 1 | 2) => Err("slow down"),
                        _ => Ok(id),
                    }
                }
            })
            .collect::<Vec<Result<usize, Error<&'static str>>>>()
            .await
    });
    assert_eq!(out[0], Ok(0));
    let fatal = out[1].as_ref().unwrap_err();
    assert_eq!((fatal.inner(), fatal.attempts()), (Some(&"fatal"), 1));
    assert_eq!(out[2], Ok(2));
    assert_eq!(attempts(&calls), [1, 1, 3]);
}

/// The same through a reusable `Policy`, with a boxed error and a `retry_if` closure over it.
#[test]
fn a_policy_with_a_retry_if_closure_over_a_boxed_error_spawns() {
    let policy = Policy::new(4)
        .ordered()
        .retry(2)
        .backoff(Backoff::constant(ms(1)))
        .retry_if(|e: &Error<BoxError>| e.is_timeout() || e.inner().is_some_and(|e| e.is::<Busy>()))
        .timeout(ms(50));
    let calls = counters(3);
    let c = Arc::clone(&calls);
    let out = spawned(async move {
        (0..3usize)
            .lane_with(&policy)
            .map_async(move |id| {
                let n = c[id].fetch_add(1, SeqCst) + 1;
                async move {
                    match (id, n) {
                        (1, 1) => Err(BoxError::from(Busy)),
                        (2, _) => Err(BoxError::from("not found")),
                        _ => Ok(id),
                    }
                }
            })
            .collect::<Vec<_>>()
            .await
    });
    assert_eq!(*out[0].as_ref().unwrap(), 0);
    assert_eq!(*out[1].as_ref().unwrap(), 1);
    let err = out[2].as_ref().unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.inner().unwrap().to_string(), "not found");
    assert_eq!(attempts(&calls), [1, 2, 1]);
}

#[derive(Debug)]
struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("busy")
    }
}

impl StdError for Busy {}
