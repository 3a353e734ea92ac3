//! [`Policy`]: a lane configuration made once and used for many runs.

use std::fmt;

use crate::config::{Config, Configure, Internal};
use crate::mode::Plain;

/// A reusable lane configuration: the setters of a [`Lane`](crate::Lane), without the input.
///
/// Its setters are those of [`Configure`], which a lane has too: `ordered`, `window`, `with_limit`,
/// `rate`, `burst`, `strict_rate`, `timeout`, `retry`, `backoff`, `retry_if`, `retry_after` (and
/// `with_clock` with the `test-util` feature), in scope through `use tasklane::prelude::*;`. Start
/// a run with [`lane_with`](crate::LaneExt::lane_with) on a stream or
/// [`lane_with`](crate::IterLaneExt::lane_with) on an iterator. A policy is plain data: it is
/// `Clone` (and `Send + Sync` when its closures are), every setter validates its argument at once,
/// and deriving a variant from a clone never changes the original. Each run of a policy has its own
/// rate limiter, back-off generator and counters.
///
/// Like a lane, a policy carries its kind in its type ([`mode`](crate::mode)):
/// [`timeout`](Configure::timeout) and [`retry`](Configure::retry) change the output type of the
/// lanes made from it (see [# Kinds](Configure#kinds)). The lanes made from it name its error type,
/// so a policy needs no annotation of its own when it is used in the same function.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::TryStreamExt;
/// use tasklane::{prelude::*, Backoff, Policy};
///
/// async fn double(x: u32) -> Result<u32, std::io::Error> {
///     Ok(x * 2) // stands in for a request that can fail
/// }
///
/// # futures::executor::block_on(async {
/// let api = Policy::new(4)
///     .ordered()
///     .retry(2)
///     .backoff(Backoff::constant(Duration::from_millis(1)))
///     .timeout(Duration::from_secs(5))
///     .rate(1_000.0);
/// let bulk = api.clone().with_limit(16); // a variant: `api` is unchanged
///
/// let a: Vec<u32> = (1..=3u32).lane_with(&api).map_async(double).try_collect().await?;
/// assert_eq!(a, [2, 4, 6]);
/// assert_eq!((0..1).lane_with(&api).limit(), 4);
/// assert_eq!((0..1).lane_with(&bulk).limit(), 16);
/// # Ok::<(), tasklane::Error<std::io::Error>>(())
/// # }).unwrap();
/// ```
#[must_use = "a policy does nothing until a lane is made from it with `lane_with`"]
pub struct Policy<P = Plain> {
    pub(crate) config: Config<P>,
}

impl Policy {
    /// A policy of at most `limit` items in progress, with every other setting at its default (see
    /// [`Lane`'s defaults](crate::Lane#default)).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// ```
    /// use tasklane::{prelude::*, Policy};
    /// assert_eq!([1, 2].lane_with(&Policy::new(8)).limit(), 8);
    /// ```
    #[track_caller]
    pub fn new(limit: usize) -> Self {
        Policy {
            config: Config::new(limit),
        }
    }
}

impl<P> Policy<P> {
    /// Changes the most items in progress at once: the old name of
    /// [`with_limit`](Configure::with_limit), which a lane has too. On a lane `limit()` reads the
    /// limit; once this setter is gone, it will on a policy too (until then,
    /// `Configure::limit(&policy)`).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use tasklane::{prelude::*, Policy};
    /// let policy = Policy::new(4).limit(8); // now `Policy::new(4).with_limit(8)`
    /// assert_eq!([1].lane_with(&policy).limit(), 8);
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "renamed `with_limit(n)`, so that `limit()` is the getter on a policy as on a lane"
    )]
    #[track_caller]
    pub fn limit(self, limit: usize) -> Self {
        self.with_limit(limit)
    }
}

impl<P> Configure for Policy<P> {
    type Kind = P;
    type WithKind<Q> = Policy<Q>;

    fn config(&self, _: Internal) -> &Config<P> {
        &self.config
    }

    fn config_mut(&mut self, _: Internal) -> &mut Config<P> {
        &mut self.config
    }

    fn map_kind<Q>(self, f: impl FnOnce(P) -> Q, _: Internal) -> Policy<Q> {
        Policy {
            config: self.config.map_policy(f),
        }
    }
}

impl<P: Clone> Clone for Policy<P> {
    fn clone(&self) -> Self {
        Policy {
            config: self.config.clone(),
        }
    }
}

impl<P: fmt::Debug> fmt::Debug for Policy<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("config", &self.config)
            .finish()
    }
}
