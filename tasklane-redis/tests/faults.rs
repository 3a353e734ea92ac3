//! Faults: redis-server killed mid-run (SIGKILL, as a crash) and started again on the same port.
//! With `fail_closed` the items asked for in that window end as errors and the rest complete;
//! with `fail_open` they run; in both, every item yields exactly one output, none starts twice,
//! and the lane is admitted by the server again within 1 s of the restart.
//!
//! Each test starts a redis-server of its own on a free loopback port.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tasklane::prelude::*;
use tasklane_redis::RedisLimiter;

mod common;
use common::{watchdog, Server};

/// The fault runs measure timing: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const ITEMS: u32 = 1000;

/// What one run with an outage saw.
#[derive(Debug)]
struct Run {
    ok: usize,
    failed: usize,
    started: usize,
    /// From the restart to the first call the restarted server answered.
    recovered_after: Duration,
}

/// Runs `ITEMS` items at 250 per second (the lane's own pace) through `limiter` at 200 per second,
/// killing the server 1.5 s in and starting it again 1.5 s later.
fn run_with_outage(fail_open: bool) -> Run {
    let mut server = Server::start();
    let key = "faults";
    let api = RedisLimiter::new(redis::Client::open(server.url()).unwrap(), key)
        .rate(200.0)
        .burst(5)
        .call_timeout(Duration::from_millis(300));
    let api = if fail_open { api.fail_open() } else { api };
    let started = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lane = {
        let (api, started) = (api.clone(), Arc::clone(&started));
        runtime.spawn(async move {
            stream::iter(0..ITEMS)
                .lane(8)
                .rate(250.0)
                .limiter(&api)
                .timeout(Duration::from_secs(5))
                .map_async(move |i| {
                    started.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<u32, std::io::Error>(i) }
                })
                .collect::<Vec<_>>()
                .await
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    let restarted = Instant::now();
    // The first call the new server answers leaves the rate's key there.
    let probe = redis::Client::open(server.url()).unwrap();
    let mut conn = probe.get_connection().unwrap();
    let recovered_after = loop {
        let there: bool = redis::cmd("EXISTS")
            .arg(format!("{{{key}}}:gcra"))
            .query(&mut conn)
            .unwrap();
        if there {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "never recovered"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let outputs = runtime.block_on(lane).unwrap();
    assert_eq!(outputs.len(), ITEMS as usize, "one output per item");
    let mut seen = HashSet::new();
    let (mut ok, mut failed) = (0, 0);
    for out in &outputs {
        let index = match out {
            Ok(i) => {
                ok += 1;
                *i as usize
            }
            Err(err) => {
                failed += 1;
                assert!(err.limit_error().is_some(), "only the limiter fails: {err}");
                err.index()
            }
        };
        assert!(seen.insert(index), "item {index} came out twice");
    }
    Run {
        ok,
        failed,
        started: started.load(Ordering::SeqCst),
        recovered_after,
    }
}

#[test]
fn fail_closed_fails_the_items_of_the_outage_and_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = watchdog(Duration::from_secs(60), || run_with_outage(false));
    println!("fail_closed: {run:?}");
    assert!(run.failed > 0, "the outage failed no item: {run:?}");
    assert!(run.ok > 0);
    assert_eq!(
        run.started, run.ok,
        "a failed item never started; none started twice"
    );
    assert!(run.recovered_after < Duration::from_secs(1), "{run:?}");
}

#[test]
fn fail_open_runs_the_items_of_the_outage_and_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = watchdog(Duration::from_secs(60), || run_with_outage(true));
    println!("fail_open: {run:?}");
    assert_eq!(run.failed, 0, "{run:?}");
    assert_eq!(run.ok, ITEMS as usize);
    assert_eq!(run.started, ITEMS as usize, "every item started once");
    assert!(run.recovered_after < Duration::from_secs(1), "{run:?}");
}
