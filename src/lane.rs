//! The [`Lane`] builder: plain configuration data. The behaviour lives in the engine.

use std::fmt;
use std::future::Future;
use std::hash::Hash;

use futures_core::Stream;

use crate::config::{Config, Configure, Internal};
use crate::engine::{Engine, Mode, Timers};
use crate::limit::KeyedLimiter;
use crate::mode::{
    CostFn, Identity, KeyFn, Maker, MapFn, Once, PerItem, Plain, Runs, Takes, Task, Unit, Until,
};
use crate::progress::{Progress, Report, Reporter, Silent};
use crate::{LaneStream, MapAsync, Run};

/// A builder for a bounded-concurrency run over a stream's items.
///
/// Made by [`lane`](crate::LaneExt::lane) on a stream or [`lane`](crate::IterLaneExt::lane) on an
/// iterator, or by [`lane_with`](crate::LaneExt::lane_with) from a [`Policy`](crate::Policy). Its
/// setters are those of [`Configure`], which a policy has too (in scope through
/// `use tasklane::prelude::*;`); [`on_progress`](Lane::on_progress) is a lane's own. Each setter
/// takes and returns the builder by value; a terminal, [`map_async`](Lane::map_async) or
/// [`run`](Lane::run), turns it into the output stream. `P` is the kind of lane so far
/// ([`mode`](crate::mode)): [`timeout`](Configure::timeout) and [`retry`](Configure::retry) change
/// it, because they change the output type (see [# Kinds](Configure#kinds)).
///
/// # Default
///
/// - outputs in completion order (see [`ordered`](Configure::ordered));
/// - no timeout, no retry: each item's future runs once and its output is yielded unchanged;
/// - with [`retry`](Configure::retry): the backoff is `Backoff::default()` (exponential from 100
///   ms, factor 2, capped at 30 s, full jitter), every failure is retried (timeouts too), and no
///   error gives its own delay;
/// - no rate limit (with [`rate`](Configure::rate): burst 1, the catch-up schedule rather than
///   [`strict_rate`](Configure::strict_rate)), no progress callback.
///
/// # Order
///
/// How the parts compose, per item:
///
/// 1. **Limit.** An item is pulled from the input only when one of the `limit` slots is free, and
///    it keeps its slot until its final outcome has been yielded: through every attempt, every
///    back-off sleep, and while its output waits for its turn in [`ordered`](Configure::ordered)
///    mode. So `limit` bounds items in progress, not attempts executing.
/// 2. **Rate.** With [`rate`](Configure::rate), every attempt (the first and each retry) waits for
///    a permit before it starts, while its item holds the slot. A new item is not even pulled from
///    the input before its permit (no read-ahead); retries waiting for a permit go first, oldest
///    first.
/// 3. **Attempt.** Each attempt calls `f(item.clone())` (with retry) or `f(item)`, and polls the
///    future at once.
/// 4. **Timeout** is per attempt: it covers the attempt's future only, never the rate-limit wait or
///    the back-off before it. When it expires, the attempt's future is dropped at once; the attempt
///    counts as failed with a timeout ([`Error::is_timeout`](crate::Error::is_timeout)).
/// 5. **Retry.** A failed attempt (an `Err` or a timeout) is retried while fewer than `n + 1`
///    attempts were made and [`retry_if`](Configure::retry_if) agrees. The failed attempt's future
///    is dropped before the back-off starts.
/// 6. **Back-off.** Before retry `k` (k = 0 first), the item sleeps for the error's own
///    [`retry_after`](Configure::retry_after) hint if it gives one, else a delay drawn from the
///    backoff for retry `k` (the same curve, cap and jitter band as
///    [`Backoff::delay`](crate::Backoff::delay)`(k)`); either is capped by the backoff's
///    `max_delay`. The item holds its slot meanwhile. Each lane draws its jitter from one
///    generator, so items that fail together do not retry in lockstep; with
///    [`Backoff::with_seed`](crate::Backoff::with_seed) that lane's sequence of delays is
///    reproducible. Then the next attempt goes through the rate limit (2) again.
/// 7. **Outcome.** The final `Ok`, or the last attempt's error with the number of attempts, is
///    yielded exactly once, in completion order or input order; the
///    [`on_progress`](Lane::on_progress) callback sees its snapshot just before.
///
/// # Recipes
///
/// **HTTP `Retry-After`.** Let the error carry the server's delay and hand it to
/// [`retry_after`](Configure::retry_after); retry only what is worth retrying with
/// [`retry_if`](Configure::retry_if):
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use tasklane::{prelude::*, Backoff, Error};
///
/// #[derive(Debug)]
/// enum HttpError {
///     TooManyRequests { retry_after: Duration },
///     NotFound,
/// }
///
/// async fn get(path: &str, attempt: u32) -> Result<String, HttpError> {
///     match (path, attempt) {
///         ("/missing", _) => Err(HttpError::NotFound),
///         (_, 0) => Err(HttpError::TooManyRequests { retry_after: Duration::from_millis(2) }),
///         _ => Ok(format!("body of {path}")),
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let attempts = std::cell::Cell::new(0);
/// let out: Vec<Result<String, Error<HttpError>>> = ["/a", "/missing"]
///     .lane(4)
///     .ordered()
///     .retry(3)
///     .backoff(Backoff::exponential(Duration::from_millis(1)))
///     .retry_if(|e| e.is_timeout() || matches!(e.inner(), Some(HttpError::TooManyRequests { .. })))
///     .retry_after(|e| match e {
///         HttpError::TooManyRequests { retry_after } => Some(*retry_after),
///         _ => None,
///     })
///     .map_async(|path| {
///         let attempt = attempts.get();
///         attempts.set(attempt + 1);
///         get(path, attempt)
///     })
///     .collect()
///     .await;
/// assert_eq!(out[0].as_ref().unwrap(), "body of /a");
/// assert!(matches!(out[1].as_ref().unwrap_err().inner(), Some(HttpError::NotFound)));
/// assert_eq!(out[1].as_ref().unwrap_err().attempts(), 1); // not retried
/// # });
/// ```
///
/// **Items that are not `Clone`.** Retrying calls `f` again with a clone of the item: wrap a large or
/// non-`Clone` item in an [`Arc`](std::sync::Arc), which clones cheaply:
///
/// ```
/// use std::sync::Arc;
/// use futures::StreamExt;
/// use tasklane::prelude::*;
///
/// struct Upload { bytes: Vec<u8> } // not Clone
///
/// # futures::executor::block_on(async {
/// let uploads = vec![Arc::new(Upload { bytes: vec![1, 2, 3] })];
/// let sent: Vec<Result<usize, tasklane::Error<()>>> = uploads
///     .lane(2)
///     .retry(2)
///     .map_async(|upload: Arc<Upload>| async move { Ok(upload.bytes.len()) })
///     .collect()
///     .await;
/// assert_eq!(sent, [Ok(3)]);
/// # });
/// ```
#[must_use = "a lane does nothing until a terminal (`map_async`, `run`) is called and polled"]
pub struct Lane<St, P = Plain, G = Silent, C = Unit> {
    stream: St,
    config: Config<P>,
    /// The progress callback ([`Silent`]: none).
    progress: G,
    /// What each item costs ([`Unit`]: 1; see [`Lane::cost`]).
    cost: C,
}

impl<St> Lane<St> {
    #[track_caller]
    pub(crate) fn new(stream: St, limit: usize) -> Self {
        Lane::from_config(stream, Config::new(limit))
    }
}

impl<St, P> Lane<St, P> {
    /// A lane over `stream` with a configuration made elsewhere (a [`Policy`](crate::Policy)).
    pub(crate) fn from_config(stream: St, config: Config<P>) -> Self {
        Lane {
            stream,
            config,
            progress: Silent,
            cost: Unit,
        }
    }
}

impl<St, P, G, C> Lane<St, P, G, C> {
    /// Calls `f` with a [`Progress`] snapshot once per item outcome (a success or a final failure,
    /// never per attempt), on the consumer's side, just before that outcome is yielded.
    ///
    /// The counters live in the lane, so the callback needs no synchronisation; a panic in it
    /// propagates out of `poll_next` and poisons the lane (see `# Panics` of
    /// [`map_async`](Lane::map_async)). `total` is known when the
    /// input's `size_hint` is exact at the first poll; `elapsed` runs from the first poll. A lane
    /// without a callback keeps no counters. Calling it again replaces the callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut seen = Vec::new();
    /// let out: Vec<u32> = (0..4u32)
    ///     .lane(2)
    ///     .on_progress(|p| seen.push((p.completed, p.total, p.in_flight)))
    ///     .map_async(|x| async move { x })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out.len(), 4);
    /// assert_eq!(seen.len(), 4);
    /// assert_eq!(seen[3], (4, Some(4), 0)); // the last snapshot: all done, none in flight
    /// # });
    /// ```
    pub fn on_progress<F>(self, f: F) -> Lane<St, P, Report<F>, C>
    where
        F: FnMut(&Progress),
    {
        Lane {
            stream: self.stream,
            config: self.config,
            progress: Report(f),
            cost: self.cost,
        }
    }

    /// Gives each item a cost: its attempts take `cost(&item)` units of every shared limiter's
    /// concurrency and rate ([`limiter`](Configure::limiter)) instead of 1. The closure is called
    /// once per item, when the item is pulled. Without a shared limiter the cost has no effect;
    /// the lane's own [`with_limit`](Configure::with_limit) and [`rate`](Configure::rate) count
    /// items, not units. A cost of 0 takes nothing.
    ///
    /// An item whose cost some limiter could never grant (above its concurrency, or above its
    /// burst) fails at once with an [`Error`](crate::Error) for which
    /// [`is_rejected`](crate::Error::is_rejected) is true, instead of waiting forever: so a lane
    /// with costs needs items that can fail ([`timeout`](Configure::timeout) or
    /// [`retry`](Configure::retry)); on a plain lane such an item panics (see `# Panics`).
    /// An item that waits for its units holds up the items behind it on this lane (the line is
    /// first come, first served), and is counted as in progress.
    ///
    /// # Panics
    ///
    /// On a plain lane (no `timeout` or `retry`), polling the lane panics when an item's cost is
    /// more than a limiter could ever grant: such an item has no way to fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Limiter};
    ///
    /// // 4 units at once: a job of size 3 runs beside one of size 1, never beside another 3.
    /// let memory = Limiter::new().concurrency(4);
    /// # futures::executor::block_on(async {
    /// let out: Vec<_> = [3u32, 1, 3, 5]
    ///     .lane(4)
    ///     .limiter(&memory)
    ///     .timeout(Duration::from_secs(60))
    ///     .cost(|&size| size)
    ///     .map_async(|size| async move { Ok::<u32, ()>(size) })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out.len(), 4);
    /// assert!(out.iter().any(|o| o.as_ref().is_err_and(|e| e.is_rejected())), "5 never fits in 4");
    /// # });
    /// ```
    pub fn cost<F>(self, cost: F) -> Lane<St, P, G, CostFn<F, C>>
    where
        St: Stream,
        F: FnMut(&St::Item) -> u32,
    {
        Lane {
            stream: self.stream,
            config: self.config,
            progress: self.progress,
            cost: CostFn(cost, self.cost),
        }
    }

    /// Gives each item the budget of its key in `limiter`: `key(&item)` picks it (the host of a
    /// URL, a tenant), and each key has its own concurrency and rate ([`KeyedLimiter`]). An attempt
    /// starts when the lane has a free slot and every limiter grants it: the lane's shared
    /// limiters ([`limiter`](Configure::limiter)), then the keyed ones, in the order given. The
    /// closure is called once per item, when the item is pulled. Several keyed limiters may apply
    /// (one call each).
    ///
    /// An item whose key has no room waits for it without holding up the items of other keys: an
    /// unordered lane reads ahead, pulling up to its own limit, and starts what can start (the
    /// waiting items count as in progress). An ordered lane starts its items in input order (each
    /// output waits for the ones before it anyway).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Limiter};
    ///
    /// let per_user = Limiter::keyed::<u32>().concurrency(1);
    /// # futures::executor::block_on(async {
    /// let jobs = [(1, "a"), (2, "b"), (1, "c")];
    /// let out: Vec<&str> = jobs
    ///     .lane(3)
    ///     .limiter_by(&per_user, |&(user, _)| user)
    ///     .map_async(|(_, job)| async move { job })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out.len(), 3);
    /// # });
    /// ```
    pub fn limiter_by<K, F>(
        self,
        limiter: &KeyedLimiter<K>,
        key: F,
    ) -> Lane<St, P, G, KeyFn<K, F, C>>
    where
        St: Stream,
        K: Hash + Eq + Clone + Send + 'static,
        F: FnMut(&St::Item) -> K,
    {
        Lane {
            stream: self.stream,
            config: self.config,
            progress: self.progress,
            cost: KeyFn {
                limiter: limiter.clone(),
                key,
                inner: self.cost,
            },
        }
    }

    /// Terminal: calls `f` on each item and runs the futures it returns, at most `limit` at once.
    ///
    /// Gives a [`Stream`] of the outcomes, in completion order (or input order with
    /// [`ordered`](Configure::ordered)): the futures' outputs unchanged for a plain lane, or
    /// `Result<U, Error<E>>` with [`retry`](Configure::retry) or [`timeout`](Configure::timeout)
    /// (the futures must then output `Result<U, E>`, and with retry the items must be `Clone`). `f`
    /// is called only when a slot is free. Every item yields exactly one output, unless the stream
    /// is dropped first; dropping it drops every in-flight future, timer and the input at once.
    ///
    /// # Panics
    ///
    /// A panic in `f`, in a future or in any other user code the lane runs propagates out of
    /// `poll_next` and poisons the stream: every later `poll_next` panics with a message saying it
    /// was poisoned by an earlier panic. Dropping it is always safe and drops every in-flight future
    /// once.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// async fn fetch(id: u32) -> Result<String, String> {
    ///     if id == 3 { Err(format!("no page {id}")) } else { Ok(format!("page {id}")) }
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let pages: Vec<Result<String, String>> =
    ///     (1..=4).lane(2).ordered().map_async(fetch).collect().await;
    /// assert_eq!(pages[0], Ok("page 1".to_string()));
    /// assert_eq!(pages[2], Err("no page 3".to_string()));
    /// # });
    /// ```
    pub fn map_async<F, Fut>(self, f: F) -> MapAsync<St, F, P, G, C>
    where
        St: Stream,
        F: FnMut(St::Item) -> Fut,
        Fut: Future,
        P: Takes<St::Item> + Runs<Fut::Output>,
        G: Reporter,
        C: PerItem<St::Item>,
    {
        let (lane, cost) = self.take_cost();
        let (stream, engine) = lane.map_mode(MapFn::new::<P>(f, cost));
        LaneStream::new(stream, engine)
    }

    /// The lane without its per-item costs and keys, and those (which go into the attempt maker).
    fn take_cost(self) -> (Lane<St, P, G>, C) {
        let lane = Lane {
            stream: self.stream,
            config: self.config,
            progress: self.progress,
            cost: Unit,
        };
        (lane, self.cost)
    }

    /// Builds the engine for this lane's configuration, with `maker` making each attempt.
    fn map_mode<Mk>(self, maker: Mk) -> (St, Engine<Task<Mk, P, G>>)
    where
        Mk: Maker,
        P: Runs<<Mk::Fut as Future>::Output>,
        Task<Mk, P, G>: Mode,
    {
        let config = self.config;
        let rate = config.rate();
        let timers = Timers::new(config.timeout, config.clock);
        let mode = Task::new(maker, config.policy, self.progress);
        let engine = Engine::new(
            mode,
            config.limit,
            config.ordered,
            config.window,
            timers,
            rate,
            config.limiters,
        );
        (self.stream, engine)
    }

    /// Terminal: runs the futures that the input yields, at most `limit` at once.
    ///
    /// Gives a [`Stream`] of their outputs, in completion order (or input order with
    /// [`ordered`](Configure::ordered)). A future runs once, so there is no `run` after
    /// [`retry`](Configure::retry): that does not compile. A [`timeout`](Configure::timeout) works.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let jobs = (1..=3).map(|x| async move { x * 10 });
    /// let out: Vec<i32> = jobs.lane(2).ordered().run().collect().await;
    /// assert_eq!(out, [10, 20, 30]);
    /// # });
    /// ```
    ///
    /// ```compile_fail
    /// use tasklane::prelude::*;
    /// let jobs = (1..=3).map(|x| async move { Ok::<i32, ()>(x) });
    /// let _ = jobs.lane(2).retry(3).run(); // a future cannot be retried
    /// ```
    pub fn run(self) -> Run<St, P, G, C>
    where
        St: Stream,
        St::Item: Future,
        P: Once + Runs<<St::Item as Future>::Output>,
        G: Reporter,
        C: PerItem<St::Item>,
    {
        let (lane, cost) = self.take_cost();
        let (stream, engine) = lane.map_mode(Identity::new(cost));
        LaneStream::new(stream, engine)
    }

    /// [`run`](Lane::run), with the stop-pulling hook: once an output for which `stops` is true has
    /// finished, nothing more is pulled from the input (the helpers in [`gather`](mod@crate::gather)).
    pub(crate) fn run_until(
        self,
        stops: fn(&<St::Item as Future>::Output) -> bool,
    ) -> LaneStream<St, Task<Until<St::Item>, P, G>>
    where
        St: Stream,
        St::Item: Future,
        P: Once + Runs<<St::Item as Future>::Output>,
        G: Reporter,
    {
        let (stream, engine) = self.map_mode(Until::new(stops));
        LaneStream::new(stream, engine)
    }
}

impl<St, P, G, C> Configure for Lane<St, P, G, C> {
    type Kind = P;
    type WithKind<Q> = Lane<St, Q, G, C>;

    fn config(&self, _: Internal) -> &Config<P> {
        &self.config
    }

    fn config_mut(&mut self, _: Internal) -> &mut Config<P> {
        &mut self.config
    }

    fn map_kind<Q>(self, f: impl FnOnce(P) -> Q, _: Internal) -> Lane<St, Q, G, C> {
        Lane {
            stream: self.stream,
            config: self.config.map_policy(f),
            progress: self.progress,
            cost: self.cost,
        }
    }
}

impl<St: fmt::Debug, P: fmt::Debug, G: fmt::Debug, C: fmt::Debug> fmt::Debug for Lane<St, P, G, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("stream", &self.stream)
            .field("config", &self.config)
            .field("progress", &self.progress)
            .field("cost", &self.cost)
            .finish()
    }
}
