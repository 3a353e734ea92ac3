//! [`Configure`]: the setters that a [`Lane`](crate::Lane) and a [`Policy`](crate::Policy) share,
//! written once; and [`Config`], the plain data they set.

use std::time::Duration;

use crate::limit::Admit;
use crate::mode::{AddRetry, AddTimeout, Retries, Retrying};
use crate::rate::Rate;
use crate::time::Clock;
use crate::{Backoff, Error};

/// The setters of a [`Lane`](crate::Lane) and of a [`Policy`](crate::Policy): each one is written,
/// documented and tested here, once, for both.
///
/// [`lane(limit)`](crate::LaneExt::lane) and [`Policy::new(limit)`](crate::Policy::new) start a
/// configuration with every other setting at its default (see
/// [`Lane`'s defaults](crate::Lane#default)). Each setter takes it and returns it by value, and
/// checks its argument at once. A lane's settings apply to the run that its terminal
/// ([`map_async`](crate::Lane::map_async), [`run`](crate::Lane::run)) starts; a policy's to every
/// lane made from it with [`lane_with`](crate::LaneExt::lane_with), each with its own rate limiter,
/// back-off generator and counters. How the settings compose, per item, is in
/// [`Lane`'s `# Order`](crate::Lane#order).
///
/// In scope through `use tasklane::prelude::*;`. Sealed (its required methods take a type that only
/// the crate can name): `Lane` and `Policy` are its only implementations, so a setter can be added
/// without breaking anyone.
///
/// # Kinds
///
/// [`Kind`](Configure::Kind) is the kind of lane so far ([`mode`](crate::mode)).
/// [`timeout`](Configure::timeout) and [`retry`](Configure::retry) change it, because they change
/// the output type; [`backoff`](Configure::backoff), [`retry_if`](Configure::retry_if) and
/// [`retry_after`](Configure::retry_after) need a retrying kind:
///
/// | kind | after `timeout(d)` | after `retry(n)` | `backoff`, `retry_if`, `retry_after` |
/// |---|---|---|---|
/// | [`Plain`](crate::mode::Plain) (the default) | [`Timed<E>`](crate::mode::Timed) | [`Retrying<E>`](crate::mode::Retrying) | no |
/// | `Timed<E>` | `Timed<E>`, with the new timeout | `Retrying<E>`, with the timeout kept | no |
/// | `Retrying<E, R, H>` | `Retrying<E, R, H>`, with the new timeout | `Retrying<E, R, H>`, with the new count | yes |
///
/// A lane stays a [`Lane`](crate::Lane) and a policy a [`Policy`](crate::Policy) throughout: a
/// setter returns `Self`, or [`WithKind`](Configure::WithKind) (the same lane or policy with
/// another kind), so `[1, 2].lane(2).retry(3)` is a `Lane<_, Retrying<_>>` and
/// `Policy::new(2).retry(3)` a `Policy<Retrying<_>>`.
///
/// # Examples
///
/// The same chain on a lane, or on a policy for many lanes:
///
/// ```
/// use std::time::Duration;
/// use futures::TryStreamExt;
/// use tasklane::{prelude::*, Policy};
///
/// async fn fetch(id: u32) -> Result<u32, std::io::Error> {
///     Ok(id * 10) // stands in for a request that can fail
/// }
///
/// # futures::executor::block_on(async {
/// let once: Vec<u32> = (1..=3u32)
///     .lane(4)
///     .ordered()
///     .retry(2)
///     .timeout(Duration::from_secs(5))
///     .map_async(fetch)
///     .try_collect()
///     .await?;
///
/// let api = Policy::new(4).ordered().retry(2).timeout(Duration::from_secs(5));
/// let again: Vec<u32> = (1..=3u32).lane_with(&api).map_async(fetch).try_collect().await?;
/// assert_eq!(once, again);
/// # Ok::<(), tasklane::Error<std::io::Error>>(())
/// # }).unwrap();
/// ```
///
/// A function that sets up either, for code that builds both:
///
/// ```
/// use tasklane::{prelude::*, Configure, Policy};
///
/// fn polite<C: Configure>(c: C) -> C {
///     c.rate(10.0).burst(2).ordered()
/// }
///
/// assert!(polite([1, 2, 3].lane(2)).is_ordered());
/// assert!(polite(Policy::new(2)).is_ordered());
/// ```
pub trait Configure: Sized {
    /// The kind of lane so far: [`Plain`](crate::mode::Plain), [`Timed<E>`](crate::mode::Timed) or
    /// [`Retrying<E, R, H>`](crate::mode::Retrying) (see [# Kinds](Configure#kinds)).
    type Kind;

    /// The same lane or policy with kind `Q`: a `Lane<St, Q, G>` for a `Lane<St, P, G>`, a
    /// `Policy<Q>` for a `Policy<P>`.
    type WithKind<Q>: Configure<Kind = Q>;

    /// The configuration itself (callable only by the crate: see [`Internal`]).
    #[doc(hidden)]
    fn config(&self, _: Internal) -> &Config<Self::Kind>;

    /// The configuration itself, to change in place (callable only by the crate).
    #[doc(hidden)]
    fn config_mut(&mut self, _: Internal) -> &mut Config<Self::Kind>;

    /// The same lane or policy with its kind changed by `f` (callable only by the crate).
    #[doc(hidden)]
    fn map_kind<Q>(self, f: impl FnOnce(Self::Kind) -> Q, _: Internal) -> Self::WithKind<Q>;

    /// The most items in progress at once.
    ///
    /// [`Policy`](crate::Policy) still has the deprecated setter `limit(n)` (now
    /// [`with_limit`](Configure::with_limit)), which a method call on a policy finds first: until
    /// it is removed, read a policy's limit as `Configure::limit(&policy)`.
    ///
    /// ```
    /// use tasklane::{prelude::*, Configure, Policy};
    /// assert_eq!([1, 2, 3].lane(8).limit(), 8);
    /// assert_eq!(Configure::limit(&Policy::new(8)), 8);
    /// ```
    fn limit(&self) -> usize {
        self.config(INTERNAL).limit
    }

    /// Whether outputs come in input order ([`ordered`](Configure::ordered) or
    /// [`window`](Configure::window)).
    ///
    /// ```
    /// use tasklane::{prelude::*, Policy};
    /// assert!([1, 2, 3].lane(8).ordered().is_ordered());
    /// assert!(!Policy::new(8).is_ordered());
    /// ```
    fn is_ordered(&self) -> bool {
        self.config(INTERNAL).ordered
    }

    /// Changes the most items in progress at once, the `limit` given to
    /// [`lane`](crate::LaneExt::lane) or [`Policy::new`](crate::Policy::new).
    ///
    /// # Panics
    ///
    /// Panics if `limit` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use tasklane::{prelude::*, Policy};
    ///
    /// let api = Policy::new(4).ordered();
    /// let bulk = api.clone().with_limit(16); // a variant: `api` is unchanged
    /// assert_eq!([1].lane_with(&api).limit(), 4);
    /// assert_eq!([1].lane_with(&bulk).limit(), 16);
    /// assert_eq!([1].lane(4).with_limit(2).limit(), 2);
    /// ```
    #[track_caller]
    fn with_limit(mut self, limit: usize) -> Self {
        self.config_mut(INTERNAL).set_limit(limit);
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
    fn ordered(mut self) -> Self {
        self.config_mut(INTERNAL).ordered = true;
        self
    }

    /// Yields outputs in input order, like [`ordered`](Configure::ordered), with a reorder window
    /// of `n`: up to `n` finished outputs wait for their turn outside the slots, so that a slow
    /// item holds back the outputs after it but not the starts after it.
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
    fn window(mut self, n: usize) -> Self {
        let config = self.config_mut(INTERNAL);
        config.ordered = true;
        config.window = n;
        self
    }

    /// Starts at most `per_second` attempts per second, retries included.
    ///
    /// The limiter works in integer nanoseconds, with the period `T = ⌈1 s / per_second⌉` and the
    /// [`burst`](Configure::burst) `b` (default 1): the first start is immediate, up to `b` starts
    /// may come back to back, and start `k` (from 0) is never earlier than `t0 + (k - b + 1) T`
    /// after the first one at `t0`. Idle time earns no credit beyond the burst. Rates below one per
    /// second are fine (`0.2` is one start every 5 s).
    ///
    /// Where it applies (see [# Order](crate::Lane#order)): before every attempt, while the item
    /// holds its slot, and before the attempt's [`timeout`](Configure::timeout) starts. A new item
    /// is pulled from the input only once its start is allowed, so nothing is read ahead while the
    /// lane waits; a retry whose back-off is over waits in line (oldest first) and goes before new
    /// items. Each run has its own limiter, also each run of one policy.
    ///
    /// # Schedules
    ///
    /// Timers wake up late (futures-timer by tens of microseconds, tokio by up to a millisecond), so
    /// after a late wake-up a limiter must choose between catching up (holding the rate) and holding
    /// every window. The default catches up; [`strict_rate`](Configure::strict_rate) holds every
    /// window:
    ///
    /// | | catch-up (the default) | strict ([`strict_rate`](Configure::strict_rate)) |
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
    /// The catch-up schedule's timer has a slack of 250 µs on the system clock (as Linux timers
    /// have 50 µs, and tokio's 1 ms): a wait shorter than that wakes the lane up to 250 µs after the
    /// permit, and every start allowed meanwhile goes then. So at a high rate one wake-up of the
    /// timer and the executor serves many starts (about 25 at 100,000 per second: 1.1 µs of CPU per
    /// start instead of 5), at the same rate over time. Below 4,000 starts per second a wait is
    /// longer than the slack and wakes on time. The strict schedule, which would lose the lateness,
    /// and a manual clock (`time::ManualClock`, feature `test-util`) have no slack.
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
    fn rate(mut self, per_second: f64) -> Self {
        self.config_mut(INTERNAL).set_rate(per_second);
        self
    }

    /// With [`rate`](Configure::rate): up to `burst` starts may come back to back (default 1).
    /// Without a rate it has no effect. With [`strict_rate`](Configure::strict_rate), it is also
    /// the most starts in any window of `burst` periods.
    ///
    /// # Panics
    ///
    /// Panics if `burst` is 0, or above 65,536 with [`strict_rate`](Configure::strict_rate).
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
    fn burst(mut self, burst: u32) -> Self {
        self.config_mut(INTERNAL).set_burst(burst);
        self
    }

    /// With [`rate`](Configure::rate): the strict schedule, for servers that enforce a sliding
    /// window. Never more than `b` starts in any window of `b` periods (`b / per_second` seconds),
    /// where `b` is the [`burst`](Configure::burst), however late the timer wakes; with burst 1,
    /// any two starts are at least one period apart. Without a rate it has no effect; the order of
    /// the setters does not matter.
    ///
    /// The default schedule catches up after a late timer wake-up, which is how it holds 100,000
    /// starts per second, and so lets a window of `b` periods hold more than `b` starts. The strict
    /// one never does, and pays in throughput each time the timer wakes late: see the two side by
    /// side in [# Schedules](Configure#schedules). At high rates, give it a burst: one late
    /// wake-up then releases up to `b` starts, so lateness costs a share of the window instead of a
    /// whole period. Measured at 100,000 starts per second on futures-timer (BENCHMARKS.md, on a
    /// loaded 2-core VM): burst 1 kept 9–14 % of the rate (governor 7–9 %), burst 10 44–48 %, burst
    /// 100 83–88 %, and the default 93–99.5 %.
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
    fn strict_rate(mut self) -> Self {
        self.config_mut(INTERNAL).set_strict_rate();
        self
    }

    /// Shares `limiter`'s budget with every other lane, pool and thread that holds it: an attempt
    /// starts when the lane has a free slot **and** the limiter grants it (see
    /// [`limit`](crate::limit) for what a lane does with a limiter). Several limiters may be given,
    /// one call each (one for the API, one for the host): all must grant, asked in the order given.
    /// The lane's own [`with_limit`](Configure::with_limit) and [`rate`](Configure::rate) still
    /// hold for it alone. A policy gives the limiter to every lane made from it, which is what
    /// shares it.
    ///
    /// `limiter` is a [`Limiter`](crate::Limiter), or any other [`Admit`] handle (an `Arc` of one
    /// works); the lane keeps a clone of the handle.
    ///
    /// An item that a limiter refuses for good (see
    /// [`Admit::can_ever_admit`]) or whose limiter failed (see [`Admit::fails_open`]) fails with an
    /// [`Error`] saying so, on a lane whose items can fail (with [`timeout`](Configure::timeout) or
    /// [`retry`](Configure::retry)). A plain lane's items cannot fail: there a limiter that fails
    /// lets the attempt start, as one that fails open does.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Limiter, Policy};
    ///
    /// let api = Limiter::new().concurrency(2);
    /// let policy = Policy::new(8).limiter(&api); // every lane made from it shares the 2
    ///
    /// # futures::executor::block_on(async {
    /// let a = (0..4).lane_with(&policy).map_async(|x| async move { x });
    /// let b = (4..8).lane_with(&policy).map_async(|x| async move { x });
    /// let (a, b): (Vec<i32>, Vec<i32>) = futures::join!(a.collect(), b.collect());
    /// assert_eq!(a.len() + b.len(), 8);
    /// # });
    /// ```
    fn limiter<L: Admit + Clone + 'static>(mut self, limiter: &L) -> Self {
        self.config_mut(INTERNAL).limiters.push(limiter);
        self
    }

    /// Reads time from a [`ManualClock`](crate::time::ManualClock) instead of the system clock, so
    /// that timeouts, back-offs and rate limits can be tested without sleeping. A policy gives the
    /// clock to every lane made from it.
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
    fn with_clock(mut self, clock: &crate::time::ManualClock) -> Self {
        self.config_mut(INTERNAL).clock = Clock::Manual(clock.clone());
        self
    }

    /// Gives each attempt at most `timeout` to finish; on expiry its future is dropped at once and
    /// the item fails with [`Error::is_timeout`] (or is retried, with [`retry`](Configure::retry)).
    ///
    /// The futures must output `Result<U, E>`; the lane then yields `Result<U, Error<E>>`. The
    /// timeout covers the attempt only: not the back-off before it. See
    /// [# Order](crate::Lane#order). On a lane or policy that has a timeout or
    /// [`retry`](Configure::retry) already, it changes the timeout and keeps the rest (see
    /// [# Kinds](Configure#kinds)).
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
    /// on [`retry_if`](Configure::retry_if)), usually the futures' `Result<U, E>`: an `async fn`
    /// with its return type, or an `Err(e)` of a known type. Futures that only ever return `Ok` do
    /// not name it: `async move { Ok(x) }` alone fails with `error[E0282]: type annotations needed`
    /// at `timeout`, "cannot infer type of the type parameter `E` declared on the method
    /// `timeout`". Name it in one place: the type the outputs are collected into, `Ok::<_, E>(x)`,
    /// or `timeout::<E>(d)`:
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{StreamExt, TryStreamExt};
    /// use tasklane::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let d = Duration::from_secs(5);
    /// let a: Vec<Result<u8, tasklane::Error<std::io::Error>>> = [1u8].lane(1).timeout(d)
    ///     .map_async(|x| async move { Ok(x) }).collect().await;
    /// let b: Vec<u8> = [2u8].lane(1).timeout(d)
    ///     .map_async(|x| async move { Ok::<_, std::io::Error>(x) }).try_collect().await.unwrap();
    /// let c: Vec<u8> = [3u8].lane(1).timeout::<std::io::Error>(d)
    ///     .map_async(|x| async move { Ok(x) }).try_collect().await.unwrap();
    /// assert_eq!((a.len(), b, c), (1, vec![2], vec![3]));
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
    /// async fn sleep_for(ms: u64) -> Result<u64, std::io::Error> {
    ///     futures_timer::Delay::new(Duration::from_millis(ms)).await;
    ///     Ok(ms)
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let out: Vec<_> = [5u64, 500]
    ///     .lane(2)
    ///     .ordered()
    ///     .timeout(Duration::from_millis(100))
    ///     .map_async(sleep_for)
    ///     .collect()
    ///     .await;
    /// assert_eq!(*out[0].as_ref().unwrap(), 5);
    /// assert!(out[1].as_ref().unwrap_err().is_timeout());
    /// # });
    /// ```
    #[track_caller]
    fn timeout<E>(
        mut self,
        timeout: Duration,
    ) -> Self::WithKind<<Self::Kind as AddTimeout<E>>::Output>
    where
        Self::Kind: AddTimeout<E>,
    {
        self.config_mut(INTERNAL).set_timeout(timeout);
        self.map_kind(|kind| kind.add_timeout(INTERNAL), INTERNAL)
    }

    /// Retries each failed item up to `retries` times (`retries + 1` attempts in all), sleeping a
    /// back-off before each retry.
    ///
    /// The futures must output `Result<U, E>`; the lane then yields `Result<U, Error<E>>` with the
    /// last attempt's error and the number of attempts. Each attempt calls `f(item.clone())`, so
    /// the items must be `Clone` (see the recipe in [`Lane`](crate::Lane#recipes)). The default
    /// back-off is exponential from 100 ms, factor 2, capped at 30 s, with full jitter
    /// ([`backoff`](Configure::backoff) changes it); every failure is retried, timeouts included
    /// ([`retry_if`](Configure::retry_if) changes that). `E` is the futures' error type, usually
    /// inferred from them (see `# Type inference` on [`retry_if`](Configure::retry_if) for when to
    /// name it). On a lane or policy with `retry` already, it changes the number of retries and
    /// keeps the back-off, `retry_if` and `retry_after`; on one with a timeout, it keeps the
    /// timeout.
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
    ///
    /// Setting it again changes the count:
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Backoff, Policy};
    ///
    /// # futures::executor::block_on(async {
    /// let policy = Policy::new(1).retry(9).backoff(Backoff::constant(Duration::ZERO)).retry(1);
    /// let out: Vec<Result<(), tasklane::Error<&str>>> =
    ///     [()].lane_with(&policy).map_async(|()| async { Err("503") }).collect().await;
    /// assert_eq!(out[0].as_ref().unwrap_err().attempts(), 2);
    /// # });
    /// ```
    fn retry<E>(self, retries: u32) -> Self::WithKind<<Self::Kind as AddRetry<E>>::Output>
    where
        Self::Kind: AddRetry<E>,
    {
        self.map_kind(|kind| kind.add_retry(retries, INTERNAL), INTERNAL)
    }

    /// The delay before each retry (k = 0 is the delay before the first retry).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Backoff, Error, Jitter};
    ///
    /// # futures::executor::block_on(async {
    /// let t0 = Instant::now();
    /// let out: Vec<Result<(), Error<&str>>> = [()]
    ///     .lane(1)
    ///     .retry(1)
    ///     .backoff(Backoff::linear(Duration::from_millis(5)).with_jitter(Jitter::None))
    ///     .map_async(|()| async { Err("503") })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].as_ref().unwrap_err().attempts(), 2);
    /// assert!(t0.elapsed() >= Duration::from_millis(5)); // the back-off before the retry
    /// # });
    /// ```
    fn backoff<E, R, H>(mut self, backoff: Backoff) -> Self
    where
        Self::Kind: Retries<E, R, H>,
    {
        let kind = &mut self.config_mut(INTERNAL).policy;
        kind.retrying_mut(INTERNAL).backoff = backoff;
        self
    }

    /// Decides whether a failure is retried (default: every failure, timeouts included).
    ///
    /// The predicate sees the failure as an [`Error`], by reference: `is_timeout()`, `inner()` and
    /// `attempts()` tell what happened. A failure it rejects is the item's final outcome.
    ///
    /// # Type inference
    ///
    /// The lane's error type `E` is fixed by the first thing that names it: a `retry_if` or
    /// `retry_after` closure, the futures of [`map_async`](crate::Lane::map_async), the type the
    /// outputs are collected into, or `retry::<E>(n)` or `timeout::<E>(d)`. The futures come after
    /// `retry_if`, so while its closure is checked `E` is often still unknown. That is fine for
    /// everything but a method call or a field of the error (Rust must know a type to find its
    /// methods): `Error`'s own methods, patterns (`matches!(e.inner(), Some(MyError::Busy))`),
    /// operators (`*status >= 500`) and functions of a known type
    /// (`e.inner().is_some_and(is_transient)` with `fn is_transient(e: &MyError) -> bool`) all
    /// infer. A method of `E`, `e.inner().is_some_and(|h| h.retryable())`, fails with
    /// `error[E0282]: type annotations needed for &_`, pointing at `h`; name the type on the
    /// closure's parameter, or at `retry`. A policy is often built before any future names its
    /// error type, so a policy's closure that calls a method of `E` needs the name too.
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
    /// let out: Vec<Result<(), tasklane::Error<u16>>> = [404u16]
    ///     .lane(1)
    ///     .retry(5)
    ///     .retry_if(|e| e.is_timeout() || e.inner().is_some_and(|status| *status >= 500))
    ///     .map_async(|status| async move { Err(status) })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].as_ref().unwrap_err().attempts(), 1); // a 404 is not retried
    /// # });
    /// ```
    fn retry_if<E, R, H, F>(self, retry_if: F) -> Self::WithKind<Retrying<E, F, H>>
    where
        Self::Kind: Retries<E, R, H>,
        F: FnMut(&Error<E>) -> bool,
    {
        self.map_kind(
            |kind| kind.into_retrying(INTERNAL).with_retry_if(retry_if),
            INTERNAL,
        )
    }

    /// A delay that the error itself asks for (an HTTP `Retry-After`), used instead of the back-off
    /// for that retry, still capped by the back-off's `max_delay`. `None` falls back to the back-off.
    ///
    /// # Type inference
    ///
    /// As with [`retry_if`](Configure::retry_if) (see its `# Type inference`), the error type may
    /// still be unknown when the closure is checked: a `match` on the error's variants infers it, a
    /// method call on it (`|e| e.retry_after()`) fails with `error[E0282]: type annotations needed
    /// for &_`. Name the type on the parameter, `|e: &HttpError|`, or at `retry::<HttpError>(n)`:
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
    /// use std::time::{Duration, Instant};
    /// use futures::StreamExt;
    /// use tasklane::{prelude::*, Error, Policy};
    ///
    /// # futures::executor::block_on(async {
    /// let policy = Policy::new(1)
    ///     .retry(1)
    ///     .retry_after(|ms: &u64| Some(Duration::from_millis(*ms)));
    /// let t0 = Instant::now();
    /// let out: Vec<Result<(), Error<u64>>> =
    ///     [5u64].lane_with(&policy).map_async(|ms| async move { Err(ms) }).collect().await;
    /// assert_eq!(out[0].as_ref().unwrap_err().attempts(), 2);
    /// assert!(t0.elapsed() >= Duration::from_millis(5)); // the 5 ms the error asked for
    /// # });
    /// ```
    fn retry_after<E, R, H, F>(self, retry_after: F) -> Self::WithKind<Retrying<E, R, F>>
    where
        Self::Kind: Retries<E, R, H>,
        F: FnMut(&E) -> Option<Duration>,
    {
        self.map_kind(
            |kind| kind.into_retrying(INTERNAL).with_retry_after(retry_after),
            INTERNAL,
        )
    }
}

/// Made only inside the crate: the argument of the trait methods that only the crate may call
/// ([`Configure`]'s hidden ones, and those of the kinds in [`mode`](crate::mode)), as in
/// `std::error::Error::type_id`. Outside the crate it cannot be named or made.
#[derive(Debug)]
pub struct Internal(());

/// The one [`Internal`].
pub(crate) const INTERNAL: Internal = Internal(());

/// What a [`Lane`](crate::Lane) and a [`Policy`](crate::Policy) hold besides the input: plain data,
/// validated by each setter of [`Configure`].
#[derive(Clone, Debug)]
pub struct Config<P> {
    /// The most items in progress at once (at least 1).
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
    /// The limiters shared with other lanes, asked in this order for every attempt.
    pub(crate) limiters: crate::limit::Limiters,
    /// The kind of lane, with what it alone needs (a retrying lane's count, back-off and closures).
    pub(crate) policy: P,
}

impl Config<crate::mode::Plain> {
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
            limiters: crate::limit::Limiters::default(),
            policy: crate::mode::Plain,
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
            limiters: self.limiters,
            policy: f(self.policy),
        }
    }

    #[track_caller]
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = check_limit(limit);
    }

    #[track_caller]
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        assert!(
            !timeout.is_zero(),
            "tasklane: `timeout` must be greater than zero, got {timeout:?}"
        );
        self.timeout = Some(timeout);
    }

    #[track_caller]
    pub(crate) fn set_rate(&mut self, per_second: f64) {
        self.period = Some(Rate::period(per_second));
    }

    #[track_caller]
    pub(crate) fn set_burst(&mut self, burst: u32) {
        self.burst = Rate::check_burst(burst, self.strict);
    }

    #[track_caller]
    pub(crate) fn set_strict_rate(&mut self) {
        self.burst = Rate::check_burst(self.burst, true);
        self.strict = true;
    }

    /// The validated rate limit, if any.
    pub(crate) fn rate(&self) -> Option<Rate> {
        self.period.map(|period| Rate {
            period,
            burst: self.burst,
            strict: self.strict,
        })
    }
}
