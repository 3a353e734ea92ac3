//! [`Policy`]: a lane configuration made once and used for many runs.

use std::fmt;
use std::time::Duration;

use crate::lane::Config;
use crate::mode::{Plain, Retrying, Timed};
use crate::{Backoff, Error};

/// A reusable lane configuration: the same setters as [`Lane`](crate::Lane), without the input.
///
/// Start a run with [`lane_with`](crate::LaneExt::lane_with) on a stream or
/// [`lane_with`](crate::IterLaneExt::lane_with) on an iterator. A policy is plain data: it is
/// `Clone` (and `Send + Sync` when its closures are), every setter validates its argument at once, and
/// deriving a variant from a clone never changes the original. Each run of a policy has its own rate
/// limiter, back-off generator and counters.
///
/// Like a lane, a policy carries its kind in its type ([`mode`](crate::mode)):
/// [`timeout`](Policy::timeout) and [`retry`](Policy::retry) change the output type of the lanes made
/// from it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::TryStreamExt;
/// use tasklane::{prelude::*, Backoff, Policy};
///
/// # futures::executor::block_on(async {
/// let api = Policy::new(4)
///     .ordered()
///     .retry(2)
///     .backoff(Backoff::constant(Duration::from_millis(1)))
///     .timeout(Duration::from_secs(5))
///     .rate(1_000.0);
/// let bulk = api.clone().limit(16); // a variant: `api` is unchanged
///
/// let a: Vec<u32> = (1..=3u32)
///     .lane_with(&api)
///     .map_async(|x| async move { Ok::<u32, std::io::Error>(x * 2) })
///     .try_collect()
///     .await
///     .unwrap();
/// assert_eq!(a, [2, 4, 6]);
/// assert_eq!((0..1).lane_with(&api).limit(), 4);
/// assert_eq!((0..1).lane_with(&bulk).limit(), 16);
/// # });
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
    fn map_config<Q>(self, f: impl FnOnce(Config<P>) -> Config<Q>) -> Policy<Q> {
        Policy {
            config: f(self.config),
        }
    }

    /// Changes the most items in progress at once.
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// ```
    /// use tasklane::{prelude::*, Policy};
    /// let policy = Policy::new(4).limit(8);
    /// assert_eq!([1].lane_with(&policy).limit(), 8);
    /// ```
    #[track_caller]
    pub fn limit(mut self, limit: usize) -> Self {
        self.config = self.config.set_limit(limit);
        self
    }

    /// Outputs in input order. See [`Lane::ordered`](crate::Lane::ordered).
    ///
    /// ```
    /// use tasklane::{prelude::*, Policy};
    /// assert!([1].lane_with(&Policy::new(2).ordered()).is_ordered());
    /// ```
    pub fn ordered(mut self) -> Self {
        self.config.ordered = true;
        self
    }

    /// Outputs in input order with a reorder window of `n` finished outputs. See
    /// [`Lane::window`](crate::Lane::window).
    ///
    /// ```
    /// use tasklane::{prelude::*, Policy};
    /// assert!([1].lane_with(&Policy::new(2).window(16)).is_ordered());
    /// ```
    pub fn window(mut self, n: usize) -> Self {
        self.config.ordered = true;
        self.config.window = n;
        self
    }

    /// At most `per_second` attempt starts per second. See [`Lane::rate`](crate::Lane::rate).
    ///
    /// # Panics
    ///
    /// Panics if `per_second` is not a finite number greater than zero.
    ///
    /// ```
    /// use tasklane::Policy;
    /// let _policy = Policy::new(8).rate(0.2); // one start every 5 s
    /// ```
    #[track_caller]
    pub fn rate(mut self, per_second: f64) -> Self {
        self.config = self.config.set_rate(per_second);
        self
    }

    /// With [`rate`](Policy::rate): up to `burst` starts back to back. See
    /// [`Lane::burst`](crate::Lane::burst).
    ///
    /// # Panics
    ///
    /// Panics if `burst` is 0, or above 65,536 with [`strict_rate`](Policy::strict_rate).
    ///
    /// ```
    /// use tasklane::Policy;
    /// let _policy = Policy::new(8).rate(10.0).burst(5);
    /// ```
    #[track_caller]
    pub fn burst(mut self, burst: u32) -> Self {
        self.config = self.config.set_burst(burst);
        self
    }

    /// With [`rate`](Policy::rate): the strict schedule, at most `burst` starts in any window of
    /// `burst` periods. See [`Lane::strict_rate`](crate::Lane::strict_rate), and the default beside it
    /// in [# Schedules](crate::Lane#schedules).
    ///
    /// # Panics
    ///
    /// Panics if the burst is above 65,536, whether it was set before this call or is set after it.
    ///
    /// ```
    /// use tasklane::Policy;
    /// // A server that allows 10 requests in any second, and says 429 to the eleventh.
    /// let _policy = Policy::new(8).rate(10.0).burst(10).strict_rate();
    /// ```
    #[track_caller]
    pub fn strict_rate(mut self) -> Self {
        self.config = self.config.set_strict_rate();
        self
    }

    /// Lanes made from this policy read time from a [`ManualClock`](crate::time::ManualClock). See
    /// [`Lane::with_clock`](crate::Lane::with_clock).
    ///
    /// ```
    /// use tasklane::{time::ManualClock, Policy};
    /// let _policy = Policy::new(1).with_clock(&ManualClock::new());
    /// ```
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn with_clock(mut self, clock: &crate::time::ManualClock) -> Self {
        self.config.clock = crate::time::Clock::Manual(clock.clone());
        self
    }
}

impl Policy<Plain> {
    /// Gives each attempt at most `timeout`. See [`Lane::timeout`](crate::Lane::timeout).
    ///
    /// # Panics
    ///
    /// Panics if `timeout` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::{mode::Timed, Policy};
    /// let _policy: Policy<Timed<std::io::Error>> = Policy::new(8).timeout(Duration::from_secs(10));
    /// ```
    #[track_caller]
    pub fn timeout<E>(self, timeout: Duration) -> Policy<Timed<E>> {
        let config = self.config.set_timeout(timeout);
        Policy {
            config: config.map_policy(|_| Timed::new()),
        }
    }

    /// Retries each failed item up to `retries` times. See [`Lane::retry`](crate::Lane::retry).
    ///
    /// ```
    /// use tasklane::{mode::Retrying, Policy};
    /// let _policy: Policy<Retrying<std::io::Error>> = Policy::new(8).retry(3);
    /// ```
    pub fn retry<E>(self, retries: u32) -> Policy<Retrying<E>> {
        self.map_config(|c| c.map_policy(|_| Retrying::new(retries)))
    }
}

impl<E> Policy<Timed<E>> {
    /// Changes the per-attempt timeout.
    ///
    /// # Panics
    ///
    /// Panics if `timeout` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::Policy;
    /// let _policy = Policy::new(1).timeout::<()>(Duration::from_secs(1)).timeout(Duration::from_secs(2));
    /// ```
    #[track_caller]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.set_timeout(timeout);
        self
    }

    /// Adds retries to a policy with a timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::Policy;
    /// let _policy = Policy::new(1).timeout::<()>(Duration::from_secs(1)).retry(3);
    /// ```
    pub fn retry(self, retries: u32) -> Policy<Retrying<E>> {
        self.map_config(|c| c.map_policy(|_| Retrying::new(retries)))
    }
}

impl<E, R, H> Policy<Retrying<E, R, H>> {
    /// Changes the number of retries.
    ///
    /// ```
    /// use tasklane::Policy;
    /// let _policy = Policy::new(1).retry::<()>(3).retry(5);
    /// ```
    pub fn retry(mut self, retries: u32) -> Self {
        self.config.policy.retries = retries;
        self
    }

    /// Gives each attempt at most `timeout`.
    ///
    /// # Panics
    ///
    /// Panics if `timeout` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::Policy;
    /// let _policy = Policy::new(1).retry::<()>(3).timeout(Duration::from_secs(10));
    /// ```
    #[track_caller]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.set_timeout(timeout);
        self
    }

    /// The delay before each retry. See [`Lane::backoff`](crate::Lane::backoff).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::{Backoff, Policy};
    /// let _policy = Policy::new(1).retry::<()>(3).backoff(Backoff::constant(Duration::from_millis(10)));
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.policy.backoff = backoff;
        self
    }

    /// Decides whether a failure is retried. See [`Lane::retry_if`](crate::Lane::retry_if), whose
    /// `# Type inference` applies here too: a policy is
    /// often built before any future names its error type, so name it at `retry::<E>(n)` or on the
    /// closure's parameter when the closure calls a method of `E`.
    ///
    /// ```
    /// use tasklane::Policy;
    /// let _policy = Policy::new(1).retry::<u16>(3).retry_if(|e| e.inner().is_some_and(|s| *s >= 500));
    /// ```
    pub fn retry_if<R2>(self, retry_if: R2) -> Policy<Retrying<E, R2, H>>
    where
        R2: FnMut(&Error<E>) -> bool,
    {
        self.map_config(|c| c.map_policy(|p| p.with_retry_if(retry_if)))
    }

    /// A delay that the error itself asks for. See [`Lane::retry_after`](crate::Lane::retry_after).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::Policy;
    /// let _policy = Policy::new(1).retry(3).retry_after(|secs: &u64| Some(Duration::from_secs(*secs)));
    /// ```
    pub fn retry_after<H2>(self, retry_after: H2) -> Policy<Retrying<E, R, H2>>
    where
        H2: FnMut(&E) -> Option<Duration>,
    {
        self.map_config(|c| c.map_policy(|p| p.with_retry_after(retry_after)))
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
