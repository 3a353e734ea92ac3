//! [`PoolDriver`]: the future that runs a pool's jobs, on the lane engine; and [`Shutdown`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::future::FusedFuture;
use futures_core::Stream;
use pin_project_lite::pin_project;

use super::job::Job;
use super::Inner;
use crate::{Configure, LaneExt, Run};

/// Jobs the driver may see finish in one poll before it yields to the executor (each `poll_next` of
/// the lane is bounded on its own; this bounds the loop around it).
const BUDGET: u32 = 64;

/// The driver's input: the shared queue, as a stream. It ends when the pool is shut down or has no
/// handle left, and the queue is empty.
pub(crate) struct Queue {
    pub(crate) inner: Arc<Inner>,
}

impl Stream for Queue {
    type Item = Job;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Job>> {
        let mut state = self.inner.lock();
        if let Some(job) = state.queue.pop_front() {
            return Poll::Ready(Some(job));
        }
        if state.shut_down || state.handles == 0 {
            return Poll::Ready(None);
        }
        if !state
            .driver_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.driver_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Marks the driver finished when it is dropped (or done): shutdowns that wait are released, and
/// jobs still queued are dropped (their handles resolve to `Err(JobError::Cancelled)`).
struct Finish {
    inner: Arc<Inner>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.finished = true;
        state.shut_down = true;
        let queued = std::mem::take(&mut state.queue);
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        // NOTE: outside the lock: dropping a job may drop a `TaskPool`, which takes the lock.
        drop(queued);
        waiters.into_iter().for_each(|w| w.wake());
    }
}

pin_project! {
    /// The future that runs a [`TaskPool`](super::TaskPool)'s jobs: at most `max_workers` at once, in
    /// submission order, on the slot arena. Made by [`TaskPool::new`](super::TaskPool::new).
    ///
    /// Await it, join it with the code that submits, or spawn it on your runtime (it is `Send`).
    /// It resolves to `()` once the pool is shut down and every job that was not cancelled has
    /// finished, or once every `TaskPool` handle is dropped and nothing is queued or running.
    ///
    /// Dropping it drops every running job and every queued one (their handles resolve to
    /// `Err(JobError::Cancelled)`), and shuts the pool down.
    ///
    /// # Panics
    ///
    /// A panic in a job propagates out of `poll` and poisons the driver: polling it again panics
    /// with a message saying so (dropping it is safe, and cancels the other jobs). Polling after
    /// completion panics.
    ///
    /// ```
    /// use tasklane::pool::TaskPool;
    ///
    /// # futures::executor::block_on(async {
    /// let (pool, driver) = TaskPool::new(4);
    /// let handle = pool.submit(async { "done" });
    /// drop(pool);
    /// driver.await;
    /// assert_eq!(handle.await, Ok("done"));
    /// # });
    /// ```
    #[must_use = "a pool runs no job unless its driver is polled"]
    pub struct PoolDriver {
        #[pin]
        lane: Run<Queue>,
        finish: Finish,
        done: bool,
    }
}

impl PoolDriver {
    pub(crate) fn new(
        inner: Arc<Inner>,
        max_workers: usize,
        limiters: crate::limit::Limiters,
    ) -> Self {
        let mut lane = Queue {
            inner: Arc::clone(&inner),
        }
        .lane(max_workers);
        lane.config_mut(crate::config::INTERNAL).limiters = limiters;
        PoolDriver {
            lane: lane.run(),
            finish: Finish { inner },
            done: false,
        }
    }

    /// Jobs running right now (never more than `max_workers`).
    ///
    /// ```
    /// use tasklane::pool::TaskPool;
    ///
    /// let (pool, driver) = TaskPool::new(2);
    /// let _job = pool.submit(async {});
    /// assert_eq!(driver.running(), 0); // nothing runs until the driver is polled
    /// ```
    pub fn running(&self) -> usize {
        self.lane.in_progress()
    }
}

impl Future for PoolDriver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        assert!(!*this.done, "`PoolDriver` polled after completion");
        for _ in 0..BUDGET {
            match this.lane.as_mut().poll_next(cx) {
                Poll::Ready(Some(())) => {}
                Poll::Ready(None) => {
                    *this.done = true;
                    let mut state = this.finish.inner.lock();
                    state.finished = true;
                    let waiters = std::mem::take(&mut state.waiters);
                    drop(state);
                    waiters.into_iter().for_each(|w| w.wake());
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        // Jobs keep finishing: let the executor run other tasks before the next ones.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl FusedFuture for PoolDriver {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl fmt::Debug for PoolDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolDriver")
            .field("running", &self.running())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Future for the [`shutdown`](super::TaskPool::shutdown) method: resolves at once without `wait`,
/// else once the driver has finished every job that was not cancelled (or was dropped).
///
/// ```
/// use tasklane::pool::TaskPool;
///
/// # futures::executor::block_on(async {
/// let (pool, driver) = TaskPool::new(1);
/// let shutdown: tasklane::pool::Shutdown = pool.shutdown(true, false);
/// futures::join!(driver, shutdown);
/// assert!(pool.is_shut_down());
/// # });
/// ```
#[must_use = "the shutdown has begun; await this to wait for the jobs"]
pub struct Shutdown {
    inner: Arc<Inner>,
    wait: bool,
}

impl Shutdown {
    pub(crate) fn new(inner: Arc<Inner>, wait: bool) -> Self {
        Shutdown { inner, wait }
    }
}

impl Future for Shutdown {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.wait {
            return Poll::Ready(());
        }
        let mut state = self.inner.lock();
        if state.finished {
            return Poll::Ready(());
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}
