//! Fans out 40 simulated fetches with at most 8 in flight, prints each result as it completes, then
//! runs the same work again with results in input order.
//!
//! Run it with `cargo run --example quickstart`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::prelude::*;

/// Stands in for an HTTP request: takes 10 to 60 ms, fails for every 13th id.
async fn fetch(id: u64, in_flight: &AtomicUsize, peak: &AtomicUsize) -> Result<usize, String> {
    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    peak.fetch_max(now, Ordering::SeqCst);
    futures_timer::Delay::new(Duration::from_millis(10 + (id * 37) % 50)).await;
    in_flight.fetch_sub(1, Ordering::SeqCst);
    if id % 13 == 12 {
        Err(format!("item {id}: server said 503"))
    } else {
        Ok((id as usize * 7919) % 10_000)
    }
}

fn main() {
    futures::executor::block_on(async {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let started = Instant::now();

        println!("40 fetches, at most 8 at once, printed as they complete:");
        let mut outcomes = (0..40u64).lane(8).map_async(|id| {
            let (in_flight, peak) = (&in_flight, &peak);
            async move { (id, fetch(id, in_flight, peak).await) }
        });
        let (mut ok, mut failed) = (0, 0);
        while let Some((id, outcome)) = outcomes.next().await {
            match outcome {
                Ok(bytes) => {
                    ok += 1;
                    println!("  {:>6.1?} item {id:>2}: {bytes} bytes", started.elapsed());
                }
                Err(e) => {
                    failed += 1;
                    println!("  {:>6.1?} {e}", started.elapsed());
                }
            }
        }
        println!(
            "done: {ok} ok, {failed} failed, peak concurrency {} (limit 8), {:.0?} in all",
            peak.load(Ordering::SeqCst),
            started.elapsed()
        );

        let in_order: Vec<Result<usize, String>> = (0..10u64)
            .lane(4)
            .ordered()
            .map_async(|id| fetch(id, &in_flight, &peak))
            .collect()
            .await;
        println!("\nthe first 10 again, at most 4 at once, in input order:");
        for (id, outcome) in in_order.iter().enumerate() {
            println!("  item {id}: {outcome:?}");
        }
    });
}
