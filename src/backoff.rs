//! [`Backoff`] and [`Jitter`]: how long to wait before each retry. Pure arithmetic, no `Poll`.

use std::time::Duration;

/// How a [`Backoff`] spreads its delays at random, so that failed items do not retry in lockstep.
///
/// With `d` the backoff curve's delay for an attempt (already capped at `max_delay`):
///
/// ```
/// use std::time::Duration;
/// use tasklane::{Backoff, Jitter};
///
/// let b = Backoff::exponential(Duration::from_millis(100)).with_jitter(Jitter::Equal).with_seed(7);
/// let d = b.delay(2); // the curve gives 400 ms: Equal jitter keeps it in 200..=400 ms
/// assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly `d`.
    None,
    /// Uniform in `0..=d` ("full jitter"). The default for exponential and linear backoff.
    Full,
    /// Uniform in `d/2..=d` ("equal jitter").
    Equal,
    /// Uniform in `base..=3 × previous delay`, capped at `max_delay` ("decorrelated jitter"), where the
    /// first retry's previous delay is `base`. Each item keeps its own previous delay.
    Decorrelated,
}

/// The delay before each retry: exponential, linear or constant, capped, with [`Jitter`].
///
/// Attempt numbers count retries: `delay(0)` is the delay before the first retry.
///
/// # Default
///
/// `Backoff::default()` is the default of [`retry`](crate::Configure::retry):
/// `Backoff::exponential(100 ms)`, factor 2, `max_delay` 30 s, [`Jitter::Full`].
///
/// - [`exponential(base)`](Backoff::exponential): `base × factor^attempt`, factor 2, full jitter.
/// - [`linear(step)`](Backoff::linear): `step × (attempt + 1)`, full jitter.
/// - [`constant(delay)`](Backoff::constant): `delay`, no jitter.
/// - every kind: `max_delay` 30 s, a random seed.
///
/// The arithmetic saturates: for any attempt number, `delay` returns at most `max_delay` and never
/// panics or overflows.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tasklane::{Backoff, Jitter};
///
/// let b = Backoff::exponential(Duration::from_millis(100))
///     .with_factor(3.0)
///     .with_max_delay(Duration::from_secs(2))
///     .with_jitter(Jitter::None);
/// assert_eq!(b.delay(0), Duration::from_millis(100));
/// assert_eq!(b.delay(1), Duration::from_millis(300));
/// assert_eq!(b.delay(2), Duration::from_millis(900));
/// assert_eq!(b.delay(3), Duration::from_secs(2)); // capped
/// assert_eq!(b.delay(u32::MAX), Duration::from_secs(2)); // saturates
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    curve: Curve,
    /// The cap of every delay, jitter included.
    max_delay: Duration,
    jitter: Jitter,
    /// A fixed seed for the jitter generator (`None`: a random one per lane, or per call of `delay`).
    seed: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Curve {
    /// `base × factor^attempt`; `factor` is finite and `> 0`.
    Exponential { base: Duration, factor: f64 },
    /// `step × (attempt + 1)`.
    Linear { step: Duration },
    /// `delay`.
    Constant { delay: Duration },
}

const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100))
    }
}

impl Backoff {
    /// `base × factor^attempt` (factor 2 unless [`with_factor`](Backoff::with_factor)), full jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::{Backoff, Jitter};
    /// let b = Backoff::exponential(Duration::from_millis(10)).with_jitter(Jitter::None);
    /// assert_eq!(b.delay(3), Duration::from_millis(80));
    /// ```
    pub const fn exponential(base: Duration) -> Self {
        Backoff {
            curve: Curve::Exponential { base, factor: 2.0 },
            max_delay: DEFAULT_MAX_DELAY,
            jitter: Jitter::Full,
            seed: None,
        }
    }

    /// `step × (attempt + 1)`, full jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::{Backoff, Jitter};
    /// let b = Backoff::linear(Duration::from_millis(10)).with_jitter(Jitter::None);
    /// assert_eq!(b.delay(0), Duration::from_millis(10));
    /// assert_eq!(b.delay(4), Duration::from_millis(50));
    /// ```
    pub const fn linear(step: Duration) -> Self {
        Backoff {
            curve: Curve::Linear { step },
            max_delay: DEFAULT_MAX_DELAY,
            jitter: Jitter::Full,
            seed: None,
        }
    }

    /// The same `delay` before every retry, no jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::Backoff;
    /// let b = Backoff::constant(Duration::from_millis(250));
    /// assert_eq!(b.delay(0), b.delay(9));
    /// ```
    pub const fn constant(delay: Duration) -> Self {
        Backoff {
            curve: Curve::Constant { delay },
            max_delay: DEFAULT_MAX_DELAY,
            jitter: Jitter::None,
            seed: None,
        }
    }

    /// The growth factor of an exponential backoff (default 2). Ignored by linear and constant ones.
    ///
    /// # Panics
    ///
    /// Panics if `factor` is not finite and `> 0` (NaN, infinite, zero or negative).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::{Backoff, Jitter};
    /// let b = Backoff::exponential(Duration::from_secs(1)).with_factor(1.5).with_jitter(Jitter::None);
    /// assert_eq!(b.delay(2), Duration::from_millis(2250));
    /// ```
    #[track_caller]
    pub fn with_factor(mut self, factor: f64) -> Self {
        assert!(
            factor.is_finite() && factor > 0.0,
            "tasklane: backoff `factor` must be finite and > 0, got {factor}"
        );
        if let Curve::Exponential { factor: f, .. } = &mut self.curve {
            *f = factor;
        }
        self
    }

    /// The cap of every delay, jitter included (default 30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::Backoff;
    /// let b = Backoff::exponential(Duration::from_secs(1)).with_max_delay(Duration::from_secs(5));
    /// assert!(b.delay(40) <= Duration::from_secs(5));
    /// ```
    pub const fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// How delays are randomized (see [`Jitter`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::{Backoff, Jitter};
    /// let b = Backoff::linear(Duration::from_millis(10)).with_jitter(Jitter::None);
    /// assert_eq!(b.delay(1), Duration::from_millis(20));
    /// ```
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// A fixed seed for the jitter, for reproducible delays (tests, simulations).
    ///
    /// `delay(k)` then depends only on the seed and `k`; a lane seeds its one generator with it, so
    /// the lane's sequence of delays is the same from run to run.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::Backoff;
    /// let b = Backoff::exponential(Duration::from_millis(100)).with_seed(42);
    /// assert_eq!(b.delay(5), b.clone().delay(5));
    /// ```
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The cap of every delay.
    ///
    /// ```
    /// use tasklane::Backoff;
    /// assert_eq!(Backoff::default().max_delay(), std::time::Duration::from_secs(30));
    /// ```
    pub const fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The jitter in use.
    ///
    /// ```
    /// use tasklane::{Backoff, Jitter};
    /// assert_eq!(Backoff::default().jitter(), Jitter::Full);
    /// ```
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The delay before retry number `attempt` (0: before the first retry), jitter included.
    ///
    /// Never above [`max_delay`](Backoff::max_delay) and never panics, whatever the attempt number.
    /// With a seed, the result depends only on the seed and `attempt`. For
    /// [`Jitter::Decorrelated`], which depends on the previous delay, it draws the chain of delays
    /// up to `attempt` (at most 64 of them) and returns the last.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tasklane::Backoff;
    /// let b = Backoff::default();
    /// for attempt in [0, 1, 10, 1000, u32::MAX] {
    ///     assert!(b.delay(attempt) <= Duration::from_secs(30));
    /// }
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let mut rng = match self.seed {
            Some(seed) => fastrand::Rng::with_seed(seed ^ u64::from(attempt).wrapping_mul(GOLDEN)),
            None => fastrand::Rng::new(),
        };
        let delay = if self.jitter == Jitter::Decorrelated {
            let mut prev = None;
            for k in attempt.saturating_sub(63)..=attempt {
                prev = Some(self.next_nanos(k, prev, &mut rng));
            }
            prev.unwrap_or(0)
        } else {
            self.next_nanos(attempt, None, &mut rng)
        };
        Duration::from_nanos(delay)
    }

    /// A generator for a lane's jitter: seeded when the backoff has a seed.
    pub(crate) fn rng(&self) -> fastrand::Rng {
        match self.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        }
    }

    /// The delay before retry `attempt`, in nanoseconds, given the item's previous delay (`None`
    /// before its first retry; used only by decorrelated jitter).
    pub(crate) fn next_nanos(
        &self,
        attempt: u32,
        prev: Option<u64>,
        rng: &mut fastrand::Rng,
    ) -> u64 {
        let max = nanos(self.max_delay);
        let curve = self.curve_nanos(attempt).min(max);
        let delay = match self.jitter {
            Jitter::None => curve,
            Jitter::Full => rng.u64(0..=curve),
            Jitter::Equal => curve / 2 + rng.u64(0..=curve - curve / 2),
            Jitter::Decorrelated => {
                let base = self.base_nanos().min(max);
                let upper = prev.unwrap_or(base).saturating_mul(3).clamp(base, max);
                rng.u64(base..=upper)
            }
        };
        debug_assert!(delay <= max);
        delay
    }

    /// The curve before jitter and cap, saturating at `u64::MAX` nanoseconds.
    fn curve_nanos(&self, attempt: u32) -> u64 {
        match self.curve {
            Curve::Exponential { base, factor } => {
                let value = nanos(base) as f64 * factor.powf(f64::from(attempt));
                // Rounded to the nearest nanosecond: `powf` may be off by an ulp (100 ms × 2³ must
                // be 800 ms, not 799.999999 ms). NOTE: `as` saturates (and maps NaN to 0; NaN cannot
                // occur: base >= 0, factor > 0).
                if value.is_finite() {
                    value.round() as u64
                } else {
                    u64::MAX
                }
            }
            Curve::Linear { step } => nanos(step).saturating_mul(u64::from(attempt) + 1),
            Curve::Constant { delay } => nanos(delay),
        }
    }

    fn base_nanos(&self) -> u64 {
        match self.curve {
            Curve::Exponential { base, .. } => nanos(base),
            Curve::Linear { step } => nanos(step),
            Curve::Constant { delay } => nanos(delay),
        }
    }
}

/// 2^64 / φ: spreads consecutive attempt numbers over the seed space.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn curves_without_jitter() {
        let e = Backoff::exponential(100 * MS).with_jitter(Jitter::None);
        assert_eq!(
            (0..5).map(|k| e.delay(k)).collect::<Vec<_>>(),
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1600 * MS]
        );
        let l = Backoff::linear(100 * MS).with_jitter(Jitter::None);
        assert_eq!(l.delay(0), 100 * MS);
        assert_eq!(l.delay(2), 300 * MS);
        let c = Backoff::constant(70 * MS);
        assert_eq!(c.delay(0), 70 * MS);
        assert_eq!(c.delay(1_000_000), 70 * MS);
    }

    #[test]
    fn saturates_at_max_delay_for_any_attempt() {
        for b in [
            Backoff::exponential(100 * MS).with_jitter(Jitter::None),
            Backoff::exponential(Duration::MAX)
                .with_factor(f64::MAX)
                .with_jitter(Jitter::None),
            Backoff::linear(Duration::MAX).with_jitter(Jitter::None),
            Backoff::constant(Duration::MAX),
        ] {
            assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
            assert_eq!(b.delay(5000), Duration::from_secs(30));
        }
        let shrinking = Backoff::exponential(100 * MS)
            .with_factor(0.5)
            .with_jitter(Jitter::None);
        assert_eq!(shrinking.delay(1), 50 * MS);
        assert_eq!(shrinking.delay(u32::MAX), Duration::ZERO);
    }

    #[test]
    fn seeded_delays_are_reproducible() {
        let b = Backoff::exponential(100 * MS).with_seed(1);
        assert_eq!(b.delay(3), b.delay(3));
        let mut r1 = b.rng();
        let mut r2 = b.rng();
        for k in 0..10 {
            assert_eq!(
                b.next_nanos(k, None, &mut r1),
                b.next_nanos(k, None, &mut r2)
            );
        }
    }

    #[test]
    #[should_panic(expected = "`factor` must be finite and > 0, got NaN")]
    fn nan_factor_panics() {
        let _ = Backoff::exponential(MS).with_factor(f64::NAN);
    }

    #[test]
    #[should_panic(expected = "`factor` must be finite and > 0, got 0")]
    fn zero_factor_panics() {
        let _ = Backoff::exponential(MS).with_factor(0.0);
    }

    #[test]
    #[should_panic(expected = "`factor` must be finite and > 0, got -2")]
    fn negative_factor_panics() {
        let _ = Backoff::exponential(MS).with_factor(-2.0);
    }

    #[test]
    #[should_panic(expected = "`factor` must be finite and > 0, got inf")]
    fn infinite_factor_panics() {
        let _ = Backoff::exponential(MS).with_factor(f64::INFINITY);
    }

    proptest! {
        #[test]
        #[cfg_attr(miri, ignore)] // pure arithmetic; proptest's failure files need the file system
        fn jittered_delays_stay_in_their_band(
            base_ms in 0u64..10_000,
            factor in 0.01f64..10.0,
            max_ms in 0u64..100_000,
            attempt in any::<u32>(),
            seed in any::<u64>(),
            prev in proptest::option::of(any::<u64>()),
        ) {
            let max = Duration::from_millis(max_ms);
            for jitter in [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
                let b = Backoff::exponential(Duration::from_millis(base_ms))
                    .with_factor(factor)
                    .with_max_delay(max)
                    .with_jitter(jitter)
                    .with_seed(seed);
                let curve = b.curve_nanos(attempt).min(nanos(max));
                let d = b.next_nanos(attempt, prev, &mut b.rng());
                prop_assert!(d <= nanos(max));
                match jitter {
                    Jitter::None => prop_assert_eq!(d, curve),
                    Jitter::Full => prop_assert!(d <= curve),
                    Jitter::Equal => prop_assert!(d >= curve / 2 && d <= curve),
                    Jitter::Decorrelated => {
                        let base = (base_ms * 1_000_000).min(nanos(max));
                        prop_assert!(d >= base);
                    }
                }
                prop_assert!(b.delay(attempt) <= max);
            }
        }
    }
}
