//! A crawl over four hosts with a budget per host (`tasklane::KeyedLimiter`): at most 4 requests at
//! once to each host, whatever the others do. Three hosts answer in 5 ms, one in 200 ms; the pages
//! come interleaved (host 0, 1, 2, 3, 0, 1, …). The fast hosts are not held back by the slow one:
//! they finish long before it, each server having seen at most 4 requests at once.
//!
//! Then the same crawl with the lane's limit alone (`lane(16)`, no per-host budget), for contrast:
//! the slow host's pages pile up in the lane's slots, the slow server sees up to 16 at once, and
//! the fast hosts wait behind it.
//!
//! The hosts are local servers on 127.0.0.1 at ephemeral ports (`tasklane_demos::Server`), the
//! client is hyper's HTTP/1 connection (`tasklane_demos::get`).
//!
//! Run it with `cargo run --example crawl` (about 3 seconds).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::{prelude::*, Limiter};
use tasklane_demos::{get, Reply, Server};

const PAGES: u64 = 40;
const PER_HOST: usize = 4;
const DELAYS_MS: [u64; 4] = [5, 5, 5, 200];

/// One host's pages: how many, when the last one came, and its server's peak concurrency.
struct HostReport {
    pages: u64,
    last: Duration,
    peak: usize,
}

/// Fetches every page of every host through `lane`, in the interleaved order, and reports per host.
fn crawl(per_host: bool) -> Vec<HostReport> {
    let servers: Vec<Server> = DELAYS_MS
        .iter()
        .map(|&ms| Server::start(Arc::new(move |_, _| Reply::Ok(Duration::from_millis(ms)))))
        .collect();
    let hosts: Vec<SocketAddr> = servers.iter().map(Server::addr).collect();
    let pages: Vec<(SocketAddr, u64)> = (0..PAGES)
        .flat_map(|page| hosts.iter().map(move |&host| (host, page)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let total = pages.len();
    let started = Instant::now();
    let fetch = |(host, page): (SocketAddr, u64)| async move {
        let body = get(host, &format!("/i/{page}/0")).await;
        (host, body.map(|b| b.len()), started.elapsed())
    };

    let done: Vec<(SocketAddr, Result<usize, _>, Duration)> = if per_host {
        let limiter = Limiter::keyed::<SocketAddr>().concurrency(PER_HOST);
        // The lane's own limit bounds the pages pulled and not yet done, those that wait for their
        // host's budget included: room for every page, so that a slow host's waiting pages never
        // fill the lane.
        rt.block_on(
            pages
                .lane(total)
                .limiter_by(&limiter, |&(host, _)| host)
                .map_async(fetch)
                .collect(),
        )
    } else {
        rt.block_on(
            pages
                .lane(PER_HOST * hosts.len())
                .map_async(fetch)
                .collect(),
        )
    };

    hosts
        .iter()
        .zip(&servers)
        .map(|(host, server)| {
            let mine = done.iter().filter(|(h, ..)| h == host);
            assert!(mine.clone().all(|(_, body, _)| body.is_ok()));
            HostReport {
                pages: mine.clone().count() as u64,
                last: mine.map(|(.., at)| *at).max().unwrap_or_default(),
                peak: server.peak(),
            }
        })
        .collect()
}

fn print(reports: &[HostReport]) {
    for (i, (r, ms)) in reports.iter().zip(DELAYS_MS).enumerate() {
        println!(
            "  host {i} ({ms:>3} ms per page): {} pages, last at {:>7.1} ms, peak concurrency {}",
            r.pages,
            r.last.as_secs_f64() * 1e3,
            r.peak
        );
    }
}

fn main() {
    println!(
        "{PAGES} pages on each of 4 hosts, interleaved; at most {PER_HOST} at once per host \
         (Limiter::keyed().concurrency({PER_HOST}), lane({})):",
        PAGES as usize * DELAYS_MS.len()
    );
    let keyed = crawl(true);
    print(&keyed);
    let fast = keyed[..3].iter().map(|r| r.last).max().unwrap_or_default();
    let slow = keyed[3].last;
    println!(
        "  the fast hosts were done at {:.1} ms, {:.0} times sooner than the slow one",
        fast.as_secs_f64() * 1e3,
        slow.as_secs_f64() / fast.as_secs_f64()
    );
    assert!(keyed.iter().all(|r| r.pages == PAGES));
    assert!(
        keyed.iter().all(|r| r.peak <= PER_HOST),
        "a host saw more than {PER_HOST} at once"
    );
    assert!(fast * 4 < slow, "the fast hosts were held back");

    println!("the same crawl with lane(16) alone, no budget per host:");
    let plain = crawl(false);
    print(&plain);
    let fast_plain = plain[..3].iter().map(|r| r.last).max().unwrap_or_default();
    println!(
        "  the fast hosts were done at {:.1} ms: held back behind the slow host's pages, which \
         its server saw {} at once",
        fast_plain.as_secs_f64() * 1e3,
        plain[3].peak
    );
}
