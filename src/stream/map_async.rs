use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::engine::Engine;

pin_project! {
    /// Stream for the [`map_async`](crate::Lane::map_async) method.
    ///
    /// ```
    /// use futures::{Stream, StreamExt};
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let stream = (0..5).lane(2).map_async(|x| async move { x + 1 });
    /// assert_eq!(stream.size_hint(), (5, Some(5)));
    /// let mut out: Vec<i32> = stream.collect().await;
    /// out.sort_unstable();
    /// assert_eq!(out, [1, 2, 3, 4, 5]);
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct MapAsync<St, Fut: Future, F> {
        #[pin]
        stream: St,
        f: F,
        engine: Engine<Fut>,
    }
}

impl<St, Fut: Future, F> MapAsync<St, Fut, F> {
    pub(crate) fn new(stream: St, f: F, limit: usize, ordered: bool) -> Self {
        MapAsync {
            stream,
            f,
            engine: Engine::new(limit, ordered),
        }
    }

    /// Items pulled from the input and not yet yielded: in flight, or finished and waiting their turn.
    /// Never more than the limit.
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
    /// use tasklane::prelude::*;
    /// let lane = (0..3).lane(2).map_async(|x| async move { x });
    /// assert_eq!(futures::Stream::size_hint(lane.get_ref()), (3, Some(3)));
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
    /// use tasklane::prelude::*;
    /// let mut lane = (0..3).lane(2).map_async(|x| async move { x });
    /// assert_eq!(futures::Stream::size_hint(lane.get_mut()), (3, Some(3)));
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
    /// use tasklane::prelude::*;
    /// let lane = (0..3).lane(2).map_async(|x| async move { x });
    /// assert_eq!(futures::Stream::size_hint(&lane.into_inner()), (3, Some(3)));
    /// ```
    pub fn into_inner(self) -> St {
        self.stream
    }
}

impl<St, Fut, F> Stream for MapAsync<St, Fut, F>
where
    St: Stream,
    F: FnMut(St::Item) -> Fut,
    Fut: Future,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let this = self.project();
        let mut stream = this.stream;
        let f = this.f;
        this.engine.poll_next(cx, |cx| {
            stream.as_mut().poll_next(cx).map(|item| item.map(&mut *f))
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.engine.size_hint(self.stream.size_hint())
    }
}

impl<St, Fut, F> FusedStream for MapAsync<St, Fut, F>
where
    St: Stream,
    F: FnMut(St::Item) -> Fut,
    Fut: Future,
{
    fn is_terminated(&self) -> bool {
        self.engine.is_terminated()
    }
}

impl<St: fmt::Debug, Fut: Future, F> fmt::Debug for MapAsync<St, Fut, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapAsync")
            .field("stream", &self.stream)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}
