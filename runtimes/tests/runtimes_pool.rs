//! The runtime matrix for `gather`, `try_gather`, `first`, `first_ok`, `for_each_async` and the task
//! pool: the same scenario `async fn`s, on real (small) timers, on tokio (current-thread, and
//! multi-thread as a spawned task, so everything must be `Send`), async-std, smol and
//! `futures::executor`. Plus the pool driver spawned on its own on tokio's multi-thread runtime, with
//! jobs submitted from other tasks and threads.
//!
//! Lower bounds on time are strict, upper bounds generous (a noisy 2-core CI).

#[macro_use]
mod matrix;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture};
use futures::{FutureExt, StreamExt};
use futures_timer::Delay;
use tasklane::pool::{self, JobError, TaskPool};
use tasklane::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts futures alive at once (a future counts until it completes or is dropped).
#[derive(Clone, Default)]
struct Alive(Arc<(AtomicUsize, AtomicUsize)>);

struct AliveGuard(Alive);

impl Alive {
    fn enter(&self) -> AliveGuard {
        let now = self.0 .0.fetch_add(1, SeqCst) + 1;
        self.0 .1.fetch_max(now, SeqCst);
        AliveGuard(self.clone())
    }
    fn now(&self) -> usize {
        self.0 .0.load(SeqCst)
    }
    fn peak(&self) -> usize {
        self.0 .1.load(SeqCst)
    }
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0 .0 .0.fetch_sub(1, SeqCst);
    }
}

/// Sleeps `ms` milliseconds, counted alive meanwhile, then outputs `out`.
fn sleeper<T: Send + 'static>(alive: &Alive, ms_: u64, out: T) -> BoxFuture<'static, T> {
    let alive = alive.clone();
    async move {
        let _guard = alive.enter();
        Delay::new(ms(ms_)).await;
        out
    }
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// GA-01/GA-02 on a runtime: 40 futures of 1..5 ms, limit 6: input order, at most 6 at once.
async fn gather_keeps_order_and_limit() {
    let alive = Alive::default();
    let futs: Vec<_> = (0..40u64).map(|i| sleeper(&alive, 5 - i % 5, i)).collect();
    let out = tasklane::gather(futs, 6).await;
    assert_eq!(out, (0..40).collect::<Vec<_>>());
    assert_eq!(alive.peak(), 6);
}

/// GA-04/ER-02 on a runtime: one future fails after 20 ms, the others would take 10 s: the error
/// comes back at about 20 ms and every other future is dropped.
async fn try_gather_returns_at_the_first_failure() {
    let alive = Alive::default();
    let start = Instant::now();
    let mut futs: Vec<BoxFuture<'static, Result<u8, &str>>> =
        (0..5).map(|_| sleeper(&alive, 10_000, Ok(1))).collect();
    futs.insert(2, sleeper(&alive, 20, Err("boom")));
    assert_eq!(tasklane::try_gather(futs, 4).await, Err("boom"));
    let elapsed = start.elapsed();
    assert!(elapsed >= ms(19) && elapsed < ms(5_000), "{elapsed:?}");
    assert_eq!(alive.now(), 0, "every other future was dropped");
}

/// RA-04/RA-06 on a runtime: `first` and `first_ok` return at the first (successful) completion and
/// drop the losers.
async fn first_and_first_ok_drop_the_losers() {
    let alive = Alive::default();
    let start = Instant::now();
    let racers = vec![sleeper(&alive, 10_000, "slow"), sleeper(&alive, 10, "fast")];
    assert_eq!(tasklane::first(racers, 2).await, Some("fast"));
    assert!(start.elapsed() < ms(5_000));
    assert_eq!(alive.now(), 0);

    let start = Instant::now();
    let tries = vec![
        sleeper(&alive, 5, Err("down")),
        sleeper(&alive, 10_000, Err("late")),
        sleeper(&alive, 30, Ok("good")),
    ];
    assert_eq!(tasklane::first_ok(tries, 3).await, Ok("good"));
    assert!(start.elapsed() >= ms(29) && start.elapsed() < ms(5_000));
    assert_eq!(alive.now(), 0);
}

/// The buffered-streams trap on a runtime: while the handler sleeps 600 ms, the in-flight items
/// (30..120 ms) still finish on time.
async fn for_each_async_keeps_in_flight_work_running() {
    let start = Instant::now();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&finished);
    (0..4u64)
        .lane(4)
        .map_async(move |i| {
            let log = Arc::clone(&log);
            async move {
                Delay::new(ms(30 * (i + 1))).await;
                log.lock().unwrap().push(start.elapsed());
            }
        })
        .for_each_async(|()| Delay::new(ms(600)))
        .await;
    let times = finished.lock().unwrap().clone();
    assert_eq!(times.len(), 4);
    assert!(times.iter().all(|t| *t < ms(450)), "{times:?}");
    assert!(
        start.elapsed() >= ms(4 * 600 - 5),
        "four handlers ran one after another"
    );
}

/// TP-10/TP-18 on a runtime: a scope of 6 workers runs 60 sleeping jobs, never more than 6 at once,
/// and `map` gives the results in input order.
async fn pool_scope_runs_jobs_within_its_limit() {
    let alive = Alive::default();
    let a = alive.clone();
    let out = pool::scope(6, move |pool| async move {
        let handles: Vec<_> = (0..30u64)
            .map(|i| pool.submit(sleeper(&a, 1 + i % 4, i)))
            .collect();
        let mapped: Vec<_> = pool
            .map(move |i: u64| sleeper(&a, 1 + i % 3, i * 10), 0..30)
            .buffer(4)
            .collect()
            .await;
        let submitted = future::join_all(handles).await;
        (submitted, mapped)
    })
    .await;
    assert_eq!(out.0, (0..30).map(Ok).collect::<Vec<_>>());
    assert_eq!(out.1, (0..30).map(|i| Ok(i * 10)).collect::<Vec<_>>());
    assert!(alive.peak() <= 6 && alive.peak() > 0, "{}", alive.peak());
}

/// Jobs submitted from other OS threads wake the driver, wherever it is polled.
async fn pool_jobs_submitted_from_other_threads() {
    let (pool, driver) = TaskPool::new(3);
    let submitters: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                std::thread::sleep(ms(5 * t));
                (0..10u64)
                    .map(|i| {
                        pool.submit(async move {
                            Delay::new(ms(1)).await;
                            t * 100 + i
                        })
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    drop(pool);
    let waiter = async move {
        let mut all = Vec::new();
        for s in submitters {
            let handles = s.join().unwrap();
            all.extend(future::join_all(handles).await);
        }
        all
    };
    let ((), all) = future::join(driver, waiter).await;
    let mut all: Vec<u64> = all.into_iter().map(Result::unwrap).collect();
    all.sort_unstable();
    let mut expected: Vec<u64> = (0..4)
        .flat_map(|t| (0..10).map(move |i| t * 100 + i))
        .collect();
    expected.sort_unstable();
    assert_eq!(all, expected);
}

/// TP-16 on a runtime: shutdown(wait, cancel_queued) with 2 workers and 5 jobs of 200 ms.
async fn pool_shutdown_waits_and_cancels() {
    let (pool, driver) = TaskPool::new(2);
    let alive = Alive::default();
    let handles: Vec<_> = (0..5)
        .map(|i| pool.submit(sleeper(&alive, 200, i)))
        .collect();
    let start = Instant::now();
    let control = async {
        Delay::new(ms(10)).await;
        pool.shutdown(true, true).await;
        start.elapsed()
    };
    let ((), waited) = future::join(driver, control).await;
    assert!(
        waited >= ms(195),
        "waited for the two running jobs: {waited:?}"
    );
    let outputs = future::join_all(handles).await;
    assert_eq!(
        outputs,
        [
            Ok(0),
            Ok(1),
            Err(JobError::Cancelled),
            Err(JobError::Cancelled),
            Err(JobError::Cancelled)
        ]
    );
}

runtime_matrix!(
    gather_keeps_order_and_limit,
    try_gather_returns_at_the_first_failure,
    first_and_first_ok_drop_the_losers,
    for_each_async_keeps_in_flight_work_running,
    pool_scope_runs_jobs_within_its_limit,
    pool_jobs_submitted_from_other_threads,
    pool_shutdown_waits_and_cancels,
);

/// The driver spawned on tokio's multi-thread runtime (it is `Send`), jobs submitted from several
/// spawned tasks, handles awaited on other tasks, then a waiting shutdown.
#[test]
#[cfg_attr(miri, ignore = "real runtimes, threads and timers")]
fn pool_driver_spawned_on_tokio_multi_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (pool, driver) = TaskPool::new(8);
        let driver = tokio::spawn(driver);
        let alive = Alive::default();
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let pool = pool.clone();
                let alive = alive.clone();
                tokio::spawn(async move {
                    let handles: Vec<_> = (0..25u64)
                        .map(|i| pool.submit(sleeper(&alive, 1 + i % 3, t * 1000 + i)))
                        .collect();
                    let mut sum = 0;
                    for h in handles {
                        sum += h.await.unwrap();
                    }
                    sum
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        let expected: u64 = (0..8u64)
            .flat_map(|t| (0..25).map(move |i| t * 1000 + i))
            .sum();
        assert_eq!(total, expected);
        assert!(alive.peak() <= 8);
        pool.shutdown(true, false).await;
        tokio::time::timeout(Duration::from_secs(30), driver)
            .await
            .expect("the driver ends after shutdown")
            .unwrap();
        assert_eq!(pool.submit(async {}).await, Err(JobError::Shutdown));
    });
}
