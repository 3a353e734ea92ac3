//! The [`Lane`] builder: plain configuration data. The behaviour lives in the engine.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures_core::Stream;

use crate::engine::{Engine, Mode, Timers};
use crate::mode::{Identity, Maker, MapFn, Once, Plain, Retrying, Runs, Takes, Task, Timed};
use crate::progress::{Progress, Report, Reporter, Silent};
use crate::rate::Rate;
use crate::time::Clock;
use crate::{Backoff, Error, LaneStream, MapAsync, Run};

/// A builder for a bounded-concurrency run over a stream's items.
///
/// Made by [`lane`](crate::LaneExt::lane) on a stream or [`lane`](crate::IterLaneExt::lane) on an
/// iterator. Each setter takes and returns the builder by value; a terminal,
/// [`map_async`](Lane::map_async) or [`run`](Lane::run), turns it into the output stream. `P` is
/// the kind of lane so far ([`mode`](crate::mode)): [`timeout`](Lane::timeout) and
/// [`retry`](Lane::retry) change it, because they change the output type.
///
/// # Default
///
/// - outputs in completion order (see [`ordered`](Lane::ordered));
/// - no timeout, no retry: each item's future runs once and its output is yielded unchanged;
/// - with [`retry`](Lane::retry): the backoff is `Backoff::default()` (exponential from 100 ms,
///   factor 2, capped at 30 s, full jitter), every failure is retried (timeouts too), and no error
///   gives its own delay;
/// - no rate limit (with [`rate`](Lane::rate): burst 1, the catch-up schedule rather than
///   [`strict_rate`](Lane::strict_rate)), no progress callback.
///
/// # Order
///
/// How the parts compose, per item:
///
/// 1. **Limit.** An item is pulled from the input only when one of the `limit` slots is free, and it
///    keeps its slot until its final outcome has been yielded: through every attempt, every back-off
///    sleep, and while its output waits for its turn in [`ordered`](Lane::ordered) mode. So `limit`
///    bounds items in progress, not attempts executing.
/// 2. **Rate.** With [`rate`](Lane::rate), every attempt (the first and each retry) waits for a
///    permit before it starts, while its item holds the slot. A new item is not even pulled from the
///    input before its permit (no read-ahead); retries waiting for a permit go first, oldest first.
/// 3. **Attempt.** Each attempt calls `f(item.clone())` (with retry) or `f(item)`, and polls the
///    future at once.
/// 4. **Timeout** is per attempt: it covers the attempt's future only, never the rate-limit wait or
///    the back-off before it. When it expires, the attempt's future is dropped at once; the attempt
///    counts as failed with a timeout ([`Error::is_timeout`]).
/// 5. **Retry.** A failed attempt (an `Err` or a timeout) is retried while fewer than `n + 1`
///    attempts were made and [`retry_if`](Lane::retry_if) agrees. The failed attempt's future is
///    dropped before the back-off starts.
/// 6. **Back-off.** Before retry `k` (k = 0 first), the item sleeps for the error's own
///    [`retry_after`](Lane::retry_after) hint if it gives one, else a delay drawn from the backoff
///    for retry `k` (the same curve, cap and jitter band as [`Backoff::delay`]`(k)`); either is
///    capped by the backoff's `max_delay`. The item holds its slot meanwhile. Each lane draws its
///    jitter from one generator, so items that fail together do not retry in lockstep; with
///    [`Backoff::with_seed`] that lane's sequence of delays is reproducible. Then the next attempt
///    goes through the rate limit (2) again.
/// 7. **Outcome.** The final `Ok`, or the last attempt's error with the number of attempts, is
///    yielded exactly once, in completion order or input order; the
///    [`on_progress`](Lane::on_progress) callback sees its snapshot just before.
///
/// # Recipes
///
/// **HTTP `Retry-After`.** Let the error carry the server's delay and hand it to
/// [`retry_after`](Lane::retry_after); retry only what is worth retrying with
/// [`retry_if`](Lane::retry_if):
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
pub struct Lane<St, P = Plain, G = Silent> {
    stream: St,
    config: Config<P>,
    /// The progress callback ([`Silent`]: none).
    progress: G,
}

/// What a [`Lane`] and a [`Policy`](crate::Policy) hold besides the input: plain data, validated by
/// each setter. The kind-changing setters live here once, for both.
#[derive(Clone, Debug)]
pub(crate) struct Config<P> {
    pub(crate) limit: usize,
    pub(crate) ordered: bool,
    /// Finished outputs an ordered lane may hold outside its slots (0: none).
    pub(crate) window: usize,
    /// The per-attempt timeout (`None`: none). Never zero.
    pub(crate) timeout: Option<Duration>,
    /// The rate limit's period in nanoseconds (`None`: no rate limit).
    pub(crate) period: Option<u64>,
    /// Starts allowed back to back under the rate limit (at least 1; at most
    /// [`STRICT_BURST_MAX`](crate::rate::STRICT_BURST_MAX) when `strict`).
    pub(crate) burst: u32,
    /// The strict schedule: at most `burst` starts in any window of `burst` periods.
    pub(crate) strict: bool,
    pub(crate) clock: Clock,
    pub(crate) policy: P,
}

impl Config<Plain> {
    #[track_caller]
    pub(crate) fn new(limit: usize) -> Self {
        Config {
            limit: check_limit(limit),
            ordered: false,
            window: 0,
            timeout: None,
            period: None,
            burst: 1,
            strict: false,
            clock: Clock::default(),
            policy: Plain,
        }
    }
}

#[track_caller]
fn check_limit(limit: usize) -> usize {
    assert!(limit > 0, "tasklane: `limit` must be at least 1, got 0");
    limit
}

impl<P> Config<P> {
    /// The same configuration with its kind changed by `f`.
    pub(crate) fn map_policy<Q>(self, f: impl FnOnce(P) -> Q) -> Config<Q> {
        Config {
            limit: self.limit,
            ordered: self.ordered,
            window: self.window,
            timeout: self.timeout,
            period: self.period,
            burst: self.burst,
            strict: self.strict,
            clock: self.clock,
            policy: f(self.policy),
        }
    }

    #[track_caller]
    pub(crate) fn set_limit(mut self, limit: usize) -> Self {
        self.limit = check_limit(limit);
        self
    }

    #[track_caller]
    pub(crate) fn set_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "tasklane: `timeout` must be greater than zero, got {timeout:?}"
        );
        self.timeout = Some(timeout);
        self
    }

    #[track_caller]
    pub(crate) fn set_rate(mut self, per_second: f64) -> Self {
        self.period = Some(Rate::period(per_second));
        self
    }

    #[track_caller]
    pub(crate) fn set_burst(mut self, burst: u32) -> Self {
        self.burst = Rate::check_burst(burst, self.strict);
        self
    }

    #[track_caller]
    pub(crate) fn set_strict_rate(mut self) -> Self {
        self.burst = Rate::check_burst(self.burst, true);
        self.strict = true;
        self
    }

    fn rate(&self) -> Option<Rate> {
        self.period.map(|period| Rate {
            period,
            burst: self.burst,
            strict: self.strict,
        })
    }
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
        }
    }
}

impl<St, P, G> Lane<St, P, G> {
    /// The same lane with its configuration changed by `f` (the one place that rebuilds a `Lane`).
    fn map_config<Q>(self, f: impl FnOnce(Config<P>) -> Config<Q>) -> Lane<St, Q, G> {
        Lane {
            stream: self.stream,
            config: f(self.config),
            progress: self.progress,
        }
    }

    fn map_policy<Q>(self, f: impl FnOnce(P) -> Q) -> Lane<St, Q, G> {
        self.map_config(|config| config.map_policy(f))
    }

    fn with_policy<Q>(self, policy: Q) -> Lane<St, Q, G> {
        self.map_policy(|_| policy)
    }

    #[track_caller]
    fn set_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.set_timeout(timeout);
        self
    }

    /// Yields outputs in input order instead of completion order.
    ///
    /// A finished output waits until every earlier item has been yielded. Memory stays bounded by the
    /// limit: at most `limit` items are outstanding between the oldest unfinished one and the newest
    /// started one, so a slow head of the line holds back new starts (as futures-util's `buffered`).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::channel::oneshot;
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let (tx0, rx0) = oneshot::channel::<u8>();
    /// let (tx1, rx1) = oneshot::channel::<u8>();
    /// let mut out = vec![rx0, rx1].lane(2).ordered().map_async(|rx| async { rx.await.unwrap() });
    /// tx1.send(1).unwrap(); // the second finishes first...
    /// tx0.send(0).unwrap();
    /// assert_eq!(out.next().await, Some(0)); // ...but the first comes out first
    /// assert_eq!(out.next().await, Some(1));
    /// # });
    /// ```
    pub fn ordered(mut self) -> Self {
        self.config.ordered = true;
        self
    }

    /// Yields outputs in input order, like [`ordered`](Lane::ordered), with a reorder window of `n`:
    /// up to `n` finished outputs wait for their turn outside the slots, so that a slow item holds
    /// back the outputs after it but not the starts after it.
    ///
    /// Plain `ordered()` keeps each finished output in its slot until every earlier item has been
    /// yielded: behind one slow item, the other slots fill with finished outputs and nothing new
    /// starts, so the lane runs fewer than `limit` items at once. With a window, a finished output
    /// that cannot be yielded yet moves into the window (while it has room) and its slot takes the
    /// next item. The trade-off is memory: at most `limit + n` items are pulled and not yet yielded
    /// (`limit` in flight and `n` finished), against `limit` without a window, and the input is read
    /// ahead of the consumer by up to `n` items. `window(0)` is plain `ordered()`.
    ///
    /// How large a window to give: enough for the outputs that finish while the slowest item runs.
    /// With one slow item in 16 (20 ticks among items of 1 tick), `limit` 4, 64 items on a fake
    /// clock (the test `a_reorder_window_lets_the_lane_run_past_a_slow_item` in `tests/lane.rs`):
    ///
    /// | | ticks | most pulled and not yet yielded |
    /// |---|---|---|
    /// | unordered | 44 | 4 |
    /// | `ordered()` | 92 | 4 |
    /// | `window(4)` | 88 | 8 |
    /// | `window(16)` | 54 | 20 |
    /// | `window(48)` | 44 | 40 |
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::channel::oneshot;
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let (slow_tx, slow_rx) = oneshot::channel::<u8>();
    /// let mut slow = Some(slow_rx);
    /// let mut out = (0..4u8)
    ///     .lane(2)
    ///     .window(8)
    ///     .map_async(|i| {
    ///         let slow = if i == 0 { slow.take() } else { None };
    ///         async move {
    ///             if let Some(rx) = slow {
    ///                 rx.await.unwrap();
    ///             }
    ///             i
    ///         }
    ///     });
    /// // Item 0 is slow; items 1, 2 and 3 finish and wait in the window, each freeing its slot.
    /// assert!(futures::poll!(out.next()).is_pending());
    /// assert_eq!(out.in_progress(), 4);
    /// slow_tx.send(0).unwrap();
    /// assert_eq!(out.collect::<Vec<_>>().await, [0, 1, 2, 3]);
    /// # });
    /// ```
    pub fn window(mut self, n: usize) -> Self {
        self.config.ordered = true;
        self.config.window = n;
        self
    }

    /// The most items in progress at once.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// assert_eq!([1, 2, 3].lane(8).limit(), 8);
    /// ```
    pub fn limit(&self) -> usize {
        self.config.limit
    }

    /// Whether outputs come in input order.
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// assert!([1, 2, 3].lane(8).ordered().is_ordered());
    /// ```
    pub fn is_ordered(&self) -> bool {
        self.config.ordered
    }

    /// Starts at most `per_second` attempts per second, retries included.
    ///
    /// The limiter works in integer nanoseconds, with the period `T = ⌈1 s / per_second⌉` and the
    /// [`burst`](Lane::burst) `b` (default 1): the first start is immediate, up to `b` starts may
    /// come back to back, and start `k` (from 0) is never earlier than `t0 + (k - b + 1) T` after
    /// the first one at `t0`. Idle time earns no credit beyond the burst. Rates below one per second
    /// are fine (`0.2` is one start every 5 s).
    ///
    /// Where it applies (see [# Order](Lane#order)): before every attempt, while the item holds its
    /// slot, and before the attempt's [`timeout`](Lane::timeout) starts. A new item is pulled from the
    /// input only once its start is allowed, so nothing is read ahead while the lane waits; a retry
    /// whose back-off is over waits in line (oldest first) and goes before new items. Each run has its
    /// own limiter.
    ///
    /// # Schedules
    ///
    /// Timers wake up late (futures-timer by tens of microseconds, tokio by up to a millisecond), so
    /// after a late wake-up a limiter must choose between catching up (holding the rate) and holding
    /// every window. The default catches up; [`strict_rate`](Lane::strict_rate) holds every window:
    ///
    /// | | catch-up (the default) | strict ([`strict_rate`](Lane::strict_rate)) |
    /// |---|---|---|
    /// | algorithm | GCRA | the times of the last `b` starts (a sliding-window log) |
    /// | promise | start `k` no earlier than `t0 + (k - b + 1) T`: never above the rate over a run | at most `b` starts in any window of `b T` (`b / per_second` s); with `b = 1`, starts at least `T` apart |
    /// | a window of `b T` may hold | up to `2b - 1` starts (a burst, then one per period), and more while it catches up (two at one instant even with `b = 1`); at `rate(100.0)`, a 100 ms window can hold 11 starts and a second 101 | at most `b` starts (so at `rate(100.0)`, at most 10 in any 100 ms and 100 in any second) |
    /// | a timer that wakes late | releases at once every start the schedule allowed meanwhile (up to 5 ms late): the rate holds, even at 100,000 per second | releases only the starts whose window has passed: the lateness is lost (with `b = 1`, on every start); a burst lets one wake-up release up to `b` |
    /// | choose it for | throughput: a quota over time, protecting your own resources | a server that enforces a sliding window and answers 429 at the margin |
    ///
    /// In the catch-up schedule, while work waits for the limiter, the schedule, not the timer, sets
    /// the pace. A lane that nothing waited on (idle, or held up by its limit), or whose schedule fell
    /// more than 5 ms behind (its consumer stopped polling it for a while), restarts the schedule from
    /// the present: such a pause earns no credit beyond the burst. The strict schedule needs no such
    /// rule: a start is allowed exactly when the oldest of the last `b` is `b T` in the past.
    ///
    /// Rates above 10⁹ per second are one start per nanosecond; a period so long that the burst's
    /// tolerance (or the strict window) would not fit in 2⁶⁴ ns means no further start within that
    /// time. Because the input is not read before a permit, a rate-limited lane learns that its input
    /// has ended either from the input's `size_hint` (an exact one, as iterators and closed channels
    /// give, ends the lane with its last output) or only at the next permit.
    ///
    /// # Panics
    ///
    /// Panics if `per_second` is not a finite number greater than zero (0, negative, NaN or
    /// infinite).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let t0 = Instant::now();
    /// let starts: Vec<Duration> = (0..5)
    ///     .lane(5)
    ///     .rate(100.0) // one start every 10 ms
    ///     .map_async(|_| async move { t0.elapsed() })
    ///     .collect()
    ///     .await;
    /// assert!(starts[4] >= Duration::from_millis(39)); // the fifth start waited four periods
    /// # });
    /// ```
    #[track_caller]
    pub fn rate(mut self, per_second: f64) -> Self {
        self.config = self.config.set_rate(per_second);
        self
    }

    /// With [`rate`](Lane::rate): up to `burst` starts may come back to back (default 1). Without a
    /// rate it has no effect. With [`strict_rate`](Lane::strict_rate), it is also the most starts in
    /// any window of `burst` periods.
    ///
    /// # Panics
    ///
    /// Panics if `burst` is 0, or above 65,536 with [`strict_rate`](Lane::strict_rate).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let t0 = Instant::now();
    /// let mut starts: Vec<Duration> = (0..6)
    ///     .lane(6)
    ///     .rate(50.0) // 20 ms apart...
    ///     .burst(5) // ...after 5 at once
    ///     .map_async(|_| async move { t0.elapsed() })
    ///     .collect()
    ///     .await;
    /// starts.sort();
    /// assert!(starts[4] < Duration::from_millis(20));
    /// assert!(starts[5] >= Duration::from_millis(19));
    /// # });
    /// ```
    #[track_caller]
    pub fn burst(mut self, burst: u32) -> Self {
        self.config = self.config.set_burst(burst);
        self
    }

    /// With [`rate`](Lane::rate): the strict schedule, for servers that enforce a sliding window.
    /// Never more than `b` starts in any window of `b` periods (`b / per_second` seconds), where `b`
    /// is the [`burst`](Lane::burst), however late the timer wakes; with burst 1, any two starts are
    /// at least one period apart. Without a rate it has no effect; the order of the setters does
    /// not matter.
    ///
    /// The default schedule catches up after a late timer wake-up, which is how it holds 100,000
    /// starts per second, and so lets a window of `b` periods hold more than `b` starts. The strict
    /// one never does, and pays in throughput each time the timer wakes late: see the two side by
    /// side in [# Schedules](Lane#schedules). At high rates, give it a burst: one late wake-up then
    /// releases up to `b` starts, so lateness costs a share of the window instead of a whole period.
    /// Measured at 100,000 starts per second on futures-timer (BENCHMARKS.md, on a loaded 2-core
    /// VM): burst 1 kept 9–14 % of the rate (governor 7–9 %), burst 10 44–48 %, burst 100 83–88 %,
    /// and the default 93–99.5 %.
    ///
    /// The lane keeps the time of each of the last `b` starts: 8 bytes apiece, allocated once when
    /// the terminal makes the run, never per item.
    ///
    /// # Panics
    ///
    /// Panics if the burst is above 65,536 (512 KiB of start times per run; a `u32` burst could ask
    /// for 32 GiB), whether it was set before this call or is set after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let t0 = Instant::now();
    /// let mut starts: Vec<Duration> = (0..6)
    ///     .lane(6)
    ///     .rate(100.0) // 10 ms periods...
    ///     .burst(2) // ...so at most 2 starts in any 20 ms
    ///     .strict_rate()
    ///     .map_async(|_| async move { t0.elapsed() })
    ///     .collect()
    ///     .await;
    /// starts.sort();
    /// // Two at once, then two more when the first two are 20 ms old (the default schedule starts
    /// // the third at 10 ms: three in the first 20 ms).
    /// assert!(starts[1] < Duration::from_millis(10));
    /// assert!(starts[2] >= Duration::from_millis(20));
    /// assert!(starts[4] >= Duration::from_millis(40));
    /// # });
    /// ```
    #[track_caller]
    pub fn strict_rate(mut self) -> Self {
        self.config = self.config.set_strict_rate();
        self
    }

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
    pub fn on_progress<F>(self, f: F) -> Lane<St, P, Report<F>>
    where
        F: FnMut(&Progress),
    {
        Lane {
            stream: self.stream,
            config: self.config,
            progress: Report(f),
        }
    }

    /// Reads time from a [`ManualClock`](crate::time::ManualClock) instead of the system clock, so
    /// that timeouts and back-offs can be tested without sleeping.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, time::ManualClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new();
    /// let mut out = [()]
    ///     .lane(1)
    ///     .with_clock(&clock)
    ///     .timeout(Duration::from_secs(60))
    ///     .map_async(|()| futures::future::pending::<Result<(), ()>>());
    /// assert!(futures::poll!(out.next()).is_pending());
    /// clock.advance(Duration::from_secs(60));
    /// assert!(out.next().await.unwrap().unwrap_err().is_timeout());
    /// # });
    /// ```
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn with_clock(mut self, clock: &crate::time::ManualClock) -> Self {
        self.config.clock = Clock::Manual(clock.clone());
        self
    }

    /// Terminal: calls `f` on each item and runs the futures it returns, at most `limit` at once.
    ///
    /// Gives a [`Stream`] of the outcomes, in completion order (or input order with
    /// [`ordered`](Lane::ordered)): the futures' outputs unchanged for a plain lane, or
    /// `Result<U, Error<E>>` with [`retry`](Lane::retry) or [`timeout`](Lane::timeout) (the futures
    /// must then output `Result<U, E>`, and with retry the items must be `Clone`). `f` is called only
    /// when a slot is free. Every item yields exactly one output, unless the stream is dropped first;
    /// dropping it drops every in-flight future, timer and the input at once.
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
    pub fn map_async<F, Fut>(self, f: F) -> MapAsync<St, F, P, G>
    where
        St: Stream,
        F: FnMut(St::Item) -> Fut,
        Fut: Future,
        P: Takes<St::Item> + Runs<Fut::Output>,
        G: Reporter,
    {
        let (stream, engine) = self.map_mode(MapFn::new::<P>(f));
        LaneStream::new(stream, engine)
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
        );
        (self.stream, engine)
    }

    /// Terminal: runs the futures that the input yields, at most `limit` at once.
    ///
    /// Gives a [`Stream`] of their outputs, in completion order (or input order with
    /// [`ordered`](Lane::ordered)). A future runs once, so there is no `run` after
    /// [`retry`](Lane::retry): that does not compile. A [`timeout`](Lane::timeout) works.
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
    pub fn run(self) -> Run<St, P, G>
    where
        St: Stream,
        St::Item: Future,
        P: Once + Runs<<St::Item as Future>::Output>,
        G: Reporter,
    {
        let (stream, engine) = self.map_mode(Identity::new());
        LaneStream::new(stream, engine)
    }
}

impl<St, G> Lane<St, Plain, G> {
    /// Gives each attempt at most `timeout` to finish; on expiry its future is dropped at once and
    /// the item fails with [`Error::is_timeout`] (or is retried, with [`retry`](Lane::retry)).
    ///
    /// The futures must output `Result<U, E>`; the lane then yields `Result<U, Error<E>>`. The
    /// timeout covers the attempt only: not the back-off before it. See [# Order](Lane#order).
    ///
    /// An attempt is never dropped before `timeout` has passed since it started, and at most
    /// `max(timeout / 64, 1 ms)` after that (plus the timer's own lateness) while the lane is polled
    /// and its futures' polls are quick. That slack buys the speed: a clock read costs more than the
    /// rest of an item's work, so the lane reads the clock once for many attempts, and an attempt that
    /// finishes before the next reading (most do) costs no clock read at all. The deadline counts from
    /// the lane's first clock reading after the attempt started: futures whose polls block the
    /// thread (synchronous work inside `poll`) delay that reading, and with it the deadline, by as
    /// long as they block. With a `ManualClock` (feature `test-util`) every attempt reads the clock
    /// as it starts, so its deadline is exactly its start plus `timeout`, whatever its first poll
    /// (or another attempt's) does to the clock.
    ///
    /// # Type inference
    ///
    /// The lane's error type `E` is fixed by the first thing that names it (see `# Type inference`
    /// on [`retry_if`](Lane::retry_if)), usually the futures' `Result<U, E>`. Futures
    /// that only ever return `Ok` do not name it: `async move { Ok(x) }` alone fails with
    /// `error[E0282]: type annotations needed` at `timeout`, "cannot infer type of the type
    /// parameter `E` declared on the method `timeout`". Name it in one place: `timeout::<E>(d)`,
    /// `Ok::<_, E>(x)`, or the type the outputs are collected into.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{StreamExt, TryStreamExt};
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let d = Duration::from_secs(5);
    /// let a: Vec<u8> = [1u8].lane(1).timeout::<std::io::Error>(d)
    ///     .map_async(|x| async move { Ok(x) }).try_collect().await.unwrap();
    /// let b: Vec<u8> = [2u8].lane(1).timeout(d)
    ///     .map_async(|x| async move { Ok::<_, std::io::Error>(x) }).try_collect().await.unwrap();
    /// let c: Vec<Result<u8, tasklane::Error<std::io::Error>>> = [3u8].lane(1).timeout(d)
    ///     .map_async(|x| async move { Ok(x) }).collect().await;
    /// assert_eq!((a, b, c.len()), (vec![1], vec![2], 1));
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `timeout` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let out: Vec<_> = [5u64, 500]
    ///     .lane(2)
    ///     .ordered()
    ///     .timeout(Duration::from_millis(100))
    ///     .map_async(|ms| async move {
    ///         futures_timer::Delay::new(Duration::from_millis(ms)).await;
    ///         Ok::<u64, std::io::Error>(ms)
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(*out[0].as_ref().unwrap(), 5);
    /// assert!(out[1].as_ref().unwrap_err().is_timeout());
    /// # });
    /// ```
    #[track_caller]
    pub fn timeout<E>(self, timeout: Duration) -> Lane<St, Timed<E>, G> {
        self.set_timeout(timeout).with_policy(Timed::new())
    }

    /// Retries each failed item up to `retries` times (`retries + 1` attempts in all), sleeping a
    /// back-off before each retry.
    ///
    /// The futures must output `Result<U, E>`; the lane then yields `Result<U, Error<E>>` with the
    /// last attempt's error and the number of attempts. Each attempt calls `f(item.clone())`, so the
    /// items must be `Clone` (see the recipe in [`Lane`]). The default back-off is exponential from
    /// 100 ms, factor 2, capped at 30 s, with full jitter ([`backoff`](Lane::backoff) changes it); every
    /// failure is retried, timeouts included ([`retry_if`](Lane::retry_if) changes that). `E` is the
    /// futures' error type, usually inferred from them (see `# Type inference` on
    /// [`retry_if`](Lane::retry_if) for when to name it).
    ///
    /// The attempt count is a `u32`, so `retry(u32::MAX)` makes at most `u32::MAX` attempts (one
    /// fewer than `retries + 1`); every other value makes at most `retries + 1`. Retries whose
    /// back-off is zero (or whose `retry_after` gives `Some(Duration::ZERO)`) start at once but count
    /// against the lane's poll budget, so even millions of them never keep one `poll_next` call, and
    /// the executor thread it runs on, busy for long.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Backoff};
    ///
    /// # futures::executor::block_on(async {
    /// let calls = Cell::new(0);
    /// let out: Vec<Result<&str, tasklane::Error<&str>>> = ["flaky"]
    ///     .lane(1)
    ///     .retry(3)
    ///     .backoff(Backoff::constant(Duration::from_millis(1)))
    ///     .map_async(|name| {
    ///         calls.set(calls.get() + 1);
    ///         let n = calls.get();
    ///         async move { if n < 3 { Err("503") } else { Ok(name) } }
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok("flaky")]);
    /// assert_eq!(calls.get(), 3);
    /// # });
    /// ```
    pub fn retry<E>(self, retries: u32) -> Lane<St, Retrying<E>, G> {
        self.with_policy(Retrying::new(retries))
    }
}

impl<St, E, G> Lane<St, Timed<E>, G> {
    /// Changes the per-attempt timeout. See [`Lane::<St, Plain>::timeout`](Lane::timeout).
    ///
    /// # Panics
    ///
    /// Panics if `timeout` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::prelude::*;
    /// let _lane = [1].lane(1).timeout::<()>(Duration::from_secs(1)).timeout(Duration::from_secs(2));
    /// ```
    #[track_caller]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.set_timeout(timeout)
    }

    /// Adds retries to a lane with a timeout. See [`Lane::<St, Plain>::retry`](Lane::retry).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::prelude::*;
    /// let _lane = [1].lane(1).timeout::<()>(Duration::from_secs(1)).retry(3);
    /// ```
    pub fn retry(self, retries: u32) -> Lane<St, Retrying<E>, G> {
        self.with_policy(Retrying::new(retries))
    }
}

impl<St, E, R, H, G> Lane<St, Retrying<E, R, H>, G> {
    /// Changes the number of retries. See [`Lane::<St, Plain>::retry`](Lane::retry).
    ///
    /// ```
    /// use tasklane::prelude::*;
    /// let _lane = [1].lane(1).retry::<()>(3).retry(5);
    /// ```
    pub fn retry(mut self, retries: u32) -> Self {
        self.config.policy.retries = retries;
        self
    }

    /// Gives each attempt at most `timeout`. See [`Lane::<St, Plain>::timeout`](Lane::timeout).
    ///
    /// # Panics
    ///
    /// Panics if `timeout` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::prelude::*;
    /// let _lane = [1].lane(1).retry::<()>(3).timeout(Duration::from_secs(10));
    /// ```
    #[track_caller]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.set_timeout(timeout)
    }

    /// The delay before each retry (k = 0 is the delay before the first retry).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::{prelude::*, Backoff, Jitter};
    /// let _lane = [1]
    ///     .lane(1)
    ///     .retry::<()>(3)
    ///     .backoff(Backoff::linear(Duration::from_millis(50)).with_jitter(Jitter::Equal));
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.policy.backoff = backoff;
        self
    }

    /// Decides whether a failure is retried (default: every failure, timeouts included).
    ///
    /// The predicate sees the failure as an [`Error`], by reference: `is_timeout()`, `inner()` and
    /// `attempts()` tell what happened. A failure it rejects is the item's final outcome.
    ///
    /// # Type inference
    ///
    /// The lane's error type `E` is fixed by the first thing that names it: `retry::<E>(n)` or
    /// `timeout::<E>(d)`, a `retry_if` or `retry_after` closure, the futures of
    /// [`map_async`](Lane::map_async), or the type the outputs are collected into. The futures come
    /// after `retry_if`, so while its closure is checked `E` is often still unknown. That is fine
    /// for everything but a method call or a field of the error (Rust must know a type to find its
    /// methods): `Error`'s own methods, patterns (`matches!(e.inner(), Some(MyError::Busy))`),
    /// operators (`*status >= 500`) and functions of a known type (`e.inner().is_some_and(is_transient)`
    /// with `fn is_transient(e: &MyError) -> bool`) all infer. A method of `E`,
    /// `e.inner().is_some_and(|h| h.retryable())`, fails with `error[E0282]: type annotations
    /// needed for &_`, pointing at `h`; name the type on the closure's parameter, or at `retry`:
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Error};
    ///
    /// #[derive(Debug)]
    /// struct HttpError(u16);
    /// impl HttpError {
    ///     fn retryable(&self) -> bool { self.0 >= 500 }
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let annotated: Vec<_> = [404u16]
    ///     .lane(1)
    ///     .retry(5)
    ///     .retry_if(|e: &Error<HttpError>| e.inner().is_some_and(|h| h.retryable()))
    ///     .map_async(|status| async move { Err::<(), _>(HttpError(status)) })
    ///     .collect()
    ///     .await;
    /// let named: Vec<_> = [404u16]
    ///     .lane(1)
    ///     .retry::<HttpError>(5)
    ///     .retry_if(|e| e.inner().is_some_and(|h| h.retryable()))
    ///     .map_async(|status| async move { Err::<(), _>(HttpError(status)) })
    ///     .collect()
    ///     .await;
    /// assert_eq!(annotated[0].as_ref().unwrap_err().attempts(), 1); // a 404 is not retried
    /// assert_eq!(named[0].as_ref().unwrap_err().attempts(), 1);
    /// # });
    /// ```
    ///
    /// If the futures then fail with another error type than the one named, the error is at
    /// `map_async`: `error[E0271]: expected {async block} to be a future that resolves to
    /// Result<_, HttpError>, but it resolves to Result<(), String>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let out: Vec<_> = [404u16]
    ///     .lane(1)
    ///     .retry(5)
    ///     .retry_if(|e| e.is_timeout() || e.inner().is_some_and(|status| *status >= 500))
    ///     .map_async(|status| async move { Err::<(), u16>(status) })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].as_ref().unwrap_err().attempts(), 1); // a 404 is not retried
    /// # });
    /// ```
    pub fn retry_if<R2>(self, retry_if: R2) -> Lane<St, Retrying<E, R2, H>, G>
    where
        R2: FnMut(&Error<E>) -> bool,
    {
        self.map_policy(|p| p.with_retry_if(retry_if))
    }

    /// A delay that the error itself asks for (an HTTP `Retry-After`), used instead of the back-off
    /// for that retry, still capped by the back-off's `max_delay`. `None` falls back to the back-off.
    ///
    /// # Type inference
    ///
    /// As with [`retry_if`](Lane::retry_if) (see its `# Type inference`), the error type may still be unknown
    /// when the closure is checked: a `match` on the error's variants infers it, a method call on
    /// it (`|e| e.retry_after()`) fails with `error[E0282]: type annotations needed for &_`. Name
    /// the type on the parameter, `|e: &HttpError|`, or at `retry::<HttpError>(n)`:
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// #[derive(Debug)]
    /// enum HttpError {
    ///     TooManyRequests { retry_after_ms: u64 },
    ///     NotFound,
    /// }
    /// impl HttpError {
    ///     fn retry_after(&self) -> Option<Duration> {
    ///         match self {
    ///             HttpError::TooManyRequests { retry_after_ms } => Some(Duration::from_millis(*retry_after_ms)),
    ///             HttpError::NotFound => None,
    ///         }
    ///     }
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let calls = std::cell::Cell::new(0);
    /// let out: Vec<_> = [()]
    ///     .lane(1)
    ///     .retry(3)
    ///     .retry_after(|e: &HttpError| e.retry_after()) // annotated: a method of `HttpError`
    ///     .retry_if(|e| !matches!(e.inner(), Some(HttpError::NotFound))) // a pattern: infers
    ///     .map_async(|()| {
    ///         calls.set(calls.get() + 1);
    ///         let n = calls.get();
    ///         async move {
    ///             match n {
    ///                 1 => Err::<(), _>(HttpError::TooManyRequests { retry_after_ms: 1 }),
    ///                 _ => Err(HttpError::NotFound),
    ///             }
    ///         }
    ///     })
    ///     .collect()
    ///     .await;
    /// let err: &tasklane::Error<HttpError> = out[0].as_ref().unwrap_err();
    /// assert_eq!(err.attempts(), 2); // retried after 1 ms, then not retried
    /// # });
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::prelude::*;
    /// let _lane = [1]
    ///     .lane(1)
    ///     .retry(3)
    ///     .retry_after(|e: &u64| Some(Duration::from_secs(*e)));
    /// ```
    pub fn retry_after<H2>(self, retry_after: H2) -> Lane<St, Retrying<E, R, H2>, G>
    where
        H2: FnMut(&E) -> Option<Duration>,
    {
        self.map_policy(|p| p.with_retry_after(retry_after))
    }
}

impl<St: fmt::Debug, P: fmt::Debug, G: fmt::Debug> fmt::Debug for Lane<St, P, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("stream", &self.stream)
            .field("config", &self.config)
            .field("progress", &self.progress)
            .finish()
    }
}
