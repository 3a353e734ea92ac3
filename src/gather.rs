//! [`gather`], [`try_gather`], [`first`] and [`first_ok`]: a limited `join_all` and its relatives,
//! as futures on the lane engine.
//!
//! All four take `futs`, any [`IntoIterator`] of futures (a `Vec`, an array, a `map` over an
//! iterator), and run at most `limit` of them at once, starting the next as soon as one finishes.
//! The iterator is pulled only when a slot is free, so a lazy iterator creates each future just
//! before it starts. Futures you already hold as a [`Stream`] go through
//! [`stream.lane(limit).run()`](crate::Lane::run) instead.
//!
//! They run in completion order internally (a slow future never holds back the start of the next
//! one); `gather` and `try_gather` put each output at its input position.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::future::FusedFuture;
use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::mode::{Identity, Plain, Task, Until};
use crate::{Indexed, Iter, IterLaneExt, LaneStream};

/// The lane of [`gather`]: `futs` in completion order, each output with its input position.
type GatherLane<I> = Indexed<Iter<<I as IntoIterator>::IntoIter>, Task<Identity<Fut<I>>, Plain>>;

/// The lane of a helper that a completed output may stop: the engine's stop-pulling hook pulls
/// nothing more once an output of the stopping kind has finished.
type StoppingLane<I> = LaneStream<Iter<<I as IntoIterator>::IntoIter>, Task<Until<Fut<I>>, Plain>>;

/// [`StoppingLane`] with each output's input position (for [`try_gather`]).
type IndexedStoppingLane<I> =
    Indexed<Iter<<I as IntoIterator>::IntoIter>, Task<Until<Fut<I>>, Plain>>;

/// The futures of `I`.
type Fut<I> = <I as IntoIterator>::Item;

/// Runs `futs` with at most `limit` at once and collects their outputs in input order: a limited
/// `join_all` (tasklane's `gather`, aiometer's `run_all`).
///
/// Outputs land at their input positions whatever order the futures finish in. An empty input gives
/// an empty `Vec`. For futures of `Result`, this collects every outcome (errors included, each at
/// its position); [`try_gather`] stops at the first error instead.
///
/// # Panics
///
/// Panics if `limit` is 0, at the call. A panic in a future propagates out of `poll` and poisons
/// the future: polling it again panics with a message saying so (dropping it is safe).
///
/// # Examples
///
/// ```
/// use futures::channel::oneshot;
///
/// # futures::executor::block_on(async {
/// let (tx, rx) = oneshot::channel::<u32>();
/// let slow = async { rx.await.unwrap() };
/// let fast = async { tx.send(1).unwrap(); 2 }; // finishes first, releasing `slow`
/// let out = tasklane::gather(vec![Box::pin(slow) as futures::future::BoxFuture<'_, u32>, Box::pin(fast)], 2).await;
/// assert_eq!(out, [1, 2]); // input order
/// # });
/// ```
#[track_caller]
pub fn gather<I>(futs: I, limit: usize) -> Gather<I>
where
    I: IntoIterator,
    I::Item: Future,
{
    Gather {
        lane: Some(futs.lane(limit).run().indexed()),
        outputs: Vec::new(),
    }
}

/// Runs futures of `Result<U, E>` with at most `limit` at once: `Ok` with every output in input
/// order, or the first error **by completion time**, at once.
///
/// When a future fails, `try_gather` resolves to its error in that same poll, without waiting for
/// earlier futures: every other in-flight future is dropped at once, and futures not yet started
/// are dropped without ever being polled (a lazy iterator is not pulled any further). The error is
/// the future's own `E`, unchanged.
///
/// # Panics
///
/// Panics if `limit` is 0, at the call. A panic in a future propagates out of `poll` and poisons
/// the future: polling it again panics with a message saying so (dropping it is safe).
///
/// # Errors
///
/// The first `Err` to complete.
///
/// # Examples
///
/// ```
/// use futures::future::{self, Either};
///
/// # futures::executor::block_on(async {
/// let ok: Result<Vec<u8>, String> =
///     tasklane::try_gather([1u8, 2, 3].map(|x| future::ready(Ok(x))), 2).await;
/// assert_eq!(ok, Ok(vec![1, 2, 3]));
///
/// // The never-ending future is dropped as soon as the failure comes in.
/// let futs: Vec<Either<future::Pending<Result<u8, String>>, _>> = vec![
///     Either::Left(future::pending()),
///     Either::Right(future::ready(Err("bad".to_string()))),
/// ];
/// assert_eq!(tasklane::try_gather(futs, 2).await, Err("bad".to_string()));
/// # });
/// ```
#[track_caller]
pub fn try_gather<I, U, E>(futs: I, limit: usize) -> TryGather<I, U>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<U, E>>,
{
    TryGather {
        lane: Some(futs.lane(limit).run_until(Result::is_err).indexed()),
        outputs: Vec::new(),
    }
}

/// Runs `futs` with at most `limit` at once and resolves to the first output to complete; every
/// other future is dropped at once (aiometer's `run_any`, minus its wait for the losers).
///
/// The first *outcome* wins, whatever it is: for futures of `Result`, an early `Err` is the answer.
/// [`first_ok`] waits for the first success instead. Futures not yet started when the winner
/// finishes are dropped without being polled. An empty input gives `None`, never a hang.
///
/// # Panics
///
/// Panics if `limit` is 0, at the call. A panic in a future propagates out of `poll` and poisons
/// the future: polling it again panics with a message saying so (dropping it is safe).
///
/// # Examples
///
/// ```
/// use futures::future::{self, Either};
///
/// # futures::executor::block_on(async {
/// let racers: Vec<Either<future::Pending<&str>, _>> =
///     vec![Either::Left(future::pending()), Either::Right(future::ready("fast"))];
/// assert_eq!(tasklane::first(racers, 2).await, Some("fast"));
/// assert_eq!(tasklane::first(Vec::<future::Ready<u8>>::new(), 2).await, None);
/// # });
/// ```
#[track_caller]
pub fn first<I>(futs: I, limit: usize) -> First<I>
where
    I: IntoIterator,
    I::Item: Future,
{
    First {
        lane: Some(futs.lane(limit).run_until(|_| true)),
    }
}

/// Runs futures of `Result<U, E>` with at most `limit` at once and resolves to the first success,
/// dropping every other future at once; if every future fails, to all their errors in completion
/// order (like `Promise.any` or futures-util's `select_ok`, with a limit).
///
/// An empty input gives `Err(vec![])`, never a hang. Futures not yet started when the winner
/// finishes are dropped without being polled.
///
/// # Panics
///
/// Panics if `limit` is 0, at the call. A panic in a future propagates out of `poll` and poisons
/// the future: polling it again panics with a message saying so (dropping it is safe).
///
/// # Errors
///
/// Every future's error, in completion order, when none succeeded.
///
/// # Examples
///
/// ```
/// use futures::future;
///
/// # futures::executor::block_on(async {
/// let tries = [Err("down"), Ok(7), Err("slow")].map(future::ready);
/// assert_eq!(tasklane::first_ok(tries, 1).await, Ok(7));
///
/// let all_bad = [Err::<u8, _>("a"), Err("b")].map(future::ready);
/// assert_eq!(tasklane::first_ok(all_bad, 2).await, Err(vec!["a", "b"]));
/// assert_eq!(tasklane::first_ok(Vec::<future::Ready<Result<u8, ()>>>::new(), 2).await, Err(vec![]));
/// # });
/// ```
#[track_caller]
pub fn first_ok<I, U, E>(futs: I, limit: usize) -> FirstOk<I, E>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<U, E>>,
{
    FirstOk {
        lane: Some(futs.lane(limit).run_until(Result::is_ok)),
        errors: Vec::new(),
    }
}

/// Polls a helper's lane for its next output; panics (naming the helper) once the helper is done.
fn poll_lane<L: Stream>(
    lane: Pin<&mut Option<L>>,
    cx: &mut Context<'_>,
    name: &str,
) -> Poll<Option<L::Item>> {
    match lane.as_pin_mut() {
        Some(lane) => lane.poll_next(cx),
        None => panic!("`{name}` polled after completion"),
    }
}

/// Puts `value` at position `index`, growing `outputs` as needed.
///
/// NOTE: `outputs` grows with what the lane has pulled, never from the input's `size_hint`: a lazy
/// or endless input may claim far more than it will be pulled (`try_gather` stops at the first
/// error), and reserving the hint's lower bound aborted on `(0..).map(..)`.
fn place<T>(outputs: &mut Vec<Option<T>>, index: usize, value: T) {
    if index >= outputs.len() {
        outputs.resize_with(index + 1, || None);
    }
    debug_assert!(outputs[index].is_none(), "one output per input");
    outputs[index] = Some(value);
}

/// Every output, in input order (each position was filled exactly once when the lane ended).
fn into_ordered<T>(outputs: Vec<Option<T>>) -> Vec<T> {
    outputs
        .into_iter()
        .map(|output| output.expect("tasklane: every input yields exactly one output"))
        .collect()
}

pin_project! {
    /// Future for the [`gather`] function.
    ///
    /// Invariant: `lane` is `None` once the future has completed.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let fut: tasklane::Gather<[std::future::Ready<u8>; 2]> =
    ///     tasklane::gather([std::future::ready(1), std::future::ready(2)], 1);
    /// assert_eq!(fut.await, [1, 2]);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Gather<I>
    where
        I: IntoIterator,
        I::Item: Future,
    {
        #[pin]
        lane: Option<GatherLane<I>>,
        // The outputs so far, at their input positions.
        outputs: Vec<Option<<I::Item as Future>::Output>>,
    }
}

impl<I> Future for Gather<I>
where
    I: IntoIterator,
    I::Item: Future,
{
    type Output = Vec<<I::Item as Future>::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match poll_lane(this.lane.as_mut(), cx, "Gather") {
                Poll::Ready(Some((index, value))) => place(this.outputs, index, value),
                Poll::Ready(None) => {
                    this.lane.set(None);
                    return Poll::Ready(into_ordered(std::mem::take(this.outputs)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

pin_project! {
    /// Future for the [`try_gather`] function.
    ///
    /// Invariant: `lane` is `None` once the future has completed (so a failure drops every other
    /// future in the poll that returns it).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let fut: tasklane::TryGather<[std::future::Ready<Result<u8, ()>>; 1], u8> =
    ///     tasklane::try_gather([std::future::ready(Ok(1))], 1);
    /// assert_eq!(fut.await, Ok(vec![1]));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct TryGather<I, U>
    where
        I: IntoIterator,
        I::Item: Future,
    {
        #[pin]
        lane: Option<IndexedStoppingLane<I>>,
        // The successes so far, at their input positions.
        outputs: Vec<Option<U>>,
    }
}

impl<I, U, E> Future for TryGather<I, U>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<U, E>>,
{
    type Output = Result<Vec<U>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match poll_lane(this.lane.as_mut(), cx, "TryGather") {
                Poll::Ready(Some((index, Ok(value)))) => place(this.outputs, index, value),
                Poll::Ready(Some((_, Err(e)))) => {
                    // Drops every in-flight future and the rest of the input, now.
                    this.lane.set(None);
                    *this.outputs = Vec::new();
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(None) => {
                    this.lane.set(None);
                    return Poll::Ready(Ok(into_ordered(std::mem::take(this.outputs))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

pin_project! {
    /// Future for the [`first`] function.
    ///
    /// Invariant: `lane` is `None` once the future has completed (so the losers are dropped in the
    /// poll that returns the winner).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let fut: tasklane::First<[std::future::Ready<u8>; 1]> = tasklane::first([std::future::ready(3)], 1);
    /// assert_eq!(fut.await, Some(3));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct First<I>
    where
        I: IntoIterator,
        I::Item: Future,
    {
        #[pin]
        lane: Option<StoppingLane<I>>,
    }
}

impl<I> Future for First<I>
where
    I: IntoIterator,
    I::Item: Future,
{
    type Output = Option<<I::Item as Future>::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let output = futures_core::ready!(poll_lane(this.lane.as_mut(), cx, "First"));
        this.lane.set(None);
        Poll::Ready(output)
    }
}

pin_project! {
    /// Future for the [`first_ok`] function.
    ///
    /// Invariant: `lane` is `None` once the future has completed (so the losers are dropped in the
    /// poll that returns the winner).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let fut: tasklane::FirstOk<[std::future::Ready<Result<u8, ()>>; 1], ()> =
    ///     tasklane::first_ok([std::future::ready(Ok(3))], 1);
    /// assert_eq!(fut.await, Ok(3));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct FirstOk<I, E>
    where
        I: IntoIterator,
        I::Item: Future,
    {
        #[pin]
        lane: Option<StoppingLane<I>>,
        // The failures so far, in completion order.
        errors: Vec<E>,
    }
}

impl<I, U, E> Future for FirstOk<I, E>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<U, E>>,
{
    type Output = Result<U, Vec<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match poll_lane(this.lane.as_mut(), cx, "FirstOk") {
                Poll::Ready(Some(Ok(value))) => {
                    this.lane.set(None);
                    *this.errors = Vec::new();
                    return Poll::Ready(Ok(value));
                }
                Poll::Ready(Some(Err(e))) => this.errors.push(e),
                Poll::Ready(None) => {
                    this.lane.set(None);
                    return Poll::Ready(Err(std::mem::take(this.errors)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

macro_rules! fused_and_debug {
    ($name:ident <$($param:ident),*> where $($bound:tt)*) => {
        impl<$($param),*> FusedFuture for $name<$($param),*>
        where
            Self: Future,
            $($bound)*
        {
            fn is_terminated(&self) -> bool {
                self.lane.is_none()
            }
        }

        impl<$($param),*> fmt::Debug for $name<$($param),*>
        where
            $($bound)*
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("in_progress", &self.lane.as_ref().map_or(0, |l| l.in_progress()))
                    .field("done", &self.lane.is_none())
                    .finish_non_exhaustive()
            }
        }
    };
}

fused_and_debug!(Gather<I> where I: IntoIterator, I::Item: Future);
fused_and_debug!(TryGather<I, U> where I: IntoIterator, I::Item: Future);
fused_and_debug!(First<I> where I: IntoIterator, I::Item: Future);
fused_and_debug!(FirstOk<I, E> where I: IntoIterator, I::Item: Future);
