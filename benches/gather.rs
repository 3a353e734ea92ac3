//! The seed-parity helpers against their peers, in one run:
//!
//! - `gather_ready`, `gather_yield_once`: [`tasklane::gather`] of `N` futures (ready at once, or
//!   yielding once), at limits 16 and 256 and unbounded, against futures-util's
//!   `stream::iter(futs).buffered(limit).collect()` (the same limits) and futures-buffered's
//!   `join_all` (which has no limit, so it is the peer of the unbounded gather). Each run is driven
//!   by a manual poll loop with a no-op waker, so what is measured is the combinator.
//! - `pool`: the throughput of [`tasklane::pool::TaskPool`] with 64 workers on 100,000 small jobs
//!   (each yields once), against tokio's `JoinSet` bounded by a `Semaphore` of 64 permits, both on a
//!   tokio current-thread runtime. Throughput is reported in jobs per second.
//!
//! Every timed closure checks the outputs (count and sum), so nothing is optimized away.

use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use futures::stream::{self, StreamExt};
use futures::task::noop_waker_ref;
use tasklane::pool::TaskPool;

#[allow(dead_code)]
// reason: this bench uses only `yield_once` of the helpers the bench files share
mod common;
use common::yield_once;

/// Futures per run in the gather groups.
const N: u64 = 10_000;

/// Limits for the gather groups (`usize::MAX`: unbounded, the peer of `join_all`).
const LIMITS: [usize; 3] = [16, 256, usize::MAX];

/// Jobs per run, and workers, in the pool group.
const JOBS: u64 = 100_000;
const WORKERS: usize = 64;

/// Polls `fut` to completion with a no-op waker (a `Pending` is simply polled again).
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(noop_waker_ref());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Asserts that a run over `0..n` gave back `0..n` in input order.
fn check(n: u64, out: &[u64]) {
    assert_eq!(out.len() as u64, n);
    assert_eq!(out.iter().sum::<u64>(), n * (n - 1) / 2);
    assert_eq!(out.last(), Some(&(n - 1)));
}

fn limit_name(limit: usize) -> String {
    if limit == usize::MAX {
        "unbounded".to_string()
    } else {
        limit.to_string()
    }
}

/// The gather peers over `0..N` mapped through `f`.
fn compare<F, Fut>(group: &mut BenchmarkGroup<'_, WallTime>, f: F)
where
    F: Fn(u64) -> Fut + Copy,
    Fut: Future<Output = u64>,
{
    for limit in LIMITS {
        group.bench_function(
            BenchmarkId::new("tasklane_gather", limit_name(limit)),
            |b| {
                b.iter(|| {
                    let out = block_on(tasklane::gather((0..black_box(N)).map(f), limit));
                    check(N, &out);
                })
            },
        );
        if limit != usize::MAX {
            group.bench_function(
                BenchmarkId::new("futures_util_buffered", limit_name(limit)),
                |b| {
                    b.iter(|| {
                        let out: Vec<u64> = block_on(
                            stream::iter((0..black_box(N)).map(f))
                                .buffered(limit)
                                .collect(),
                        );
                        check(N, &out);
                    })
                },
            );
        }
    }
    group.bench_function(
        BenchmarkId::new("futures_buffered_join_all", "unbounded"),
        |b| {
            b.iter(|| {
                let out = block_on(futures_buffered::join_all((0..black_box(N)).map(f)));
                check(N, &out);
            })
        },
    );
}

fn gather(c: &mut Criterion) {
    let mut group = c.benchmark_group("gather_ready");
    group.throughput(Throughput::Elements(N));
    compare(&mut group, ready);
    group.finish();

    let mut group = c.benchmark_group("gather_yield_once");
    group.throughput(Throughput::Elements(N));
    compare(&mut group, yield_once);
    group.finish();
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

/// `JOBS` jobs through a tasklane pool of `WORKERS`, on `rt`; returns the sum of their outputs.
fn tasklane_pool(rt: &tokio::runtime::Runtime) -> u64 {
    rt.block_on(async {
        let (pool, driver) = TaskPool::new(WORKERS);
        let handles: Vec<_> = (0..black_box(JOBS))
            .map(|i| pool.submit(yield_once(i)))
            .collect();
        drop(pool);
        let consume = async {
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.expect("no job is cancelled");
            }
            sum
        };
        let ((), sum) = futures::join!(driver, consume);
        sum
    })
}

/// `JOBS` tokio tasks in a `JoinSet`, at most `WORKERS` at once (a `Semaphore`), on `rt`.
fn tokio_joinset(rt: &tokio::runtime::Runtime) -> u64 {
    rt.block_on(async {
        let permits = Arc::new(tokio::sync::Semaphore::new(WORKERS));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..black_box(JOBS) {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("never closed");
            set.spawn(async move {
                let _permit = permit;
                yield_once(i).await
            });
        }
        let mut sum = 0;
        while let Some(out) = set.join_next().await {
            sum += out.expect("no task panics");
        }
        sum
    })
}

fn pool(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("pool");
    group.throughput(Throughput::Elements(JOBS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    let expected = JOBS * (JOBS - 1) / 2;
    group.bench_function(BenchmarkId::new("tasklane_pool", WORKERS), |b| {
        b.iter(|| assert_eq!(tasklane_pool(&rt), expected))
    });
    group.bench_function(BenchmarkId::new("tokio_joinset_semaphore", WORKERS), |b| {
        b.iter(|| assert_eq!(tokio_joinset(&rt), expected))
    });
    group.finish();
}

// A plain `main` rather than `criterion_group!`, whose generated `pub fn` has no doc comment.
// Modest times: the whole file runs in about two minutes.
fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    gather(&mut c);
    pool(&mut c);
    c.final_summary();
}
