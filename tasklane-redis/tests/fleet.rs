//! Acceptance of the shared rate: 4 OS processes × 2 lanes on one key hold the aggregate rate
//! within 2 % of the target, at 200/s and at 5,000/s, over 10 s, against a real redis-server on
//! loopback.
//!
//! The workers are this test binary run again with `TASKLANE_REDIS_FLEET` set (the
//! `fleet_worker` test does nothing without it). Each logs the wall time of every start
//! (`SystemTime` nanoseconds, at the first poll of the item's future) to a file of its own; the
//! test merges the logs and checks:
//! - the GCRA bound: for every window `[a, b]` of starts, `count ≤ burst + rate × (b − a) + tol`,
//!   where `tol` is `2 + rate × 5 ms` (the skew between the server's decision and a worker's reading
//!   of its clock: a round trip, a wake-up, a scheduler delay, on a 2-core machine running 5
//!   processes) plus `(lease − 1) × processes` with a lease;
//! - the aggregate rate, starts over the time from the first to the last, within 2 % of the
//!   target.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use tasklane::prelude::*;
use tasklane_redis::RedisLimiter;

mod common;
use common::{fresh_key, shared_url, watchdog};

/// The fleet runs take the machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const PROCESSES: usize = 4;
const LANES: usize = 2;
const SECONDS: u64 = 10;

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A worker: `LANES` lanes of one process, from the shared start time for `SECONDS`, each start
/// logged. Does nothing unless run by [`fleet`].
#[test]
fn fleet_worker() {
    let Ok(spec) = std::env::var("TASKLANE_REDIS_FLEET") else {
        return;
    };
    watchdog(Duration::from_secs(SECONDS + 20), move || work(&spec));
}

/// The worker's run, from its spec.
fn work(spec: &str) {
    // url key rate burst lease start_nanos log_path
    let f: Vec<&str> = spec.split_whitespace().collect();
    let (url, key, log) = (f[0], f[1], f[6]);
    let rate: f64 = f[2].parse().unwrap();
    let burst: u32 = f[3].parse().unwrap();
    let lease: u32 = f[4].parse().unwrap();
    let start: u64 = f[5].parse().unwrap();
    let end = start + SECONDS * 1_000_000_000;
    let api = RedisLimiter::new(redis::Client::open(url).unwrap(), key)
        .rate(rate)
        .burst(burst)
        .lease(lease);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let starts = runtime.block_on(async {
        // Everyone starts together.
        let wait = start.saturating_sub(now_nanos());
        tokio::time::sleep(Duration::from_nanos(wait)).await;
        let lane = || {
            stream::iter(0u64..)
                .take_while(move |_| std::future::ready(now_nanos() < end))
                .lane(16)
                .limiter(&api)
                .map_async(|_| async { now_nanos() })
                .collect::<Vec<u64>>()
        };
        let (a, b) = futures::join!(lane(), lane());
        let mut all = a;
        all.extend(b);
        all
    });
    let mut file = std::fs::File::create(log).unwrap();
    for t in &starts {
        file.write_all(&t.to_le_bytes()).unwrap();
    }
    eprintln!(
        "worker: {} starts, {} round trips",
        starts.len(),
        api.round_trips()
    );
}

/// What a fleet run measured.
#[derive(Debug)]
struct Measured {
    starts: usize,
    rate: f64,
    /// The largest `count − rate × (b − a)` over every window of starts.
    worst_window: f64,
}

/// Runs the fleet at `rate` with `burst` and `lease`, and checks the logs.
fn fleet(rate: f64, burst: u32, lease: u32) -> Measured {
    let dir = std::env::temp_dir().join(format!("tasklane-redis-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = fresh_key("fleet");
    let start = now_nanos() + 1_500_000_000;
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for p in 0..PROCESSES {
        let log = dir.join(format!("worker-{p}.log"));
        let spec = format!(
            "{} {key} {rate} {burst} {lease} {start} {}",
            shared_url(),
            log.display()
        );
        let child = Command::new(&exe)
            .args(["fleet_worker", "--exact", "--nocapture", "--test-threads=1"])
            .env("TASKLANE_REDIS_FLEET", spec)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        children.push((child, log));
    }
    let deadline = Instant::now() + Duration::from_secs(SECONDS + 30);
    let mut starts = Vec::new();
    for (mut child, log) in children {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a worker failed: {status}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("a worker did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let bytes = std::fs::read(&log).unwrap();
        starts.extend(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    starts.sort_unstable();
    let n = starts.len();
    assert!(n > 2, "no starts");
    let span = (starts[n - 1] - starts[0]) as f64 / 1e9;
    // g(k) = k − rate × t_k: a window [t_i, t_j] holds j − i + 1 starts, and
    // (j − i + 1) − rate × (t_j − t_i) = g(j) − g(i) + 1, so the worst window is the largest rise
    // of g, plus 1.
    let mut lowest = f64::INFINITY;
    let mut worst = f64::NEG_INFINITY;
    for (k, &t) in starts.iter().enumerate() {
        let g = k as f64 - rate * ((t - starts[0]) as f64 / 1e9);
        lowest = lowest.min(g);
        worst = worst.max(g - lowest + 1.0);
    }
    Measured {
        starts: n,
        rate: (n - 1) as f64 / span,
        worst_window: worst,
    }
}

fn check(rate: f64, burst: u32, lease: u32) {
    let measured = fleet(rate, burst, lease);
    let tol = 2.0 + rate * 0.005 + f64::from((lease - 1) * PROCESSES as u32);
    let bound = f64::from(burst) + tol;
    println!(
        "fleet of {PROCESSES} processes × {LANES} lanes at {rate}/s, burst {burst}, lease {lease}: \
         {} starts, {:.1}/s ({:+.2} % of the target); worst window: {:.1} starts above the rate \
         (bound: burst {burst} + tolerance {tol:.1} = {bound:.1})",
        measured.starts,
        measured.rate,
        (measured.rate / rate - 1.0) * 100.0,
        measured.worst_window,
    );
    assert!(
        measured.worst_window <= bound,
        "a window of starts above the GCRA bound: {measured:?}"
    );
    assert!(
        (measured.rate / rate - 1.0).abs() <= 0.02,
        "the aggregate rate is not within 2 % of {rate}: {measured:?}"
    );
}

#[test]
fn four_processes_hold_200_per_second() {
    if std::env::var("TASKLANE_REDIS_FLEET").is_ok() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    watchdog(Duration::from_secs(60), || check(200.0, 5, 1));
}

#[test]
fn four_processes_hold_5000_per_second() {
    if std::env::var("TASKLANE_REDIS_FLEET").is_ok() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    watchdog(Duration::from_secs(60), || check(5000.0, 50, 1));
}

#[test]
fn four_processes_hold_5000_per_second_with_a_lease() {
    if std::env::var("TASKLANE_REDIS_FLEET").is_ok() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    watchdog(Duration::from_secs(60), || check(5000.0, 50, 8));
}
