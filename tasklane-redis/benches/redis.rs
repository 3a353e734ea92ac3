//! The cost of a shared rate through Redis, at 5,000 starts per second: round trips per start and
//! CPU per start (this process's, every thread of it, from `/proc/self/task/*/schedstat`, and the
//! redis-server's, from its own), without a lease and with `lease(8)` and `lease(32)`.
//!
//! Starts a redis-server of its own on a free 127.0.0.1 port. Each run is 4 lanes (limit 16) on a
//! tokio current-thread runtime sharing one `RedisLimiter` at 5,000/s with a burst of 50, for
//! 3 s; 5 rounds, each running every configuration once in shuffled order; the figures are the
//! medians over the rounds. Every run checks the rate it reached (within 2 % of 5,000/s).
//!
//! `cargo bench -p tasklane-redis --bench redis` (about 50 s).

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tasklane::prelude::*;
use tasklane_redis::RedisLimiter;

// The tests' helpers (this bench uses their server only; the file allows its own dead code).
#[path = "../tests/common/mod.rs"]
mod common;

const RATE: f64 = 5000.0;
const BURST: u32 = 50;
const LANES: usize = 4;
const SECONDS: f64 = 3.0;
const ROUNDS: usize = 5;
const LEASES: [u32; 3] = [1, 8, 32];

/// CPU time of every thread of process `pid` ("self" for this one), from schedstat.
fn cpu_of(pid: &str) -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
                total += stat
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(total)
}

#[derive(Debug, Clone, Copy)]
struct Run {
    rate: f64,
    trips_per_start: f64,
    cpu_per_start: Duration,
    server_cpu_per_start: Duration,
}

fn run(url: &str, server_pid: &str, lease: u32, round: usize) -> Run {
    let key = format!("bench:{lease}:{round}:{}", std::process::id());
    let api = RedisLimiter::new(redis::Client::open(url).unwrap(), key)
        .rate(RATE)
        .burst(BURST)
        .lease(lease);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (cpu, server_cpu) = (cpu_of("self"), cpu_of(server_pid));
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(SECONDS);
    let (starts, span) = runtime.block_on(async {
        let lane = || {
            stream::iter(0u64..)
                .take_while(move |_| std::future::ready(Instant::now() < end))
                .lane(16)
                .limiter(&api)
                .map_async(|_| async { Instant::now() })
                .collect::<Vec<Instant>>()
        };
        let all: Vec<Vec<Instant>> = futures::future::join_all((0..LANES).map(|_| lane())).await;
        let all: Vec<Instant> = all.into_iter().flatten().collect();
        let first = *all.iter().min().unwrap();
        let last = *all.iter().max().unwrap();
        (all.len(), last - first)
    });
    let cpu = cpu_of("self") - cpu;
    let server_cpu = cpu_of(server_pid) - server_cpu;
    let rate = (starts - 1) as f64 / span.as_secs_f64();
    assert!(
        (rate / RATE - 1.0).abs() < 0.02,
        "lease {lease}: {rate:.0}/s is not within 2 % of {RATE}/s"
    );
    Run {
        rate,
        trips_per_start: api.round_trips() as f64 / starts as f64,
        cpu_per_start: cpu / starts as u32,
        server_cpu_per_start: server_cpu / starts as u32,
    }
}

fn median<T: Copy + PartialOrd>(mut xs: Vec<T>) -> T {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let server = common::Server::start();
    let server_pid = server.pid().to_string();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); LEASES.len()];
    let mut order: Vec<usize> = (0..LEASES.len()).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..ROUNDS {
        // Shuffle (xorshift): no configuration always runs first.
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &c in &order {
            runs[c].push(run(&server.url(), &server_pid, LEASES[c], round));
        }
    }
    println!(
        "redis: {LANES} lanes sharing one RedisLimiter at {RATE}/s (burst {BURST}), {SECONDS} s \
         per run, median of {ROUNDS} interleaved rounds"
    );
    println!(
        "{:<10} {:>10} {:>16} {:>16} {:>18}",
        "lease", "rate/s", "round trips/start", "CPU/start", "server CPU/start"
    );
    for (c, lease) in LEASES.iter().enumerate() {
        let r = &runs[c];
        println!(
            "{:<10} {:>10.0} {:>16.3} {:>16.2?} {:>18.2?}",
            lease,
            median(r.iter().map(|r| r.rate).collect()),
            median(r.iter().map(|r| r.trips_per_start).collect()),
            median(r.iter().map(|r| r.cpu_per_start).collect()),
            median(r.iter().map(|r| r.server_cpu_per_start).collect()),
        );
    }
}
