//! `tasklane::pool`: SCENARIOS.md group N (TP) and ER-11/ER-12, each test named after its scenario.
//! The driver is polled by hand (or with `block_on_sync`), so "at once" means "in the same poll",
//! and "dropped" / "never started" are read from drop-guard trackers.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;

use common::{block_on_sync, catch_panic, gates, yield_times, Gate, Gauge, Opener, Tracker};
use futures::future::{self, BoxFuture, Either, FusedFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use futures_test::task::noop_context;
use tasklane::pool::{self, JobError, JobHandle, Map, PoolDriver, Shutdown, TaskPool};

fn poll<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    fut.poll_unpin(&mut noop_context())
}

fn new_pool(max_workers: usize) -> (TaskPool, Pin<Box<PoolDriver>>) {
    let (pool, driver) = TaskPool::new(max_workers);
    (pool, Box::pin(driver))
}

/// Runs `fut` to completion on this thread, polling the driver beside it (until the driver ends).
fn with_driver<F: Future>(driver: &mut Pin<Box<PoolDriver>>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    block_on_sync(future::poll_fn(|cx| {
        if !driver.is_terminated() {
            let _ = driver.as_mut().poll(cx);
        }
        fut.as_mut().poll(cx)
    }))
}

/// A tracked job that waits for its gate, then outputs `out`.
fn gated_job<T: Send + 'static>(
    tracker: &Tracker,
    id: usize,
    gate: Gate,
    out: T,
) -> BoxFuture<'static, T> {
    tracker
        .track(id, async move {
            gate.await;
            out
        })
        .boxed()
}

fn open(openers: &mut [Option<Opener>], i: usize) {
    openers[i].take().expect("each gate opens once").open();
}

/// Submits `n` gated jobs with outputs `0..n`.
fn submit_gated(
    pool: &TaskPool,
    tracker: &Tracker,
    n: usize,
) -> (Vec<Option<Opener>>, Vec<JobHandle<usize>>) {
    let (openers, gates) = gates(n);
    let handles = gates
        .into_iter()
        .enumerate()
        .map(|(i, g)| pool.submit(gated_job(tracker, i, g, i)))
        .collect();
    (openers, handles)
}

/// Ids of the jobs polled at least once, in the order of their first poll.
fn start_order(tracker: &Tracker) -> Vec<usize> {
    let mut seen = Vec::new();
    for e in tracker.events() {
        if let common::Event::Polled(i) = e {
            if !seen.contains(&i) {
                seen.push(i);
            }
        }
    }
    seen
}

/// TP-01: submit a·b with (2, 8): the handle gives 16, and says it is finished.
#[test]
fn tp_01_submit() {
    let (pool, mut driver) = new_pool(5);
    let (a, b) = (2, 8);
    let mut handle = pool.submit(async move { a * b });
    assert!(!handle.is_finished());
    assert!(poll(&mut driver).is_pending());
    assert!(handle.is_finished());
    assert_eq!(poll(&mut handle), Poll::Ready(Ok(16)));
    assert!(handle.is_terminated());
}

/// TP-03 / ER-11: a job's own error comes back unchanged (the same value), inside `Ok`.
#[test]
fn tp_03_er_11_the_jobs_own_error() {
    #[derive(Debug)]
    struct DivByZero(Arc<()>);
    let token = Arc::new(());
    let err = DivByZero(Arc::clone(&token));
    let (pool, mut driver) = new_pool(5);
    let mut handle = pool.submit(async move { Err::<u32, _>(err) });
    let _ = poll(&mut driver);
    match poll(&mut handle) {
        Poll::Ready(Ok(Err(e))) => assert!(Arc::ptr_eq(&e.0, &token)),
        other => panic!("expected the job's error, got {other:?}"),
    }
}

/// TP-04: the handle tells a cancelled job apart from the job's own error.
#[test]
fn tp_04_cancelled_is_not_the_jobs_error() {
    let (pool, mut driver) = new_pool(1);
    let failing = pool.submit(async { Err::<(), _>("own error") });
    let cancelled = pool.submit(future::pending::<Result<(), &str>>());
    assert!(cancelled.cancel());
    let _ = poll(&mut driver);
    assert_eq!(block_on_sync(failing), Ok(Err("own error")));
    assert_eq!(block_on_sync(cancelled), Err(JobError::Cancelled));
}

/// TP-05: cancelling a queued job means it never runs; cancelling a running one drops its future
/// (at the driver's next poll) and its waiters see `Cancelled` at once; submit-then-cancel followed
/// by `shutdown(wait)` does not hang.
#[test]
fn tp_05_cancel_queued_and_running() {
    let tracker = Tracker::new();
    let (pool, mut driver) = new_pool(1);
    let (mut openers, handles) = submit_gated(&pool, &tracker, 2);
    assert!(poll(&mut driver).is_pending());
    assert_eq!(start_order(&tracker), [0]);

    // Queued: never polled, dropped when the driver reaches it.
    let mut queued = handles.into_iter();
    let (mut running, mut waiting) = (queued.next().unwrap(), queued.next().unwrap());
    assert!(waiting.cancel());
    assert_eq!(poll(&mut waiting), Poll::Ready(Err(JobError::Cancelled)));

    // Running: the handle resolves at once; the future is dropped at the next poll of the driver.
    assert!(running.cancel());
    assert_eq!(poll(&mut running), Poll::Ready(Err(JobError::Cancelled)));
    assert_eq!(tracker.alive(), [0, 1]);
    assert!(poll(&mut driver).is_pending());
    assert!(tracker.alive().is_empty());
    assert_eq!(tracker.cancelled(), [0, 1]);
    assert_eq!(
        tracker.polls_of(1),
        0,
        "the cancelled queued job never started"
    );
    open(&mut openers, 0);

    // Submit, cancel at once, shut down and wait: no hang.
    let late = pool.submit(future::pending::<()>());
    assert!(late.cancel());
    block_on_sync(future::join(driver, pool.shutdown(true, false)));
    assert!(!late.cancel(), "already ended");
}

/// TP-06: a buffer of 0 panics at the call, naming `buffer`, before anything is submitted.
#[test]
fn tp_06_buffer_zero_panics_at_the_caller() {
    let (pool, _driver) = new_pool(1);
    catch_panic(|| drop(pool.map(|x: u8| async move { x }, [1]).buffer(0)))
        .unwrap_err()
        .assert_names("buffer", "tests/pool.rs");
    assert_eq!(pool.queued(), 0);
}

/// TP-07: buffers of 1, 2, 4 and 8 over 0..4 all give "0".."3"; an empty input gives nothing.
#[test]
fn tp_07_map_with_any_buffer_size() {
    for n in [1, 2, 4, 8] {
        let out: Vec<_> = block_on_sync(pool::scope(5, |pool| async move {
            pool.map(|x: u32| async move { x.to_string() }, 0..4)
                .buffer(n)
                .collect::<Vec<_>>()
                .await
        }));
        assert_eq!(
            out,
            ["0", "1", "2", "3"].map(|s| Ok(s.to_string())),
            "buffer {n}"
        );
    }
    let empty: Vec<_> = block_on_sync(pool::scope(5, |pool| async move {
        pool.map(|x: u32| async move { x }, Vec::new())
            .buffer(2)
            .collect::<Vec<_>>()
            .await
    }));
    assert!(empty.is_empty());
}

/// TP-08: several inputs are zipped by the caller; the shortest wins.
#[test]
fn tp_08_zipped_inputs() {
    let out: Vec<_> = block_on_sync(pool::scope(5, |pool| async move {
        pool.map(|(a, b): (u32, u32)| async move { a * b }, (0..5).zip(0..3))
            .collect::<Vec<_>>()
            .await
    }));
    assert_eq!(out, [Ok(0), Ok(1), Ok(4)]);
}

/// TP-09: `max_workers` of 0 panics at the call, naming it (for `TaskPool::new` and `scope`).
#[test]
fn tp_09_max_workers_zero_panics_at_the_caller() {
    catch_panic(|| drop(TaskPool::new(0)))
        .unwrap_err()
        .assert_names("max_workers", "tests/pool.rs");
    catch_panic(|| drop(pool::scope(0, |_| async {})))
        .unwrap_err()
        .assert_names("max_workers", "tests/pool.rs");
}

/// TP-10 (CL-06): 5 workers, 75 blocked jobs: exactly 5 run, 70 are queued; jobs start in
/// submission order as workers free up; releasing them all lets all finish.
#[test]
fn tp_10_saturation_and_fifo() {
    let tracker = Tracker::new();
    let (pool, mut driver) = new_pool(5);
    let (mut openers, handles) = submit_gated(&pool, &tracker, 75);
    assert!(poll(&mut driver).is_pending());
    assert_eq!(driver.running(), 5);
    assert_eq!(pool.queued(), 70);
    // Free workers in a scrambled order: the next job to start is always the oldest queued.
    for i in [3, 0, 4, 1, 2, 7, 5] {
        open(&mut openers, i);
        assert!(poll(&mut driver).is_pending());
        assert!(driver.running() <= 5);
    }
    assert_eq!(start_order(&tracker), (0..12).collect::<Vec<_>>());
    for i in 0..75 {
        if openers[i].is_some() {
            open(&mut openers, i);
        }
    }
    drop(pool);
    block_on_sync(driver.as_mut());
    assert_eq!(start_order(&tracker), (0..75).collect::<Vec<_>>());
    let outputs: Vec<_> = handles.into_iter().map(block_on_sync).collect();
    assert_eq!(outputs, (0..75).map(Ok).collect::<Vec<_>>());
}

/// TP-11 (CL-07): submit-then-await three times: never more than one job at once; and with many
/// jobs of different lengths, never more than `max_workers`.
#[test]
fn tp_11_idle_worker_reuse_and_the_limit() {
    let gauge = Gauge::new();
    let job = |n: usize| {
        let gauge = gauge.clone();
        async move {
            let guard = gauge.enter();
            yield_times(n).await;
            guard.leave();
            n
        }
    };
    let out = block_on_sync(pool::scope(4, |pool| async move {
        let mut out = Vec::new();
        for n in 0..3 {
            out.push(pool.submit(job(n)).await.unwrap());
        }
        out
    }));
    assert_eq!(out, [0, 1, 2]);
    assert_eq!(gauge.peak(), 1);

    let gauge = Gauge::new();
    let job = |n: usize| {
        let gauge = gauge.clone();
        async move {
            let guard = gauge.enter();
            yield_times(1 + n % 7).await;
            guard.leave();
        }
    };
    let (pool, driver) = TaskPool::new(4);
    let handles: Vec<_> = (0..200).map(|n| pool.submit(job(n))).collect();
    drop(pool);
    block_on_sync(driver);
    assert!(handles.into_iter().all(|h| block_on_sync(h).is_ok()));
    assert_eq!(gauge.peak(), 4);
}

/// TP-12 (BP-08): a map without a buffer submits its whole input at its first poll; those jobs all
/// run before `shutdown(wait)` returns, though the stream is not iterated further.
#[test]
fn tp_12_map_submits_everything_without_iteration() {
    let ran = Arc::new(AtomicUsize::new(0));
    let (pool, mut driver) = new_pool(3);
    let counter = Arc::clone(&ran);
    let mut map = pool.map(
        move |i: usize| {
            let counter = Arc::clone(&counter);
            async move {
                yield_times(i % 3).await;
                counter.fetch_add(1, SeqCst);
                i
            }
        },
        0..10,
    );
    assert_eq!(map.submitted(), 0, "lazy until polled");
    assert!(poll(&mut map.next()).is_pending());
    assert_eq!(map.submitted(), 10);
    block_on_sync(future::join(driver.as_mut(), pool.shutdown(true, false)));
    assert_eq!(ran.load(SeqCst), 10);
    let out: Vec<_> = block_on_sync(map.collect());
    assert_eq!(out, (0..10).map(Ok).collect::<Vec<_>>());
}

/// TP-13: once a job is done the pool keeps nothing it captured (strong count back to 1), whether
/// its handle was dropped or is never awaited; `map` keeps no copy of results it yielded.
#[test]
fn tp_13_no_stale_references() {
    let captured = Arc::new(());
    let (pool, mut driver) = new_pool(2);
    let c = Arc::clone(&captured);
    drop(pool.submit(async move { drop(c) }));
    let c = Arc::clone(&captured);
    let kept = pool.submit(async move {
        let _c = c;
        yield_times(2).await;
    });
    assert_eq!(Arc::strong_count(&captured), 3);
    with_driver(
        &mut driver,
        future::poll_fn(|cx| {
            if kept.is_finished() {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }),
    );
    assert_eq!(
        Arc::strong_count(&captured),
        1,
        "both jobs released what they captured"
    );
    drop(kept);

    let result = Arc::new(());
    let r = Arc::clone(&result);
    let mut map = pool.map(
        move |_: u8| {
            let r = Arc::clone(&r);
            async move { r }
        },
        [0, 1],
    );
    drop(pool);
    let out = with_driver(&mut driver, map.next());
    drop(out);
    let second = with_driver(&mut driver, map.next()).unwrap().unwrap();
    drop(map);
    assert_eq!(
        Arc::strong_count(&result),
        2,
        "only `second` (and this test) hold it"
    );
    drop(second);
    assert_eq!(Arc::strong_count(&result), 1);
}

/// TP-14: submitting after shutdown resolves to `Err(Shutdown)` at once, even with nothing driving
/// the pool; so does `map`'s first submission.
#[test]
fn tp_14_submit_after_shutdown() {
    let (pool, _driver) = new_pool(2);
    drop(pool.shutdown(false, false));
    let mut late = pool.submit(async { 1 });
    assert!(late.is_finished());
    assert_eq!(poll(&mut late), Poll::Ready(Err(JobError::Shutdown)));
    assert!(!late.cancel());
    let mut map = pool.map(|x: u8| async move { x }, [1, 2]);
    assert_eq!(
        poll(&mut map.next()),
        Poll::Ready(Some(Err(JobError::Shutdown)))
    );
    assert_eq!(pool.queued(), 0);
    assert_eq!(JobError::Shutdown.to_string(), "pool is shut down");
}

/// TP-15: 5 workers, 50 jobs, shut down at once: without cancel all 50 finish; with cancel all 50
/// are cancelled (none had been picked up), and none runs.
#[test]
fn tp_15_shutdown_with_and_without_cancel() {
    for cancel in [false, true] {
        let tracker = Tracker::new();
        let (pool, driver) = TaskPool::new(5);
        let handles: Vec<_> = (0..50)
            .map(|i| pool.submit(tracker.track(i, yield_times(1))))
            .collect();
        block_on_sync(future::join(driver, pool.shutdown(true, cancel)));
        let outputs: Vec<_> = handles.into_iter().map(block_on_sync).collect();
        if cancel {
            assert!(outputs.iter().all(|o| *o == Err(JobError::Cancelled)));
            assert_eq!(tracker.total_polls(), 0);
        } else {
            assert!(outputs.iter().all(|o| *o == Ok(())));
            assert_eq!(tracker.completed().len(), 50);
        }
        assert!(tracker.alive().is_empty());
    }
}

/// TP-16: 2 workers, 5 blocked jobs, shutdown once two run, for each (wait, cancel_queued); a
/// second shutdown is harmless.
#[test]
fn tp_16_shutdown_wait_and_cancel_matrix() {
    for (wait, cancel) in [(true, false), (true, true), (false, false), (false, true)] {
        let case = format!("wait {wait}, cancel {cancel}");
        let tracker = Tracker::new();
        let (pool, mut driver) = new_pool(2);
        let (mut openers, handles) = submit_gated(&pool, &tracker, 5);
        assert!(poll(&mut driver).is_pending());
        let mut shutdown = pool.shutdown(wait, cancel);
        let mut again = pool.shutdown(wait, cancel);
        let queued_left = if cancel { 0 } else { 3 };
        assert_eq!(pool.queued(), queued_left, "{case}");
        if !wait {
            assert_eq!(
                poll(&mut shutdown),
                Poll::Ready(()),
                "{case}: returns at once"
            );
        }
        for i in 0..5 {
            if wait && (i < 2 || !cancel) {
                assert!(
                    poll(&mut shutdown).is_pending(),
                    "{case}: waits for job {i}"
                );
            }
            if openers[i].is_some() {
                open(&mut openers, i);
            }
            if !driver.is_terminated() {
                let _ = poll(&mut driver);
            }
        }
        assert!(driver.is_terminated(), "{case}");
        assert_eq!(poll(&mut shutdown), Poll::Ready(()), "{case}");
        assert_eq!(poll(&mut again), Poll::Ready(()), "{case}");
        let outputs: Vec<_> = handles.into_iter().map(block_on_sync).collect();
        let expected: Vec<_> = (0..5)
            .map(|i| {
                if cancel && i >= 2 {
                    Err(JobError::Cancelled)
                } else {
                    Ok(i)
                }
            })
            .collect();
        assert_eq!(outputs, expected, "{case}");
        if cancel {
            assert!(
                (2..5).all(|i| tracker.polls_of(i) == 0),
                "{case}: queued jobs never started"
            );
        }
    }
}

/// TP-17: three blocked jobs, released, then shutdown: when it returns, the driver has finished.
#[test]
fn tp_17_jobs_terminate_before_shutdown_returns() {
    let tracker = Tracker::new();
    let (pool, mut driver) = new_pool(3);
    let (mut openers, _handles) = submit_gated(&pool, &tracker, 3);
    assert!(poll(&mut driver).is_pending());
    for i in 0..3 {
        open(&mut openers, i);
    }
    block_on_sync(future::join(driver.as_mut(), pool.shutdown(true, false)));
    assert!(driver.is_terminated());
    assert_eq!(driver.running(), 0);
    assert_eq!(tracker.completed().len(), 3);
}

/// TP-18: `scope` is the structured form: map(abs over -4..3), and every job is done afterwards.
#[test]
fn tp_18_scope_waits_for_its_jobs() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let out: Vec<_> = block_on_sync(pool::scope(5, move |pool| async move {
        for _ in 0..3 {
            let counter = Arc::clone(&counter);
            drop(pool.submit(async move {
                yield_times(3).await;
                counter.fetch_add(1, SeqCst);
            }));
        }
        pool.map(|x: i32| async move { x.abs() }, -4..4)
            .collect::<Vec<_>>()
            .await
    }));
    assert_eq!(out, [4, 3, 2, 1, 0, 1, 2, 3].map(Ok));
    assert_eq!(
        ran.load(SeqCst),
        3,
        "jobs left running when the body ended were waited for"
    );
}

/// TP-19: dropping the pool handle or `shutdown(wait = false)` loses no submitted work: the handle
/// and the map results stay valid.
#[test]
fn tp_19_shutdown_without_wait_loses_nothing() {
    for drop_only in [false, true] {
        let (pool, mut driver) = new_pool(5);
        let (a, b) = (2, 5);
        let product = pool.submit(async move {
            yield_times(2).await;
            a * b
        });
        let mut map = pool.map(
            |x: i32| async move {
                yield_times(1).await;
                x.abs()
            },
            -5..5,
        );
        assert!(
            poll(&mut map.next()).is_pending(),
            "submits the whole input"
        );
        if drop_only {
            drop(pool);
        } else {
            assert_eq!(poll(&mut pool.shutdown(false, false)), Poll::Ready(()));
        }
        assert!(!product.is_finished(), "not finished right after");
        block_on_sync(driver.as_mut());
        assert_eq!(block_on_sync(product), Ok(10));
        let out: Vec<_> = block_on_sync(map.collect());
        assert_eq!(out, [5, 4, 3, 2, 1, 0, 1, 2, 3, 4].map(Ok));
    }
}

/// TP-22: handles compose with the usual combinators: `select` (first completed, the other keeps
/// running), `try_join_all` on the jobs' results (first exception), `join_all` (all completed), a
/// timed-out wait that leaves the job running, 100 jobs released together through
/// `FuturesUnordered`; a handle never awaited or dropped still runs.
#[test]
fn tp_22_handles_compose_with_standard_waiting() {
    let tracker = Tracker::new();
    let (pool, mut driver) = new_pool(10);
    let (mut openers, mut handles) = submit_gated(&pool, &tracker, 4);
    let _ = poll(&mut driver);

    // FIRST_COMPLETED: job 1 finishes, job 0 stays pending and keeps its place.
    let h1 = handles.remove(1);
    let h0 = handles.remove(0);
    open(&mut openers, 1);
    let _ = poll(&mut driver);
    let (winner, h0) = match block_on_sync(future::select(h0, h1)) {
        Either::Right((winner, h0)) => (winner, h0),
        Either::Left(_) => panic!("job 0 is blocked"),
    };
    assert_eq!(winner, Ok(1));
    assert!(!h0.is_finished());

    // A timed-out wait (here: a select against an already-ready "timeout") leaves the job running.
    let h0 = match block_on_sync(future::select(h0, future::ready("timeout"))) {
        Either::Right(("timeout", h0)) => h0,
        _ => panic!("job 0 is blocked"),
    };
    open(&mut openers, 0);
    let _ = poll(&mut driver);
    assert_eq!(block_on_sync(h0), Ok(0));

    // ALL_COMPLETED.
    open(&mut openers, 2);
    open(&mut openers, 3);
    let _ = poll(&mut driver);
    assert_eq!(block_on_sync(future::join_all(handles)), [Ok(2), Ok(3)]);

    // FIRST_EXCEPTION: stop at the first failed job.
    let results: Vec<_> = (0..4)
        .map(|i| {
            pool.submit(async move {
                if i == 2 {
                    Err(i)
                } else {
                    Ok(i)
                }
            })
        })
        .collect();
    let _ = poll(&mut driver);
    let first_failure = block_on_sync(future::try_join_all(
        results.into_iter().map(|h| h.map(|r| r.unwrap())),
    ));
    assert_eq!(first_failure, Err(2));

    // 100 jobs released together all complete; dropped handles still ran.
    let ran = Arc::new(AtomicUsize::new(0));
    let (mut openers, gates) = gates(100);
    let mut all: FuturesUnordered<_> = gates
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let ran = Arc::clone(&ran);
            pool.submit(async move {
                g.await;
                ran.fetch_add(1, SeqCst);
                i
            })
        })
        .collect();
    let dropped = pool.submit({
        let ran = Arc::clone(&ran);
        async move {
            ran.fetch_add(1, SeqCst);
        }
    });
    drop(dropped);
    for i in 0..100 {
        open(&mut openers, i);
    }
    drop(pool);
    let (done, ()) = block_on_sync(future::join(
        async { (&mut all).collect::<Vec<_>>().await },
        driver.as_mut(),
    ));
    assert_eq!(done.len(), 100);
    assert!(done.iter().all(Result::is_ok));
    assert_eq!(ran.load(SeqCst), 101);
}

/// TP-25 (OR-07, ER-12): map results come in input order with head-of-line blocking; an error at
/// position k comes after results 0..k; work already running when it surfaces still completes.
#[test]
fn tp_25_er_12_map_order_and_errors() {
    let tracker = Tracker::new();
    let (pool, mut driver) = new_pool(10);
    let (mut openers, gates) = gates(4);
    let gates = std::sync::Mutex::new(gates.into_iter().map(Some).collect::<Vec<_>>());
    let divisors = [2, 3, 0, 5];
    let t = tracker.clone();
    let mut map = pool.map(
        move |(i, d): (usize, u32)| {
            let gate = gates.lock().unwrap()[i].take().unwrap();
            t.track(i, async move {
                gate.await;
                1u32.checked_div(d)
                    .map(|q| (q, 1 % d))
                    .ok_or("division by zero")
            })
        },
        divisors.into_iter().enumerate(),
    );
    assert!(poll(&mut map.next()).is_pending());
    let _ = poll(&mut driver);
    // Finish in reverse: nothing comes out until job 0 is done.
    for i in [3, 2, 1] {
        open(&mut openers, i);
        let _ = poll(&mut driver);
        assert!(poll(&mut map.next()).is_pending(), "head-of-line blocking");
    }
    open(&mut openers, 0);
    let _ = poll(&mut driver);
    assert_eq!(poll(&mut map.next()), Poll::Ready(Some(Ok(Ok((0, 1))))));
    assert_eq!(poll(&mut map.next()), Poll::Ready(Some(Ok(Ok((0, 1))))));
    assert_eq!(
        poll(&mut map.next()),
        Poll::Ready(Some(Ok(Err("division by zero"))))
    );
    assert_eq!(tracker.completed().len(), 4, "job 3 ran to completion too");
}

/// EX-06 / EX-07: dropping a map stream cancels the jobs it submitted and has not yielded; queued
/// ones never start.
#[test]
fn dropping_a_map_cancels_what_it_has_not_yielded() {
    let tracker = Tracker::new();
    let (pool, mut driver) = new_pool(1);
    let (mut first_opener, first_gate) = gates(1);
    let first = pool.submit(gated_job(
        &tracker,
        0,
        first_gate.into_iter().next().unwrap(),
        0,
    ));
    let t = tracker.clone();
    let mut map = pool.map(move |i: usize| t.track(i, async move { i }), [1, 2]);
    assert!(poll(&mut map.next()).is_pending());
    let _ = poll(&mut driver);
    drop(map);
    open(&mut first_opener, 0);
    drop(pool);
    block_on_sync(driver.as_mut());
    assert_eq!(block_on_sync(first), Ok(0));
    assert_eq!(start_order(&tracker), [0], "second and third never started");
    assert!(tracker.alive().is_empty());
}

/// The driver ends once every handle is dropped and nothing is queued or running.
#[test]
fn the_driver_ends_when_every_handle_is_gone() {
    let (pool, mut driver) = new_pool(2);
    let other = pool.clone();
    assert!(poll(&mut driver).is_pending());
    drop(pool);
    assert!(poll(&mut driver).is_pending(), "a clone is still alive");
    let job = other.submit(async { 5 });
    drop(other);
    assert_eq!(poll(&mut driver), Poll::Ready(()));
    assert_eq!(block_on_sync(job), Ok(5));
}

/// Dropping the driver drops every running and queued job (handles see `Cancelled`), releases
/// waiting shutdowns, and shuts the pool down.
#[test]
fn dropping_the_driver_cancels_everything() {
    let tracker = Tracker::new();
    let (pool, mut driver) = new_pool(2);
    let (_openers, handles) = submit_gated(&pool, &tracker, 5);
    let _ = poll(&mut driver);
    let mut shutdown = pool.shutdown(true, false);
    assert!(poll(&mut shutdown).is_pending());
    drop(driver);
    assert_eq!(poll(&mut shutdown), Poll::Ready(()));
    assert!(tracker.alive().is_empty());
    assert!(handles
        .into_iter()
        .all(|h| block_on_sync(h) == Err(JobError::Cancelled)));
    assert_eq!(
        block_on_sync(pool.submit(async {})),
        Err(JobError::Shutdown)
    );
}

/// A panic in a job propagates out of the driver's poll; the driver stays safe to drop.
#[test]
fn a_job_panic_propagates_out_of_the_driver() {
    let (pool, mut driver) = new_pool(2);
    let other = pool.submit(future::pending::<()>());
    drop(pool.submit(async { panic!("job panicked") }));
    let report = catch_panic(|| poll(&mut driver)).unwrap_err();
    assert_eq!(report.message, "job panicked");
    drop(driver);
    assert_eq!(block_on_sync(other), Err(JobError::Cancelled));
}

#[test]
fn public_types_are_send_and_debug() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Sync>(_: &T) {}
    let (pool, driver) = TaskPool::new(2);
    let handle: JobHandle<u8> = pool.submit(async { 1 });
    let map: Map<_, _, _> = pool.map(|x: u8| async move { x }, [1]);
    let shutdown: Shutdown = pool.shutdown(false, false);
    send(&pool);
    sync(&pool);
    send(&driver);
    send(&handle);
    send(&map);
    send(&shutdown);
    sync(&JobError::Cancelled);
    for text in [
        format!("{pool:?}"),
        format!("{driver:?}"),
        format!("{handle:?}"),
        format!("{map:?}"),
        format!("{shutdown:?}"),
    ] {
        assert!(!text.is_empty());
    }
    assert!(format!("{pool:?}").contains("max_workers: 2"));
    let e: &dyn std::error::Error = &JobError::Cancelled;
    assert_eq!(e.to_string(), "job was cancelled");
}
