//! Three worker processes share one rate through Redis: `cargo run -p tasklane-redis --example
//! fleet`.
//!
//! The example runs itself again as 3 workers (`FLEET_WORKER` set). Each runs a lane of its own
//! for 4 s on the same key at a shared 300 starts per second; the parent prints each worker's
//! rate and the total, which is the shared rate, not 3 times it.
//!
//! The server: `REDIS_URL` if set, else a redis-server of the example's own on a free loopback
//! port (when `redis-server` is on PATH), stopped at the end.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tasklane::prelude::*;
use tasklane_redis::RedisLimiter;

const WORKERS: usize = 3;
const RATE: f64 = 300.0;
const SECONDS: u64 = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(worker) = std::env::var("FLEET_WORKER") {
        return work(
            &worker,
            &std::env::var("FLEET_URL")?,
            &std::env::var("FLEET_KEY")?,
        );
    }
    let (url, mut server) = match std::env::var("REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let (url, server) = start_server()?;
            (url, Some(server))
        }
    };
    let key = format!("fleet-example:{}", std::process::id());
    println!("{WORKERS} workers share {RATE} starts/s on {url} (key {key:?}) for {SECONDS} s");
    let exe = std::env::current_exe()?;
    let workers: Vec<Child> = (0..WORKERS)
        .map(|i| {
            Command::new(&exe)
                .env("FLEET_WORKER", i.to_string())
                .env("FLEET_URL", &url)
                .env("FLEET_KEY", &key)
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut total = 0u64;
    for (i, worker) in workers.into_iter().enumerate() {
        let out = worker.wait_with_output()?;
        let line = String::from_utf8_lossy(&out.stdout);
        let starts: u64 = line
            .trim()
            .parse()
            .map_err(|_| format!("worker {i}: {line:?}"))?;
        println!(
            "worker {i}: {starts} starts, {:.1}/s",
            starts as f64 / SECONDS as f64
        );
        total += starts;
    }
    println!(
        "total: {total} starts, {:.1}/s (the shared rate is {RATE}/s, plus a burst of 10)",
        total as f64 / SECONDS as f64
    );
    if let Some(server) = server.as_mut() {
        server.kill()?;
        server.wait()?;
    }
    Ok(())
}

/// One worker: a lane of its own on the shared key, for `SECONDS`; prints its count of starts.
fn work(_worker: &str, url: &str, key: &str) -> Result<(), Box<dyn std::error::Error>> {
    let api = RedisLimiter::new(redis::Client::open(url)?, key)
        .rate(RATE)
        .burst(10);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let end = Instant::now() + Duration::from_secs(SECONDS);
    let starts = runtime.block_on(
        stream::iter(0u64..)
            .take_while(|_| std::future::ready(Instant::now() < end))
            .lane(8)
            .limiter(&api)
            .timeout(Duration::from_secs(5))
            .map_async(|i| async move { Ok::<u64, std::io::Error>(i) }) // a request would go here
            .filter(|out| std::future::ready(out.is_ok()))
            .count(),
    );
    println!("{starts}");
    Ok(())
}

/// A redis-server on a free 127.0.0.1 port, answering.
fn start_server() -> Result<(String, Child), Box<dyn std::error::Error>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let server = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("no REDIS_URL and no redis-server on PATH: {e}"))?;
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str())?;
    for _ in 0..200 {
        if let Ok(mut conn) = client.get_connection() {
            if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                return Ok((url, server));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err("redis-server did not answer within 2 s".into())
}
