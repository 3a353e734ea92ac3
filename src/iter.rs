//! [`Iter`]: a lazy stream over an iterator.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

/// Stream for the [`into_stream`](crate::IterLaneExt::into_stream) method.
///
/// It pulls the iterator only when polled, one item per poll, and is always ready. Its `size_hint` is
/// the iterator's.
///
/// # Examples
///
/// ```
/// use futures::{Stream, StreamExt};
/// use tasklane::prelude::*;
///
/// # futures::executor::block_on(async {
/// let stream = (1..=3).into_stream();
/// assert_eq!(stream.size_hint(), (3, Some(3)));
/// assert_eq!(stream.collect::<Vec<_>>().await, [1, 2, 3]);
/// # });
/// ```
#[derive(Debug, Clone)]
#[must_use = "streams do nothing unless polled"]
pub struct Iter<I> {
    iter: I,
}

impl<I> Iter<I> {
    pub(crate) fn new(iter: I) -> Self {
        Iter { iter }
    }

    /// Acquires a reference to the underlying iterator.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// let lane = (0..3).into_stream();
    /// assert_eq!(lane.get_ref().len(), 3);
    /// ```
    pub fn get_ref(&self) -> &I {
        &self.iter
    }

    /// Acquires a mutable reference to the underlying iterator.
    ///
    /// Note that care must be taken to avoid tampering with the state of the iterator which may
    /// otherwise confuse this combinator.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// let mut lane = (0..3).into_stream();
    /// assert_eq!(lane.get_mut().next(), Some(0));
    /// ```
    pub fn get_mut(&mut self) -> &mut I {
        &mut self.iter
    }

    /// Consumes this combinator, returning the underlying iterator.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// let lane = (0..3).into_stream();
    /// assert_eq!(lane.into_inner().count(), 3);
    /// ```
    pub fn into_inner(self) -> I {
        self.iter
    }
}

// The iterator is never pinned.
impl<I> Unpin for Iter<I> {}

impl<I: Iterator> Stream for Iter<I> {
    type Item = I::Item;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.iter.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}
