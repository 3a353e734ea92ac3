//! The chaos test (issue 14, item 3): 1,000 real HTTP requests through one unordered lane to the
//! chaos server of `src/lib.rs`, which answers 429 with `Retry-After: 1`, 503, resets connections
//! and stalls past the timeout by a seeded plan. What the server logged must show that:
//!
//! - every item yields exactly one output (indices unique, as many as items), and each item's
//!   outcome and attempts are the plan's;
//! - the server never has more requests in progress than the lane's limit (16);
//! - the server never sees a higher rate than the lane's 200 per second: over the run, and by the
//!   GCRA check over its arrival log (no arrival more than [`RATE_TOLERANCE`] ahead of the
//!   schedule that 200 per second with a burst of 1 allows: that is the limiter's catch-up after a
//!   late timer, up to 5 ms, and the time a request takes from the lane's start to the server's
//!   reading it);
//! - every retry after a 429 with `Retry-After: 1` reaches the server no earlier than 1 s after
//!   the server stamped the 429 (just before writing it: the client cannot have read it earlier),
//!   and no later than [`RETRY_AFTER_SLACK`] after that second.
//!
//! The seed is new at each run (the time) and printed; `TASKLANE_SEED=n` replays a run. A
//! watchdog fails the test after 60 s instead of letting it hang; a run takes about 7 s.
//! Loop it: `for i in $(seq 1 20); do cargo test -p tasklane-demos --release --test chaos -q || break; done`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::{prelude::*, Backoff};
use tasklane_demos::{
    count_by_kind, gcra_worst_early, get, rate_over_run, retry_after_gaps, Chaos, HttpError, Reply,
    Server,
};

const ITEMS: u64 = 1_000;
const LIMIT: usize = 16;
const RATE: f64 = 200.0;
const RETRIES: u32 = 3;
const TIMEOUT: Duration = Duration::from_millis(300);
/// How far ahead of the rate's schedule an arrival may be (see the module docs).
const RATE_TOLERANCE: Duration = Duration::from_millis(20);
/// How late after its `Retry-After` a retry may reach the server: the timer's lateness, the wait
/// in line for the rate limiter, the connection, the server's reading the request.
const RETRY_AFTER_SLACK: Duration = Duration::from_millis(200);
/// The whole test's bound.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `body` on a thread of its own and fails if it takes longer than `limit`.
fn watchdog(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        body();
        done_tx.send(()).ok();
    });
    match done_rx.recv_timeout(limit) {
        Ok(()) => thread.join().unwrap(),
        // The body panicked: join to pass its panic on.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the chaos test hung for {limit:?}"),
    }
}

#[test]
fn every_item_once_within_the_limit_the_rate_and_retry_after() {
    watchdog(WATCHDOG, chaos);
}

fn chaos() {
    let seed = std::env::var("TASKLANE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    println!("seed {seed} (TASKLANE_SEED={seed} replays this run)");
    let chaos = Chaos {
        seed,
        base: Duration::from_millis(20),
        spread: Duration::from_millis(100),
    };
    let server = Server::start(chaos.plan());
    let addr = server.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let calls = AtomicUsize::new(0);
    let mut next_attempt = vec![0u32; ITEMS as usize];
    let started = Instant::now();

    let outcomes: Vec<Result<u64, tasklane::Error<HttpError>>> = rt.block_on(
        (0..ITEMS)
            .lane(LIMIT)
            .rate(RATE)
            .retry(RETRIES)
            .backoff(
                Backoff::exponential(Duration::from_millis(10))
                    .with_max_delay(Duration::from_secs(2)),
            )
            .retry_after(|e: &HttpError| e.retry_after())
            .retry_if(|e| !matches!(e.inner(), Some(HttpError::Status { status: 404, .. })))
            .timeout(TIMEOUT)
            .map_async(|item| {
                let attempt = next_attempt[item as usize];
                next_attempt[item as usize] += 1;
                calls.fetch_add(1, Ordering::Relaxed);
                async move {
                    get(addr, &format!("/i/{item}/{attempt}"))
                        .await
                        .map(|_| item)
                }
            })
            .collect(),
    );
    let elapsed = started.elapsed();

    // The stalled requests end when the server reads the client's close: wait for that (bounded).
    let until = Instant::now() + Duration::from_secs(2);
    while server.in_flight() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.in_flight(), 0, "the server still has requests open");
    let log = server.log();

    // Exactly one output per item.
    let indices: Vec<u64> = outcomes
        .iter()
        .map(|o| match o {
            Ok(item) => *item,
            Err(e) => e.index() as u64,
        })
        .collect();
    let unique: HashSet<u64> = indices.iter().copied().collect();
    assert_eq!(outcomes.len() as u64, ITEMS, "one output per item");
    assert_eq!(unique.len() as u64, ITEMS, "each item once");
    assert!(unique.iter().all(|&i| i < ITEMS));

    // Each item's outcome and attempts are the plan's; the server saw every attempt, once.
    let mut seen: BTreeMap<(u64, u32), usize> = BTreeMap::new();
    for r in &log {
        *seen.entry((r.item, r.attempt)).or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "an attempt reached the server twice"
    );
    let mut planned_attempts = 0;
    for outcome in &outcomes {
        let item = match outcome {
            Ok(item) => *item,
            Err(e) => e.index() as u64,
        };
        let plan = chaos.expected(item, RETRIES);
        planned_attempts += plan.len();
        for attempt in 0..plan.len() as u32 {
            assert!(
                seen.contains_key(&(item, attempt)),
                "item {item}: attempt {attempt} never reached the server"
            );
        }
        assert_eq!(
            next_attempt[item as usize] as usize,
            plan.len(),
            "item {item}'s attempts"
        );
        match (plan.last().unwrap(), outcome) {
            (Reply::Ok(_), Ok(_)) => {}
            (Reply::Unavailable, Err(e)) => {
                assert_eq!(e.inner().and_then(HttpError::status), Some(503));
                assert_eq!(e.attempts(), RETRIES + 1);
            }
            (Reply::NotFound, Err(e)) => {
                assert_eq!(e.inner().and_then(HttpError::status), Some(404));
            }
            (planned, outcome) => panic!("item {item}: planned {planned:?}, got {outcome:?}"),
        }
    }
    assert_eq!(
        log.len(),
        planned_attempts,
        "the server saw the plan's attempts"
    );
    assert_eq!(
        calls.load(Ordering::Relaxed),
        log.len(),
        "every call reached it"
    );

    // The limit, as the server saw it.
    let peak = server.peak();
    assert!(peak <= LIMIT, "the server saw {peak} requests at once");

    // The rate, as the server saw it.
    let rate = rate_over_run(&log);
    let arrivals: Vec<Instant> = log.iter().map(|r| r.arrived).collect();
    let early = gcra_worst_early(&arrivals, RATE, 1);
    assert!(rate <= RATE * 1.01, "{rate:.1} requests per second");
    assert!(
        early <= RATE_TOLERANCE,
        "an arrival {early:?} ahead of the schedule of {RATE} per second"
    );

    // Retry-After, as the server saw it.
    let gaps = retry_after_gaps(&log);
    let expected_429s = log
        .iter()
        .filter(|r| matches!(r.reply, Reply::TooMany(_)))
        .count();
    assert_eq!(gaps.len(), expected_429s, "every 429 was retried");
    for &(item, asked, gap) in &gaps {
        assert!(
            gap >= asked,
            "item {item}: retried {gap:?} after a 429 asking {asked:?}"
        );
        assert!(
            gap <= asked + RETRY_AFTER_SLACK,
            "item {item}: retried {gap:?} after a 429 asking {asked:?}"
        );
    }
    let (min_gap, max_gap) = (
        gaps.iter().map(|g| g.2).min().unwrap_or_default(),
        gaps.iter().map(|g| g.2).max().unwrap_or_default(),
    );
    println!(
        "{ITEMS} items in {:.2} s: {} ok; server: {} requests {:?}, peak {peak} (limit {LIMIT}), \
         {rate:.1}/s (limit {RATE}), worst {:.2} ms ahead of the schedule (tolerance {:?}); {} \
         retries after Retry-After: 1 came {:.1}-{:.1} ms after the 429",
        elapsed.as_secs_f64(),
        outcomes.iter().filter(|o| o.is_ok()).count(),
        log.len(),
        count_by_kind(&log),
        early.as_secs_f64() * 1e3,
        RATE_TOLERANCE,
        gaps.len(),
        min_gap.as_secs_f64() * 1e3,
        max_gap.as_secs_f64() * 1e3,
    );
}
