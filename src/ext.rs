//! The extension traits that start a lane: [`LaneExt`] on every `Stream`, [`IterLaneExt`] on every
//! `IntoIterator`.

use futures_core::Stream;

use crate::{Iter, Lane, Policy};

/// Starts a [`Lane`] on any [`Stream`].
///
/// In scope through `use tasklane::prelude::*;`.
pub trait LaneExt: Stream + Sized {
    /// Runs the work for this stream's items with at most `limit` of them in progress at once.
    ///
    /// Returns a [`Lane`] builder: choose [`ordered`](crate::Configure::ordered) output if you need
    /// it, then a terminal, [`map_async`](Lane::map_async) or [`run`](Lane::run), which gives the
    /// output stream. The input is read only when a slot is free, so at most `limit` items are
    /// pulled and not yet yielded. `usize::MAX` means unbounded, and allocates nothing up front.
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0, at the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{stream, StreamExt};
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let doubled: Vec<u32> = stream::iter(1..=4)
    ///     .lane(2)
    ///     .ordered()
    ///     .map_async(|x| async move { x * 2 })
    ///     .collect()
    ///     .await;
    /// assert_eq!(doubled, [2, 4, 6, 8]);
    /// # });
    /// ```
    #[track_caller]
    fn lane(self, limit: usize) -> Lane<Self> {
        Lane::new(self, limit)
    }

    /// Runs the work for this stream's items as `policy` says: a [`Lane`] configured from a reusable
    /// [`Policy`], which the call leaves as it is (the lane gets its own limiter and counters).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{stream, StreamExt};
    /// use tasklane::{prelude::*, Policy};
    ///
    /// # futures::executor::block_on(async {
    /// let policy = Policy::new(2).ordered();
    /// let a: Vec<u32> = stream::iter(1..=3).lane_with(&policy).map_async(|x| async move { x }).collect().await;
    /// let b: Vec<u32> = stream::iter(4..=6).lane_with(&policy).map_async(|x| async move { x }).collect().await;
    /// assert_eq!((a, b), (vec![1, 2, 3], vec![4, 5, 6]));
    /// # });
    /// ```
    fn lane_with<P: Clone>(self, policy: &Policy<P>) -> Lane<Self, P> {
        Lane::from_config(self, policy.config.clone())
    }
}

impl<St: Stream> LaneExt for St {}

/// Starts a [`Lane`] on any [`IntoIterator`], and turns one into a lazy [`Stream`].
///
/// In scope through `use tasklane::prelude::*;`.
pub trait IterLaneExt: IntoIterator + Sized {
    /// A lazy [`Stream`] over the items: the iterator is pulled only when the stream is polled.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let words: Vec<&str> = vec!["a", "b"].into_stream().collect().await;
    /// assert_eq!(words, ["a", "b"]);
    /// # });
    /// ```
    fn into_stream(self) -> Iter<Self::IntoIter> {
        Iter::new(self.into_iter())
    }

    /// The same as `self.into_stream().lane(limit)`: at most `limit` items in progress at once.
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0, at the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut lengths: Vec<usize> = ["tokio", "smol", "async-std"]
    ///     .lane(2)
    ///     .map_async(|name| async move { name.len() })
    ///     .collect()
    ///     .await;
    /// lengths.sort_unstable();
    /// assert_eq!(lengths, [4, 5, 9]);
    /// # });
    /// ```
    #[track_caller]
    fn lane(self, limit: usize) -> Lane<Iter<Self::IntoIter>> {
        Lane::new(self.into_stream(), limit)
    }

    /// The same as `self.into_stream().lane_with(policy)`: a [`Lane`] configured from a reusable
    /// [`Policy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Policy};
    ///
    /// # futures::executor::block_on(async {
    /// let policy = Policy::new(4).ordered();
    /// let out: Vec<usize> = ["a", "bb"].lane_with(&policy).map_async(|s| async move { s.len() }).collect().await;
    /// assert_eq!(out, [1, 2]);
    /// # });
    /// ```
    fn lane_with<P: Clone>(self, policy: &Policy<P>) -> Lane<Iter<Self::IntoIter>, P> {
        Lane::from_config(self.into_stream(), policy.config.clone())
    }
}

impl<I: IntoIterator> IterLaneExt for I {}
