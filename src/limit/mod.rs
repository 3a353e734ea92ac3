//! Limits shared by many lanes, pools and threads: one [`Limiter`] for an API quota that every
//! call site draws on, and the [`Admit`] trait through which any limiter (in process, or across a
//! fleet) plugs into a lane.
//!
//! A lane's own [`limit`](crate::Configure::with_limit) and [`rate`](crate::Configure::rate) hold
//! for that lane alone: two lanes that each run `.lane(10).rate(50.0)` together start 100 attempts
//! per second. Give them one `Limiter` instead, and the budget is shared:
//!
//! ```
//! use futures::StreamExt;
//! use tasklane::{prelude::*, Limiter};
//!
//! // One quota for the whole process: at most 4 requests in flight, 50 starts per second.
//! let api = Limiter::new().concurrency(4).rate(50.0).burst(4);
//!
//! async fn call(id: u32) -> u32 { id } // stands in for a request
//!
//! # futures::executor::block_on(async {
//! let users = (0..3u32).lane(10).limiter(&api).map_async(call);
//! let orders = (10..13u32).lane(10).limiter(&api).map_async(call);
//! let (users, orders): (Vec<u32>, Vec<u32>) = futures::join!(users.collect(), orders.collect());
//! assert_eq!(users.len() + orders.len(), 6);
//! assert_eq!(api.in_flight(), 0, "every permit came back");
//! # });
//! ```
//!
//! # What a lane does with a limiter
//!
//! - An attempt starts when the lane has a free slot **and** every limiter it was given grants it.
//!   A retry is an attempt: it asks again, as the lane's own rate limit does.
//! - A permit of the concurrency is held while the attempt runs and given back when it ends, times
//!   out, or is dropped (dropping a lane gives back all of its permits at once). A lane gives it
//!   back as the `poll_next` call in which the attempt ended returns, unless a start later in the
//!   same call takes it over (only while nobody waits for the limiter): an end and the start it
//!   lets in then cost no atomic read-modify-write.
//! - Lanes that wait for one limiter are served first come, first served, one grant per turn: a lane
//!   with many items waiting cannot starve another. A permit of the concurrency that comes back
//!   while lanes wait is handed to the first in line at once (counted in
//!   [`in_flight`](Limiter::in_flight) from then on, as tokio's fair `Semaphore` assigns its
//!   permits), so no lane can take it out of turn.
//! - The settings can change while lanes run ([`set_concurrency`](Limiter::set_concurrency),
//!   [`set_rate`](Limiter::set_rate), [`set_burst`](Limiter::set_burst)); a change applies from the
//!   next start, and every waiting lane is woken to ask again. Lowering the concurrency stops no
//!   attempt: nothing starts until the count is below the new value.
//!
//! A lane that waits in line and is not polled (its consumer stopped reading it) keeps its place,
//! and so holds up the lanes behind it, as a waiter of tokio's fair `Semaphore` does: drop it, or
//! keep polling it.
//!
//! # Recipes
//!
//! **One API quota for every task of a process.** Keep the limiter where every call site can reach
//! it (a `static`, or a clone in each task's state); lanes on any thread and any executor share it.
//!
//! ```
//! use std::sync::OnceLock;
//! use futures::StreamExt;
//! use tasklane::{prelude::*, Limiter};
//!
//! fn api() -> &'static Limiter {
//!     static API: OnceLock<Limiter> = OnceLock::new();
//!     API.get_or_init(|| Limiter::new().concurrency(8).rate(200.0).burst(8))
//! }
//!
//! async fn call(id: u32) -> u32 { id } // stands in for a request
//!
//! // Four threads, each with its own executor and lane, one budget.
//! let threads: Vec<_> = (0..4u32)
//!     .map(|t| {
//!         std::thread::spawn(move || {
//!             futures::executor::block_on(
//!                 (t * 10..t * 10 + 5).lane(16).limiter(api()).map_async(call).count(),
//!             )
//!         })
//!     })
//!     .collect();
//! let done: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
//! assert_eq!(done, 20);
//! assert_eq!(api().in_flight(), 0);
//! ```
//!
//! **Per-host limits for a crawler**: see [`KeyedLimiter`] (at most `n` requests at once to each
//! host; a slow host does not hold up the others).
//!
//! **Halving the rate when the server answers 429**: the limiter is a handle, so a `retry_if`
//! closure can hold a clone and turn it down.
//!
//! ```
//! use std::time::Duration;
//! use futures::StreamExt;
//! use tasklane::{prelude::*, Limiter};
//!
//! #[derive(Debug)]
//! struct Status(u16);
//!
//! async fn call(id: u32) -> Result<u32, Status> {
//!     if id == 2 { Err(Status(429)) } else { Ok(id) } // stands in for a request
//! }
//!
//! let api = Limiter::new().rate(1000.0);
//! let backoff = api.clone();
//! # futures::executor::block_on(async {
//! let out: Vec<_> = (0..4u32)
//!     .lane(4)
//!     .limiter(&api)
//!     .retry(1)
//!     .backoff(tasklane::Backoff::constant(Duration::from_millis(1)))
//!     .retry_if(move |err: &tasklane::Error<Status>| {
//!         if matches!(err.inner(), Some(Status(429))) {
//!             backoff.set_rate(backoff.rate_limit().unwrap_or(1000.0) / 2.0);
//!         }
//!         true
//!     })
//!     .map_async(call)
//!     .collect()
//!     .await;
//! assert_eq!(out.len(), 4);
//! assert_eq!(api.rate_limit(), Some(500.0), "one 429 retried: halved once");
//! # });
//! ```

/// The [`Admit`] methods other than `poll_admit` of a type whose `budget` field is its
/// [`Budget`](budget::Budget) (a [`Limiter`]'s shared state, and a keyed limiter's entry): each
/// passes the call on.
macro_rules! budget_admit_methods {
    () => {
        fn release(&self, cost: u32) {
            self.budget.release(cost);
        }

        fn cancel(&self, _: &Waiter, cost: u32) {
            self.budget.cancel(cost);
        }

        fn leave(&self, waiter: &Waiter) {
            self.budget.leave(waiter.id());
        }

        fn can_ever_admit(&self, cost: u32) -> bool {
            self.budget.can_ever(cost)
        }
    };
}

mod admit;
mod budget;
mod keyed;

use crate::time::Instant;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

pub(crate) use self::admit::answer_to_poll;
pub use self::admit::{Admit, LimitError, Verdict, Waiter};
use self::budget::{Budget, UNLIMITED};
pub use self::keyed::KeyedLimiter;
use crate::rate::Rate;

/// Where a [`Limiter`] reads the time.
#[derive(Debug, Clone)]
pub(crate) enum LimitClock {
    Real(Instant),
    #[cfg(feature = "test-util")]
    Manual(crate::time::ManualClock),
}

impl LimitClock {
    pub(crate) fn now(&self) -> u64 {
        match self {
            LimitClock::Real(origin) => crate::backoff::nanos(origin.elapsed()),
            #[cfg(feature = "test-util")]
            LimitClock::Manual(clock) => clock.now_nanos(),
        }
    }
}

/// A limiter's rate and burst as the user set them.
#[derive(Debug, Clone, Copy)]
struct Settings {
    per_second: Option<f64>,
    burst: u32,
}

/// What a [`Limiter`]'s handles share: the budget a lane holds (see [`Admit::into_shared`]) and
/// may also ask directly (as [`Local`]).
#[derive(Debug)]
pub(crate) struct Inner {
    budget: Budget,
    /// The rate and burst as set, for the getters (the budget holds them in its own units).
    settings: Mutex<Settings>,
    clock: LimitClock,
}

/// A concurrency budget and a rate shared by every lane, pool and thread that holds a clone of it.
/// See the [module docs](self).
///
/// `Limiter::new()` limits nothing; [`concurrency`](Limiter::concurrency),
/// [`rate`](Limiter::rate) and [`burst`](Limiter::burst) each add a limit. A clone is another handle
/// to the same budget (an `Arc`), `Send + Sync`: give one to each lane with
/// [`limiter`](crate::Configure::limiter).
///
/// # Examples
///
/// ```
/// use tasklane::Limiter;
///
/// let api = Limiter::new().concurrency(10).rate(100.0).burst(5);
/// assert_eq!(api.limit(), Some(10));
/// api.set_concurrency(2); // while lanes run, from any thread
/// assert_eq!(api.clone().limit(), Some(2));
/// assert_eq!(api.in_flight(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Arc<Inner>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new()
    }
}

impl Limiter {
    /// A budget per key ([`KeyedLimiter`]): `Limiter::keyed::<K>().concurrency(n).rate(q)`, given
    /// to a lane with [`Lane::limiter_by`](crate::Lane::limiter_by).
    ///
    /// ```
    /// let per_host = tasklane::Limiter::keyed::<String>().concurrency(2).rate(10.0);
    /// assert!(per_host.is_empty());
    /// ```
    pub fn keyed<K: std::hash::Hash + Eq + Clone + Send + 'static>() -> KeyedLimiter<K> {
        KeyedLimiter::new()
    }

    /// A limiter that limits nothing yet.
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::new().limit(), None);
    /// ```
    pub fn new() -> Self {
        Limiter {
            inner: Arc::new(Inner {
                budget: Budget::new(UNLIMITED, None),
                settings: Mutex::new(Settings {
                    per_second: None,
                    burst: 1,
                }),
                clock: LimitClock::Real(Instant::now()),
            }),
        }
    }

    /// At most `n` attempts in flight at once, over every lane that holds this limiter.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::new().concurrency(3).limit(), Some(3));
    /// ```
    #[track_caller]
    pub fn concurrency(self, n: usize) -> Self {
        self.set_concurrency(n);
        self
    }

    /// At most `per_second` starts per second, over every lane that holds this limiter (GCRA, with
    /// the lane rate limit's catch-up: see [`Configure::rate`](crate::Configure::rate)).
    ///
    /// # Panics
    ///
    /// If `per_second` is not a finite number greater than zero.
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::new().rate(20.0).rate_limit(), Some(20.0));
    /// ```
    #[track_caller]
    pub fn rate(self, per_second: f64) -> Self {
        self.set_rate(per_second);
        self
    }

    /// Starts allowed back to back under the rate (1 by default).
    ///
    /// # Panics
    ///
    /// If `burst` is 0.
    ///
    /// ```
    /// let l = tasklane::Limiter::new().rate(10.0).burst(3);
    /// assert_eq!(l.burst_limit(), 3);
    /// ```
    #[track_caller]
    pub fn burst(self, burst: u32) -> Self {
        self.set_burst(burst);
        self
    }

    /// The limiter reads `clock` instead of the system's (with the `test-util` feature), so that a
    /// test moves the shared rate's time by hand, with the lanes that use the same clock.
    ///
    /// ```
    /// let clock = tasklane::time::ManualClock::new();
    /// let l = tasklane::Limiter::new().rate(10.0).with_clock(&clock);
    /// assert_eq!(l.rate_limit(), Some(10.0));
    /// ```
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn with_clock(self, clock: &crate::time::ManualClock) -> Self {
        let settings = *self.settings();
        let budget = Budget::new(
            self.inner.budget.concurrency(),
            settings
                .per_second
                .map(|per_second| (Rate::period(per_second), settings.burst)),
        );
        Limiter {
            inner: Arc::new(Inner {
                budget,
                settings: Mutex::new(settings),
                clock: LimitClock::Manual(clock.clone()),
            }),
        }
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.inner
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    /// Sets the concurrency from the next start on; every waiting lane is woken. Lowering it stops
    /// nothing: no attempt starts until fewer than `n` are in flight.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// let l = tasklane::Limiter::new().concurrency(10);
    /// l.set_concurrency(2);
    /// assert_eq!(l.limit(), Some(2));
    /// ```
    #[track_caller]
    pub fn set_concurrency(&self, n: usize) {
        assert!(n > 0, "tasklane: `concurrency` must be at least 1, got 0");
        self.budget().set_concurrency(n as u64);
    }

    /// Sets the rate from the next start on, keeping the schedule's place; every waiting lane is
    /// woken.
    ///
    /// # Panics
    ///
    /// If `per_second` is not a finite number greater than zero.
    ///
    /// ```
    /// let l = tasklane::Limiter::new().rate(100.0);
    /// l.set_rate(50.0);
    /// assert_eq!(l.rate_limit(), Some(50.0));
    /// ```
    #[track_caller]
    pub fn set_rate(&self, per_second: f64) {
        let period = Rate::period(per_second);
        let mut settings = self.settings();
        settings.per_second = Some(per_second);
        self.budget().set_rate(Some((period, settings.burst)));
    }

    /// Sets the burst from the next start on; every waiting lane is woken. Without a rate it is
    /// kept for when one is set.
    ///
    /// # Panics
    ///
    /// If `burst` is 0.
    ///
    /// ```
    /// let l = tasklane::Limiter::new().rate(100.0);
    /// l.set_burst(10);
    /// assert_eq!(l.burst_limit(), 10);
    /// ```
    #[track_caller]
    pub fn set_burst(&self, burst: u32) {
        let burst = Rate::check_burst(burst, false);
        let mut settings = self.settings();
        settings.burst = burst;
        if let Some(per_second) = settings.per_second {
            self.budget()
                .set_rate(Some((Rate::period(per_second), burst)));
        }
    }

    /// The rate in starts per second, if one is set.
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::new().rate_limit(), None);
    /// ```
    pub fn rate_limit(&self) -> Option<f64> {
        self.settings().per_second
    }

    /// The burst (1 unless set).
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::new().burst_limit(), 1);
    /// ```
    pub fn burst_limit(&self) -> u32 {
        self.settings().burst
    }

    /// The concurrency, if one is set.
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::new().concurrency(4).limit(), Some(4));
    /// ```
    pub fn limit(&self) -> Option<usize> {
        let n = self.budget().concurrency();
        (n != UNLIMITED).then(|| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Units in flight: the costs of the attempts admitted and not yet ended.
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::new().in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.budget().in_flight()).unwrap_or(usize::MAX)
    }

    /// Lanes waiting in this limiter's line.
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::new().waiting(), 0);
    /// ```
    pub fn waiting(&self) -> usize {
        self.budget().waiting()
    }
}

impl Admit for Limiter {
    fn poll_admit(
        &self,
        waiter: &Waiter,
        cost: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Verdict, LimitError>> {
        self.inner.poll_admit(waiter, cost, cx)
    }

    fn release(&self, cost: u32) {
        self.inner.release(cost);
    }

    fn cancel(&self, waiter: &Waiter, cost: u32) {
        self.inner.cancel(waiter, cost);
    }

    fn leave(&self, waiter: &Waiter) {
        self.inner.leave(waiter);
    }

    fn can_ever_admit(&self, cost: u32) -> bool {
        self.inner.can_ever_admit(cost)
    }

    fn into_shared(self) -> Arc<dyn Admit> {
        self.inner
    }
}

/// A [`Limiter`]'s budget as a lane asks it directly, without the trait object.
pub(crate) type Local = Inner;

/// The shared limiters given to a lane or a policy ([`Configure::limiter`](crate::Configure::limiter)),
/// in the order they are asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limiters {
    /// Each as the lane holds it.
    pub(crate) all: Vec<Arc<dyn Admit>>,
    /// Beside each of `all`: its budget when it is an in-process [`Limiter`].
    locals: Vec<Option<Arc<Local>>>,
}

impl Limiters {
    /// Adds `limiter`, asked after those given before.
    pub(crate) fn push<L: Admit + Clone + 'static>(&mut self, limiter: &L) {
        let local = (limiter as &dyn std::any::Any)
            .downcast_ref::<Limiter>()
            .map(|limiter| Arc::clone(&limiter.inner));
        self.locals.push(local);
        self.all.push(limiter.clone().into_shared());
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The budget of the one limiter, when there is exactly one and it is an in-process
    /// [`Limiter`]: a lane asks it directly on its quick path (`engine::admission::Gate::local`).
    pub(crate) fn only_local(&self) -> Option<Arc<Local>> {
        match &self.locals[..] {
            [Some(local)] => Some(Arc::clone(local)),
            _ => None,
        }
    }
}

impl Inner {
    /// Grants `cost` units at once if that takes no lock and no wait: no rate, nobody in line, and
    /// room under the concurrency (what [`Admit::poll_admit`] grants first, asked without it).
    /// `false` says nothing: ask through `poll_admit`.
    #[inline(always)]
    pub(crate) fn grant_now(&self, cost: u32) -> bool {
        self.budget.grant_now(cost)
    }

    /// Whether a lane may keep units it holds for another start (see `Budget::may_keep`).
    #[inline(always)]
    pub(crate) fn may_keep(&self) -> bool {
        self.budget.may_keep()
    }

    /// [`Admit::release`] of `units` (the costs of one or more attempts), without the trait
    /// object.
    #[inline(always)]
    pub(crate) fn release_units(&self, units: u64) {
        self.budget.release_units(units);
    }
}

/// The budget itself is what a lane holds ([`Admit::into_shared`]).
impl Admit for Inner {
    #[inline]
    fn poll_admit(
        &self,
        waiter: &Waiter,
        cost: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Verdict, LimitError>> {
        let mut now = None;
        let answer = self.budget.ask(
            waiter.id(),
            cost,
            || *now.insert(self.clock.now()),
            cx.waker(),
        );
        answer_to_poll(answer, now.unwrap_or(0))
    }

    budget_admit_methods!();
}
