//! One job: the boxed future the driver runs, the [`JobHandle`] that receives its output, and the
//! state they share.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::future::FusedFuture;
use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;

/// A queued job, type-erased: a pool takes futures of different types, so each job is one boxed
/// allocation (DESIGN.md).
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a [`JobHandle`] has no output.
///
/// ```
/// use tasklane::pool::JobError;
/// assert_eq!(JobError::Cancelled.to_string(), "job was cancelled");
/// assert_eq!(JobError::Shutdown.to_string(), "pool is shut down");
/// let e: Box<dyn std::error::Error + Send + Sync> = Box::new(JobError::Shutdown);
/// assert!(e.source().is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobError {
    /// The job was dropped before it finished: [`JobHandle::cancel`], a
    /// [`shutdown`](crate::pool::TaskPool::shutdown) that cancelled it while queued, or the
    /// [`PoolDriver`](crate::pool::PoolDriver) was dropped.
    Cancelled,
    /// The job was submitted after the pool was shut down; it never ran.
    Shutdown,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobError::Cancelled => "job was cancelled",
            JobError::Shutdown => "pool is shut down",
        })
    }
}

impl std::error::Error for JobError {}

/// What a job and its handle share.
struct Shared<U> {
    /// Set by [`JobHandle::cancel`] (under the lock) before the job has finished; never unset.
    cancelled: AtomicBool,
    /// The waker of the slot running the job, registered at every poll of the job and woken by
    /// `cancel` after it set `cancelled`: the `AtomicWaker` protocol (register, then check the flag;
    /// set the flag, then wake) loses no cancel, whatever the slot's waker does.
    job_waker: AtomicWaker,
    state: Mutex<State<U>>,
}

struct State<U> {
    /// The job's output, from the moment it finished until the handle takes it.
    output: Option<U>,
    /// The job's future is gone (finished or dropped): no output will come beyond `output`.
    ended: bool,
    /// The task awaiting the handle (`None`: nobody has polled it yet, or it was woken).
    handle_waker: Option<Waker>,
}

impl<U> Shared<U> {
    fn lock(&self) -> MutexGuard<'_, State<U>> {
        // NOTE: no user code runs under this lock, so it is never poisoned by a user panic; should it
        // be, the state is still consistent (every write is a single assignment).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes a job and its handle.
pub(crate) fn job<F>(fut: F) -> (Job, JobHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let shared = Arc::new(Shared {
        cancelled: AtomicBool::new(false),
        job_waker: AtomicWaker::new(),
        state: Mutex::new(State {
            output: None,
            ended: false,
            handle_waker: None,
        }),
    });
    let job = Box::pin(JobFuture {
        fut,
        end: End {
            shared: Arc::clone(&shared),
            delivered: false,
        },
    });
    (job, JobHandle::new(Some(shared)))
}

pin_project! {
    /// The future the driver runs for a job: the user's future, then its output into the handle.
    struct JobFuture<F: Future> {
        #[pin]
        fut: F,
        end: End<F::Output>,
    }
}

/// Tells the handle that the job ended, when it delivers its output or is dropped unfinished.
struct End<U> {
    shared: Arc<Shared<U>>,
    /// The output went to the handle (so dropping has nothing left to tell).
    delivered: bool,
}

impl<F> Future for JobFuture<F>
where
    F: Future,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let end = this.end;
        // Register first, then check: a cancel that sets the flag after this check wakes the
        // waker registered here.
        end.shared.job_waker.register(cx.waker());
        if end.shared.cancelled.load(Ordering::Acquire) {
            return Poll::Ready(()); // the driver drops the user's future now
        }
        let output = futures_core::ready!(this.fut.poll(cx));
        let mut state = end.shared.lock();
        if !end.shared.cancelled.load(Ordering::Acquire) {
            state.output = Some(output);
        }
        state.ended = true;
        let waker = state.handle_waker.take();
        drop(state);
        end.delivered = true;
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(())
    }
}

impl<U> Drop for End<U> {
    fn drop(&mut self) {
        if self.delivered {
            return;
        }
        let mut state = self.shared.lock();
        state.ended = true;
        let waker = state.handle_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The output of a submitted job: a [`Future`] of `Result<U, JobError>`.
///
/// Made by [`TaskPool::submit`](crate::pool::TaskPool::submit). It works with everything that
/// takes futures: `select`, `join_all`, `FuturesUnordered`, timeouts.
///
/// - The job runs whether or not the handle is awaited: **dropping the handle does not cancel the
///   job** (use [`cancel`](JobHandle::cancel)).
/// - It resolves to `Ok(output)` when the job finished, `Err(JobError::Cancelled)` when it was
///   dropped unfinished, and `Err(JobError::Shutdown)` at once when it was submitted after
///   shutdown.
/// - A pool's handles are completed by its [`PoolDriver`](crate::pool::PoolDriver): awaiting one
///   while nothing drives the pool waits forever.
///
/// # Panics
///
/// Polling the handle after it completed panics.
///
/// # Examples
///
/// ```
/// use futures::future;
/// use tasklane::pool::TaskPool;
///
/// # futures::executor::block_on(async {
/// let (pool, driver) = TaskPool::new(2);
/// let a = pool.submit(async { 2 * 8 });
/// let b = pool.submit(async { 3 });
/// drop(pool); // the driver ends once the jobs are done
/// let ((), a, b) = future::join3(driver, a, b).await;
/// assert_eq!((a, b), (Ok(16), Ok(3)));
/// # });
/// ```
#[must_use = "a job runs without its handle, but its output is lost if the handle is dropped"]
pub struct JobHandle<U> {
    /// `None`: submitted after shutdown, resolves to `Err(Shutdown)`.
    shared: Option<Arc<Shared<U>>>,
    /// The handle has returned `Ready`.
    done: bool,
}

impl<U> JobHandle<U> {
    pub(crate) fn new_shutdown() -> Self {
        JobHandle::new(None)
    }

    fn new(shared: Option<Arc<Shared<U>>>) -> Self {
        JobHandle {
            shared,
            done: false,
        }
    }

    /// Cancels the job: it never starts if it is still queued, and its future is dropped (at the
    /// driver's next poll) if it is running. The handle then resolves to `Err(JobError::Cancelled)`,
    /// at once.
    ///
    /// Returns `true` if the cancel took effect, `false` if the job had already finished (the handle
    /// still gives its output) or never ran (submitted after shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// use tasklane::pool::{JobError, TaskPool};
    ///
    /// # futures::executor::block_on(async {
    /// let (pool, driver) = TaskPool::new(1);
    /// let handle = pool.submit(futures::future::pending::<()>());
    /// assert!(handle.cancel());
    /// assert_eq!(handle.await, Err(JobError::Cancelled));
    /// drop(pool);
    /// driver.await; // the cancelled job is dropped without being polled
    /// # });
    /// ```
    pub fn cancel(&self) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let state = shared.lock();
        if state.output.is_some() || state.ended {
            return false;
        }
        shared.cancelled.store(true, Ordering::Release);
        drop(state);
        shared.job_waker.wake();
        true
    }

    /// Whether awaiting the handle would resolve at once: the job finished, was cancelled or
    /// dropped, or was submitted after shutdown.
    ///
    /// ```
    /// use tasklane::pool::TaskPool;
    ///
    /// # futures::executor::block_on(async {
    /// let (pool, driver) = TaskPool::new(1);
    /// let handle = pool.submit(async { 16 });
    /// assert!(!handle.is_finished()); // nothing has driven the pool yet
    /// drop(pool);
    /// driver.await;
    /// assert!(handle.is_finished());
    /// assert_eq!(handle.await, Ok(16));
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.shared {
            None => true,
            Some(shared) => {
                shared.cancelled.load(Ordering::Acquire) || {
                    let state = shared.lock();
                    state.output.is_some() || state.ended
                }
            }
        }
    }
}

impl<U> Future for JobHandle<U> {
    type Output = Result<U, JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.done, "`JobHandle` polled after completion");
        let result = match &self.shared {
            None => Err(JobError::Shutdown),
            Some(shared) => {
                let mut state = shared.lock();
                if let Some(output) = state.output.take() {
                    Ok(output)
                } else if state.ended || shared.cancelled.load(Ordering::Acquire) {
                    Err(JobError::Cancelled)
                } else {
                    if !state
                        .handle_waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        state.handle_waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        };
        self.done = true;
        Poll::Ready(result)
    }
}

impl<U> FusedFuture for JobHandle<U> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

// The output is never pinned.
impl<U> Unpin for JobHandle<U> {}

impl<U> fmt::Debug for JobHandle<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("finished", &self.is_finished())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
