//! Per-key limits: a [`KeyedLimiter`] gives every key (a host, a tenant, an account) a budget of
//! its own, made the first time the key is seen and forgotten once it has been idle for a while.
//!
//! The table maps each key to its entry, an `Arc` that the lanes hold while one of their items
//! uses the key (running, waiting or backing off between attempts). An entry is forgotten when
//! nobody holds it, nothing of its budget is in flight, nobody waits in its line, its rate's schedule
//! is at rest (a fresh entry would answer the same), and it has not been asked for
//! [`idle`](KeyedLimiter::idle) (1 s by default). The table is swept when it has doubled since the
//! last sweep, so it stays within twice the keys in use in the last idle time, whatever the number
//! of distinct keys over the run, at O(1) amortized work per new key (governor#171 is a keyed
//! limiter that never forgot a key).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::time::Instant;

use super::budget::{Budget, UNLIMITED};
use super::{answer_to_poll, Admit, LimitClock, LimitError, Verdict, Waiter};
use crate::rate::Rate;

/// The fewest keys the table holds before its first sweep.
const FIRST_SWEEP: usize = 64;

/// One key's budget, shared by the table and the items that use the key.
#[derive(Debug)]
pub(crate) struct Entry {
    budget: Budget,
    /// When the key was last asked for (nanoseconds on the limiter's clock).
    last_used: AtomicU64,
    clock: LimitClock,
}

impl Admit for Entry {
    #[inline]
    fn poll_admit(
        &self,
        waiter: &Waiter,
        cost: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Verdict, LimitError>> {
        let now = self.clock.now();
        self.last_used.store(now, Ordering::Relaxed);
        let answer = self.budget.ask(waiter.id(), cost, || now, cx.waker());
        answer_to_poll(answer, now)
    }

    budget_admit_methods!();
}

/// The settings every new key's budget gets.
#[derive(Debug, Clone, Copy)]
struct Settings {
    concurrency: u64,
    per_second: Option<f64>,
    burst: u32,
    idle: Duration,
}

/// The table of keys and when to sweep it next.
struct Table<K> {
    entries: HashMap<K, Arc<Entry>>,
    /// What every new key's budget gets (and every key's, after a `set_*`).
    settings: Settings,
    /// Sweep when the table reaches this many keys.
    sweep_at: usize,
}

/// What a [`KeyedLimiter`]'s handles share.
struct Shared<K> {
    table: Mutex<Table<K>>,
    clock: LimitClock,
}

/// A budget per key: each key (the host of a URL, a tenant) gets its own concurrency and rate.
/// Made by [`Limiter::keyed`](super::Limiter::keyed); given to a lane with
/// [`Lane::limiter_by`](crate::Lane::limiter_by), with a function that gives each item's key.
///
/// An item whose key has no room waits for it, and does not hold up the items of other keys: an
/// unordered lane reads ahead (within its own limit) and starts what can start. A clone is another
/// handle to the same table (an `Arc`), `Send + Sync`.
///
/// # Examples
///
/// Per-host limits for a crawler: at most 2 requests at once to each host.
///
/// ```
/// use futures::StreamExt;
/// use tasklane::{prelude::*, Limiter};
///
/// let per_host = Limiter::keyed::<String>().concurrency(2);
/// let urls = ["a.example/1", "a.example/2", "b.example/1", "a.example/3", "b.example/2"];
///
/// async fn fetch(url: &str) -> usize { url.len() } // stands in for a request
///
/// # futures::executor::block_on(async {
/// let sizes: Vec<usize> = urls
///     .lane(8)
///     .limiter_by(&per_host, |url: &&str| url.split('/').next().unwrap().to_owned())
///     .map_async(|url| fetch(url))
///     .collect()
///     .await;
/// assert_eq!(sizes.len(), 5);
/// # });
/// assert_eq!(per_host.in_flight(&"a.example".to_owned()), 0);
/// ```
pub struct KeyedLimiter<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for KeyedLimiter<K> {
    fn clone(&self) -> Self {
        KeyedLimiter {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> KeyedLimiter<K> {
    fn table(&self) -> MutexGuard<'_, Table<K>> {
        // Every change of the table is made in one step: a poisoned lock is used as it is.
        self.shared.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K> fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("keys", &self.table().entries.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone + Send + 'static> KeyedLimiter<K> {
    pub(super) fn new() -> Self {
        Self::with_settings(
            Settings {
                concurrency: UNLIMITED,
                per_second: None,
                burst: 1,
                idle: Duration::from_secs(1),
            },
            LimitClock::Real(Instant::now()),
        )
    }

    fn with_settings(settings: Settings, clock: LimitClock) -> Self {
        KeyedLimiter {
            shared: Arc::new(Shared {
                table: Mutex::new(Table {
                    entries: HashMap::new(),
                    settings,
                    sweep_at: FIRST_SWEEP,
                }),
                clock,
            }),
        }
    }

    /// The same limiter with its settings changed by `f` (a builder step: keys seen before keep
    /// theirs, so set everything before the limiter is used).
    fn set(self, f: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.table().settings;
        f(&mut settings);
        Self::with_settings(settings, self.shared.clock.clone())
    }

    /// At most `n` attempts in flight at once for each key.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// let per_host = tasklane::Limiter::keyed::<String>().concurrency(2);
    /// assert_eq!(per_host.len(), 0);
    /// ```
    #[track_caller]
    pub fn concurrency(self, n: usize) -> Self {
        assert!(n > 0, "tasklane: `concurrency` must be at least 1, got 0");
        self.set(|s| s.concurrency = n as u64)
    }

    /// At most `per_second` starts per second for each key (GCRA, as
    /// [`Limiter::rate`](super::Limiter::rate)).
    ///
    /// # Panics
    ///
    /// If `per_second` is not a finite number greater than zero.
    ///
    /// ```
    /// let per_host = tasklane::Limiter::keyed::<u32>().rate(10.0).burst(2);
    /// assert_eq!(per_host.len(), 0);
    /// ```
    #[track_caller]
    pub fn rate(self, per_second: f64) -> Self {
        Rate::period(per_second); // checks it
        self.set(|s| s.per_second = Some(per_second))
    }

    /// Starts allowed back to back for each key under the rate (1 by default).
    ///
    /// # Panics
    ///
    /// If `burst` is 0.
    ///
    /// ```
    /// let per_host = tasklane::Limiter::keyed::<u32>().rate(10.0).burst(5);
    /// # let _ = per_host;
    /// ```
    #[track_caller]
    pub fn burst(self, burst: u32) -> Self {
        let burst = Rate::check_burst(burst, false);
        self.set(|s| s.burst = burst)
    }

    /// How long a key must go unused before it may be forgotten (1 s by default). A forgotten key
    /// that comes back starts afresh, which changes nothing: only a key whose budget is at rest is
    /// forgotten.
    ///
    /// ```
    /// use std::time::Duration;
    /// let per_host = tasklane::Limiter::keyed::<u32>().idle(Duration::from_secs(30));
    /// # let _ = per_host;
    /// ```
    pub fn idle(self, idle: Duration) -> Self {
        self.set(|s| s.idle = idle)
    }

    /// The limiter reads `clock` instead of the system's (with the `test-util` feature).
    ///
    /// ```
    /// let clock = tasklane::time::ManualClock::new();
    /// let per_host = tasklane::Limiter::keyed::<u32>().rate(10.0).with_clock(&clock);
    /// # let _ = per_host;
    /// ```
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn with_clock(self, clock: &crate::time::ManualClock) -> Self {
        let settings = self.table().settings;
        Self::with_settings(settings, LimitClock::Manual(clock.clone()))
    }

    /// Sets every key's concurrency, from its next start on (keys seen later get it too); every
    /// waiting lane is woken.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// let per_host = tasklane::Limiter::keyed::<u32>().concurrency(4);
    /// per_host.set_concurrency(1);
    /// ```
    #[track_caller]
    pub fn set_concurrency(&self, n: usize) {
        assert!(n > 0, "tasklane: `concurrency` must be at least 1, got 0");
        let mut table = self.table();
        table.settings.concurrency = n as u64;
        for entry in table.entries.values() {
            entry.budget.set_concurrency(n as u64);
        }
    }

    /// Sets every key's rate, from its next start on, keeping each key's place in its schedule
    /// (keys seen later get it too); every waiting lane is woken.
    ///
    /// # Panics
    ///
    /// If `per_second` is not a finite number greater than zero.
    ///
    /// ```
    /// let per_host = tasklane::Limiter::keyed::<u32>().rate(10.0);
    /// per_host.set_rate(5.0);
    /// ```
    #[track_caller]
    pub fn set_rate(&self, per_second: f64) {
        let period = Rate::period(per_second);
        let mut table = self.table();
        table.settings.per_second = Some(per_second);
        let burst = table.settings.burst;
        for entry in table.entries.values() {
            entry.budget.set_rate(Some((period, burst)));
        }
    }

    /// Sets every key's burst, from its next start on (keys seen later get it too).
    ///
    /// # Panics
    ///
    /// If `burst` is 0.
    ///
    /// ```
    /// let per_host = tasklane::Limiter::keyed::<u32>().rate(10.0);
    /// per_host.set_burst(3);
    /// ```
    #[track_caller]
    pub fn set_burst(&self, burst: u32) {
        let burst = Rate::check_burst(burst, false);
        let mut table = self.table();
        table.settings.burst = burst;
        if let Some(per_second) = table.settings.per_second {
            let period = Rate::period(per_second);
            for entry in table.entries.values() {
                entry.budget.set_rate(Some((period, burst)));
            }
        }
    }

    /// Keys in the table now (those in use, and those not forgotten yet).
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::keyed::<u32>().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.table().entries.len()
    }

    /// Whether the table holds no key.
    ///
    /// ```
    /// assert!(tasklane::Limiter::keyed::<u32>().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Units in flight for `key` (0 for a key not in the table).
    ///
    /// ```
    /// assert_eq!(tasklane::Limiter::keyed::<&str>().in_flight(&"a.example"), 0);
    /// ```
    pub fn in_flight(&self, key: &K) -> usize {
        self.table().entries.get(key).map_or(0, |entry| {
            usize::try_from(entry.budget.in_flight()).unwrap_or(usize::MAX)
        })
    }

    /// The entry of `key`, made if it is new (sweeping the table first when it has doubled).
    pub(crate) fn entry(&self, key: K) -> Arc<Entry> {
        let mut table = self.table();
        if let Some(entry) = table.entries.get(&key) {
            return Arc::clone(entry);
        }
        if table.entries.len() >= table.sweep_at {
            self.sweep(&mut table);
        }
        let settings = table.settings;
        let rate = settings
            .per_second
            .map(|per_second| (Rate::period(per_second), settings.burst));
        let entry = Arc::new(Entry {
            budget: Budget::new(settings.concurrency, rate),
            last_used: AtomicU64::new(self.shared.clock.now()),
            clock: self.shared.clock.clone(),
        });
        table.entries.insert(key, Arc::clone(&entry));
        entry
    }

    /// Forgets every key that is idle: see the module docs.
    fn sweep(&self, table: &mut Table<K>) {
        let now = self.shared.clock.now();
        let idle = crate::backoff::nanos(table.settings.idle);
        table.entries.retain(|_, entry| {
            let unused = Arc::strong_count(entry) == 1
                && entry.budget.in_flight() == 0
                && entry.budget.waiting() == 0
                && entry.budget.at_rest(now)
                && now.saturating_sub(entry.last_used.load(Ordering::Relaxed)) >= idle;
            !unused
        });
        table.sweep_at = (table.entries.len() * 2).max(FIRST_SWEEP);
    }
}
