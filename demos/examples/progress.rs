//! A progress bar over a long run, fed by `on_progress`: 2,000 simulated requests, at most 32 in
//! flight, at most 400 starts per second, each retried twice on failure; the bar shows what
//! completed, what failed, how many are in flight, the retries so far and the rate.
//!
//! Run it with `cargo run --example progress` (about five seconds; it lives in the `tasklane-demos`
//! workspace member, so that `indicatif` is not built for the quickstart). `TASKLANE_ITEMS=200`
//! makes it shorter.

use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tasklane::{prelude::*, Backoff, Progress};

/// Stands in for a request: 5 to 80 ms; one item in 20 fails on its first attempt, one in 97 always.
async fn request(id: u64, attempt: u32) -> Result<u64, String> {
    let ms = 5 + (id * 7919 % 76);
    futures_timer::Delay::new(Duration::from_millis(ms)).await;
    if id % 97 == 0 {
        Err(format!("item {id}: 404"))
    } else if id % 20 == 0 && attempt == 0 {
        Err(format!("item {id}: 503"))
    } else {
        Ok(id)
    }
}

fn main() {
    let items: u64 = std::env::var("TASKLANE_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let bar = ProgressBar::new(items);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} {msg}",
        )
        .expect("a valid template"),
    );
    let attempts = std::cell::RefCell::new(std::collections::HashMap::<u64, u32>::new());
    let started = Instant::now();
    let mut last = Progress::default();

    let outcomes: Vec<Result<u64, tasklane::Error<String>>> = futures::executor::block_on(
        (0..items)
            .lane(32)
            .rate(400.0)
            .retry(2)
            .backoff(Backoff::exponential(Duration::from_millis(20)))
            .on_progress(|p| {
                // One snapshot per finished item, on this thread, just before the item is yielded.
                bar.set_length(p.total.unwrap_or(p.completed));
                bar.set_position(p.completed);
                bar.set_message(format!(
                    "ok {} · failed {} · in flight {} · retries {} · {:.0}/s",
                    p.succeeded,
                    p.failed,
                    p.in_flight,
                    p.retries,
                    p.rate()
                ));
                last = *p;
            })
            .map_async(|id| {
                let mut attempts = attempts.borrow_mut();
                let attempt = attempts.entry(id).or_insert(0);
                let this = *attempt;
                *attempt += 1;
                request(id, this)
            })
            .collect(),
    );
    bar.finish();

    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    println!(
        "done: {} items, {} ok, {failed} failed after {} retries in all, {:.2} s ({:.0} items/s; the \
         limit is 400 starts/s, retries included)",
        outcomes.len(),
        outcomes.len() - failed,
        last.retries,
        started.elapsed().as_secs_f64(),
        outcomes.len() as f64 / started.elapsed().as_secs_f64(),
    );
    assert_eq!(last.completed, items, "one snapshot per item");
    assert_eq!(last.in_flight, 0, "nothing in flight at the end");
    if let Some(err) = outcomes.iter().find_map(|o| o.as_ref().err()) {
        let cause = err.inner().map_or("a timeout", String::as_str);
        println!("for example: {err}: {cause}");
    }
}
