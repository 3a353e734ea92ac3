//! The kinds of lane, as types: what a [`Lane`](crate::Lane) builder has been told so far, and what
//! its output stream does per item.
//!
//! - [`Plain`]: one future per item, its output yielded unchanged. The default.
//! - [`Timed`]: after [`timeout`](crate::Configure::timeout): futures of `Result<U, E>`, items
//!   `Result<U, Error<E>>`, one attempt each.
//! - [`Retrying`]: after [`retry`](crate::Configure::retry): the same items, up to `n + 1` attempts
//!   each.
//!
//! You rarely name these: they appear in the type of a `Lane` and of its [`LaneStream`](crate::LaneStream).
//! The traits here are what compile errors name when a lane is given something it cannot run:
//! [`Takes`] (a retrying lane's items must be `Clone`), [`Runs`] (a timed or retrying lane's futures
//! must output `Result<_, E>`), [`Once`] (`run` cannot retry), and [`RetryIf`] and [`RetryAfter`],
//! the bounds of a retrying lane's `retry_if` and `retry_after` (defaults [`RetryAlways`] and
//! [`NoHint`]). [`Settles`] and [`TaskMode`] are the bounds of [`Task`] and of a
//! [`LaneStream`](crate::LaneStream), for code generic over them. [`AddTimeout`], [`AddRetry`] and
//! [`Retries`] are the bounds of the setters of [`Configure`](crate::Configure) that change or need
//! a kind (see its [# Kinds](crate::Configure#kinds)). All but `RetryIf` and `RetryAfter` are
//! sealed.
//!
//! ```
//! use tasklane::mode::Plain;
//! use tasklane::prelude::*;
//! let lane: tasklane::Lane<_, Plain> = [1, 2, 3].lane(2);
//! assert_eq!(lane.limit(), 2);
//! ```

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Internal;
use crate::engine::{self, Outcome, Settle};
use crate::limit::{Admit, KeyedLimiter};
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

/// A lane with a per-attempt [`timeout`](crate::Configure::timeout) and no retry: futures output
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

/// A lane with [`retry`](crate::Configure::retry): futures output `Result<U, E>`, each item gets up
/// to `n + 1` attempts, the lane yields `Result<U, Error<E>>`.
///
/// `R` decides whether a failure is retried ([`retry_if`](crate::Configure::retry_if); default
/// [`RetryAlways`]), `H` gives the delay that an error asks for
/// ([`retry_after`](crate::Configure::retry_after); default [`NoHint`]).
///
/// ```
/// use futures::StreamExt;
/// use tasklane::mode::{NoHint, RetryAlways, Retrying};
/// use tasklane::prelude::*;
/// # futures::executor::block_on(async {
/// let lane: tasklane::Lane<_, Retrying<(), RetryAlways, NoHint>> = [1].lane(1).retry(2);
/// let out: Vec<Result<i32, tasklane::Error<()>>> =
///     lane.map_async(|x| async move { Ok(x) }).collect().await;
/// assert_eq!(out, [Ok(1)]);
/// # });
/// ```
pub struct Retrying<E, R = RetryAlways, H = NoHint> {
    pub(crate) retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) retry_if: R,
    pub(crate) retry_after: H,
    pub(crate) rng: Option<fastrand::Rng>,
    pub(crate) _error: PhantomData<fn() -> E>,
}

/// The default [`retry_if`](crate::Configure::retry_if) of a retrying lane: every failure is
/// retried, timeouts included.
///
/// A named zero-sized type rather than a function pointer, so that it is a [`RetryIf<E>`] for every
/// `E` at once (which is what lets a lane whose error type borrows, such as `&'static str`, be
/// spawned).
///
/// ```
/// use tasklane::mode::{RetryAlways, RetryIf};
/// let mut always = RetryAlways;
/// # let err = futures::executor::block_on(async {
/// #     use futures::StreamExt;
/// #     use tasklane::prelude::*;
/// #     let mut out = [()].lane(1).timeout(std::time::Duration::from_secs(1))
/// #         .map_async(|()| async { Err::<(), _>("no") });
/// #     out.next().await.unwrap().unwrap_err()
/// # });
/// // `err` is a `tasklane::Error<&str>`
/// assert!(always.retry_if(&err));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryAlways;

/// The default [`retry_after`](crate::Configure::retry_after) of a retrying lane: no error asks for
/// a delay of its own, so every retry waits for the back-off.
///
/// A named zero-sized type rather than a function pointer, so that it is a [`RetryAfter<E>`] for
/// every `E` at once.
///
/// ```
/// use tasklane::mode::{NoHint, RetryAfter};
/// assert_eq!(NoHint.retry_after(&"503"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoHint;

/// Decides whether a failure of a retrying lane is retried: the bound of its `R` (see
/// [`retry_if`](crate::Configure::retry_if)).
///
/// Implemented for [`RetryAlways`] and for every `FnMut(&Error<E>) -> bool`; you rarely name it.
///
/// ```
/// use tasklane::mode::RetryIf;
/// fn decides<R: RetryIf<u16>>(_: &R) {}
/// decides(&tasklane::mode::RetryAlways);
/// decides(&|e: &tasklane::Error<u16>| e.inner().is_some_and(|status| *status >= 500));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot decide whether to retry a `tasklane::Error<{E}>`",
    label = "not a `FnMut(&tasklane::Error<{E}>) -> bool`",
    note = "`retry_if` takes a closure `|e: &tasklane::Error<{E}>| -> bool`"
)]
pub trait RetryIf<E> {
    /// Whether to retry after `error` (when attempts are left).
    ///
    /// ```
    /// use tasklane::mode::RetryIf;
    /// let mut only_timeouts = |e: &tasklane::Error<String>| e.is_timeout();
    /// # let err = futures::executor::block_on(async {
    /// #     use futures::StreamExt;
    /// #     use tasklane::prelude::*;
    /// #     let mut out = [()].lane(1).timeout(std::time::Duration::from_secs(1))
    /// #         .map_async(|()| async { Err::<(), _>("no".to_string()) });
    /// #     out.next().await.unwrap().unwrap_err()
    /// # });
    /// assert!(!only_timeouts.retry_if(&err)); // `err` is not a timeout
    /// ```
    fn retry_if(&mut self, error: &Error<E>) -> bool;
}

impl<E> RetryIf<E> for RetryAlways {
    #[inline]
    fn retry_if(&mut self, _: &Error<E>) -> bool {
        true
    }
}

impl<E, F: FnMut(&Error<E>) -> bool> RetryIf<E> for F {
    #[inline]
    fn retry_if(&mut self, error: &Error<E>) -> bool {
        self(error)
    }
}

/// Gives the delay that an error asks for before its retry: the bound of a retrying lane's `H` (see
/// [`retry_after`](crate::Configure::retry_after)).
///
/// Implemented for [`NoHint`] and for every `FnMut(&E) -> Option<Duration>`; you rarely name it.
///
/// ```
/// use std::time::Duration;
/// use tasklane::mode::RetryAfter;
/// fn hints<H: RetryAfter<u64>>(_: &H) {}
/// hints(&tasklane::mode::NoHint);
/// hints(&|secs: &u64| Some(Duration::from_secs(*secs)));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot give a retry delay for an error of type `{E}`",
    label = "not a `FnMut(&{E}) -> Option<Duration>`",
    note = "`retry_after` takes a closure `|e: &{E}| -> Option<std::time::Duration>`"
)]
pub trait RetryAfter<E> {
    /// The delay `error` asks for before the next attempt (`None`: the back-off's).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::mode::RetryAfter;
    /// let mut hint = |secs: &u64| Some(Duration::from_secs(*secs));
    /// assert_eq!(hint.retry_after(&2), Some(Duration::from_secs(2)));
    /// ```
    fn retry_after(&mut self, error: &E) -> Option<Duration>;
}

impl<E> RetryAfter<E> for NoHint {
    #[inline]
    fn retry_after(&mut self, _: &E) -> Option<Duration> {
        None
    }
}

impl<E, F: FnMut(&E) -> Option<Duration>> RetryAfter<E> for F {
    #[inline]
    fn retry_after(&mut self, error: &E) -> Option<Duration> {
        self(error)
    }
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

impl<E> Retrying<E> {
    pub(crate) fn new(retries: u32) -> Self {
        Retrying {
            retries,
            backoff: Backoff::default(),
            retry_if: RetryAlways,
            retry_after: NoHint,
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

/// The items that a kind of lane can take: every type for [`Plain`] and [`Timed`]; `Clone` ones for
/// [`Retrying`], which calls the function again with a clone of the item for each attempt. Sealed.
///
/// A bound of [`map_async`](crate::Lane::map_async): it is what a compile error names when the
/// items of a retrying lane are not `Clone`.
///
/// ```
/// use std::sync::Arc;
/// use tasklane::mode::{Plain, Retrying, Takes};
/// fn takes<P: Takes<T>, T>() {}
/// struct Upload; // not Clone
/// takes::<Plain, Upload>();
/// takes::<Retrying<std::io::Error>, Arc<Upload>>();
/// ```
///
/// ```compile_fail
/// # use tasklane::mode::{Retrying, Takes};
/// # fn takes<P: Takes<T>, T>() {}
/// struct Upload; // not Clone
/// takes::<Retrying<std::io::Error>, Upload>(); // a retrying lane needs `Clone` items
/// ```
#[diagnostic::on_unimplemented(
    message = "a lane with `retry` needs `Clone` items, but `{T}` is not `Clone`",
    label = "each retry calls the function again, with a clone of the item",
    note = "wrap the items in an `Arc` (`Arc<{T}>` clones cheaply), or derive `Clone` for `{T}`"
)]
pub trait Takes<T>: sealed::Clones<T> {}

/// What a kind of lane makes of the attempts of an item whose futures output `O`: [`Plain`] yields
/// `O` itself; [`Timed`] and [`Retrying`] take futures of `O = Result<U, E>` and yield
/// `Result<U, Error<E>>`. Sealed.
///
/// This is the bound of [`Task`], and it holds whatever the lane's own error type: it is
/// [`Runs`], a bound of the terminals, that checks that the futures' error type is the lane's.
/// Keeping the two apart is what lets a lane whose error type borrows (`&'static str`,
/// `Box<dyn Error + Send + Sync>`), and its `retry_if` and `retry_after` closures, be spawned: to
/// prove that a future holding the lane is `Send`, the compiler proves this bound with each
/// lifetime in the lane's type replaced by one of its own, which a bound tying the lane's error
/// type to the futures' could not survive (rust-lang/rust#102211).
///
/// ```
/// use tasklane::mode::{Plain, Retrying, Settles};
/// fn settles<P: Settles<O>, O>() {}
/// settles::<Plain, u8>();
/// settles::<Retrying<&'static str>, Result<u8, &'static str>>();
/// ```
pub trait Settles<O>: sealed::Steps<O> {}

/// The outputs that a kind of lane's futures can have: any for [`Plain`]; `Result<U, E>` for
/// [`Timed<E>`] and [`Retrying<E, ..>`](Retrying), with `E` the lane's error type. Sealed.
///
/// A bound of [`map_async`](crate::Lane::map_async) and [`run`](crate::Lane::run): it is what a
/// compile error names when a lane with `timeout` or `retry` is given futures that do not output a
/// `Result`, or a `Result` with another error type than the lane's (see `# Type inference` on
/// [`retry_if`](crate::Configure::retry_if)).
///
/// ```
/// use tasklane::mode::{Plain, Runs, Timed};
/// fn runs<P: Runs<O>, O>() {}
/// runs::<Plain, u8>();
/// runs::<Timed<std::io::Error>, Result<u8, std::io::Error>>();
/// ```
///
/// ```compile_fail
/// # use tasklane::mode::{Runs, Timed};
/// # fn runs<P: Runs<O>, O>() {}
/// runs::<Timed<std::io::Error>, u8>(); // a timed lane needs futures of `Result`
/// ```
#[diagnostic::on_unimplemented(
    message = "a lane with `retry` or `timeout` needs futures that output `Result<_, E>` with its own error type `E`, but these output `{O}`",
    label = "the futures output `{O}`; the lane is a `{Self}`",
    note = "with `retry` or `timeout` an attempt fails by returning `Err(e)`: make the future output a `Result` whose error type is the one the lane's `retry_if` and `retry_after` closures take"
)]
pub trait Runs<O>: Settles<O> + sealed::Arms<O> {}

/// Marks the kinds of lane that run each item once, so that [`run`](crate::Lane::run) (whose items
/// are futures, which cannot be retried) exists only for them. Sealed.
///
/// ```
/// fn runs_once<P: tasklane::mode::Once>() {}
/// runs_once::<tasklane::mode::Plain>();
/// runs_once::<tasklane::mode::Timed<std::io::Error>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`run` cannot retry: a future runs once, but this lane has `retry`",
    label = "`run` needs a lane without `retry`",
    note = "to retry, give the lane a function that makes each attempt: `.map_async(|item| make_future(item))`"
)]
pub trait Once: sealed::Sealed {}
impl Once for Plain {}
impl<E> Once for Timed<E> {}

/// What [`timeout`](crate::Configure::timeout) makes of a kind of lane: a [`Plain`] lane becomes
/// [`Timed<E>`]; a [`Timed<E>`] or [`Retrying<E, R, H>`](Retrying) lane keeps its kind (and gets
/// the new timeout). Sealed.
///
/// The bound of `timeout`, implemented for every kind, so a compile error never names it unless
/// `timeout::<E>` names another error type than the lane's own.
///
/// ```
/// use tasklane::mode::{AddTimeout, Plain, Retrying, Timed};
/// fn timed<P: AddTimeout<E, Output = Q>, E, Q>() {}
/// timed::<Plain, std::io::Error, Timed<std::io::Error>>();
/// timed::<Retrying<std::io::Error>, std::io::Error, Retrying<std::io::Error>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "a lane's error type is named once: `{Self}` has another one than `{E}`",
    label = "`timeout::<{E}>` on a `{Self}` lane",
    note = "leave out `::<{E}>`: the lane's error type is already known"
)]
pub trait AddTimeout<E> {
    /// The kind with a timeout.
    type Output;
    /// Turns the kind into [`Output`](AddTimeout::Output).
    #[doc(hidden)]
    fn add_timeout(self, _: Internal) -> Self::Output;
}

impl<E> AddTimeout<E> for Plain {
    type Output = Timed<E>;
    fn add_timeout(self, _: Internal) -> Timed<E> {
        Timed::new()
    }
}

impl<E> AddTimeout<E> for Timed<E> {
    type Output = Self;
    fn add_timeout(self, _: Internal) -> Self {
        self
    }
}

impl<E, R, H> AddTimeout<E> for Retrying<E, R, H> {
    type Output = Self;
    fn add_timeout(self, _: Internal) -> Self {
        self
    }
}

/// What [`retry`](crate::Configure::retry) makes of a kind of lane: a [`Plain`] or [`Timed<E>`]
/// lane becomes [`Retrying<E>`](Retrying) (with the default back-off, `retry_if` and
/// `retry_after`); a [`Retrying<E, R, H>`](Retrying) lane keeps its kind, with the new number of
/// retries. Sealed.
///
/// The bound of `retry`, implemented for every kind, so a compile error never names it unless
/// `retry::<E>` names another error type than the lane's own.
///
/// ```
/// use tasklane::mode::{AddRetry, NoHint, Plain, RetryAlways, Retrying, Timed};
/// fn retried<P: AddRetry<E, Output = Q>, E, Q>() {}
/// retried::<Plain, std::io::Error, Retrying<std::io::Error, RetryAlways, NoHint>>();
/// retried::<Timed<std::io::Error>, std::io::Error, Retrying<std::io::Error>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "a lane's error type is named once: `{Self}` has another one than `{E}`",
    label = "`retry::<{E}>` on a `{Self}` lane",
    note = "leave out `::<{E}>`: the lane's error type is already known"
)]
pub trait AddRetry<E> {
    /// The kind with retries.
    type Output;
    /// Turns the kind into [`Output`](AddRetry::Output), with `retries` retries.
    #[doc(hidden)]
    fn add_retry(self, retries: u32, _: Internal) -> Self::Output;
}

impl<E> AddRetry<E> for Plain {
    type Output = Retrying<E>;
    fn add_retry(self, retries: u32, _: Internal) -> Retrying<E> {
        Retrying::new(retries)
    }
}

impl<E> AddRetry<E> for Timed<E> {
    type Output = Retrying<E>;
    fn add_retry(self, retries: u32, _: Internal) -> Retrying<E> {
        Retrying::new(retries)
    }
}

impl<E, R, H> AddRetry<E> for Retrying<E, R, H> {
    type Output = Self;
    fn add_retry(mut self, retries: u32, _: Internal) -> Self {
        self.retries = retries;
        self
    }
}

/// Marks the retrying kinds, [`Retrying<E, R, H>`](Retrying), so that
/// [`backoff`](crate::Configure::backoff), [`retry_if`](crate::Configure::retry_if) and
/// [`retry_after`](crate::Configure::retry_after) exist only after
/// [`retry`](crate::Configure::retry). Sealed.
///
/// Its parameters are the retrying kind's own (`Retrying<E, R, H>: Retries<E, R, H>`), so a bound
/// `Kind: Retries<E, R, H>` names them for the setter's signature.
///
/// ```
/// use tasklane::mode::{NoHint, RetryAlways, Retries, Retrying};
/// fn retries<P: Retries<E, R, H>, E, R, H>() {}
/// retries::<Retrying<std::io::Error>, std::io::Error, RetryAlways, NoHint>();
/// ```
///
/// ```compile_fail
/// # use tasklane::mode::{Plain, Retries};
/// # fn retries<P: Retries<E, R, H>, E, R, H>() {}
/// retries::<Plain, (), (), ()>(); // a plain lane does not retry
/// ```
#[diagnostic::on_unimplemented(
    message = "`backoff`, `retry_if` and `retry_after` need a lane or policy with `retry`, but this one is `{Self}`",
    label = "this needs `.retry(n)` before it",
    note = "call `.retry(n)` first: it makes the lane retrying, and these setters say how it retries"
)]
pub trait Retries<E, R, H> {
    /// The retrying kind itself, to change in place.
    #[doc(hidden)]
    fn retrying_mut(&mut self, _: Internal) -> &mut Retrying<E, R, H>;
    /// The retrying kind itself.
    #[doc(hidden)]
    fn into_retrying(self, _: Internal) -> Retrying<E, R, H>;
}

impl<E, R, H> Retries<E, R, H> for Retrying<E, R, H> {
    fn retrying_mut(&mut self, _: Internal) -> &mut Self {
        self
    }

    fn into_retrying(self, _: Internal) -> Self {
        self
    }
}

impl<T> Takes<T> for Plain {}
impl<T, E> Takes<T> for Timed<E> {}
// NOTE: `do_not_recommend` makes a non-`Clone` item an error about `Takes` (whose message says what
// to do) rather than about `T: Clone` alone. Compilers older than 1.85 do not know the attribute and
// ignore it (with a warning in this crate's own build only).
#[allow(unknown_or_malformed_diagnostic_attributes)] // reason: see above
#[diagnostic::do_not_recommend]
impl<T: Clone, E, R, H> Takes<T> for Retrying<E, R, H> {}

impl<O> Settles<O> for Plain {}
impl<E0, U, E> Settles<Result<U, E>> for Timed<E0> {}
impl<E0, R, H, U, E> Settles<Result<U, E>> for Retrying<E0, R, H> {}

impl<O> Runs<O> for Plain {}
impl<U, E> Runs<Result<U, E>> for Timed<E> {}
#[allow(unknown_or_malformed_diagnostic_attributes)] // reason: see `Takes for Retrying`
#[diagnostic::do_not_recommend]
impl<U, E, R: RetryIf<E>, H: RetryAfter<E>> Runs<Result<U, E>> for Retrying<E, R, H> {}

/// What users of the traits above cannot name, implement or call.
mod sealed {
    use std::time::Duration;

    use super::{Maker, Plain, Retrying, Timed};
    use crate::engine::{Outcome, Settle, SlotMeta};
    use crate::Error;

    pub trait Sealed {}
    impl Sealed for Plain {}
    impl<E> Sealed for Timed<E> {}

    /// How a kind of lane clones an item for another attempt ([`never`]: it never retries).
    pub trait Clones<T> {
        const AGAIN: fn(&T) -> T;
    }

    impl<T> Clones<T> for Plain {
        const AGAIN: fn(&T) -> T = never;
    }

    impl<T, E> Clones<T> for Timed<E> {
        const AGAIN: fn(&T) -> T = never;
    }

    impl<T: Clone, E, R, H> Clones<T> for Retrying<E, R, H> {
        const AGAIN: fn(&T) -> T = T::clone;
    }

    /// The `AGAIN` of a lane that never retries.
    fn never<T>(_: &T) -> T {
        unreachable!("tasklane: only a retrying lane makes another attempt")
    }

    /// An attempt maker that can make the item for another attempt from the one its slot kept.
    pub trait Again: Maker {
        /// Whether some attempt output stops the lane's input (see [`Again::stops`]). When `false`,
        /// the engine never asks.
        const STOPS: bool = false;
        /// A clone of `item`, for another attempt (only a retrying lane asks).
        fn again(&self, item: &Self::Item) -> Self::Item;
        /// Whether this attempt output stops the lane's input: the engine pulls nothing more
        /// (the stop-pulling hook of `gather`'s relatives).
        fn stops(&self, _output: &<Self::Fut as std::future::Future>::Output) -> bool {
            false
        }
        /// Whether items have a cost of their own (see [`Again::cost`]). When `false`, every item
        /// costs 1 and the engine never asks.
        const COSTED: bool = false;
        /// The units of every shared limiter that `item`'s attempts take (`Lane::cost`).
        fn cost(&mut self, _item: &Self::Item) -> u32 {
            1
        }
        /// Whether items pick keyed budgets (see [`Again::keys`]). When `false`, the engine never
        /// asks.
        const KEYED: bool = false;
        /// Pushes the budgets of `item`'s keys on `out` (`Lane::limiter_by`).
        fn keys(
            &mut self,
            _item: &Self::Item,
            _out: &mut Vec<std::sync::Arc<dyn crate::limit::Admit>>,
        ) {
        }
    }

    /// What a kind of lane does with the attempts of an item, whose futures output `O`.
    ///
    /// NOTE: no impl ties a type of the lane (the `E` of `Timed<E>` or `Retrying<E, ..>`, or the
    /// type of a `retry_if` closure, which names `E`) to a type in `O`. The error type is taken
    /// from `O` alone; the lane's closures are called through [`Steps::Calls`], function
    /// pointers made by [`Arms::calls`] at the terminal (`map_async`, `run`), whose `Runs` bound
    /// checks that the two error types agree. A tie would break spawning: to prove that a future
    /// holding the lane is `Send`, the compiler proves this trait with every lifetime in the
    /// lane's type replaced by a lifetime of its own, so with an error type that borrows (`&'static
    /// str`, `Box<dyn Error + Send + Sync>`), `Result<U, &'a str>` would have to be
    /// `Result<U, &'b str>`, and a closure taking `&Error<&'a str>` would have to take
    /// `&Error<&'b str>`: neither can be proven.
    pub trait Steps<O> {
        /// The lane's output per item.
        type Output;
        /// What a slot keeps of its item for the retries.
        type Keep<T>;
        /// The slot's data besides the future.
        type Meta<T>: SlotMeta<Self::Keep<T>>;
        /// How the lane calls its own closures, with the futures' error type.
        type Calls;
        /// Whether attempts may time out or be retried (see `engine::Mode::TIMED`).
        const TIMED: bool;
        /// The first attempt for an item.
        fn start<Mk: Again>(
            maker: &mut Mk,
            item: Mk::Item,
        ) -> (Option<Self::Keep<Mk::Item>>, Mk::Fut);
        /// Another attempt for an item whose earlier attempt failed.
        fn restart<Mk: Again>(maker: &mut Mk, keep: &Self::Keep<Mk::Item>) -> Mk::Fut;
        /// Decides after attempt number `attempts` (1-based) of the item at input position `index`.
        fn settle(
            &mut self,
            calls: &Self::Calls,
            outcome: Outcome<O>,
            attempts: u32,
            index: usize,
        ) -> Settle<Self::Output>;
        /// The back-off in nanoseconds after `attempts` failed attempts.
        fn backoff(&mut self, attempts: u32, prev: Option<u64>, hint: Option<Duration>) -> u64;
        /// Whether an output counts as a success in progress snapshots.
        fn succeeded(output: &Self::Output) -> bool;
    }

    /// Makes the [`Steps::Calls`] of a lane whose futures output `O`, where `O`'s error type is
    /// known to be the lane's own.
    pub trait Arms<O>: Steps<O> {
        fn calls() -> Self::Calls;
    }

    /// A retrying lane's closures, as functions of the futures' error type `E`.
    pub struct RetryCalls<R, H, E> {
        pub(super) retry_if: fn(&mut R, &Error<E>) -> bool,
        pub(super) retry_after: fn(&mut H, &E) -> Option<Duration>,
    }

    impl<R, H, E> std::fmt::Debug for RetryCalls<R, H, E> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("RetryCalls")
        }
    }

    impl<O> Arms<O> for Plain {
        fn calls() {}
    }

    impl<U, E> Arms<Result<U, E>> for Timed<E> {
        fn calls() {}
    }

    impl<U, E, R: super::RetryIf<E>, H: super::RetryAfter<E>> Arms<Result<U, E>> for Retrying<E, R, H> {
        fn calls() -> RetryCalls<R, H, E> {
            RetryCalls {
                retry_if: R::retry_if,
                retry_after: H::retry_after,
            }
        }
    }
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
pub struct MapFn<F, T, C = Unit> {
    f: F,
    /// Clones an item for another attempt (a function that panics if the lane never retries).
    again: fn(&T) -> T,
    /// What each item costs ([`Lane::cost`](crate::Lane::cost)).
    cost: C,
}

impl<F, T, C> fmt::Debug for MapFn<F, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MapFn")
    }
}

impl<Fut, C> fmt::Debug for Identity<Fut, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity")
    }
}

impl<F, T, C> MapFn<F, T, C> {
    /// The maker of a lane of kind `P`: it clones items for another attempt the way `P` says
    /// (which `P: Takes<T>` guarantees it can).
    pub(crate) fn new<P: Takes<T>>(f: F, cost: C) -> Self {
        MapFn {
            f,
            again: <P as sealed::Clones<T>>::AGAIN,
            cost,
        }
    }
}

impl<F, T, C, Fut> Maker for MapFn<F, T, C>
where
    F: FnMut(T) -> Fut,
    Fut: Future,
    C: PerItem<T>,
{
    type Item = T;
    type Fut = Fut;

    #[inline]
    fn make(&mut self, item: T) -> Fut {
        (self.f)(item)
    }
}

impl<F, T, C, Fut> sealed::Again for MapFn<F, T, C>
where
    F: FnMut(T) -> Fut,
    Fut: Future,
    C: PerItem<T>,
{
    const COSTED: bool = C::COSTED;
    const KEYED: bool = C::KEYED;

    #[inline]
    fn again(&self, item: &T) -> T {
        (self.again)(item)
    }

    #[inline]
    fn cost(&mut self, item: &T) -> u32 {
        self.cost.cost(item)
    }

    #[inline]
    fn keys(&mut self, item: &T, out: &mut Vec<Arc<dyn Admit>>) {
        self.cost.keys(item, out);
    }
}

/// The attempt maker of [`run`](crate::Lane::run): the item is the future.
///
/// ```
/// use tasklane::prelude::*;
/// let stream = [async { 1 }].lane(1).run();
/// let _: &tasklane::LaneStream<_, tasklane::mode::Task<tasklane::mode::Identity<_>, _>> = &stream;
/// ```
pub struct Identity<Fut, C = Unit> {
    _fut: PhantomData<fn(Fut) -> Fut>,
    /// What each item costs ([`Lane::cost`](crate::Lane::cost)).
    cost: C,
}

impl<Fut, C> Identity<Fut, C> {
    pub(crate) fn new(cost: C) -> Self {
        Identity {
            _fut: PhantomData,
            cost,
        }
    }
}

impl<Fut: Future, C: PerItem<Fut>> Maker for Identity<Fut, C> {
    type Item = Fut;
    type Fut = Fut;

    #[inline]
    fn make(&mut self, item: Fut) -> Fut {
        item
    }
}

impl<Fut: Future, C: PerItem<Fut>> sealed::Again for Identity<Fut, C> {
    const COSTED: bool = C::COSTED;
    const KEYED: bool = C::KEYED;

    fn again(&self, _: &Fut) -> Fut {
        unreachable!("tasklane: `run` never retries")
    }

    #[inline]
    fn cost(&mut self, item: &Fut) -> u32 {
        self.cost.cost(item)
    }

    #[inline]
    fn keys(&mut self, item: &Fut, out: &mut Vec<Arc<dyn Admit>>) {
        self.cost.keys(item, out);
    }
}

/// What an item takes of the shared limiters: its cost (the units of every shared limiter,
/// [`limiter`](crate::Configure::limiter), that each of its attempts takes), and the budgets of
/// its keys in the keyed limiters ([`Lane::limiter_by`](crate::Lane::limiter_by)). [`Unit`] (1 per
/// item, no keys) unless [`Lane::cost`](crate::Lane::cost) adds a [`CostFn`] or `limiter_by` a
/// [`KeyFn`]; each wraps what was set before.
///
/// ```
/// use tasklane::mode::{CostFn, KeyFn, PerItem, Unit};
/// fn per_item<C: PerItem<String>>() {}
/// per_item::<Unit>();
/// per_item::<CostFn<fn(&String) -> u32>>();
/// per_item::<KeyFn<String, fn(&String) -> String, CostFn<fn(&String) -> u32>>>();
/// ```
pub trait PerItem<T>: sealed::Sealed {
    /// Whether items have costs of their own (`false`: 1 each, and nothing is asked).
    #[doc(hidden)]
    const COSTED: bool;
    /// Whether items pick keyed budgets (`false`: none, and nothing is asked).
    #[doc(hidden)]
    const KEYED: bool;
    /// The cost of `item` (callable only by the crate).
    #[doc(hidden)]
    fn cost(&mut self, item: &T) -> u32;
    /// Pushes the budgets of `item`'s keys on `out` (callable only by the crate).
    #[doc(hidden)]
    fn keys(&mut self, item: &T, out: &mut Vec<Arc<dyn Admit>>);
}

/// Every item costs 1 and picks no key: the default.
///
/// ```
/// use tasklane::prelude::*;
/// let _: tasklane::Lane<_, tasklane::mode::Plain, tasklane::progress::Silent, tasklane::mode::Unit> =
///     [1].lane(1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Unit;

impl sealed::Sealed for Unit {}

impl<T> PerItem<T> for Unit {
    const COSTED: bool = false;
    const KEYED: bool = false;

    #[inline]
    fn cost(&mut self, _: &T) -> u32 {
        1
    }

    #[inline]
    fn keys(&mut self, _: &T, _: &mut Vec<Arc<dyn Admit>>) {}
}

/// The cost closure given to [`Lane::cost`](crate::Lane::cost), over what was set before (`C`).
///
/// ```
/// use tasklane::prelude::*;
/// let lane = ["a", "bb"].lane(2).cost(|s: &&str| s.len() as u32);
/// let _: &tasklane::Lane<_, _, _, tasklane::mode::CostFn<_>> = &lane;
/// ```
#[derive(Clone, Copy)]
pub struct CostFn<F, C = Unit>(pub(crate) F, pub(crate) C);

impl<F, C> fmt::Debug for CostFn<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CostFn")
    }
}

impl<F, C> sealed::Sealed for CostFn<F, C> {}

impl<T, F: FnMut(&T) -> u32, C: PerItem<T>> PerItem<T> for CostFn<F, C> {
    const COSTED: bool = true;
    const KEYED: bool = C::KEYED;

    #[inline]
    fn cost(&mut self, item: &T) -> u32 {
        (self.0)(item)
    }

    #[inline]
    fn keys(&mut self, item: &T, out: &mut Vec<Arc<dyn Admit>>) {
        self.1.keys(item, out);
    }
}

/// A keyed limiter and the key closure given to [`Lane::limiter_by`](crate::Lane::limiter_by),
/// over what was set before (`C`).
///
/// ```
/// use tasklane::{prelude::*, Limiter};
/// let per_host = Limiter::keyed::<String>().concurrency(2);
/// let lane = ["a/1", "b/1"].lane(2).limiter_by(&per_host, |url: &&str| url[..1].to_owned());
/// let _: &tasklane::Lane<_, _, _, tasklane::mode::KeyFn<String, _>> = &lane;
/// ```
pub struct KeyFn<K, F, C = Unit> {
    pub(crate) limiter: KeyedLimiter<K>,
    pub(crate) key: F,
    pub(crate) inner: C,
}

impl<K, F, C> fmt::Debug for KeyFn<K, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFn")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<K, F, C> sealed::Sealed for KeyFn<K, F, C> {}

impl<T, K, F, C> PerItem<T> for KeyFn<K, F, C>
where
    K: Hash + Eq + Clone + Send + 'static,
    F: FnMut(&T) -> K,
    C: PerItem<T>,
{
    const COSTED: bool = C::COSTED;
    const KEYED: bool = true;

    #[inline]
    fn cost(&mut self, item: &T) -> u32 {
        self.inner.cost(item)
    }

    #[inline]
    fn keys(&mut self, item: &T, out: &mut Vec<Arc<dyn Admit>>) {
        self.inner.keys(item, out);
        out.push(self.limiter.entry((self.key)(item)));
    }
}

/// The attempt maker of the helpers in [`gather`](mod@crate::gather): the input items are the futures,
/// as with [`Identity`], and an output for which `stops` is true stops the input (the engine pulls
/// nothing more: futures not started yet are never made or polled).
pub(crate) struct Until<Fut: Future> {
    stops: fn(&Fut::Output) -> bool,
}

impl<Fut: Future> Until<Fut> {
    pub(crate) fn new(stops: fn(&Fut::Output) -> bool) -> Self {
        Until { stops }
    }
}

impl<Fut: Future> fmt::Debug for Until<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Until").finish_non_exhaustive()
    }
}

impl<Fut: Future> Maker for Until<Fut> {
    type Item = Fut;
    type Fut = Fut;

    #[inline]
    fn make(&mut self, item: Fut) -> Fut {
        item
    }
}

impl<Fut: Future> sealed::Again for Until<Fut> {
    const STOPS: bool = true;

    fn again(&self, _: &Fut) -> Fut {
        unreachable!("tasklane: `gather` and its relatives never retry")
    }

    #[inline]
    fn stops(&self, output: &Fut::Output) -> bool {
        (self.stops)(output)
    }
}

/// The output of the attempts that `Mk` makes.
type AttemptOf<Mk> = <<Mk as Maker>::Fut as Future>::Output;

/// What a [`LaneStream`](crate::LaneStream) does per item: an attempt maker, a kind of lane, and what
/// it does with its progress ([`progress`](crate::progress)).
///
/// ```
/// use tasklane::prelude::*;
/// let stream = [1].lane(1).map_async(|x| async move { x });
/// let _: &tasklane::LaneStream<_, tasklane::mode::Task<_, tasklane::mode::Plain>> = &stream;
/// ```
pub struct Task<Mk, P, G = Silent>
where
    Mk: Maker,
    P: Settles<<Mk::Fut as Future>::Output>,
{
    pub(crate) maker: Mk,
    pub(crate) policy: P,
    pub(crate) progress: G,
    /// How the policy calls its closures (made by the terminal, see `sealed::Steps`).
    pub(crate) calls: <P as sealed::Steps<AttemptOf<Mk>>>::Calls,
}

impl<Mk, P, G> Task<Mk, P, G>
where
    Mk: Maker,
    P: Runs<AttemptOf<Mk>>,
{
    /// The task of a lane whose futures' error type is known to be the lane's own.
    pub(crate) fn new(maker: Mk, policy: P, progress: G) -> Self {
        Task {
            maker,
            policy,
            progress,
            calls: <P as sealed::Arms<AttemptOf<Mk>>>::calls(),
        }
    }
}

impl<Mk, P, G> fmt::Debug for Task<Mk, P, G>
where
    Mk: Maker,
    P: Settles<AttemptOf<Mk>> + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<Mk, P, G> engine::Reports for Task<Mk, P, G>
where
    Mk: Maker,
    P: Settles<AttemptOf<Mk>>,
    G: Reporter,
{
    const REPORTS: bool = G::ENABLED;

    #[inline]
    fn report(&mut self, progress: &Progress) {
        self.progress.report(progress)
    }
}

/// What a [`LaneStream`](crate::LaneStream) `M` does per item, as the bounds of `LaneStream` and
/// [`ForEachAsync`](crate::ForEachAsync) name it: implemented for every [`Task`] that
/// [`map_async`](crate::Lane::map_async) and [`run`](crate::Lane::run) make. Sealed.
///
/// You need it only to write code generic over a lane's output stream; `M::Item` is the input item
/// and `M::Output` the item that the stream yields.
///
/// ```
/// use futures::{Stream, StreamExt};
/// use tasklane::{mode::TaskMode, prelude::*, LaneStream};
///
/// async fn count<St, M>(lane: LaneStream<St, M>) -> usize
/// where
///     St: Stream,
///     M: TaskMode<Item = St::Item>,
/// {
///     lane.count().await
/// }
/// # futures::executor::block_on(async {
/// assert_eq!(count((0..5).lane(2).map_async(|x| async move { x })).await, 5);
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not what a `LaneStream` runs",
    note = "a `LaneStream` comes from `map_async` or `run`: the errors at that call say what is missing"
)]
pub trait TaskMode: engine::Mode {}

#[allow(unknown_or_malformed_diagnostic_attributes)] // reason: see `Takes for Retrying`
#[diagnostic::do_not_recommend]
impl<M: engine::Mode> TaskMode for M {}

/// Every lane's engine mode: the maker makes the attempts, the kind of lane settles them. Its only
/// bounds hold whatever the lifetimes in the types (see `sealed::Steps`).
impl<Mk, P, G> engine::Mode for Task<Mk, P, G>
where
    Mk: sealed::Again,
    P: Settles<AttemptOf<Mk>>,
    G: Reporter,
{
    type Item = Mk::Item;
    type Keep = <P as sealed::Steps<AttemptOf<Mk>>>::Keep<Mk::Item>;
    type Fut = Mk::Fut;
    type Output = <P as sealed::Steps<AttemptOf<Mk>>>::Output;
    type Meta = <P as sealed::Steps<AttemptOf<Mk>>>::Meta<Mk::Item>;
    const TIMED: bool = <P as sealed::Steps<AttemptOf<Mk>>>::TIMED;
    const STOPS: bool = <Mk as sealed::Again>::STOPS;
    const COSTED: bool = <Mk as sealed::Again>::COSTED;
    const KEYED: bool = <Mk as sealed::Again>::KEYED;

    #[inline]
    fn stops(&self, output: &AttemptOf<Mk>) -> bool {
        sealed::Again::stops(&self.maker, output)
    }

    #[inline]
    fn cost(&mut self, item: &Mk::Item) -> u32 {
        sealed::Again::cost(&mut self.maker, item)
    }

    #[inline]
    fn keys(&mut self, item: &Mk::Item, out: &mut Vec<Arc<dyn Admit>>) {
        sealed::Again::keys(&mut self.maker, item, out);
    }

    #[inline]
    fn start(&mut self, item: Mk::Item) -> (Option<Self::Keep>, Mk::Fut) {
        P::start(&mut self.maker, item)
    }

    #[inline]
    fn restart(&mut self, keep: &Self::Keep) -> Mk::Fut {
        P::restart(&mut self.maker, keep)
    }

    // NOTE: always inlined: on every item's path, and left out of line by LLVM in a limited lane's
    // larger loop (26 instructions per item, callgrind).
    #[inline(always)]
    fn settle(
        &mut self,
        outcome: Outcome<AttemptOf<Mk>>,
        attempts: u32,
        index: usize,
    ) -> Settle<Self::Output> {
        self.policy.settle(&self.calls, outcome, attempts, index)
    }

    #[inline]
    fn backoff(&mut self, attempts: u32, prev: Option<u64>, hint: Option<Duration>) -> u64 {
        self.policy.backoff(attempts, prev, hint)
    }

    #[inline]
    fn succeeded(output: &Self::Output) -> bool {
        P::succeeded(output)
    }
}

impl<O> sealed::Steps<O> for Plain {
    type Output = O;
    type Keep<T> = ();
    type Meta<T> = engine::Single;
    type Calls = ();
    const TIMED: bool = false;

    #[inline]
    fn start<Mk: sealed::Again>(maker: &mut Mk, item: Mk::Item) -> (Option<()>, Mk::Fut) {
        (None, maker.make(item))
    }

    fn restart<Mk: sealed::Again>(_: &mut Mk, _: &()) -> Mk::Fut {
        unreachable!("tasklane: a plain lane never retries")
    }

    #[inline(always)]
    fn settle(&mut self, _: &(), outcome: Outcome<O>, _: u32, _: usize) -> Settle<O> {
        match outcome {
            Outcome::Finished(output) => Settle::Done(output),
            Outcome::TimedOut => unreachable!("tasklane: a plain lane has no timeout"),
            Outcome::Refused(_) => unreachable!("tasklane: a plain lane's items are never refused"),
        }
    }

    fn backoff(&mut self, _: u32, _: Option<u64>, _: Option<Duration>) -> u64 {
        0
    }

    /// A plain lane's outputs are the user's own: each counts as a success.
    #[inline]
    fn succeeded(_: &O) -> bool {
        true
    }
}

// The lane's own error type `E0` is not tied to the futures' `E` (see `sealed::Steps`).
impl<E0, U, E> sealed::Steps<Result<U, E>> for Timed<E0> {
    type Output = Result<U, Error<E>>;
    type Keep<T> = ();
    type Meta<T> = engine::Single;
    type Calls = ();
    const TIMED: bool = true;

    #[inline]
    fn start<Mk: sealed::Again>(maker: &mut Mk, item: Mk::Item) -> (Option<()>, Mk::Fut) {
        (None, maker.make(item))
    }

    fn restart<Mk: sealed::Again>(_: &mut Mk, _: &()) -> Mk::Fut {
        unreachable!("tasklane: a lane without retry never retries")
    }

    #[inline]
    fn settle(
        &mut self,
        _: &(),
        outcome: Outcome<Result<U, E>>,
        attempts: u32,
        index: usize,
    ) -> Settle<Self::Output> {
        Settle::Done(match outcome {
            Outcome::Finished(Ok(value)) => Ok(value),
            Outcome::Finished(Err(e)) => Err(Error::task(e, attempts, index)),
            Outcome::TimedOut => Err(Error::timeout(attempts, index)),
            Outcome::Refused(refusal) => Err(Error::refused(refusal, attempts, index)),
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

// The lane's own error type `E0` is not tied to the futures' `E`, and `R` and `H` are called through
// `calls` (see `sealed::Steps`).
impl<E0, R, H, U, E> sealed::Steps<Result<U, E>> for Retrying<E0, R, H> {
    type Output = Result<U, Error<E>>;
    type Keep<T> = T;
    type Meta<T> = engine::Retried<T>;
    type Calls = sealed::RetryCalls<R, H, E>;
    const TIMED: bool = true;

    #[inline]
    fn start<Mk: sealed::Again>(maker: &mut Mk, item: Mk::Item) -> (Option<Mk::Item>, Mk::Fut) {
        let fut = maker.make(maker.again(&item));
        (Some(item), fut)
    }

    fn restart<Mk: sealed::Again>(maker: &mut Mk, item: &Mk::Item) -> Mk::Fut {
        maker.make(maker.again(item))
    }

    fn settle(
        &mut self,
        calls: &Self::Calls,
        outcome: Outcome<Result<U, E>>,
        attempts: u32,
        index: usize,
    ) -> Settle<Self::Output> {
        let error = match outcome {
            Outcome::Finished(Ok(value)) => return Settle::Done(Ok(value)),
            Outcome::Finished(Err(e)) => Error::task(e, attempts, index),
            Outcome::TimedOut => Error::timeout(attempts, index),
            // A refusal is final: the limiter said no, not the task.
            Outcome::Refused(refusal) => {
                return Settle::Done(Err(Error::refused(refusal, attempts, index)))
            }
        };
        // NOTE: `attempts == u32::MAX` ends `retry(u32::MAX)`, whose `retries + 1` attempts a `u32`
        // count cannot hold: it makes `u32::MAX` attempts (documented on `retry`).
        if attempts > self.retries
            || attempts == u32::MAX
            || !(calls.retry_if)(&mut self.retry_if, &error)
        {
            return Settle::Done(Err(error));
        }
        let hint = error
            .inner()
            .and_then(|e| (calls.retry_after)(&mut self.retry_after, e));
        Settle::Retry { hint }
    }

    fn backoff(&mut self, attempts: u32, prev: Option<u64>, hint: Option<Duration>) -> u64 {
        let max = crate::backoff::nanos(self.backoff.max_delay());
        if let Some(hint) = hint {
            return crate::backoff::nanos(hint).min(max);
        }
        let backoff = &self.backoff;
        let rng = self.rng.get_or_insert_with(|| backoff.rng());
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
        Task::new(
            MapFn::new::<Retrying<()>>(|_| std::future::ready(Err(())), Unit),
            Retrying::new(retries),
            Silent,
        )
    }

    /// `retry(u32::MAX)` cannot make `retries + 1` attempts (a `u32` count cannot hold them): it
    /// stops at `u32::MAX`, and the per-slot counter saturates instead of wrapping to 0.
    #[test]
    fn retry_u32_max_stops_at_u32_max_attempts() {
        let mut task = retrying(u32::MAX);
        assert!(matches!(
            task.settle(Outcome::Finished(Err(())), u32::MAX - 1, 0),
            Settle::Retry { .. }
        ));
        match task.settle(Outcome::Finished(Err(())), u32::MAX, 9) {
            Settle::Done(Err(e)) => assert_eq!((e.attempts(), e.index()), (u32::MAX, 9)),
            other => panic!("expected the final error, got {other:?}"),
        }
        let mut meta = engine::Retried::<u8>::default();
        meta.begin(Some(7), 3);
        assert_eq!(meta.index(), 3);
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
                task.settle(Outcome::Finished(Err(())), retries, 0),
                Settle::Retry { .. }
            ));
            assert!(matches!(
                task.settle(Outcome::Finished(Err(())), retries + 1, 0),
                Settle::Done(Err(_))
            ));
        }
    }
}
