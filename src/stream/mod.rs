//! [`LaneStream`]: the stream that the [`Lane`](crate::Lane) terminals return.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::engine::Engine;
use crate::mode::{Identity, MapFn, Plain, Task, TaskMode, Unit};
use crate::progress::Silent;

mod for_each_async;
pub use for_each_async::ForEachAsync;

/// The stream that [`map_async`](crate::Lane::map_async) returns, for a lane of kind `P` with
/// progress reporting `G` and item costs `C` ([`Lane::cost`](crate::Lane::cost)).
///
/// ```
/// use futures::stream::{self, Iter, StreamExt};
/// use tasklane::{prelude::*, MapAsync};
///
/// fn doubled(items: Vec<u32>) -> MapAsync<Iter<std::vec::IntoIter<u32>>, fn(u32) -> std::future::Ready<u32>> {
///     stream::iter(items).lane(4).map_async(|x| std::future::ready(x * 2))
/// }
/// # futures::executor::block_on(async {
/// let mut out: Vec<u32> = doubled(vec![1, 2]).collect().await;
/// out.sort_unstable();
/// assert_eq!(out, [2, 4]);
/// # });
/// ```
pub type MapAsync<St, F, P = Plain, G = Silent, C = Unit> =
    LaneStream<St, Task<MapFn<F, <St as Stream>::Item, C>, P, G>>;

/// The stream that [`run`](crate::Lane::run) returns, for a lane of kind `P` with progress
/// reporting `G` and item costs `C` ([`Lane::cost`](crate::Lane::cost)).
///
/// ```
/// use futures::StreamExt;
/// use tasklane::{prelude::*, Iter, Run};
///
/// fn run_all(jobs: Vec<std::future::Ready<u8>>) -> Run<Iter<std::vec::IntoIter<std::future::Ready<u8>>>> {
///     jobs.lane(2).run()
/// }
/// # futures::executor::block_on(async {
/// let out: Vec<u8> = run_all(vec![std::future::ready(7)]).collect().await;
/// assert_eq!(out, [7]);
/// # });
/// ```
pub type Run<St, P = Plain, G = Silent, C = Unit> =
    LaneStream<St, Task<Identity<<St as Stream>::Item, C>, P, G>>;

pin_project! {
    /// Stream for the [`map_async`](crate::Lane::map_async) and [`run`](crate::Lane::run) methods.
    ///
    /// A plain [`Stream`] and [`FusedStream`]: everything in `StreamExt` and `TryStreamExt` works on
    /// it. `M` says what it does per item (see [`mode`](crate::mode)).
    ///
    /// ```
    /// use futures::stream::{FusedStream, Stream, StreamExt};
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut out = (0..5).lane(2).map_async(|x| async move { x + 1 });
    /// assert_eq!(out.size_hint(), (5, Some(5)));
    /// let mut all = Vec::new();
    /// while let Some(x) = out.next().await {
    ///     all.push(x);
    /// }
    /// all.sort_unstable();
    /// assert_eq!(all, [1, 2, 3, 4, 5]);
    /// assert!(out.is_terminated());
    /// assert_eq!(out.next().await, None); // and stays done
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct LaneStream<St, M>
    where
        M: TaskMode,
    {
        #[pin]
        stream: St,
        engine: Engine<M>,
    }
}

impl<St, M: TaskMode> LaneStream<St, M> {
    pub(crate) fn new(stream: St, engine: Engine<M>) -> Self {
        LaneStream { stream, engine }
    }

    /// Items pulled from the input and not yet yielded: in flight, between attempts, or finished and
    /// waiting their turn. Never more than the limit.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut stream = (0..10).lane(4).map_async(|x| async move { x });
    /// assert_eq!(stream.in_progress(), 0);
    /// stream.next().await;
    /// assert!(stream.in_progress() <= 4);
    /// # });
    /// ```
    pub fn in_progress(&self) -> usize {
        self.engine.occupied()
    }

    /// Acquires a reference to the underlying stream.
    ///
    /// ```
    /// use futures::Stream;
    /// use tasklane::prelude::*;
    /// let lane = (0..3).lane(2).map_async(|x| async move { x });
    /// assert_eq!(lane.get_ref().size_hint(), (3, Some(3)));
    /// ```
    pub fn get_ref(&self) -> &St {
        &self.stream
    }

    /// Acquires a mutable reference to the underlying stream.
    ///
    /// Note that care must be taken to avoid tampering with the state of the stream which may
    /// otherwise confuse this combinator.
    ///
    /// ```
    /// use futures::Stream;
    /// use tasklane::prelude::*;
    /// let mut lane = (0..3).lane(2).map_async(|x| async move { x });
    /// assert_eq!(lane.get_mut().size_hint(), (3, Some(3)));
    /// ```
    pub fn get_mut(&mut self) -> &mut St {
        &mut self.stream
    }

    /// Acquires a pinned mutable reference to the underlying stream.
    ///
    /// Note that care must be taken to avoid tampering with the state of the stream which may
    /// otherwise confuse this combinator.
    ///
    /// ```
    /// use futures::Stream;
    /// use tasklane::prelude::*;
    /// let mut lane = (0..3).lane(2).map_async(|x| async move { x });
    /// let lane = std::pin::Pin::new(&mut lane);
    /// assert_eq!(lane.get_pin_mut().size_hint(), (3, Some(3)));
    /// ```
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut St> {
        self.project().stream
    }

    /// Consumes this combinator, returning the underlying stream. In-flight futures are dropped.
    ///
    /// ```
    /// use futures::Stream;
    /// use tasklane::prelude::*;
    /// let lane = (0..3).lane(2).map_async(|x| async move { x });
    /// assert_eq!(lane.into_inner().size_hint(), (3, Some(3)));
    /// ```
    pub fn into_inner(self) -> St {
        self.stream
    }
}

impl<St, M> Stream for LaneStream<St, M>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
{
    type Item = M::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<M::Output>> {
        self.poll_lane(cx, true)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.engine.size_hint(self.stream.size_hint())
    }
}

impl<St, M> LaneStream<St, M>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
{
    /// Advances the lane, with or without taking an output out (see `engine::Core::poll_lane`).
    #[inline]
    pub(crate) fn poll_lane(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        emit: bool,
    ) -> Poll<Option<M::Output>> {
        self.poll_lane_at::<false>(cx, emit)
            .map(|next| next.map(|(_, output)| output))
    }

    /// [`LaneStream::poll_lane`], with each output's input position when `INDEXED` (else 0).
    ///
    /// NOTE: `#[inline]`, not `always` (nor on `poll_lane`): forced into `poll_next`, it cost a
    /// lane with a timeout 9 ns more per item in wall time (+15 against +6, interleaved bench), for
    /// 0 to 2 instructions fewer on a plain lane.
    #[inline]
    fn poll_lane_at<const INDEXED: bool>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        emit: bool,
    ) -> Poll<Option<(usize, M::Output)>> {
        let this = self.project();
        let mut stream = this.stream;
        if this.engine.progress_unstarted() {
            this.engine.begin_progress(stream.size_hint());
        }
        // NOTE: one match on the engine's kind: the plain kinds return the core's poll as it is
        // (inspecting it first, as the rate-limited path must, costs a plain lane about 6 ns per
        // item, measured on gather).
        let pull = |cx: &mut Context<'_>| stream.as_mut().poll_next(cx);
        match this.engine {
            Engine::Unordered(core) => core.poll_lane::<INDEXED, _>(cx, pull, emit),
            Engine::Ordered(core) => core.poll_lane::<INDEXED, _>(cx, pull, emit),
            engine => engine.poll_limited::<INDEXED, St>(stream, cx, emit),
        }
    }

    /// Yields each output with its item's position in the input (0 for the first item): the way
    /// to tell outcomes apart in completion order, or to run unordered and put the outputs back
    /// in order later. The outputs are the same as without it; for a retrying or timed lane, an
    /// error's position is also [`Error::index`](crate::Error::index).
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut out: Vec<(usize, char)> = ['a', 'b', 'c']
    ///     .lane(3)
    ///     .map_async(|c| async move { c.to_ascii_uppercase() })
    ///     .indexed()
    ///     .collect()
    ///     .await;
    /// out.sort_unstable();
    /// assert_eq!(out, [(0, 'A'), (1, 'B'), (2, 'C')]);
    /// # });
    /// ```
    pub fn indexed(self) -> Indexed<St, M> {
        Indexed { lane: self }
    }
}

pin_project! {
    /// Stream for the [`indexed`](LaneStream::indexed) method: a lane's outputs, each with its
    /// item's input position.
    ///
    /// ```
    /// use futures::stream::{FusedStream, StreamExt};
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut out = (10..13).lane(1).map_async(|x| async move { x }).indexed();
    /// assert_eq!(out.next().await, Some((0, 10)));
    /// assert_eq!(out.next().await, Some((1, 11)));
    /// assert_eq!(out.next().await, Some((2, 12)));
    /// assert_eq!(out.next().await, None);
    /// assert!(out.is_terminated());
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Indexed<St, M>
    where
        M: TaskMode,
    {
        #[pin]
        lane: LaneStream<St, M>,
    }
}

impl<St, M: TaskMode> Indexed<St, M> {
    /// Items pulled from the input and not yet yielded, as [`LaneStream::in_progress`].
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// let lane = (0..3).lane(2).map_async(|x| async move { x }).indexed();
    /// assert_eq!(lane.in_progress(), 0);
    /// ```
    pub fn in_progress(&self) -> usize {
        self.lane.in_progress()
    }

    /// The lane stream, without positions from here on (in-flight work is kept).
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// let lane = (0..3).lane(2).map_async(|x| async move { x }).indexed();
    /// assert_eq!(lane.into_inner().in_progress(), 0);
    /// ```
    pub fn into_inner(self) -> LaneStream<St, M> {
        self.lane
    }
}

impl<St, M> Stream for Indexed<St, M>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
{
    type Item = (usize, M::Output);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().lane.poll_lane_at::<true>(cx, true)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.lane.size_hint()
    }
}

impl<St, M> FusedStream for Indexed<St, M>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
{
    fn is_terminated(&self) -> bool {
        self.lane.is_terminated()
    }
}

impl<St: fmt::Debug, M: TaskMode> fmt::Debug for Indexed<St, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Indexed").field("lane", &self.lane).finish()
    }
}

impl<St, M> FusedStream for LaneStream<St, M>
where
    St: Stream,
    M: TaskMode<Item = St::Item>,
{
    fn is_terminated(&self) -> bool {
        self.engine.is_terminated()
    }
}

impl<St: fmt::Debug, M: TaskMode> fmt::Debug for LaneStream<St, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaneStream")
            .field("stream", &self.stream)
            .field("engine", &self.engine)
            .finish()
    }
}
