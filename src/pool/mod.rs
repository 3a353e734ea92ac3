//! A `concurrent.futures`-style task pool that needs no spawning (cf-taskpool's
//! `TaskPoolExecutor`).
//!
//! [`TaskPool::new`] gives a handle, cheap to clone, that submits jobs, and a [`PoolDriver`]: the
//! one future that runs them, at most `max_workers` at once, in submission order, on the same slot
//! arena as every lane. Await the driver beside the code that submits (`join`), spawn it on your
//! runtime, or let [`scope`] do both. Each submission gives a [`JobHandle`], a plain `Future` of
//! `Result<U, JobError>`.
//!
//! ```
//! use tasklane::pool;
//!
//! # futures::executor::block_on(async {
//! let total = pool::scope(4, |pool| async move {
//!     let handles: Vec<_> = (1..=10u64).map(|n| pool.submit(async move { n * n })).collect();
//!     let mut total = 0;
//!     for handle in handles {
//!         total += handle.await.unwrap();
//!     }
//!     total
//! })
//! .await;
//! assert_eq!(total, 385);
//! # });
//! ```
//!
//! # Differences from cf-taskpool
//!
//! - **Nothing runs unless the driver is polled**: there are no worker tasks. When the program (or
//!   the runtime) stops polling the driver, queued and running jobs stop with it; dropping the
//!   driver drops them (their handles resolve to `Err(JobError::Cancelled)`).
//! - **Cancelling a running job drops its future** (the Rust idiom); cf-taskpool lets the work run
//!   on and discards its result.
//! - **Submitting after shutdown is not an error at the call**: the handle resolves to
//!   `Err(JobError::Shutdown)`.
//! - **There is no async `Drop`**: dropping every `TaskPool` handle lets the driver finish what is
//!   queued and end; [`TaskPool::shutdown`] (or [`scope`]) is the explicit form.
//! - Jobs are futures (`Send + 'static`); "call `fn(*args)`" is `submit(async move { f(args).await })`.

mod driver;
mod job;
mod map;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

pub use driver::{PoolDriver, Shutdown};
pub use job::{JobError, JobHandle};
pub use map::Map;

use job::Job;

/// What every handle and the driver share.
pub(crate) struct Inner {
    state: Mutex<State>,
}

struct State {
    /// Jobs submitted and not yet started, in submission order.
    queue: VecDeque<Job>,
    /// `shutdown` was called (or the driver is gone): new submissions resolve to `Shutdown`.
    shut_down: bool,
    /// Live `TaskPool` handles; the driver's input ends when it reaches 0 and the queue is empty.
    handles: usize,
    /// The driver, while it waits for a job (`None`: not waiting, or already woken).
    driver_waker: Option<Waker>,
    /// The driver has ended or was dropped: no job will run any more.
    finished: bool,
    /// Shutdowns waiting for the driver to finish.
    waiters: Vec<Waker>,
    max_workers: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // NOTE: no user code runs under this lock (jobs are dropped after it is released).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle on a task pool: submits jobs that its [`PoolDriver`] runs, at most `max_workers` at
/// once, in submission order. Cheap to clone; every clone is the same pool.
///
/// See the [module docs](self) for the whole picture.
///
/// # Examples
///
/// ```
/// use tasklane::pool::{JobError, TaskPool};
///
/// # futures::executor::block_on(async {
/// let (pool, driver) = TaskPool::new(2);
/// let product = pool.submit(async { 2 * 8 });
/// let shutdown = pool.shutdown(true, false); // waits for queued and running jobs
/// let late = pool.submit(async { 1 });
/// futures::join!(driver, shutdown);
/// assert_eq!(product.await, Ok(16));
/// assert_eq!(late.await, Err(JobError::Shutdown));
/// # });
/// ```
pub struct TaskPool {
    inner: Arc<Inner>,
}

impl TaskPool {
    /// A pool of `max_workers` slots: the handle and the driver that runs its jobs.
    ///
    /// Nothing is allocated per slot up front; slots are created as jobs start.
    ///
    /// # Panics
    ///
    /// Panics if `max_workers` is 0, at the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use tasklane::pool::TaskPool;
    ///
    /// let (pool, _driver) = TaskPool::new(8);
    /// assert_eq!(pool.max_workers(), 8);
    /// ```
    #[track_caller]
    pub fn new(max_workers: usize) -> (TaskPool, PoolDriver) {
        Self::make(max_workers, crate::limit::Limiters::default())
    }

    /// A pool of `max_workers` slots whose jobs also take a permit of `limiter` (a
    /// [`Limiter`](crate::Limiter) shared with lanes and other pools, or any other
    /// [`Admit`](crate::limit::Admit) handle): a job starts when a slot is free **and** the limiter
    /// grants it, and gives its permit back when it ends or is cancelled. A limiter that fails lets
    /// the job start (a job has no way to fail for it).
    ///
    /// # Panics
    ///
    /// Panics if `max_workers` is 0, at the call.
    ///
    /// # Examples
    ///
    /// One budget of 2 for a lane and a pool together:
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::{pool::TaskPool, prelude::*, Limiter};
    ///
    /// let db = Limiter::new().concurrency(2);
    /// let (pool, driver) = TaskPool::with_limiter(8, &db);
    /// # futures::executor::block_on(async {
    /// let job = pool.submit(async { 1 });
    /// let lane = (0..3).lane(8).limiter(&db).map_async(|x| async move { x }).count();
    /// drop(pool); // no more jobs: the driver ends once they are done
    /// let ((), n, one) = futures::join!(driver, lane, job);
    /// assert_eq!((n, one), (3, Ok(1)));
    /// # });
    /// assert_eq!(db.in_flight(), 0);
    /// ```
    #[track_caller]
    pub fn with_limiter<L: crate::limit::Admit + Clone + 'static>(
        max_workers: usize,
        limiter: &L,
    ) -> (TaskPool, PoolDriver) {
        let mut limiters = crate::limit::Limiters::default();
        limiters.push(limiter);
        Self::make(max_workers, limiters)
    }

    #[track_caller]
    fn make(max_workers: usize, limiters: crate::limit::Limiters) -> (TaskPool, PoolDriver) {
        assert!(
            max_workers > 0,
            "tasklane: `max_workers` must be at least 1, got 0"
        );
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                shut_down: false,
                handles: 1,
                driver_waker: None,
                finished: false,
                waiters: Vec::new(),
                max_workers,
            }),
        });
        let driver = PoolDriver::new(Arc::clone(&inner), max_workers, limiters);
        (TaskPool { inner }, driver)
    }

    /// The most jobs that run at once.
    ///
    /// ```
    /// let (pool, _driver) = tasklane::pool::TaskPool::new(3);
    /// assert_eq!(pool.max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.inner.lock().max_workers
    }

    /// Queues `fut` as a job and returns its handle.
    ///
    /// Jobs start in submission order as slots free up. A job runs even if its handle is dropped or
    /// never awaited. After [`shutdown`](TaskPool::shutdown), nothing is queued and the handle
    /// resolves at once to `Err(JobError::Shutdown)`: not a panic, since shutting down concurrently
    /// with a submission is a run-time condition.
    ///
    /// # Examples
    ///
    /// ```
    /// use tasklane::pool::TaskPool;
    ///
    /// # futures::executor::block_on(async {
    /// let (pool, driver) = TaskPool::new(1);
    /// let divide = pool.submit(async { 7u32.checked_div(0).ok_or("division by zero") });
    /// drop(pool);
    /// driver.await;
    /// assert_eq!(divide.await, Ok(Err("division by zero"))); // the job's own error, unchanged
    /// # });
    /// ```
    pub fn submit<F>(&self, fut: F) -> JobHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut state = self.inner.lock();
        if state.shut_down {
            return JobHandle::new_shutdown();
        }
        let (job, handle) = job::job(fut);
        state.queue.push_back(job);
        let waker = state.driver_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        handle
    }

    /// Runs `f(item)` as a job for each item: a [`Stream`](futures_core::Stream) of the results in
    /// input order.
    ///
    /// Nothing is submitted until the stream is first polled (streams are lazy); then every item at
    /// once, or with [`buffer(n)`](Map::buffer) at most `n` ahead of the consumer. An infinite input
    /// needs a buffer. Dropping the stream cancels every job it submitted and has not yielded.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::pool;
    ///
    /// # futures::executor::block_on(async {
    /// let out: Vec<_> = pool::scope(3, |pool| async move {
    ///     pool.map(|x: i32| async move { x.abs() }, -4..4).collect().await
    /// })
    /// .await;
    /// assert_eq!(out, [4, 3, 2, 1, 0, 1, 2, 3].map(Ok));
    /// # });
    /// ```
    pub fn map<F, I, Fut>(&self, f: F, items: I) -> Map<I::IntoIter, F, Fut>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        Map::new(self.clone(), f, items.into_iter())
    }

    /// Shuts the pool down, now: later submissions resolve to `Err(JobError::Shutdown)`, and the
    /// driver ends once the jobs that remain have finished. Idempotent; concurrent calls are fine.
    ///
    /// - `cancel_queued`: jobs that no slot has started yet are dropped unpolled (their handles
    ///   resolve to `Err(JobError::Cancelled)`); without it they still run.
    /// - `wait`: the returned future resolves once the driver has finished (every running job, and
    ///   the queued ones unless cancelled); without it, at once. The driver must be driven meanwhile
    ///   (joined, spawned, or inside [`scope`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use tasklane::pool::{JobError, TaskPool};
    ///
    /// # futures::executor::block_on(async {
    /// let (pool, driver) = TaskPool::new(1);
    /// let queued = pool.submit(async { 1 });
    /// pool.shutdown(false, true).await; // cancels the queued job, returns at once
    /// driver.await;
    /// assert_eq!(queued.await, Err(JobError::Cancelled));
    /// # });
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_queued: bool) -> Shutdown {
        let mut state = self.inner.lock();
        state.shut_down = true;
        let cancelled = if cancel_queued {
            std::mem::take(&mut state.queue)
        } else {
            VecDeque::new()
        };
        let waker = state.driver_waker.take();
        drop(state);
        drop(cancelled); // outside the lock: a job may hold a `TaskPool`
        if let Some(waker) = waker {
            waker.wake();
        }
        Shutdown::new(Arc::clone(&self.inner), wait)
    }

    /// Whether [`shutdown`](TaskPool::shutdown) was called (or the driver is gone).
    ///
    /// ```
    /// let (pool, _driver) = tasklane::pool::TaskPool::new(1);
    /// assert!(!pool.is_shut_down());
    /// let _ = pool.shutdown(false, false);
    /// assert!(pool.is_shut_down());
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.inner.lock().shut_down
    }

    /// Jobs submitted and not started yet.
    ///
    /// ```
    /// let (pool, _driver) = tasklane::pool::TaskPool::new(1);
    /// let _a = pool.submit(async {});
    /// assert_eq!(pool.queued(), 1);
    /// ```
    pub fn queued(&self) -> usize {
        self.inner.lock().queue.len()
    }
}

impl Clone for TaskPool {
    /// Another handle on the same pool.
    fn clone(&self) -> Self {
        self.inner.lock().handles += 1;
        TaskPool {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.handles -= 1;
        let waker = if state.handles == 0 {
            state.driver_waker.take()
        } else {
            None
        };
        drop(state);
        if let Some(waker) = waker {
            waker.wake(); // the driver may end now
        }
    }
}

impl fmt::Debug for TaskPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("TaskPool")
            .field("max_workers", &state.max_workers)
            .field("queued", &state.queue.len())
            .field("shut_down", &state.shut_down)
            .finish_non_exhaustive()
    }
}

/// Runs `body` with a fresh pool of `max_workers` slots, driving the pool while the body runs; then
/// shuts the pool down and waits for its jobs (like `async with TaskPoolExecutor()`). Resolves to
/// the body's output.
///
/// Jobs still queued or running when the body ends run to completion before `scope` returns
/// (`shutdown(wait = true, cancel_queued = false)`). The returned future is `Send` when `body`'s
/// future is.
///
/// # Panics
///
/// Panics if `max_workers` is 0, at the call. A panic in a job or the body propagates.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use tasklane::pool;
///
/// # futures::executor::block_on(async {
/// let ran = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&ran);
/// pool::scope(2, |pool| async move {
///     for _ in 0..5 {
///         let counter = Arc::clone(&counter);
///         drop(pool.submit(async move { counter.fetch_add(1, Ordering::SeqCst) }));
///     }
/// })
/// .await;
/// assert_eq!(ran.load(Ordering::SeqCst), 5); // every job ran, though no handle was kept
/// # });
/// ```
#[track_caller]
pub fn scope<F, Fut>(max_workers: usize, body: F) -> impl Future<Output = Fut::Output>
where
    F: FnOnce(TaskPool) -> Fut,
    Fut: Future,
{
    let (pool, driver) = TaskPool::new(max_workers);
    let body = body(pool.clone());
    async move {
        let mut driver = std::pin::pin!(driver);
        let mut body = std::pin::pin!(body);
        let mut driver_done = false;
        let output = std::future::poll_fn(|cx| {
            let output = body.as_mut().poll(cx);
            if output.is_pending() && !driver_done && driver.as_mut().poll(cx).is_ready() {
                driver_done = true;
            }
            output
        })
        .await;
        let shutdown = pool.shutdown(true, false);
        drop(pool);
        if !driver_done {
            driver.await;
        }
        shutdown.await;
        output
    }
}
