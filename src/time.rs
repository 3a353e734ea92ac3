//! Time for lanes: the clock and timer seam, and (with the `test-util` feature) a manual clock.
//!
//! Every timeout and back-off of a lane reads one clock and sleeps on one timer, created on first use
//! and reset in place afterwards. Which timer, by feature:
//! - default: futures-timer's (a timer thread of its own, on every executor);
//! - `async-io`: async-io's (the reactor of smol and async-std; it drives itself from a thread of
//!   its own when no `block_on` of its runs);
//! - `tokio`: for a lane that first reads the time inside a tokio runtime, the runtime's clock and
//!   time driver (no timer thread; and under tokio's paused time, `tokio::time::pause`, the lane's
//!   timeouts, back-offs and rate waits follow the paused clock, as tokio's own timers do);
//!   anywhere else, the timer above. That runtime must have its time driver on (`#[tokio::main]`,
//!   `Runtime::new` and `Builder::enable_all`/`enable_time` turn it on; without it tokio panics,
//!   saying so) and must keep running while the lane sleeps. A shared
//!   [`Limiter`](crate::Limiter) reads the system clock, whatever the lane's;
//! - `wasm`: on wasm32 in a browser, futures-timer's `setTimeout` timer, and the clock is
//!   `performance.now()` (web-time's `Instant`) instead of std's, which panics there.
//!
//! Nothing else in the crate names a timer. With the `test-util` feature, `ManualClock` replaces
//! both clock and timer for a lane (`Configure::with_clock`), so tests move time by hand.
//!
//! ```
//! // The module is empty without the `test-util` feature.
//! # #[cfg(feature = "test-util")]
//! let _clock = tasklane::time::ManualClock::new();
//! ```

use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

#[cfg(feature = "test-util")]
pub use manual::{ManualClock, SleepFor};

/// The monotonic clock's instant: std's, or web-time's with the `wasm` feature (std's `Instant`
/// panics on wasm32-unknown-unknown; web-time's is std's elsewhere).
#[cfg(not(feature = "wasm"))]
pub(crate) use std::time::Instant;
#[cfg(feature = "wasm")]
pub(crate) use web_time::Instant;

/// Where a lane reads the time.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    /// The system's monotonic clock; `origin` is taken at the first reading (which, with the
    /// `tokio` feature inside a tokio runtime, turns the clock into [`Clock::Tokio`]).
    Real { origin: Option<Instant> },
    /// The tokio runtime's clock (std's, unless the runtime's time is paused: then the lane's
    /// timeouts, back-offs and rate limits follow the paused clock, as tokio's own timers do).
    #[cfg(feature = "tokio")]
    Tokio { origin: tokio::time::Instant },
    #[cfg(feature = "test-util")]
    Manual(ManualClock),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::Real { origin: None }
    }
}

impl Clock {
    /// Nanoseconds since the lane's origin (saturating; monotonic).
    pub(crate) fn now(&mut self) -> u64 {
        match self {
            Clock::Real {
                origin: Some(origin),
            } => crate::backoff::nanos(Instant::now().saturating_duration_since(*origin)),
            Clock::Real { origin: None } => self.first_reading(),
            #[cfg(feature = "tokio")]
            Clock::Tokio { origin } => crate::backoff::nanos(
                tokio::time::Instant::now().saturating_duration_since(*origin),
            ),
            #[cfg(feature = "test-util")]
            Clock::Manual(clock) => clock.now_nanos(),
        }
    }

    /// The first reading of the system clock: it becomes the origin. With the `tokio` feature,
    /// inside a tokio runtime, the lane's clock is the runtime's from now on.
    #[cold]
    fn first_reading(&mut self) -> u64 {
        #[cfg(feature = "tokio")]
        if tokio::runtime::Handle::try_current().is_ok() {
            *self = Clock::Tokio {
                origin: tokio::time::Instant::now(),
            };
            return 0;
        }
        *self = Clock::Real {
            origin: Some(Instant::now()),
        };
        0
    }

    /// Whether this is a manual clock (cheap to read, and tests expect exact deadlines).
    pub(crate) fn is_manual(&self) -> bool {
        match self {
            #[cfg(feature = "test-util")]
            Clock::Manual(_) => true,
            _ => false,
        }
    }

    /// A sleep for this clock, not yet armed. A clock not read yet takes its origin now (a lane
    /// may arm its first timer from the reading 0 before it has read the clock), so that the
    /// clock and its timer are of one kind (tokio's, with the `tokio` feature in a tokio runtime).
    pub(crate) fn sleep(&mut self) -> Sleep {
        match self {
            Clock::Real { origin: None } => {
                self.first_reading();
                Sleep::Real(None)
            }
            #[cfg(feature = "test-util")]
            Clock::Manual(clock) => Sleep::Manual(clock.sleep()),
            _ => Sleep::Real(None),
        }
    }

    /// The instant of `deadline` (nanoseconds since the origin) on the system clock, given `now`,
    /// the clock's reading.
    #[cfg(feature = "async-io")]
    fn instant_at(&self, deadline: u64, now: u64) -> Instant {
        let origin = match self {
            Clock::Real {
                origin: Some(origin),
            } => *origin,
            _ => Instant::now() - Duration::from_nanos(now),
        };
        origin + Duration::from_nanos(deadline)
    }
}

/// The timer of a lane on the system clock (see the module docs).
#[cfg(not(feature = "async-io"))]
type Fallback = futures_timer::Delay;
#[cfg(feature = "async-io")]
type Fallback = async_io::Timer;

/// A real timer, of the kind of the lane's clock.
pub(crate) enum RealTimer {
    /// futures-timer's or async-io's (see [`Fallback`]), for [`Clock::Real`].
    Fallback(Fallback),
    /// The tokio runtime's, for [`Clock::Tokio`] (boxed: tokio's `Sleep` is not `Unpin`; once per
    /// lane).
    #[cfg(feature = "tokio")]
    Tokio(std::pin::Pin<Box<tokio::time::Sleep>>),
}

/// A lane's one timer, reset in place to the next deadline.
pub(crate) enum Sleep {
    /// Not armed yet (`None`), or the timer made at the first arming.
    Real(Option<RealTimer>),
    #[cfg(feature = "test-util")]
    Manual(manual::ManualSleep),
}

impl Sleep {
    /// Arms the sleep to fire at `deadline` (nanoseconds since the clock's origin); `now` is the
    /// clock's current reading.
    pub(crate) fn reset(&mut self, clock: &Clock, deadline: u64, now: u64) {
        match self {
            Sleep::Real(Some(timer)) => timer.reset(clock, deadline, now),
            Sleep::Real(timer @ None) => *timer = Some(RealTimer::new(clock, deadline, now)),
            #[cfg(feature = "test-util")]
            Sleep::Manual(sleep) => sleep.reset(deadline),
        }
    }

    /// Polls the armed sleep: `Ready` once its deadline has passed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Sleep::Real(Some(timer)) => timer.poll(cx),
            Sleep::Real(None) => Poll::Pending,
            #[cfg(feature = "test-util")]
            Sleep::Manual(sleep) => sleep.poll(cx),
        }
    }
}

impl RealTimer {
    /// A timer armed for `deadline`, of the kind of `clock`.
    fn new(clock: &Clock, deadline: u64, now: u64) -> Self {
        #[cfg(feature = "tokio")]
        if let Clock::Tokio { origin } = clock {
            let at = *origin + Duration::from_nanos(deadline);
            return RealTimer::Tokio(Box::pin(tokio::time::sleep_until(at)));
        }
        RealTimer::fallback(clock, deadline, now)
    }

    #[cfg(not(feature = "async-io"))]
    fn fallback(_: &Clock, deadline: u64, now: u64) -> Self {
        RealTimer::Fallback(futures_timer::Delay::new(Duration::from_nanos(
            deadline.saturating_sub(now),
        )))
    }

    #[cfg(feature = "async-io")]
    fn fallback(clock: &Clock, deadline: u64, now: u64) -> Self {
        RealTimer::Fallback(async_io::Timer::at(clock.instant_at(deadline, now)))
    }

    fn reset(&mut self, clock: &Clock, deadline: u64, now: u64) {
        match self {
            #[cfg(not(feature = "async-io"))]
            RealTimer::Fallback(delay) => {
                let _ = clock;
                delay.reset(Duration::from_nanos(deadline.saturating_sub(now)));
            }
            #[cfg(feature = "async-io")]
            RealTimer::Fallback(timer) => timer.set_at(clock.instant_at(deadline, now)),
            #[cfg(feature = "tokio")]
            RealTimer::Tokio(sleep) => {
                let origin = match clock {
                    Clock::Tokio { origin } => *origin,
                    _ => tokio::time::Instant::now() - Duration::from_nanos(now),
                };
                sleep
                    .as_mut()
                    .reset(origin + Duration::from_nanos(deadline));
            }
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            #[cfg(not(feature = "async-io"))]
            RealTimer::Fallback(delay) => std::pin::Pin::new(delay).poll(cx),
            #[cfg(feature = "async-io")]
            RealTimer::Fallback(timer) => std::pin::Pin::new(timer).poll(cx).map(|_| ()),
            #[cfg(feature = "tokio")]
            RealTimer::Tokio(sleep) => sleep.as_mut().poll(cx),
        }
    }
}

use std::future::Future as _;

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sleep")
    }
}

#[cfg(feature = "test-util")]
mod manual {
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    /// A clock that moves only when told to, for testing time-dependent lanes without sleeping.
    ///
    /// Give it to a lane with [`with_clock`](crate::Configure::with_clock): the lane's timeouts,
    /// back-offs and rate limits then read this clock, and its sleeps end when
    /// [`advance`](ManualClock::advance) moves the clock past their deadline. Clones share one clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::time::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// assert_eq!(clock.elapsed(), Duration::ZERO);
    /// clock.advance(Duration::from_millis(250));
    /// assert_eq!(clock.clone().elapsed(), Duration::from_millis(250));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    #[derive(Clone, Debug, Default)]
    pub struct ManualClock {
        inner: Arc<Mutex<Inner>>,
    }

    #[derive(Debug, Default)]
    struct Inner {
        now: u64,
        /// Armed sleeps: (id, deadline, waker of the last poll).
        sleepers: Vec<(u64, u64, Option<Waker>)>,
        /// An empty vector kept for `advance`, so that it does not allocate each time.
        spare: Vec<Waker>,
        next_id: u64,
    }

    impl ManualClock {
        /// A clock at zero.
        ///
        /// ```
        /// assert_eq!(tasklane::time::ManualClock::new().elapsed(), std::time::Duration::ZERO);
        /// ```
        pub fn new() -> Self {
            Self::default()
        }

        /// Time since the clock was made, as moved by [`advance`](ManualClock::advance).
        ///
        /// ```
        /// let clock = tasklane::time::ManualClock::new();
        /// clock.advance(std::time::Duration::from_secs(1));
        /// assert_eq!(clock.elapsed(), std::time::Duration::from_secs(1));
        /// ```
        pub fn elapsed(&self) -> Duration {
            Duration::from_nanos(self.now_nanos())
        }

        /// Moves the clock forward and wakes every sleep whose deadline has passed.
        ///
        /// ```
        /// let clock = tasklane::time::ManualClock::new();
        /// clock.advance(std::time::Duration::from_millis(5));
        /// clock.advance(std::time::Duration::from_millis(5));
        /// assert_eq!(clock.elapsed(), std::time::Duration::from_millis(10));
        /// ```
        pub fn advance(&self, by: Duration) {
            // The wakers are woken outside the lock, from a vector kept for reuse (no allocation
            // per call once it has grown).
            let mut wakers = {
                let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                inner.now = inner.now.saturating_add(crate::backoff::nanos(by));
                let now = inner.now;
                let mut wakers = std::mem::take(&mut inner.spare);
                wakers.extend(
                    inner
                        .sleepers
                        .iter_mut()
                        .filter(|(_, deadline, _)| *deadline <= now)
                        .filter_map(|(_, _, waker)| waker.take()),
                );
                wakers
            };
            for waker in wakers.drain(..) {
                waker.wake();
            }
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if inner.spare.capacity() < wakers.capacity() {
                inner.spare = wakers;
            }
        }

        /// A future that is ready once the clock has moved `duration` past now (at once for
        /// zero): the manual clock's `sleep`, for the futures of a test.
        ///
        /// ```
        /// use std::time::Duration;
        /// use futures::FutureExt;
        ///
        /// let clock = tasklane::time::ManualClock::new();
        /// let mut sleep = clock.sleep_for(Duration::from_millis(10));
        /// assert!((&mut sleep).now_or_never().is_none());
        /// clock.advance(Duration::from_millis(10));
        /// assert!(sleep.now_or_never().is_some());
        /// ```
        pub fn sleep_for(&self, duration: Duration) -> SleepFor {
            let mut sleep = self.sleep();
            sleep.reset(
                self.now_nanos()
                    .saturating_add(crate::backoff::nanos(duration)),
            );
            SleepFor(sleep)
        }

        pub(crate) fn now_nanos(&self) -> u64 {
            self.inner.lock().unwrap_or_else(|e| e.into_inner()).now
        }

        pub(crate) fn sleep(&self) -> ManualSleep {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.next_id += 1;
            ManualSleep {
                clock: self.clone(),
                id: inner.next_id,
                deadline: None,
            }
        }
    }

    /// The future of [`ManualClock::sleep_for`]: ready once the clock reaches its deadline.
    #[derive(Debug)]
    #[must_use = "a sleep does nothing unless awaited"]
    pub struct SleepFor(ManualSleep);

    impl std::future::Future for SleepFor {
        type Output = ();

        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.poll(cx)
        }
    }

    /// A sleep on a [`ManualClock`].
    #[derive(Debug)]
    pub(crate) struct ManualSleep {
        clock: ManualClock,
        id: u64,
        deadline: Option<u64>,
    }

    impl ManualSleep {
        pub(crate) fn reset(&mut self, deadline: u64) {
            self.deadline = Some(deadline);
            let mut inner = self.clock.inner.lock().unwrap_or_else(|e| e.into_inner());
            let id = self.id;
            match inner.sleepers.iter_mut().find(|(i, _, _)| *i == id) {
                Some(entry) => entry.1 = deadline,
                None => inner.sleepers.push((id, deadline, None)),
            }
        }

        pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
            let Some(deadline) = self.deadline else {
                return Poll::Pending;
            };
            let mut inner = self.clock.inner.lock().unwrap_or_else(|e| e.into_inner());
            if inner.now >= deadline {
                return Poll::Ready(());
            }
            let id = self.id;
            if let Some(entry) = inner.sleepers.iter_mut().find(|(i, _, _)| *i == id) {
                entry.2 = Some(cx.waker().clone());
            }
            Poll::Pending
        }
    }

    impl Drop for ManualSleep {
        fn drop(&mut self) {
            let mut inner = self.clock.inner.lock().unwrap_or_else(|e| e.into_inner());
            let id = self.id;
            inner.sleepers.retain(|(i, _, _)| *i != id);
        }
    }
}
