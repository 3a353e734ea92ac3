//! 2,000 real HTTP requests through one lane, to a local server that misbehaves on purpose: at most
//! 32 in flight, at most 400 starts per second, 3 retries that honour `Retry-After`, no retry of a
//! 404, and 500 ms per attempt; a progress bar while it runs, then what happened, as the client and
//! as the server saw it, checked against the lane's settings.
//!
//! The server (`tasklane_demos::Server`, on 127.0.0.1 at an ephemeral port) answers each request
//! by a seeded plan (`tasklane_demos::Chaos`): some get 429 with `Retry-After: 1`, some 503, some a
//! reset connection, some a stall past the timeout; a few items fail at every attempt (503) or are
//! not found (404). The client is hyper's HTTP/1 connection (`tasklane_demos::get`).
//!
//! Run it with `cargo run --example http` (about 7 seconds). `TASKLANE_ITEMS=500` makes it shorter.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tasklane::{prelude::*, Backoff, Progress};
use tasklane_demos::{
    count_by_kind, gcra_worst_early, get, rate_over_run, retry_after_gaps, Chaos, HttpError, Server,
};

const LIMIT: usize = 32;
const RATE: f64 = 400.0;
const RETRIES: u32 = 3;
const TIMEOUT: Duration = Duration::from_millis(500);
/// How far ahead of the rate's schedule the server may see a request: the limiter's catch-up
/// after a late timer (up to 5 ms), and the time from a start to the server's reading the
/// request, which varies by a few milliseconds on a busy machine.
const RATE_TOLERANCE: Duration = Duration::from_millis(20);

/// What the client saw, attempt by attempt.
#[derive(Default)]
struct Attempts {
    /// The next attempt's number, per item.
    next: HashMap<u64, u32>,
    /// Attempts by outcome: `200`, `429`, `503`, `404`, `reset`, `timeout`.
    by_kind: BTreeMap<&'static str, usize>,
}

/// Counts an attempt as a timeout if the lane drops it before it ends.
struct TimeoutGuard<'a>(&'a RefCell<Attempts>, bool);

impl Drop for TimeoutGuard<'_> {
    fn drop(&mut self) {
        if !self.1 {
            *self.0.borrow_mut().by_kind.entry("timeout").or_insert(0) += 1;
        }
    }
}

fn main() {
    let items: u64 = std::env::var("TASKLANE_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let chaos = Chaos {
        seed: 14,
        base: Duration::from_millis(5),
        spread: Duration::from_millis(40),
    };
    let server = Server::start(chaos.plan());
    let addr = server.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let bar = ProgressBar::new(items);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("a valid template"),
    );
    let attempts = RefCell::new(Attempts::default());
    let mut last = Progress::default();
    let started = Instant::now();

    println!(
        "{items} GET requests to http://{addr}: lane({LIMIT}), rate({RATE}), retry({RETRIES}), \
         Retry-After honoured, 404 not retried, timeout({TIMEOUT:?})"
    );
    let outcomes: Vec<Result<u64, tasklane::Error<HttpError>>> = rt.block_on(
        (0..items)
            .lane(LIMIT)
            .rate(RATE)
            .retry(RETRIES)
            .backoff(
                Backoff::exponential(Duration::from_millis(20))
                    .with_max_delay(Duration::from_secs(2)),
            )
            .retry_after(|e: &HttpError| e.retry_after())
            .retry_if(|e| !matches!(e.inner(), Some(HttpError::Status { status: 404, .. })))
            .timeout(TIMEOUT)
            .on_progress(|p| {
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
            .map_async(|item| {
                let attempt = {
                    let mut a = attempts.borrow_mut();
                    let next = a.next.entry(item).or_insert(0);
                    *next += 1;
                    *next - 1
                };
                let attempts = &attempts;
                async move {
                    let mut guard = TimeoutGuard(attempts, false);
                    let outcome = get(addr, &format!("/i/{item}/{attempt}")).await;
                    guard.1 = true;
                    let kind = match &outcome {
                        Ok(_) => "200",
                        Err(e) => e.kind(),
                    };
                    *attempts.borrow_mut().by_kind.entry(kind).or_insert(0) += 1;
                    outcome.map(|_| item)
                }
            })
            .collect(),
    );
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let attempts = attempts.into_inner();
    let log = server.log();

    // The client's view.
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    let retried = attempts.next.values().filter(|&&n| n > 1).count();
    let mut failed: BTreeMap<&str, usize> = BTreeMap::new();
    for err in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        let kind = err.inner().map_or("timeout", HttpError::kind);
        *failed.entry(kind).or_insert(0) += 1;
    }
    let client_attempts: usize = attempts.by_kind.values().sum();
    println!(
        "done in {:.2} s: {} items, {ok} ok, {retried} retried, {} failed {failed:?}",
        elapsed.as_secs_f64(),
        outcomes.len(),
        outcomes.len() - ok,
    );
    println!(
        "client: {client_attempts} attempts {:?}, {} retries (on_progress)",
        attempts.by_kind, last.retries
    );

    // The server's view.
    let server_kinds = count_by_kind(&log);
    let rate = rate_over_run(&log);
    let arrivals: Vec<Instant> = log.iter().map(|r| r.arrived).collect();
    let early = gcra_worst_early(&arrivals, RATE, 1);
    println!("server: {} requests {server_kinds:?}", log.len());
    println!(
        "server: {rate:.1} requests/s over the run (limit {RATE}); at most {early:.1?} ahead of \
         the rate's schedule (tolerance {RATE_TOLERANCE:?}); peak concurrency {} (limit {LIMIT})",
        server.peak()
    );
    let gaps = retry_after_gaps(&log);
    if let (Some(min), Some(max)) = (
        gaps.iter().map(|g| g.2).min(),
        gaps.iter().map(|g| g.2).max(),
    ) {
        println!(
            "server: {} retries after a 429 with Retry-After: 1 came {:.1} to {:.1} ms after \
             the 429 was sent",
            gaps.len(),
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
        );
    }

    // What the plan says must happen.
    let mut planned: BTreeMap<&str, usize> = BTreeMap::new();
    let mut planned_ok = 0;
    for item in 0..items {
        let replies = chaos.expected(item, RETRIES);
        planned_ok += usize::from(matches!(replies.last(), Some(tasklane_demos::Reply::Ok(_))));
        for reply in replies {
            *planned.entry(reply.kind()).or_insert(0) += 1;
        }
    }

    // The checks: the server's counts agree with the client's and the plan's, and the lane's
    // settings held as the server saw them.
    let mut client_as_server = attempts.by_kind.clone();
    if let Some(timeouts) = client_as_server.remove("timeout") {
        client_as_server.insert("stall", timeouts);
    }
    assert_eq!(outcomes.len() as u64, items, "one outcome per item");
    assert_eq!(
        client_as_server, server_kinds,
        "the client's attempts, by kind"
    );
    assert_eq!(planned, server_kinds, "the plan's attempts, by kind");
    assert_eq!(ok, planned_ok, "the plan's successes");
    assert_eq!(
        client_attempts,
        log.len(),
        "every attempt reached the server"
    );
    assert_eq!(last.retries as usize, log.len() - outcomes.len());
    assert!(server.peak() <= LIMIT, "the server saw more than {LIMIT}");
    assert!(rate <= RATE * 1.01, "the server saw {rate:.1} requests/s");
    assert!(early <= RATE_TOLERANCE, "{early:?} ahead of the schedule");
    assert!(
        gaps.iter().all(|g| g.2 >= g.1),
        "a retry came before its Retry-After"
    );
    println!(
        "checks passed: server counts = client counts = the plan's; peak concurrency <= {LIMIT}; \
         rate <= {RATE}/s; every Retry-After honoured"
    );
}
