//! [`ForEachAsync`]: run an async handler on each output while the lane keeps running.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::future::FusedFuture;
use futures_core::Stream;
use pin_project_lite::pin_project;

use super::LaneStream;
use crate::mode::TaskMode;

/// Handler runs that one poll of [`ForEachAsync`] may start before it yields to the executor: with
/// handlers and outputs that are always ready the loop would otherwise never return.
const BUDGET: u32 = 64;

impl<St, M> LaneStream<St, M>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
{
    /// Runs `g(output)` for each output of the lane, and keeps the lane's in-flight work running
    /// while `g`'s future awaits: the way out of the buffered-streams trap (see the
    /// [crate docs](crate#no-spawning-and-the-one-trap-that-comes-with-it)).
    ///
    /// The returned future resolves to `()` once every item has been handled. It polls the handler's
    /// future and the lane together: while a handler runs, in-flight futures are driven as their
    /// wakers fire and free slots are refilled from the input, so nothing waits for the handler.
    ///
    /// # Semantics
    ///
    /// - **One handler at a time.** `g` is called for the next output only after the previous
    ///   handler's future has finished, in the lane's output order (completion order, or input
    ///   order with [`ordered`](crate::Configure::ordered)). For concurrent handlers, put the
    ///   handling inside the lane's own future instead.
    /// - **The limit holds.** An output that finishes while a handler runs waits in its slot until
    ///   the handler is done; its slot counts against the limit until then, so at most `limit` items
    ///   are pulled and not yet handed to `g`.
    /// - **Eager refill.** When an output is handed to `g`, its slot has already been refilled from
    ///   the input and the new future polled once.
    ///
    /// # Panics
    ///
    /// A panic in `g`, its future or a lane future propagates out of `poll` and poisons the future:
    /// polling it again panics with a message saying so (dropping it is safe). Polling the future
    /// after it completed panics.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the running handler, every in-flight future, every waiting output
    /// and the input, at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tasklane::prelude::*;
    ///
    /// async fn fetch(id: u32) -> u32 {
    ///     id * 10 // stands in for a request
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let stored = Arc::new(Mutex::new(Vec::new()));
    /// (1..=4u32)
    ///     .lane(2)
    ///     .ordered()
    ///     .map_async(fetch)
    ///     .for_each_async(|page| {
    ///         let stored = Arc::clone(&stored);
    ///         async move { stored.lock().unwrap().push(page) } // stands in for a slow write
    ///     })
    ///     .await;
    /// assert_eq!(*stored.lock().unwrap(), [10, 20, 30, 40]);
    /// # });
    /// ```
    pub fn for_each_async<G, Fut>(self, g: G) -> ForEachAsync<St, M, G, Fut>
    where
        G: FnMut(M::Output) -> Fut,
        Fut: Future<Output = ()>,
    {
        ForEachAsync {
            lane: self,
            g,
            handler: None,
            lane_done: false,
            done: false,
            poisoned: false,
        }
    }

    /// Drives the lane without taking an output out: `Ready(())` once it has ended.
    fn poll_drive(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.poll_lane(cx, false) {
            Poll::Ready(None) => Poll::Ready(()),
            Poll::Ready(Some(_)) => {
                unreachable!("tasklane: a lane driven without emitting emitted")
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

pin_project! {
    /// Future for the [`for_each_async`](LaneStream::for_each_async) method.
    ///
    /// Invariants: while `handler` is `Some`, the lane is only driven (never asked for an output);
    /// `lane_done` is set once the lane has yielded its last output; `done` once this future returned
    /// `Ready`.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let sum = Cell::new(0);
    /// let all = (1..=3).lane(3).map_async(|x| async move { x });
    /// let fut: tasklane::ForEachAsync<_, _, _, _> = all.for_each_async(|x| {
    ///     sum.set(sum.get() + x);
    ///     async {}
    /// });
    /// fut.await;
    /// assert_eq!(sum.get(), 6);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[project = ForEachAsyncProj]
    pub struct ForEachAsync<St, M, G, Fut>
    where
        M: TaskMode,
    {
        #[pin]
        lane: LaneStream<St, M>,
        g: G,
        // The handler of the last output, while it runs (`None`: no handler running).
        #[pin]
        handler: Option<Fut>,
        lane_done: bool,
        done: bool,
        // Set while a poll runs: still set at the next poll, a panic escaped the last one.
        poisoned: bool,
    }
}

impl<St, M, G, Fut> Future for ForEachAsync<St, M, G, Fut>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
    G: FnMut(M::Output) -> Fut,
    Fut: Future<Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        assert!(!*this.done, "`ForEachAsync` polled after completion");
        if *this.poisoned {
            crate::engine::poisoned();
        }
        *this.poisoned = true;
        let polled = Self::step(&mut this, cx);
        *this.poisoned = false;
        polled
    }
}

impl<St, M, G, Fut> ForEachAsync<St, M, G, Fut>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
    G: FnMut(M::Output) -> Fut,
    Fut: Future<Output = ()>,
{
    /// One poll, without the poison guard.
    fn step(this: &mut ForEachAsyncProj<'_, St, M, G, Fut>, cx: &mut Context<'_>) -> Poll<()> {
        let mut budget = BUDGET;
        loop {
            // Phase 1: run the handler; while it waits, keep the lane's in-flight work going.
            if let Some(handler) = this.handler.as_mut().as_pin_mut() {
                if handler.poll(cx).is_pending() {
                    if !*this.lane_done && this.lane.as_mut().poll_drive(cx).is_ready() {
                        *this.lane_done = true;
                    }
                    return Poll::Pending;
                }
                this.handler.set(None);
            }

            // Phase 2: no handler runs: hand the next output to `g`, or finish.
            if *this.lane_done {
                *this.done = true;
                return Poll::Ready(());
            }
            if budget == 0 {
                // More work is ready, but let the executor run other tasks first.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            budget -= 1;
            match this.lane.as_mut().poll_next(cx) {
                Poll::Ready(Some(output)) => this.handler.set(Some((this.g)(output))),
                Poll::Ready(None) => *this.lane_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<St, M, G, Fut> FusedFuture for ForEachAsync<St, M, G, Fut>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
    G: FnMut(M::Output) -> Fut,
    Fut: Future<Output = ()>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<St: fmt::Debug, M: TaskMode, G, Fut> fmt::Debug for ForEachAsync<St, M, G, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForEachAsync")
            .field("lane", &self.lane)
            .field("handler_running", &self.handler.is_some())
            .field("lane_done", &self.lane_done)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
