//! The [`Lane`] builder: plain configuration data. The behaviour lives in the terminals' streams.

use std::fmt;
use std::future::Future;

use futures_core::Stream;

use crate::stream::{MapAsync, Run};

/// A builder for a bounded-concurrency run over a stream's items.
///
/// Made by [`lane`](crate::LaneExt::lane) on a stream or [`lane`](crate::IterLaneExt::lane) on an
/// iterator. Each setter takes and returns the builder by value; a terminal,
/// [`map_async`](Lane::map_async) or [`run`](Lane::run), turns it into the output stream.
///
/// # Default
///
/// - outputs in completion order (see [`ordered`](Lane::ordered));
/// - the limit given to `lane(limit)`.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use tasklane::prelude::*;
///
/// # futures::executor::block_on(async {
/// let lane = (0..10).lane(3);
/// assert_eq!(lane.limit(), 3);
/// assert!(!lane.is_ordered());
/// let squares: Vec<u64> = lane.ordered().map_async(|x| async move { x * x }).collect().await;
/// assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
/// # });
/// ```
#[must_use = "a lane does nothing until a terminal (`map_async`, `run`) is called and polled"]
pub struct Lane<St> {
    stream: St,
    limit: usize,
    ordered: bool,
}

impl<St> Lane<St> {
    #[track_caller]
    pub(crate) fn new(stream: St, limit: usize) -> Self {
        assert!(limit > 0, "tasklane: `limit` must be at least 1, got 0");
        Lane {
            stream,
            limit,
            ordered: false,
        }
    }

    /// Yields outputs in input order instead of completion order.
    ///
    /// A finished output waits until every earlier item has been yielded. Memory stays bounded by the
    /// limit: at most `limit` items are outstanding between the oldest unfinished one and the newest
    /// started one, so a slow head of the line holds back new starts (as futures-util's `buffered`).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::channel::oneshot;
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let (tx0, rx0) = oneshot::channel::<u8>();
    /// let (tx1, rx1) = oneshot::channel::<u8>();
    /// let mut out = vec![rx0, rx1].lane(2).ordered().map_async(|rx| async { rx.await.unwrap() });
    /// tx1.send(1).unwrap(); // the second finishes first...
    /// tx0.send(0).unwrap();
    /// assert_eq!(out.next().await, Some(0)); // ...but the first comes out first
    /// assert_eq!(out.next().await, Some(1));
    /// # });
    /// ```
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// The most items in progress at once.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// assert_eq!([1, 2, 3].lane(8).limit(), 8);
    /// ```
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether outputs come in input order.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// assert!([1, 2, 3].lane(8).ordered().is_ordered());
    /// ```
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }
}

impl<St: Stream> Lane<St> {
    /// Terminal: calls `f` on each item and runs the futures it returns, at most `limit` at once.
    ///
    /// Gives a [`Stream`] of the futures' outputs, in completion order (or input order with
    /// [`ordered`](Lane::ordered)). `f` is called only when a slot is free, so it never runs for an
    /// item that would have to wait. Every item yields exactly one output, unless the stream is
    /// dropped first; dropping it drops every in-flight future and the input at once.
    ///
    /// # Panics
    ///
    /// A panic in `f` or in a future propagates out of `poll_next`; the stream is still safe to drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// async fn fetch(id: u32) -> Result<String, String> {
    ///     if id == 3 { Err(format!("no page {id}")) } else { Ok(format!("page {id}")) }
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let pages: Vec<Result<String, String>> =
    ///     (1..=4).lane(2).ordered().map_async(fetch).collect().await;
    /// assert_eq!(pages[0], Ok("page 1".to_string()));
    /// assert_eq!(pages[2], Err("no page 3".to_string()));
    /// # });
    /// ```
    pub fn map_async<F, Fut>(self, f: F) -> MapAsync<St, Fut, F>
    where
        F: FnMut(St::Item) -> Fut,
        Fut: Future,
    {
        MapAsync::new(self.stream, f, self.limit, self.ordered)
    }

    /// Terminal: runs the futures that the input yields, at most `limit` at once.
    ///
    /// Gives a [`Stream`] of their outputs, in completion order (or input order with
    /// [`ordered`](Lane::ordered)).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let jobs = (1..=3).map(|x| async move { x * 10 });
    /// let out: Vec<i32> = jobs.lane(2).ordered().run().collect().await;
    /// assert_eq!(out, [10, 20, 30]);
    /// # });
    /// ```
    pub fn run(self) -> Run<St>
    where
        St::Item: Future,
    {
        Run::new(self.stream, self.limit, self.ordered)
    }
}

impl<St: fmt::Debug> fmt::Debug for Lane<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("stream", &self.stream)
            .field("limit", &self.limit)
            .field("ordered", &self.ordered)
            .finish()
    }
}
