use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::engine::Engine;

pin_project! {
    /// Stream for the [`run`](crate::Lane::run) method.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let jobs = vec![Box::pin(async { 1 }) as std::pin::Pin<Box<dyn std::future::Future<Output = i32>>>,
    ///                 Box::pin(async { 2 })];
    /// let mut out: Vec<i32> = jobs.lane(8).run().collect().await;
    /// out.sort_unstable();
    /// assert_eq!(out, [1, 2]);
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Run<St>
    where
        St: Stream,
        St::Item: Future,
    {
        #[pin]
        stream: St,
        engine: Engine<St::Item>,
    }
}

impl<St> Run<St>
where
    St: Stream,
    St::Item: Future,
{
    pub(crate) fn new(stream: St, limit: usize, ordered: bool) -> Self {
        Run {
            stream,
            engine: Engine::new(limit, ordered),
        }
    }

    /// Futures taken from the input and not yet yielded: in flight, or finished and waiting their
    /// turn. Never more than the limit.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// let run = [async { 1 }].lane(1).run();
    /// assert_eq!(run.in_progress(), 0);
    /// ```
    pub fn in_progress(&self) -> usize {
        self.engine.occupied()
    }

    /// Acquires a reference to the underlying stream.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// let lane = (0..3).map(|x| async move { x }).lane(2).run();
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
    /// let mut lane = (0..3).map(|x| async move { x }).lane(2).run();
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
    /// let mut lane = (0..3).map(|x| async move { x }).lane(2).run();
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
    /// let lane = (0..3).map(|x| async move { x }).lane(2).run();
    /// assert_eq!(futures::Stream::size_hint(&lane.into_inner()), (3, Some(3)));
    /// ```
    pub fn into_inner(self) -> St {
        self.stream
    }
}

impl<St> Stream for Run<St>
where
    St: Stream,
    St::Item: Future,
{
    type Item = <St::Item as Future>::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let mut stream = this.stream;
        this.engine
            .poll_next(cx, |cx| stream.as_mut().poll_next(cx))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.engine.size_hint(self.stream.size_hint())
    }
}

impl<St> FusedStream for Run<St>
where
    St: Stream,
    St::Item: Future,
{
    fn is_terminated(&self) -> bool {
        self.engine.is_terminated()
    }
}

impl<St> fmt::Debug for Run<St>
where
    St: Stream + fmt::Debug,
    St::Item: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("stream", &self.stream)
            .field("engine", &self.engine)
            .finish()
    }
}
