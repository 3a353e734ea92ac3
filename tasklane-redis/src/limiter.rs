//! [`RedisLimiter`]: the builder, its settings and getters, and [`flush`](RedisLimiter::flush).
//! What it does on each lane's call is in `admit.rs`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
#[cfg(doc)]
use tasklane::limit::Admit;
use tasklane::limit::LimitError;

use crate::admit::State;
use crate::call;

/// Where a [`RedisLimiter`] sends its calls: a [`redis::Client`] (the limiter makes its own
/// [`ConnectionManager`], which reconnects after a fault, on the first call) or a
/// [`ConnectionManager`] of yours (shared with your other Redis traffic).
///
/// ```
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// let backend: tasklane_redis::Backend = client.into();
/// # let _ = backend;
/// # Ok::<(), redis::RedisError>(())
/// ```
pub struct Backend(BackendKind);

pub(crate) enum BackendKind {
    Client(redis::Client),
    Manager(ConnectionManager),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BackendKind::Client(client) => f
                .debug_tuple("Backend::Client")
                .field(&client.get_connection_info().addr())
                .finish(),
            BackendKind::Manager(_) => f.write_str("Backend::Manager"),
        }
    }
}

impl From<redis::Client> for Backend {
    fn from(client: redis::Client) -> Self {
        Backend(BackendKind::Client(client))
    }
}

impl From<ConnectionManager> for Backend {
    fn from(manager: ConnectionManager) -> Self {
        Backend(BackendKind::Manager(manager))
    }
}

/// The settings, as the builder leaves them.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Units per second; `None`: no rate.
    pub(crate) per_second: Option<f64>,
    pub(crate) burst: u32,
    /// Units of the rate taken per round trip at most.
    pub(crate) lease: u32,
    pub(crate) concurrency: Option<u32>,
    pub(crate) lease_ttl: Duration,
    pub(crate) poll: Duration,
    /// How far ahead a denied start may reserve its units.
    pub(crate) ahead: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) fails_open: bool,
}

/// What the handles share.
pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) backend: BackendKind,
    /// `[{key}:gcra, {key}:lease]`.
    pub(crate) keys: Arc<[String; 2]>,
    pub(crate) script: Arc<redis::Script>,
    /// This limiter's prefix of lease ids: unique across the fleet (random), so that a lease id is
    /// nobody else's.
    pub(crate) instance: String,
    pub(crate) round_trips: AtomicU64,
    pub(crate) state: Mutex<State>,
}

/// A rate (and optionally a concurrency) shared by every process that uses the same Redis key:
/// GCRA in one Lua script on the server's clock. A cheap handle (`Clone`, `Send + Sync`): give it
/// to each lane with [`limiter`](tasklane::Configure::limiter). See the [crate docs](crate).
///
/// # Default
///
/// - no rate and no concurrency (set at least one: a limiter with neither admits everything
///   without a round trip);
/// - [`burst`](RedisLimiter::burst) 1, [`lease`](RedisLimiter::lease) 1 (a round trip per start);
/// - [`reserve_ahead`](RedisLimiter::reserve_ahead) 100 ms;
/// - [`lease_ttl`](RedisLimiter::lease_ttl) 30 s, [`poll`](RedisLimiter::poll) 50 ms;
/// - [`call_timeout`](RedisLimiter::call_timeout) 1 s, [`fail_closed`](RedisLimiter::fail_closed).
///
/// The builder methods configure a new limiter: call them before cloning it (a clone made before
/// is another limiter, with the same key and backend but its own local state).
///
/// # Examples
///
/// ```no_run
/// use futures::StreamExt;
/// use tasklane::prelude::*;
/// use tasklane_redis::RedisLimiter;
///
/// # #[tokio::main] async fn main() -> Result<(), redis::RedisError> {
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// let api = RedisLimiter::new(client, "api").rate(200.0).burst(10);
/// let done = (0..100u32)
///     .lane(16)
///     .limiter(&api)
///     .map_async(|x| async move { x })
///     .count()
///     .await;
/// assert_eq!(done, 100);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisLimiter {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("key", &self.inner.keys[0])
            .field("settings", &self.inner.settings)
            .field("round_trips", &self.round_trips())
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter on the Redis key `key` (its keys are `{key}:gcra` and `{key}:lease`, one Cluster
    /// slot), with no limit yet: add a [`rate`](RedisLimiter::rate) or a
    /// [`concurrency`](RedisLimiter::concurrency). Every process that uses the same key and
    /// settings shares one budget; the settings travel with each call, so keep them the same
    /// across the fleet.
    ///
    /// `backend` is a [`redis::Client`] or a [`ConnectionManager`] (see [`Backend`]). Nothing is
    /// sent before the first start.
    ///
    /// # Panics
    ///
    /// If `key` is empty or contains `{` or `}` (the limiter adds the hash tag itself).
    ///
    /// # Examples
    ///
    /// ```
    /// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let api = tasklane_redis::RedisLimiter::new(client, "api").rate(100.0);
    /// assert_eq!(api.rate_limit(), Some(100.0));
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    #[track_caller]
    pub fn new(backend: impl Into<Backend>, key: impl Into<String>) -> Self {
        let key = key.into();
        assert!(
            !key.is_empty() && !key.contains(['{', '}']),
            "tasklane-redis: `key` must be non-empty and without braces, got {key:?}"
        );
        let instance = format!("{:016x}", fastrand::u64(..));
        RedisLimiter {
            inner: Arc::new(Inner {
                settings: Settings {
                    per_second: None,
                    burst: 1,
                    lease: 1,
                    concurrency: None,
                    lease_ttl: Duration::from_secs(30),
                    poll: Duration::from_millis(50),
                    ahead: Duration::from_millis(100),
                    call_timeout: Duration::from_secs(1),
                    fails_open: false,
                },
                backend: backend.into().0,
                keys: Arc::new([format!("{{{key}}}:gcra"), format!("{{{key}}}:lease")]),
                script: Arc::new(call::script()),
                instance,
                round_trips: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// This limiter with `f` applied to its settings.
    fn with(self, f: impl FnOnce(&mut Settings)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                settings: shared.settings.clone(),
                backend: match &shared.backend {
                    BackendKind::Client(client) => BackendKind::Client(client.clone()),
                    BackendKind::Manager(manager) => BackendKind::Manager(manager.clone()),
                },
                keys: Arc::clone(&shared.keys),
                script: Arc::clone(&shared.script),
                instance: format!("{:016x}", fastrand::u64(..)),
                round_trips: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            },
        };
        f(&mut inner.settings);
        RedisLimiter {
            inner: Arc::new(inner),
        }
    }

    /// At most `per_second` starts per second over the fleet (units, with a lane's
    /// [`cost`](tasklane::Lane::cost)), on the server's clock: GCRA, whose schedule lets
    /// [`burst`](RedisLimiter::burst) units start at once after an idle time. In any window of
    /// length `t`, at most `burst + per_second × t` units start (plus `lease − 1` per process
    /// with [`lease`](RedisLimiter::lease)).
    ///
    /// # Panics
    ///
    /// If `per_second` is not a positive finite number.
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let api = tasklane_redis::RedisLimiter::new(client, "api").rate(5000.0);
    /// assert_eq!(api.rate_limit(), Some(5000.0));
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    #[track_caller]
    pub fn rate(self, per_second: f64) -> Self {
        assert!(
            per_second.is_finite() && per_second > 0.0,
            "tasklane-redis: `per_second` must be positive and finite, got {per_second}"
        );
        self.with(|s| s.per_second = Some(per_second))
    }

    /// Up to `burst` units may start at once after an idle time (1 by default: starts are evenly
    /// spaced). Also the most units one start may cost.
    ///
    /// # Panics
    ///
    /// If `burst` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let api = tasklane_redis::RedisLimiter::new(client, "api").rate(100.0).burst(10);
    /// assert_eq!(api.burst_limit(), 10);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    #[track_caller]
    pub fn burst(self, burst: u32) -> Self {
        assert!(
            burst > 0,
            "tasklane-redis: `burst` must be at least 1, got 0"
        );
        self.with(|s| s.burst = burst)
    }

    /// Takes up to `units` units of the rate per round trip, keeps them in this process and hands
    /// them out to later starts without a round trip: fewer calls under load, for some
    /// precision. The server counts leased units as started when it grants them, so:
    /// - a process may hold up to `units − 1` units ahead of use, so the fleet's bound loosens by
    ///   up to `units − 1` per process (starts run ahead of the schedule by that much, never
    ///   above the rate over a long run);
    /// - units a process holds when it stops (or drops the limiter) are **lost**, not given back
    ///   (the fleet starts that many fewer in that second), unless it awaits
    ///   [`flush`](RedisLimiter::flush) first, which gives them back to the server. An attempt
    ///   that was admitted and cancelled (it never started) gives its units back to this
    ///   process's pool, for its next start.
    ///
    /// The server grants what its schedule allows at the time, at most `units` (at most `burst`):
    /// give a burst of at least `units` for the lease to help.
    ///
    /// # Panics
    ///
    /// If `units` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let api = tasklane_redis::RedisLimiter::new(client, "api").rate(5000.0).burst(50).lease(8);
    /// assert_eq!(api.lease_units(), 8);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    #[track_caller]
    pub fn lease(self, units: u32) -> Self {
        assert!(
            units > 0,
            "tasklane-redis: `lease` units must be at least 1, got 0"
        );
        self.with(|s| s.lease = units)
    }

    /// How far ahead a start the rate denies may reserve its place in the schedule (100 ms by
    /// default). Within it, the server takes the units for this start at the time the schedule
    /// has room, and the lane waits until then on its own timer and starts without asking again:
    /// one round trip per start, however many lanes wait. Further ahead, the lane is told when to
    /// ask again (when its start would fit within `ahead`). `Duration::ZERO` never reserves:
    /// every lane the rate denies asks again when the schedule has room, and the lanes that lose
    /// that race ask once more.
    ///
    /// A reservation is a promise: the units are taken on the server when it is made. A lane
    /// dropped while it waits for its reserved time loses them (the fleet starts that many fewer).
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// use std::time::Duration;
    /// let api = tasklane_redis::RedisLimiter::new(client, "api")
    ///     .rate(100.0)
    ///     .reserve_ahead(Duration::from_millis(250));
    /// # let _ = api;
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn reserve_ahead(self, ahead: Duration) -> Self {
        self.with(|s| s.ahead = ahead)
    }

    /// At most `n` units in flight over the fleet. Each unit is a lease on the server with an
    /// expiry ([`lease_ttl`](RedisLimiter::lease_ttl)), so the permits of a process that crashed
    /// come back by themselves.
    ///
    /// Every start with a concurrency is a round trip (leases are not kept ahead of use). A unit
    /// whose attempt ended is given back with this process's next call, or by
    /// [`flush`](RedisLimiter::flush); a process that does neither leaves it to expire. A running attempt's lease is renewed by the process's
    /// calls (those older than a third of the time to live): an attempt that outlives the time to
    /// live in a process that makes no call meanwhile stops counting. When the concurrency is
    /// full, a lane asks again after the earliest expiry or [`poll`](RedisLimiter::poll),
    /// whichever comes first.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let db = tasklane_redis::RedisLimiter::new(client, "db").concurrency(20);
    /// assert_eq!(db.limit(), Some(20));
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    #[track_caller]
    pub fn concurrency(self, n: u32) -> Self {
        assert!(
            n > 0,
            "tasklane-redis: `concurrency` must be at least 1, got 0"
        );
        self.with(|s| s.concurrency = Some(n))
    }

    /// How long a unit of the [`concurrency`](RedisLimiter::concurrency) lives on the server after
    /// it is taken or renewed (30 s by default).
    ///
    /// # Panics
    ///
    /// If `ttl` is under 1 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// use std::time::Duration;
    /// let db = tasklane_redis::RedisLimiter::new(client, "db")
    ///     .concurrency(20)
    ///     .lease_ttl(Duration::from_secs(5));
    /// # let _ = db;
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    #[track_caller]
    pub fn lease_ttl(self, ttl: Duration) -> Self {
        assert!(
            ttl >= Duration::from_millis(1),
            "tasklane-redis: `lease_ttl` must be at least 1 ms, got {ttl:?}"
        );
        self.with(|s| s.lease_ttl = ttl)
    }

    /// The longest a lane waits before asking again while the
    /// [`concurrency`](RedisLimiter::concurrency) is full (50 ms by default): a unit that comes
    /// back elsewhere in the fleet is seen this late at most.
    ///
    /// # Panics
    ///
    /// If `interval` is under 1 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// use std::time::Duration;
    /// let db = tasklane_redis::RedisLimiter::new(client, "db")
    ///     .concurrency(20)
    ///     .poll(Duration::from_millis(10));
    /// # let _ = db;
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    #[track_caller]
    pub fn poll(self, interval: Duration) -> Self {
        assert!(
            interval >= Duration::from_millis(1),
            "tasklane-redis: `poll` interval must be at least 1 ms, got {interval:?}"
        );
        self.with(|s| s.poll = interval)
    }

    /// The time limit on each call to the server (1 s by default), on futures-timer's timer (no
    /// runtime named). A call that has no answer by then is an error
    /// ([`fail_open`](RedisLimiter::fail_open) says what the lane does with it); a unit it may
    /// have taken is given back (concurrency) or lost (rate).
    ///
    /// # Panics
    ///
    /// If `limit` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// use std::time::Duration;
    /// let api = tasklane_redis::RedisLimiter::new(client, "api")
    ///     .rate(100.0)
    ///     .call_timeout(Duration::from_millis(250));
    /// # let _ = api;
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    #[track_caller]
    pub fn call_timeout(self, limit: Duration) -> Self {
        assert!(
            !limit.is_zero(),
            "tasklane-redis: `call_timeout` must be more than zero"
        );
        self.with(|s| s.call_timeout = limit)
    }

    /// When the server cannot be asked (down, unreachable, too slow), let the attempt start
    /// ([`Admit::fails_open`]): availability over the limit. While it is down the fleet is not
    /// limited, and an attempt started this way holds no lease of the
    /// [`concurrency`](RedisLimiter::concurrency) (and the lane calls no `release` for it).
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// use tasklane::limit::Admit;
    /// let api = tasklane_redis::RedisLimiter::new(client, "api").rate(100.0).fail_open();
    /// assert!(api.fails_open());
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn fail_open(self) -> Self {
        self.with(|s| s.fails_open = true)
    }

    /// When the server cannot be asked, fail the item (the default): the lane's error says why
    /// ([`tasklane::Error::limit_error`]). On a lane whose items cannot fail (no
    /// [`timeout`](tasklane::Configure::timeout) or [`retry`](tasklane::Configure::retry)) the
    /// attempt starts all the same.
    ///
    /// # Examples
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// use tasklane::limit::Admit;
    /// let api = tasklane_redis::RedisLimiter::new(client, "api").fail_open().fail_closed();
    /// assert!(!api.fails_open());
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn fail_closed(self) -> Self {
        self.with(|s| s.fails_open = false)
    }

    /// The rate, starts per second (`None`: no rate).
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// assert_eq!(tasklane_redis::RedisLimiter::new(client, "api").rate_limit(), None);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn rate_limit(&self) -> Option<f64> {
        self.inner.settings.per_second
    }

    /// The burst.
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// assert_eq!(tasklane_redis::RedisLimiter::new(client, "api").burst_limit(), 1);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn burst_limit(&self) -> u32 {
        self.inner.settings.burst
    }

    /// The most units of the rate taken per round trip.
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// assert_eq!(tasklane_redis::RedisLimiter::new(client, "api").lease_units(), 1);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn lease_units(&self) -> u32 {
        self.inner.settings.lease
    }

    /// The concurrency (`None`: none).
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// assert_eq!(tasklane_redis::RedisLimiter::new(client, "api").limit(), None);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn limit(&self) -> Option<u32> {
        self.inner.settings.concurrency
    }

    /// Calls sent to the server so far by this limiter (every handle of it), answered or not.
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// assert_eq!(tasklane_redis::RedisLimiter::new(client, "api").round_trips(), 0);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// Gives back now what this process holds unused: the concurrency's leases of attempts that
    /// ended (else they go with the next call, or expire after
    /// [`lease_ttl`](RedisLimiter::lease_ttl) if there is none), and the units of the rate it
    /// holds ahead of use ([`lease`](RedisLimiter::lease), cancelled attempts: else they are lost
    /// when the process stops), which move the fleet's schedule back. One round trip, if there is
    /// anything to give back. Await it where the lanes run (with `tokio-comp`, inside the tokio
    /// runtime), for example at the end of a batch or before the process exits.
    ///
    /// [`release`](Admit::release) cannot send them itself: it is called from a lane's
    /// `poll_next` and must not block, and sending from there without a task of its own would need
    /// a runtime to spawn on, which this crate does not name.
    ///
    /// # Errors
    ///
    /// When the server did not answer within [`call_timeout`](RedisLimiter::call_timeout): the
    /// leases then go with the next call, or expire; the units of the rate are lost (the server
    /// may have taken them back already).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use tasklane::prelude::*;
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let db = tasklane_redis::RedisLimiter::new(client, "db").concurrency(10);
    /// let n = (0..100u32).lane(16).limiter(&db).map_async(|x| async move { x }).count().await;
    /// assert_eq!(n, 100);
    /// db.flush().await?; // the last 10 leases go back now, not in 30 s
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<(), LimitError> {
        self.inner.flush().await
    }

    /// Units of the rate this process holds ahead of use (see [`lease`](RedisLimiter::lease)).
    ///
    /// ```
    /// # let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// assert_eq!(tasklane_redis::RedisLimiter::new(client, "api").leased(), 0);
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn leased(&self) -> u32 {
        self.inner.leased()
    }
}
