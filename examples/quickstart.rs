//! Fans out 40 simulated fetches with at most 8 in flight, retrying transient failures and giving
//! each attempt a deadline, and prints each outcome as it completes; then runs 10 of them again with
//! results in input order.
//!
//! Run it with `cargo run --example quickstart`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::{prelude::*, Backoff};

/// What our stand-in server does wrong, and to which item.
#[derive(Debug)]
enum FetchError {
    /// Fails once, works when asked again.
    Unavailable { id: u64 },
    /// Never works.
    NotFound { id: u64 },
}

impl FetchError {
    /// The item the request was for.
    fn id(&self) -> u64 {
        match self {
            FetchError::Unavailable { id } | FetchError::NotFound { id } => *id,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Unavailable { .. } => f.write_str("HTTP status 503 (service unavailable)"),
            FetchError::NotFound { .. } => f.write_str("HTTP status 404 (not found)"),
        }
    }
}

impl std::error::Error for FetchError {}

/// The shared state of the demo: concurrency gauge and which items already failed once.
struct Server {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    attempts: AtomicUsize,
    failed_once: Mutex<HashSet<u64>>,
}

impl Server {
    /// Stands in for an HTTP request: takes 10 to 60 ms (item 7 hangs for 2 s on its first try);
    /// every 5th item fails once with 503, every 13th is a 404.
    async fn fetch(&self, id: u64) -> Result<usize, FetchError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        // Leaves the gauge when the attempt ends, also when a timeout drops it mid-way.
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _leave = Leave(&self.in_flight);
        let first_try = self.failed_once.lock().unwrap().insert(id);
        let ms = if id == 7 && first_try {
            2_000
        } else {
            10 + (id * 37) % 50
        };
        futures_timer::Delay::new(Duration::from_millis(ms)).await;
        match id {
            _ if id % 13 == 12 => Err(FetchError::NotFound { id }),
            _ if id % 5 == 4 && first_try => Err(FetchError::Unavailable { id }),
            _ => Ok((id as usize * 7919) % 10_000),
        }
    }
}

fn main() {
    futures::executor::block_on(async {
        let server = Server {
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
            failed_once: Mutex::new(HashSet::new()),
        };
        let started = Instant::now();

        println!("40 fetches, at most 8 at once, 2 retries, 300 ms per attempt, as they complete:");
        let mut outcomes = (0..40u64)
            .lane(8)
            .retry(2)
            .backoff(Backoff::exponential(Duration::from_millis(20)))
            .retry_if(|e| !matches!(e.inner(), Some(FetchError::NotFound { .. })))
            .timeout(Duration::from_millis(300))
            .map_async(|id| {
                let server = &server;
                async move { server.fetch(id).await.map(|bytes| (id, bytes)) }
            });
        let (mut ok, mut failed) = (0, 0);
        while let Some(outcome) = outcomes.next().await {
            let at = started.elapsed();
            match outcome {
                Ok((id, bytes)) => {
                    ok += 1;
                    println!("  {at:>6.1?} item {id:>2}: {bytes} bytes");
                }
                Err(err) => {
                    failed += 1;
                    // `{err:#}` is the failure and its cause: "task failed after 1 attempt: HTTP
                    // status 404 (not found)". A timeout carries no error of the task's, so
                    // nothing in it names the item.
                    match err.inner() {
                        Some(cause) => {
                            println!("  {at:>6.1?} item {:>2} failed: {err:#}", cause.id())
                        }
                        None => println!("  {at:>6.1?} an item failed: {err:#}"),
                    }
                }
            }
        }
        println!(
            "done: {ok} ok, {failed} failed, {} attempts, peak concurrency {} (limit 8), {:.0?} in all",
            server.attempts.load(Ordering::SeqCst),
            server.peak.load(Ordering::SeqCst),
            started.elapsed()
        );

        let in_order: Vec<Result<usize, FetchError>> = (0..10u64)
            .lane(4)
            .ordered()
            .map_async(|id| server.fetch(id))
            .collect()
            .await;
        println!("\nthe first 10 again, at most 4 at once, no retry, in input order:");
        for (id, outcome) in in_order.iter().enumerate() {
            match outcome {
                Ok(bytes) => println!("  item {id}: {bytes} bytes"),
                Err(cause) => println!("  item {id} failed: {cause}"),
            }
        }
    });
}
