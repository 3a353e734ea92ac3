//! The kinds of lane, as types: what a [`Lane`](crate::Lane) builder has been told so far, and what
//! its output stream does per item.
//!
//! - [`Plain`]: one future per item, its output yielded unchanged. The default.
//! - [`Timed`]: after [`timeout`](crate::Lane::timeout): futures of `Result<U, E>`, items
//!   `Result<U, Error<E>>`, one attempt each.
//! - [`Retrying`]: after [`retry`](crate::Lane::retry): the same items, up to `n + 1` attempts each.
//!
//! You rarely name these: they appear in the type of a `Lane` and of its [`LaneStream`](crate::LaneStream).
//!
//! ```
//! use tasklane::mode::Plain;
//! use tasklane::prelude::*;
//! let lane: tasklane::Lane<_, Plain> = [1, 2, 3].lane(2);
//! assert_eq!(lane.limit(), 2);
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use crate::engine::{self, Outcome, Settle};
use crate::progress::{Progress, Reporter, Silent};
use crate::{Backoff, Error};

/// A lane with neither retry nor timeout: each item's future runs once and its output is yielded
/// unchanged.
///
/// ```
/// use futures::StreamExt;
/// use tasklane::prelude::*;
/// # futures::executor::block_on(async {
/// let out: Vec<&str> = ["a"].lane(1).map_async(|s| async move { s }).collect().await;
/// assert_eq!(out, ["a"]);
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

/// A lane with a per-attempt [`timeout`](crate::Lane::timeout) and no retry: futures output
/// `Result<U, E>`, the lane yields `Result<U, Error<E>>`.
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use tasklane::prelude::*;
/// # futures::executor::block_on(async {
/// let out: Vec<Result<u8, tasklane::Error<()>>> = [1u8]
///     .lane(1)
///     .timeout(Duration::from_secs(5))
///     .map_async(|x| async move { Ok(x) })
///     .collect()
///     .await;
/// assert_eq!(out, [Ok(1)]);
/// # });
/// ```
pub struct Timed<E> {
    _error: PhantomData<fn() -> E>,
}

/// A lane with [`retry`](crate::Lane::retry): futures output `Result<U, E>`, each item gets up to
/// `n + 1` attempts, the lane yields `Result<U, Error<E>>`.
///
/// `R` decides whether a failure is retried ([`retry_if`](crate::Lane::retry_if)), `H` gives the
/// delay that an error asks for ([`retry_after`](crate::Lane::retry_after)).
///
/// ```
/// use futures::StreamExt;
/// use tasklane::prelude::*;
/// # futures::executor::block_on(async {
/// let lane = [1].lane(1).retry(2);
/// let out: Vec<Result<i32, tasklane::Error<()>>> =
///     lane.map_async(|x| async move { Ok(x) }).collect().await;
/// assert_eq!(out, [Ok(1)]);
/// # });
/// ```
pub struct Retrying<E, R = fn(&Error<E>) -> bool, H = fn(&E) -> Option<Duration>> {
    pub(crate) retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) retry_if: R,
    pub(crate) retry_after: H,
    pub(crate) rng: Option<fastrand::Rng>,
    pub(crate) _error: PhantomData<fn() -> E>,
}

impl<E> Timed<E> {
    pub(crate) fn new() -> Self {
        Timed {
            _error: PhantomData,
        }
    }
}

impl<E> Clone for Timed<E> {
    fn clone(&self) -> Self {
        Timed::new()
    }
}

impl<E> fmt::Debug for Timed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Timed")
    }
}

fn retry_always<E>(_: &Error<E>) -> bool {
    true
}

fn no_hint<E>(_: &E) -> Option<Duration> {
    None
}

impl<E> Retrying<E> {
    pub(crate) fn new(retries: u32) -> Self {
        Retrying {
            retries,
            backoff: Backoff::default(),
            retry_if: retry_always::<E>,
            retry_after: no_hint::<E>,
            rng: None,
            _error: PhantomData,
        }
    }
}

impl<E, R, H> Retrying<E, R, H> {
    /// The same policy with another retry predicate.
    pub(crate) fn with_retry_if<R2>(self, retry_if: R2) -> Retrying<E, R2, H> {
        Retrying {
            retries: self.retries,
            backoff: self.backoff,
            retry_if,
            retry_after: self.retry_after,
            rng: None,
            _error: PhantomData,
        }
    }

    /// The same policy with another delay hint.
    pub(crate) fn with_retry_after<H2>(self, retry_after: H2) -> Retrying<E, R, H2> {
        Retrying {
            retries: self.retries,
            backoff: self.backoff,
            retry_if: self.retry_if,
            retry_after,
            rng: None,
            _error: PhantomData,
        }
    }
}

impl<E, R: Clone, H: Clone> Clone for Retrying<E, R, H> {
    fn clone(&self) -> Self {
        Retrying {
            retries: self.retries,
            backoff: self.backoff.clone(),
            retry_if: self.retry_if.clone(),
            retry_after: self.retry_after.clone(),
            rng: None,
            _error: PhantomData,
        }
    }
}

impl<E, R, H> fmt::Debug for Retrying<E, R, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrying")
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// Marks the kinds of lane that run each item once, so that [`run`](crate::Lane::run) (whose items
/// are futures, which cannot be retried) exists only for them. Sealed.
///
/// ```
/// fn runs_once<P: tasklane::mode::Once>() {}
/// runs_once::<tasklane::mode::Plain>();
/// runs_once::<tasklane::mode::Timed<std::io::Error>>();
/// ```
pub trait Once: sealed::Sealed {}
impl Once for Plain {}
impl<E> Once for Timed<E> {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Plain {}
    impl<E> Sealed for super::Timed<E> {}
}

/// Makes an item's attempt: [`MapFn`] calls the user's function, [`Identity`] runs the item itself.
///
/// ```
/// use tasklane::mode::Maker;
/// fn is_maker<M: Maker>() {}
/// is_maker::<tasklane::mode::Identity<std::future::Ready<u8>>>();
/// ```
pub trait Maker {
    /// The input item.
    type Item;
    /// One attempt.
    type Fut: Future;
    /// Makes an attempt for an item.
    fn make(&mut self, item: Self::Item) -> Self::Fut;
}

/// The attempt maker of [`map_async`](crate::Lane::map_async): calls `f(item)`.
///
/// ```
/// use tasklane::prelude::*;
/// let stream = [1].lane(1).map_async(|x| async move { x });
/// let _: &tasklane::LaneStream<_, tasklane::mode::Task<tasklane::mode::MapFn<_, i32>, _>> = &stream;
/// ```
pub struct MapFn<F, T> {
    f: F,
    _item: PhantomData<fn(T)>,
}

impl<F, T> fmt::Debug for MapFn<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MapFn")
    }
}

impl<Fut> fmt::Debug for Identity<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity")
    }
}

impl<F, T> MapFn<F, T> {
    pub(crate) fn new(f: F) -> Self {
        MapFn {
            f,
            _item: PhantomData,
        }
    }
}

impl<F, T, Fut> Maker for MapFn<F, T>
where
    F: FnMut(T) -> Fut,
    Fut: Future,
{
    type Item = T;
    type Fut = Fut;

    #[inline]
    fn make(&mut self, item: T) -> Fut {
        (self.f)(item)
    }
}

/// The attempt maker of [`run`](crate::Lane::run): the item is the future.
///
/// ```
/// use tasklane::prelude::*;
/// let stream = [async { 1 }].lane(1).run();
/// let _: &tasklane::LaneStream<_, tasklane::mode::Task<tasklane::mode::Identity<_>, _>> = &stream;
/// ```
pub struct Identity<Fut> {
    _fut: PhantomData<fn(Fut) -> Fut>,
}

impl<Fut> Identity<Fut> {
    pub(crate) fn new() -> Self {
        Identity { _fut: PhantomData }
    }
}

impl<Fut: Future> Maker for Identity<Fut> {
    type Item = Fut;
    type Fut = Fut;

    #[inline]
    fn make(&mut self, item: Fut) -> Fut {
        item
    }
}

/// What a [`LaneStream`](crate::LaneStream) does per item: an attempt maker, a kind of lane, and what
/// it does with its progress ([`progress`](crate::progress)).
///
/// ```
/// use tasklane::prelude::*;
/// let stream = [1].lane(1).map_async(|x| async move { x });
/// let _: &tasklane::LaneStream<_, tasklane::mode::Task<_, tasklane::mode::Plain>> = &stream;
/// ```
pub struct Task<Mk, P, G = Silent> {
    pub(crate) maker: Mk,
    pub(crate) policy: P,
    pub(crate) progress: G,
}

impl<Mk, P: fmt::Debug, G> fmt::Debug for Task<Mk, P, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<Mk, P, G: Reporter> engine::Reports for Task<Mk, P, G> {
    const REPORTS: bool = G::ENABLED;

    #[inline]
    fn report(&mut self, progress: &Progress) {
        self.progress.report(progress)
    }
}

impl<Mk: Maker, G: Reporter> engine::Mode for Task<Mk, Plain, G> {
    type Item = Mk::Item;
    type Keep = ();
    type Fut = Mk::Fut;
    type Output = <Mk::Fut as Future>::Output;
    type Meta = engine::Single;

    #[inline]
    fn start(&mut self, item: Mk::Item) -> (Option<()>, Mk::Fut) {
        (None, self.maker.make(item))
    }

    fn restart(&mut self, _: &()) -> Mk::Fut {
        unreachable!("tasklane: a plain lane never retries")
    }

    #[inline]
    fn settle(&mut self, outcome: Outcome<Self::Output>, _: u32) -> Settle<Self::Output> {
        match outcome {
            Outcome::Finished(output) => Settle::Done(output),
            Outcome::TimedOut => unreachable!("tasklane: a plain lane has no timeout"),
        }
    }

    fn backoff(&mut self, _: u32, _: Option<u64>, _: Option<Duration>) -> u64 {
        0
    }

    /// A plain lane's outputs are the user's own: each counts as a success.
    #[inline]
    fn succeeded(_: &Self::Output) -> bool {
        true
    }
}

impl<Mk, U, E, G> engine::Mode for Task<Mk, Timed<E>, G>
where
    G: Reporter,
    Mk: Maker,
    Mk::Fut: Future<Output = Result<U, E>>,
{
    type Item = Mk::Item;
    type Keep = ();
    type Fut = Mk::Fut;
    type Output = Result<U, Error<E>>;
    type Meta = engine::Single;

    #[inline]
    fn start(&mut self, item: Mk::Item) -> (Option<()>, Mk::Fut) {
        (None, self.maker.make(item))
    }

    fn restart(&mut self, _: &()) -> Mk::Fut {
        unreachable!("tasklane: a lane without retry never retries")
    }

    #[inline]
    fn settle(&mut self, outcome: Outcome<Result<U, E>>, attempts: u32) -> Settle<Self::Output> {
        Settle::Done(match outcome {
            Outcome::Finished(Ok(value)) => Ok(value),
            Outcome::Finished(Err(e)) => Err(Error::task(e, attempts)),
            Outcome::TimedOut => Err(Error::timeout(attempts)),
        })
    }

    fn backoff(&mut self, _: u32, _: Option<u64>, _: Option<Duration>) -> u64 {
        0
    }

    #[inline]
    fn succeeded(output: &Self::Output) -> bool {
        output.is_ok()
    }
}

impl<Mk, U, E, R, H, G> engine::Mode for Task<Mk, Retrying<E, R, H>, G>
where
    G: Reporter,
    Mk: Maker,
    Mk::Item: Clone,
    Mk::Fut: Future<Output = Result<U, E>>,
    R: FnMut(&Error<E>) -> bool,
    H: FnMut(&E) -> Option<Duration>,
{
    type Item = Mk::Item;
    type Keep = Mk::Item;
    type Fut = Mk::Fut;
    type Output = Result<U, Error<E>>;
    type Meta = engine::Retried<Mk::Item>;

    #[inline]
    fn start(&mut self, item: Mk::Item) -> (Option<Mk::Item>, Mk::Fut) {
        let fut = self.maker.make(item.clone());
        (Some(item), fut)
    }

    fn restart(&mut self, item: &Mk::Item) -> Mk::Fut {
        self.maker.make(item.clone())
    }

    fn settle(&mut self, outcome: Outcome<Result<U, E>>, attempts: u32) -> Settle<Self::Output> {
        let error = match outcome {
            Outcome::Finished(Ok(value)) => return Settle::Done(Ok(value)),
            Outcome::Finished(Err(e)) => Error::task(e, attempts),
            Outcome::TimedOut => Error::timeout(attempts),
        };
        let policy = &mut self.policy;
        // NOTE: `attempts == u32::MAX` ends `retry(u32::MAX)`, whose `retries + 1` attempts a `u32`
        // count cannot hold: it makes `u32::MAX` attempts (documented on `retry`).
        if attempts > policy.retries || attempts == u32::MAX || !(policy.retry_if)(&error) {
            return Settle::Done(Err(error));
        }
        let hint = error.inner().and_then(|e| (policy.retry_after)(e));
        Settle::Retry { hint }
    }

    fn backoff(&mut self, attempts: u32, prev: Option<u64>, hint: Option<Duration>) -> u64 {
        let policy = &mut self.policy;
        let max = crate::backoff::nanos(policy.backoff.max_delay());
        if let Some(hint) = hint {
            return crate::backoff::nanos(hint).min(max);
        }
        let backoff = &policy.backoff;
        let rng = policy.rng.get_or_insert_with(|| backoff.rng());
        backoff.next_nanos(attempts.saturating_sub(1), prev, rng)
    }

    #[inline]
    fn succeeded(output: &Self::Output) -> bool {
        output.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Mode, SlotMeta};

    type Retried = Task<MapFn<fn(u8) -> std::future::Ready<Result<(), ()>>, u8>, Retrying<()>>;

    fn retrying(retries: u32) -> Retried {
        Task {
            maker: MapFn::new(|_| std::future::ready(Err(()))),
            policy: Retrying::new(retries),
            progress: Silent,
        }
    }

    /// `retry(u32::MAX)` cannot make `retries + 1` attempts (a `u32` count cannot hold them): it
    /// stops at `u32::MAX`, and the per-slot counter saturates instead of wrapping to 0.
    #[test]
    fn retry_u32_max_stops_at_u32_max_attempts() {
        let mut task = retrying(u32::MAX);
        assert!(matches!(
            task.settle(Outcome::Finished(Err(())), u32::MAX - 1),
            Settle::Retry { .. }
        ));
        match task.settle(Outcome::Finished(Err(())), u32::MAX) {
            Settle::Done(Err(e)) => assert_eq!(e.attempts(), u32::MAX),
            other => panic!("expected the final error, got {other:?}"),
        }
        let mut meta = engine::Retried::<u8>::default();
        meta.begin(Some(7));
        for _ in 0..3 {
            meta.next_attempt();
        }
        assert_eq!(meta.attempts(), 4);
        let mut meta = engine::Retried::<u8>::saturated(7);
        assert_eq!(*meta.next_attempt(), 7);
        assert_eq!(meta.attempts(), u32::MAX);
    }

    /// Every other retry count makes exactly `retries + 1` attempts.
    #[test]
    fn retry_n_makes_n_plus_one_attempts() {
        for retries in [0, 1, 5, u32::MAX - 1] {
            let mut task = retrying(retries);
            assert!(matches!(
                task.settle(Outcome::Finished(Err(())), retries),
                Settle::Retry { .. }
            ));
            assert!(matches!(
                task.settle(Outcome::Finished(Err(())), retries + 1),
                Settle::Done(Err(_))
            ));
        }
    }
}
