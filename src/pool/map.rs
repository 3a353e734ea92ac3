//! [`Map`]: a pool's jobs for each item of an iterator, results in input order.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::{JobError, JobHandle, TaskPool};

/// Stream for the [`map`](TaskPool::map) method.
///
/// Invariants: `pending` holds the handles submitted and not yet yielded, oldest first; with a
/// buffer of `n`, `pending.len() <= n`; `items` and `pool` are `None` once the input has ended (so
/// a stream that has submitted everything does not keep the pool's driver alive).
///
/// ```
/// use futures::StreamExt;
/// use tasklane::pool;
///
/// # futures::executor::block_on(async {
/// let squares = pool::scope(2, |pool| async move {
///     let mut squares = pool.map(|n: u64| async move { n * n }, 0..).buffer(2); // an infinite input
///     let mut first = Vec::new();
///     for _ in 0..4 {
///         first.push(squares.next().await.unwrap().unwrap());
///     }
///     first // dropping `squares` cancels the jobs it submitted ahead
/// })
/// .await;
/// assert_eq!(squares, [0, 1, 4, 9]);
/// # });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Map<I, F, Fut: Future> {
    pool: Option<TaskPool>,
    items: Option<I>,
    f: F,
    /// Submitted at most this many ahead of the consumer (`None`: everything on the first poll).
    ahead: Option<usize>,
    pending: VecDeque<JobHandle<Fut::Output>>,
}

impl<I, F, Fut: Future> Map<I, F, Fut> {
    pub(crate) fn new(pool: TaskPool, f: F, items: I) -> Self {
        Map {
            pool: Some(pool),
            items: Some(items),
            f,
            ahead: None,
            pending: VecDeque::new(),
        }
    }

    /// Keeps at most `n` items submitted and not yet yielded (cf-taskpool's `buffersize`): the next
    /// item is submitted only when the consumer has taken a result. Without it, every item is
    /// submitted on the first poll.
    ///
    /// # Panics
    ///
    /// Panics if `n` is 0, at the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::pool::TaskPool;
    ///
    /// # futures::executor::block_on(async {
    /// let (pool, driver) = TaskPool::new(4);
    /// let mut strings = pool.map(|n: u32| async move { n.to_string() }, 0..).buffer(2);
    /// let consume = async {
    ///     assert_eq!(strings.next().await, Some(Ok("0".to_string())));
    ///     assert!(strings.submitted() <= 2); // never more than the buffer ahead
    ///     assert_eq!(strings.next().await, Some(Ok("1".to_string())));
    ///     drop(strings);
    ///     drop(pool);
    /// };
    /// futures::join!(driver, consume);
    /// # });
    /// ```
    #[track_caller]
    pub fn buffer(mut self, n: usize) -> Self {
        assert!(n > 0, "tasklane: `buffer` size must be at least 1, got 0");
        self.ahead = Some(n);
        self
    }

    /// Items submitted and not yet yielded.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::pool::TaskPool;
    ///
    /// # futures::executor::block_on(async {
    /// let (pool, driver) = TaskPool::new(1);
    /// let mut map = pool.map(|x: u8| async move { x }, [1, 2, 3]).buffer(2);
    /// assert_eq!(map.submitted(), 0); // lazy until polled
    /// let consume = async {
    ///     assert_eq!(map.next().await, Some(Ok(1)));
    ///     assert!(map.submitted() <= 2);
    ///     drop(map);
    ///     drop(pool);
    /// };
    /// futures::join!(driver, consume);
    /// # });
    /// ```
    pub fn submitted(&self) -> usize {
        self.pending.len()
    }
}

// Nothing is pinned: the iterator and `f` are only used by value, the handles are `Unpin`.
impl<I, F, Fut: Future> Unpin for Map<I, F, Fut> {}

impl<I, F, Fut> Stream for Map<I, F, Fut>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Item = Result<Fut::Output, JobError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Phase 1: submit up to the buffer (everything, without one).
        while this.ahead.map_or(true, |n| this.pending.len() < n) {
            let (Some(item), Some(pool)) =
                (this.items.as_mut().and_then(Iterator::next), &this.pool)
            else {
                this.items = None;
                this.pool = None;
                break;
            };
            let handle = pool.submit((this.f)(item));
            this.pending.push_back(handle);
        }
        // Phase 2: the oldest result, in input order.
        let Some(oldest) = this.pending.front_mut() else {
            return Poll::Ready(None);
        };
        let result = futures_core::ready!(Pin::new(oldest).poll(cx));
        this.pending.pop_front();
        Poll::Ready(Some(result))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self
            .items
            .as_ref()
            .map_or((0, Some(0)), Iterator::size_hint);
        let n = self.pending.len();
        (lo.saturating_add(n), hi.and_then(|hi| hi.checked_add(n)))
    }
}

impl<I, F, Fut> FusedStream for Map<I, F, Fut>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.items.is_none() && self.pending.is_empty()
    }
}

impl<I, F, Fut: Future> Drop for Map<I, F, Fut> {
    /// Cancels every job submitted and not yet yielded.
    fn drop(&mut self) {
        for handle in &self.pending {
            handle.cancel();
        }
    }
}

impl<I, F, Fut: Future> fmt::Debug for Map<I, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("ahead", &self.ahead)
            .field("submitted", &self.pending.len())
            .field("input_done", &self.items.is_none())
            .finish_non_exhaustive()
    }
}
