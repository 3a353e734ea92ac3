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
    /// From the restart to the first item that started after it (fail_closed: nothing starts
    /// while the server is down, so this is when the lane is admitted again).
    first_start_after: Option<Duration>,
}

/// Runs a future to its end on some runtime, on the calling thread.
type Exec = fn(std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Out>> + Send>>) -> Vec<Out>;

type Out = Result<u32, tasklane::Error<std::io::Error>>;

fn on_tokio(f: std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Out>> + Send>>) -> Vec<Out> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[cfg(feature = "smol-comp")]
fn on_smol(f: std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Out>> + Send>>) -> Vec<Out> {
    smol::block_on(f)
}

/// Runs `ITEMS` items at 250 per second (the lane's own pace) through `limiter` at 200 per second,
/// killing the server 1.5 s in and starting it again 1.5 s later.
fn run_with_outage(fail_open: bool, exec: Exec) -> Run {
    let mut server = Server::start();
    let key = "faults";
    let api = RedisLimiter::new(redis::Client::open(server.url()).unwrap(), key)
        .rate(200.0)
        .burst(5)
        .call_timeout(Duration::from_millis(300));
    let api = if fail_open { api.fail_open() } else { api };
    let started = Arc::new(AtomicUsize::new(0));
    let start_times = Arc::new(Mutex::new(Vec::new()));
    let lane = {
        let (api, started, start_times) =
            (api.clone(), Arc::clone(&started), Arc::clone(&start_times));
        std::thread::spawn(move || {
            exec(Box::pin(async move {
                stream::iter(0..ITEMS)
                    .lane(8)
                    .rate(250.0)
                    .limiter(&api)
                    .timeout(Duration::from_secs(5))
                    .map_async(move |i| {
                        started.fetch_add(1, Ordering::SeqCst);
                        start_times.lock().unwrap().push(Instant::now());
                        async move { Ok::<u32, std::io::Error>(i) }
                    })
                    .collect::<Vec<_>>()
                    .await
            }))
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
    let outputs = lane.join().unwrap();
    let first_start_after = start_times
        .lock()
        .unwrap()
        .iter()
        .find(|&&t| t >= restarted)
        .map(|&t| t - restarted);
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
        first_start_after,
    }
}

fn check_closed(run: Run) {
    println!("fail_closed: {run:?}");
    assert!(run.failed > 0, "the outage failed no item: {run:?}");
    assert!(run.ok > 0);
    assert_eq!(
        run.started, run.ok,
        "a failed item never started; none started twice"
    );
    assert!(run.recovered_after < Duration::from_secs(1), "{run:?}");
    let first = run
        .first_start_after
        .expect("items started after the restart");
    assert!(first < Duration::from_secs(1), "{run:?}");
}

fn check_open(run: Run) {
    println!("fail_open: {run:?}");
    assert_eq!(run.failed, 0, "{run:?}");
    assert_eq!(run.ok, ITEMS as usize);
    assert_eq!(run.started, ITEMS as usize, "every item started once");
    assert!(run.recovered_after < Duration::from_secs(1), "{run:?}");
}

#[test]
fn fail_closed_fails_the_items_of_the_outage_and_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check_closed(watchdog(Duration::from_secs(60), || {
        run_with_outage(false, on_tokio)
    }));
}

#[test]
fn fail_open_runs_the_items_of_the_outage_and_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check_open(watchdog(Duration::from_secs(60), || {
        run_with_outage(true, on_tokio)
    }));
}

#[cfg(feature = "smol-comp")]
#[test]
fn on_smol_fail_closed_fails_the_items_of_the_outage_and_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check_closed(watchdog(Duration::from_secs(60), || {
        run_with_outage(false, on_smol)
    }));
}

#[cfg(feature = "smol-comp")]
#[test]
fn on_smol_fail_open_runs_the_items_of_the_outage_and_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check_open(watchdog(Duration::from_secs(60), || {
        run_with_outage(true, on_smol)
    }));
}
