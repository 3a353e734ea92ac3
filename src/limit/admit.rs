//! The seam between a lane and any limiter: the [`Admit`] trait, what it answers, and the lane's
//! identity to it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::budget::Answer;
#[cfg(doc)]
use super::Limiter;

/// A lane's identity to the limiters it waits on: each lane run has its own.
///
/// Made by the lane; a limiter uses [`id`](Waiter::id) to keep the lane's place in its line.
///
/// ```
/// let (a, b) = (tasklane::limit::Waiter::new(), tasklane::limit::Waiter::new());
/// assert_ne!(a.id(), b.id());
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Waiter(u64);

impl Waiter {
    /// A new waiter, with an id no other waiter of this process has.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Waiter(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id.
    pub fn id(&self) -> u64 {
        self.0
    }
}

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}

/// What [`Admit::poll_admit`] grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The attempt may start: its units are taken (give them back with [`Admit::release`] when it
    /// ends, or [`Admit::cancel`] if it does not start after all).
    Admitted,
    /// Not before this much time from now: the lane arms its timer and asks again then.
    NotBefore(Duration),
}

/// A limiter's backend failed to answer (a network error, a time limit).
///
/// What the lane does with the item then is the limiter's choice ([`Admit::fails_open`]).
///
/// ```
/// let err = tasklane::limit::LimitError::new("redis: connection refused");
/// assert_eq!(err.to_string(), "limiter failed: redis: connection refused");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    message: String,
}

impl LimitError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        LimitError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "limiter failed: {}", self.message)
    }
}

impl std::error::Error for LimitError {}

/// The seam between a lane and a limiter: what a lane asks of every limiter it was given
/// ([`limiter`](crate::Configure::limiter)). [`Limiter`] is the in-process implementation; a
/// limiter that asks a server (Redis, a quota service) is another.
///
/// Poll-based, like the lane that calls it: `poll_admit` is called from the lane's `poll_next`,
/// must not block, and answers at once:
/// - `Ready(Ok(Verdict::Admitted))`: the attempt starts now;
/// - `Ready(Ok(Verdict::NotBefore(d)))`: ask again after `d` (the lane arms its own timer);
/// - `Pending`: the limiter wakes `cx`'s waker when the lane should ask again (its turn came, a
///   permit was released, a network call answered);
/// - `Ready(Err(e))`: the backend failed; with [`fails_open`](Admit::fails_open) the attempt
///   starts anyway, else the item fails with an [`Error`](crate::Error) whose
///   [`limit_error`](crate::Error::limit_error) is `e` (on a plain lane, which cannot fail an item,
///   it starts).
///
/// For each admitted attempt the lane calls exactly one of [`release`](Admit::release) (it started
/// and then ended, timed out or was dropped) and [`cancel`](Admit::cancel) (it never started:
/// another of the lane's limiters, asked after this one, did not admit it). An attempt that starts
/// although this limiter answered `Err` (it fails open, or the lane's items cannot fail) was not
/// admitted by it: it gets neither call for that attempt. A lane that waited and
/// no longer does (it was dropped, or wants nothing more now) calls [`leave`](Admit::leave).
///
/// # Examples
///
/// A limiter that admits everything and counts what it saw:
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::task::{Context, Poll};
/// use futures::StreamExt;
/// use tasklane::limit::{Admit, LimitError, Verdict, Waiter};
/// use tasklane::prelude::*;
///
/// #[derive(Debug, Default)]
/// struct Counting(AtomicU32);
///
/// impl Admit for Counting {
///     fn poll_admit(&self, _: &Waiter, _cost: u32, _: &mut Context<'_>)
///         -> Poll<Result<Verdict, LimitError>> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Poll::Ready(Ok(Verdict::Admitted))
///     }
///     fn release(&self, _cost: u32) {}
///     fn cancel(&self, _: &Waiter, _cost: u32) {}
///     fn leave(&self, _: &Waiter) {}
/// }
///
/// let counting = Arc::new(Counting::default());
/// # futures::executor::block_on(async {
/// let out: Vec<u32> = (0..5u32)
///     .lane(2)
///     .limiter(&counting)
///     .map_async(|x| async move { x })
///     .collect()
///     .await;
/// assert_eq!(out.len(), 5);
/// # });
/// assert!(counting.0.load(Ordering::Relaxed) >= 5);
/// ```
pub trait Admit: Send + Sync + fmt::Debug {
    /// Asks for `cost` units for one attempt of the lane `waiter`. See the trait docs.
    fn poll_admit(
        &self,
        waiter: &Waiter,
        cost: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Verdict, LimitError>>;

    /// An admitted attempt ended (finished, failed, timed out or was dropped): its `cost` units come
    /// back.
    fn release(&self, cost: u32);

    /// An admitted attempt did not start: its `cost` units come back, and its place in a rate's
    /// schedule where the limiter can give it back.
    fn cancel(&self, waiter: &Waiter, cost: u32);

    /// `waiter` no longer waits: forget its place in line.
    fn leave(&self, waiter: &Waiter);

    /// Whether an attempt of `cost` could ever be admitted. `false` fails the item at once (its
    /// error's [`is_rejected`](crate::Error::is_rejected) is true) instead of letting it wait
    /// forever. Every cost by default.
    fn can_ever_admit(&self, cost: u32) -> bool {
        let _ = cost;
        true
    }

    /// Whether an item whose admission failed ([`LimitError`]) starts anyway (`true`) or fails
    /// (`false`, the default).
    fn fails_open(&self) -> bool {
        false
    }

    /// This limiter as the shared object a lane keeps: an `Arc` of it by default. A handle that is
    /// an `Arc` already (as [`Limiter`] is) can give its own, and save the lane a pointer chase
    /// per call.
    fn into_shared(self) -> Arc<dyn Admit>
    where
        Self: Sized + 'static,
    {
        Arc::new(self)
    }
}

/// A budget's answer as [`Admit::poll_admit`] gives it (`now`: the reading it was asked at, if a
/// rate needed one).
#[inline]
pub(crate) fn answer_to_poll(answer: Answer, now: u64) -> Poll<Result<Verdict, LimitError>> {
    match answer {
        Answer::Granted => Poll::Ready(Ok(Verdict::Admitted)),
        Answer::NotBefore(at) => Poll::Ready(Ok(Verdict::NotBefore(Duration::from_nanos(
            at.saturating_sub(now),
        )))),
        Answer::Queued => Poll::Pending,
    }
}

/// A shared limiter is a limiter: so `.limiter(&Arc::new(my_limiter))` works for an [`Admit`]
/// implementation that is not `Clone` itself.
impl<T: Admit + ?Sized> Admit for Arc<T> {
    fn poll_admit(
        &self,
        waiter: &Waiter,
        cost: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Verdict, LimitError>> {
        (**self).poll_admit(waiter, cost, cx)
    }

    fn release(&self, cost: u32) {
        (**self).release(cost);
    }

    fn cancel(&self, waiter: &Waiter, cost: u32) {
        (**self).cancel(waiter, cost);
    }

    fn leave(&self, waiter: &Waiter) {
        (**self).leave(waiter);
    }

    fn can_ever_admit(&self, cost: u32) -> bool {
        (**self).can_ever_admit(cost)
    }

    fn fails_open(&self) -> bool {
        (**self).fails_open()
    }
}
