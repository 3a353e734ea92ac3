//! The rate limiter's arithmetic, in integer nanoseconds: GCRA (the generic cell rate algorithm, in
//! its virtual-scheduling form) for the default schedule, which catches up after late timer
//! wake-ups, and a sliding-window log for the strict one ([`Window`]). No `Poll` here: the engine
//! asks ([`Limiter`]), the limiter answers.
//!
//! Terms (see [`Configure::rate`](crate::Configure::rate)):
//! - the **period** `T = ⌈1 s / rate⌉`: the schedule's spacing between two starts;
//! - the **burst** `b`: how many starts may come back to back; the **tolerance** `tau = (b - 1) T`;
//! - the **theoretical arrival time** `tat`: when the next start is due on the schedule. A start is
//!   allowed at `now` when `now >= tat - tau`; it then moves `tat` on by `T`.
//!
//! From where `tat` moves on is the one subtle part. Timers wake late (futures-timer by tens of
//! microseconds, tokio by up to a millisecond): a limiter that sets `tat = now + T` after a late
//! wake-up loses that lateness on every wait, and with burst 1 at 100,000 starts per second it
//! delivers a fraction of the rate (governor reaches about 14 %). So while work is waiting for the
//! limiter, the schedule sets the pace: `tat = tat + T`, and a late wake-up releases every start the
//! schedule allowed meanwhile, at once. Only when nothing waited (the lane was idle, or held up by its
//! limit rather than by the rate) does the schedule restart from the present: `tat = max(tat, now) +
//! T`, so idle time earns no credit beyond the burst. The catching up is bounded by [`CATCH_UP`]:
//! a schedule further behind than that (a lane that was not polled for a while: a stall, not a late
//! timer) restarts from the present too, so it resumes at the rate, not with a flood.
//!
//! Invariant: every start moves `tat` on by exactly `T` from a value at least as large as before, so
//! after the first start at `t0`, start `k` (counting from 0) has `tat_k >= t0 + k T` and so happens no
//! earlier than `t0 + (k - b + 1) T`.
//!
//! What that invariant does not give is a bound per window: GCRA lets `b` starts go back to back
//! and then one per period, so a window of `b T` may hold `2b - 1` starts, and catching up after a
//! late wake-up puts more than `b` into a window of `b T` even with `b = 1` (two starts at one
//! instant). A server that enforces a sliding window answers such a margin with 429. The strict
//! schedule ([`Window`], [`strict_rate`](crate::Configure::strict_rate)) is the one that never
//! does: it remembers when each of the last `b` starts happened and allows a start at `now` only
//! when the oldest of them is at least `W = b T` before `now`. Invariant: start `k + b` happens at
//! least `W` after start `k`, so every half-open window `[t, t + W)` holds at most `b` starts (and
//! start `k` still comes no earlier than `t0 + ⌊k / b⌋ b T >= t0 + (k - b + 1) T`). It is also the
//! most permissive schedule with that bound: a start is refused only when it would put `b + 1` into
//! some window. It never catches up: a late wake-up releases only the starts whose window has
//! passed, so lateness costs throughput (all of it with `b = 1`: each start waits for its own
//! timer); a burst lets one wake-up release up to `b`.

/// How far behind the present the schedule may be and still catch up when work was waiting (late
/// timer wake-ups of up to this much cost no throughput; a longer stall is not made up for).
pub(crate) const CATCH_UP: u64 = 5_000_000;

/// The largest burst of the strict schedule. It keeps the time of each of the last `burst` starts
/// (8 bytes apiece, allocated once per run), so the burst is bounded: 65,536 is 512 KiB per run.
pub(crate) const STRICT_BURST_MAX: u32 = 1 << 16;

/// A validated rate: the period in nanoseconds, the burst and the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    /// `⌈1 s / rate⌉`, at least 1 ns, saturating at `u64::MAX`.
    pub(crate) period: u64,
    /// Starts allowed back to back, at least 1 (at most [`STRICT_BURST_MAX`] when `strict`).
    pub(crate) burst: u32,
    /// The strict schedule ([`Window`]) instead of the catch-up one ([`Gcra`]).
    pub(crate) strict: bool,
}

impl Rate {
    /// The period for `per_second` starts per second.
    ///
    /// Rounded up, so that the lane never starts more often than asked: 3 per second is a period of
    /// 333,333,334 ns.
    #[track_caller]
    pub(crate) fn period(per_second: f64) -> u64 {
        assert!(
            per_second.is_finite() && per_second > 0.0,
            "tasklane: `rate` must be a finite number of starts per second greater than zero, got {per_second}"
        );
        let period = (1e9 / per_second).ceil();
        if period >= u64::MAX as f64 {
            u64::MAX
        } else {
            (period as u64).max(1)
        }
    }

    /// Checks a burst, for the strict schedule too when `strict`.
    #[track_caller]
    pub(crate) fn check_burst(burst: u32, strict: bool) -> u32 {
        assert!(burst > 0, "tasklane: `burst` must be at least 1, got 0");
        assert!(
            !strict || burst <= STRICT_BURST_MAX,
            "tasklane: `burst` must be at most {STRICT_BURST_MAX} with `strict_rate`, got {burst}"
        );
        burst
    }
}

/// The limiter of one lane run: the schedule its [`Rate`] asks for, behind one interface.
#[derive(Debug)]
pub(crate) enum Limiter {
    /// The default: GCRA, catching up after late wake-ups while work waits.
    CatchUp(Gcra),
    /// [`Configure::strict_rate`](crate::Configure::strict_rate): at most `burst` starts in any
    /// window of `burst` periods.
    Strict(Window),
}

impl Limiter {
    /// The limiter for `rate`; the strict one allocates its log here, once per run.
    pub(crate) fn new(rate: Rate) -> Self {
        if rate.strict {
            Limiter::Strict(Window::new(rate))
        } else {
            Limiter::CatchUp(Gcra::new(rate))
        }
    }

    /// The earliest time at which the next start is allowed (`u64::MAX`: never).
    #[inline]
    /// Whether this is the strict schedule (no catching up).
    pub(crate) fn is_strict(&self) -> bool {
        matches!(self, Limiter::Strict(_))
    }

    pub(crate) fn next_allowed(&self) -> u64 {
        match self {
            Limiter::CatchUp(gcra) => gcra.next_allowed(),
            Limiter::Strict(window) => window.next_allowed(),
        }
    }

    /// Records a start at `now`, which [`next_allowed`](Limiter::next_allowed) allows.
    #[inline]
    pub(crate) fn start(&mut self, now: u64) {
        match self {
            Limiter::CatchUp(gcra) => gcra.start(now),
            Limiter::Strict(window) => window.start(now),
        }
    }

    /// Work is waiting for the limiter (only the catch-up schedule cares).
    #[inline]
    pub(crate) fn wait(&mut self) {
        if let Limiter::CatchUp(gcra) = self {
            gcra.wait();
        }
    }

    /// Nothing waits for the limiter any more (only the catch-up schedule cares).
    #[inline]
    pub(crate) fn idle(&mut self) {
        if let Limiter::CatchUp(gcra) = self {
            gcra.idle();
        }
    }
}

/// The limiter of one lane run. See the module docs.
#[derive(Debug)]
pub(crate) struct Gcra {
    period: u128,
    /// `(burst - 1) * period` (exact in u128).
    tau: u128,
    /// When the next start is due on the schedule (nanoseconds on the lane's clock; may exceed
    /// `u64::MAX`, which then means never).
    tat: u128,
    /// Whether work has been waiting for the limiter since the schedule last restarted from the
    /// present: then starts follow the schedule (`tat + T`) instead of the clock.
    waiting: bool,
}

impl Gcra {
    pub(crate) fn new(rate: Rate) -> Self {
        Gcra {
            period: u128::from(rate.period),
            tau: u128::from(rate.period) * u128::from(rate.burst - 1),
            tat: 0,
            waiting: false,
        }
    }

    /// The earliest time at which the next start is allowed.
    #[inline]
    pub(crate) fn next_allowed(&self) -> u64 {
        // In u128, so that neither `tau` nor `tat` saturates (a saturated pair made `tat - tau` 0).
        u64::try_from(self.tat.saturating_sub(self.tau)).unwrap_or(u64::MAX)
    }

    /// Records a start at `now`, which [`next_allowed`](Gcra::next_allowed) allows.
    #[inline]
    pub(crate) fn start(&mut self, now: u64) {
        debug_assert!(self.next_allowed() <= now);
        // While waiting, a schedule at most CATCH_UP behind catches up from `tat`; one further
        // behind (the lane was not polled: a stall, not a late timer) restarts from the present, so
        // the stall earns no credit beyond the burst.
        let now = u128::from(now);
        let from = if self.waiting && now <= self.tat + u128::from(CATCH_UP) {
            self.tat
        } else {
            self.tat.max(now)
        };
        self.tat = from + self.period;
    }

    /// Work is waiting for the limiter: follow the schedule from here on.
    #[inline]
    pub(crate) fn wait(&mut self) {
        self.waiting = true;
    }

    /// Nothing waits for the limiter any more (the lane is idle or held up by its limit): the next
    /// start restarts the schedule from the present.
    #[inline]
    pub(crate) fn idle(&mut self) {
        self.waiting = false;
    }
}

/// The strict schedule: a sliding-window log of the last `burst` starts. See the module docs.
///
/// The log holds, for each of the last `b` starts, when it leaves the window (`start + W`), in a
/// ring whose oldest entry is at `oldest`. The next start is allowed once the oldest has left: its
/// entry is then overwritten by the new start's. No start is forgotten that could still be in a
/// window with the next one, and no entry outlives its start's window, so the log is exact.
#[derive(Debug)]
pub(crate) struct Window {
    /// When each of the last `burst` starts leaves the window: its time plus `window`, saturating at
    /// `u64::MAX` (never). An entry that no start has filled yet is 0: free from the beginning.
    /// Allocated once, with exactly `burst` entries; never resized.
    leaves: Box<[u64]>,
    /// The entry of the oldest of the last `burst` starts: the one the next start overwrites.
    /// Always `< leaves.len()`.
    oldest: usize,
    /// `W = burst * period` in nanoseconds, saturating at `u64::MAX`.
    window: u64,
}

impl Window {
    pub(crate) fn new(rate: Rate) -> Self {
        debug_assert!((1..=STRICT_BURST_MAX).contains(&rate.burst));
        let window = u128::from(rate.period) * u128::from(rate.burst);
        Window {
            leaves: vec![0; rate.burst as usize].into_boxed_slice(),
            oldest: 0,
            window: u64::try_from(window).unwrap_or(u64::MAX),
        }
    }

    /// The earliest time at which the next start is allowed: when the oldest of the last `burst`
    /// starts leaves the window.
    #[inline]
    pub(crate) fn next_allowed(&self) -> u64 {
        self.leaves[self.oldest]
    }

    /// Records a start at `now`, which [`next_allowed`](Window::next_allowed) allows: it takes the
    /// oldest start's entry.
    #[inline]
    pub(crate) fn start(&mut self, now: u64) {
        debug_assert!(self.next_allowed() <= now);
        self.leaves[self.oldest] = now.saturating_add(self.window);
        self.oldest += 1;
        if self.oldest == self.leaves.len() {
            self.oldest = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn gcra(per_second: f64, burst: u32) -> Gcra {
        Gcra::new(Rate {
            period: Rate::period(per_second),
            burst,
            strict: false,
        })
    }

    fn window(per_second: f64, burst: u32) -> Window {
        Window::new(Rate {
            period: Rate::period(per_second),
            burst,
            strict: true,
        })
    }

    #[test]
    fn periods_round_up_and_saturate() {
        assert_eq!(Rate::period(100_000.0), 10_000);
        assert_eq!(Rate::period(3.0), 333_333_334);
        assert_eq!(Rate::period(1e12), 1); // never zero
        assert_eq!(Rate::period(1e-300), u64::MAX);
        assert_eq!(Rate::period(0.2), 5_000_000_000);
    }

    #[test]
    fn burst_one_spaces_starts_by_the_period() {
        let mut g = gcra(100.0, 1); // 10 ms
        assert_eq!(g.next_allowed(), 0);
        g.start(0);
        assert_eq!(g.next_allowed(), 10 * MS);
        g.start(10 * MS);
        assert_eq!(g.next_allowed(), 20 * MS);
    }

    #[test]
    fn a_burst_allows_back_to_back_starts_then_the_period() {
        let mut g = gcra(50.0, 5); // 20 ms, tau 80 ms
        for _ in 0..5 {
            assert_eq!(g.next_allowed(), 0);
            g.start(0);
        }
        assert_eq!(g.next_allowed(), 20 * MS); // the sixth waits a period (RL-02)
    }

    #[test]
    fn idle_time_earns_no_credit_beyond_the_burst() {
        let mut g = gcra(100.0, 2);
        g.start(0);
        g.start(0);
        // A long pause, idle: then two back to back, and the third a period later.
        let t = 1_000 * MS;
        g.idle();
        assert!(g.next_allowed() <= t);
        g.start(t);
        assert!(g.next_allowed() <= t);
        g.start(t);
        assert_eq!(g.next_allowed(), t + 10 * MS);
    }

    #[test]
    fn a_late_wake_up_while_waiting_releases_what_the_schedule_allowed() {
        let mut g = gcra(100_000.0, 1); // 10 µs
        g.start(0);
        g.wait(); // denied at 0: due at 10 µs; the timer fires at 65 µs
        let now = 65_000;
        let mut released = 0;
        while g.next_allowed() <= now {
            g.start(now);
            released += 1;
        }
        assert_eq!(released, 6); // the starts due at 10, 20, ..., 60 µs
        assert_eq!(g.next_allowed(), 70_000); // and the schedule goes on from there
    }

    #[test]
    fn catching_up_is_bounded() {
        let mut g = gcra(1_000.0, 1); // 1 ms
        g.start(0);
        g.wait();
        let now = 1_000 * MS; // a stall of a second
        let mut released = 0;
        while g.next_allowed() <= now {
            g.start(now);
            released += 1;
        }
        assert_eq!(released, 1); // a stall beyond CATCH_UP restarts the schedule from the present
    }

    #[test]
    fn the_kth_start_is_never_early() {
        // Starts as early as allowed, with random pauses, idle or not: start k is never before
        // t0 + (k - b + 1) T.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let burst = rng.u32(1..5);
            let per_second = rng.f64() * 1e6 + 1.0;
            let mut g = gcra(per_second, burst);
            let period = Rate::period(per_second);
            let mut now = rng.u64(0..MS);
            let mut t0 = None;
            for k in 0..300u64 {
                now = now.max(g.next_allowed()) + rng.u64(0..3) * rng.u64(0..2 * period);
                // (The engine waits only after a denial, so never before the first start.)
                match rng.u8(0..3) {
                    0 => g.idle(),
                    1 if k > 0 => g.wait(),
                    _ => {}
                }
                let t0 = *t0.get_or_insert(now);
                g.start(now);
                let bound = t0 + (k + 1).saturating_sub(u64::from(burst)) * period;
                assert!(now >= bound, "start {k} at {now} before {bound}");
            }
        }
    }

    #[test]
    #[should_panic(
        expected = "`rate` must be a finite number of starts per second greater than zero, got NaN"
    )]
    fn nan_rate_panics() {
        Rate::period(f64::NAN);
    }

    #[test]
    #[should_panic(expected = "`burst` must be at least 1")]
    fn zero_burst_panics() {
        Rate::check_burst(0, false);
    }

    #[test]
    #[should_panic(expected = "`burst` must be at least 1")]
    fn zero_burst_panics_in_strict_mode_too() {
        Rate::check_burst(0, true);
    }

    #[test]
    #[should_panic(expected = "`burst` must be at most 65536 with `strict_rate`, got 65537")]
    fn a_strict_burst_above_the_cap_panics() {
        Rate::check_burst(STRICT_BURST_MAX + 1, true);
    }

    #[test]
    fn the_cap_binds_the_strict_schedule_only() {
        assert_eq!(Rate::check_burst(u32::MAX, false), u32::MAX);
        assert_eq!(Rate::check_burst(STRICT_BURST_MAX, true), STRICT_BURST_MAX);
    }

    // The strict schedule.

    #[test]
    fn strict_burst_one_spaces_starts_by_the_period_and_never_catches_up() {
        let mut w = window(100.0, 1); // 10 ms
        assert_eq!(w.next_allowed(), 0);
        w.start(0);
        assert_eq!(w.next_allowed(), 10 * MS);
        // The timer wakes 5 ms late: one start, and the next a whole period after it.
        w.start(15 * MS);
        assert_eq!(w.next_allowed(), 25 * MS);
    }

    #[test]
    fn strict_a_burst_then_the_window_of_the_oldest() {
        let mut w = window(50.0, 5); // 20 ms, window 100 ms
        for _ in 0..5 {
            assert_eq!(w.next_allowed(), 0);
            w.start(0);
        }
        // GCRA would allow the sixth at 20 ms (six starts in [0, 100 ms)); the window waits for the
        // first to leave.
        assert_eq!(w.next_allowed(), 100 * MS);
        w.start(100 * MS);
        assert_eq!(w.next_allowed(), 100 * MS); // the second start at 0 has left too
    }

    #[test]
    fn strict_a_late_wake_up_releases_only_what_left_the_window() {
        let mut w = window(100_000.0, 4); // 10 µs, window 40 µs
        for t in [0, 10_000, 20_000, 30_000] {
            w.start(t);
        }
        // Due at 40 µs; the timer fires at 65 µs: the starts at 0, 10 and 20 µs have left, not the
        // one at 30 µs (it leaves at 70 µs).
        let now = 65_000;
        let mut released = 0;
        while w.next_allowed() <= now {
            w.start(now);
            released += 1;
        }
        assert_eq!(released, 3);
        assert_eq!(w.next_allowed(), 70_000);
    }

    #[test]
    fn strict_idle_time_earns_no_credit_beyond_the_burst() {
        let mut w = window(100.0, 2);
        w.start(0);
        w.start(0);
        let t = 1_000 * MS;
        let mut at_t = 0;
        while w.next_allowed() <= t {
            w.start(t);
            at_t += 1;
        }
        assert_eq!(at_t, 2);
        assert_eq!(w.next_allowed(), t + 20 * MS);
    }

    #[test]
    fn strict_a_window_beyond_u64_means_never() {
        // 1e-300 per second: the period saturates, and so does the window.
        let mut w = window(1e-300, 3);
        for _ in 0..3 {
            assert_eq!(w.next_allowed(), 0);
            w.start(0);
        }
        assert_eq!(w.next_allowed(), u64::MAX);
        // A period that fits with a window that does not.
        let mut w = Window::new(Rate {
            period: u64::MAX / 2 + 1,
            burst: 2,
            strict: true,
        });
        w.start(5);
        w.start(5);
        assert_eq!(w.next_allowed(), u64::MAX);
    }

    #[test]
    fn the_limiter_follows_its_schedule() {
        let rate = Rate {
            period: MS,
            burst: 1,
            strict: true,
        };
        let catch_up = Rate {
            strict: false,
            ..rate
        };
        // Denied at 0 (due at 1 ms), the timer fires at 2.5 ms: catching up releases the starts due
        // at 1 and 2 ms; the strict schedule one, and the next a period after it.
        for (rate, expect) in [(rate, 1), (catch_up, 2)] {
            let mut l = Limiter::new(rate);
            l.start(0);
            l.wait();
            let mut released = 0;
            while l.next_allowed() <= 2_500_000 {
                l.start(2_500_000);
                released += 1;
            }
            l.idle();
            assert_eq!(released, expect, "{l:?}");
        }
    }

    #[test]
    fn strict_no_window_holds_more_than_the_burst_and_no_start_is_refused_early() {
        // Starts at random times, as early as the log allows or later; every half-open window of
        // `b T` holds at most `b` starts, and the log allows a start exactly when adding it would keep
        // that true (checked against the whole history).
        let mut rng = fastrand::Rng::with_seed(16);
        let (runs, starts_per_run) = if cfg!(miri) { (4, 40) } else { (200, 300) };
        for _ in 0..runs {
            let burst = rng.u32(1..8);
            let period = rng.u64(1..5 * MS);
            let mut w = Window::new(Rate {
                period,
                burst,
                strict: true,
            });
            let span = period * u64::from(burst);
            let mut starts: Vec<u64> = Vec::new();
            let mut now = rng.u64(0..MS);
            for _ in 0..starts_per_run {
                // Try a few readings: before the allowed time (refused), then at or after it.
                for _ in 0..3 {
                    now += rng.u64(0..2 * period);
                    let in_window = starts.iter().rev().take_while(|t| **t + span > now).count();
                    let allowed = w.next_allowed() <= now;
                    assert_eq!(
                        allowed,
                        in_window < burst as usize,
                        "burst {burst}, period {period}: at {now}, {in_window} in the window"
                    );
                    if allowed {
                        w.start(now);
                        starts.push(now);
                    }
                }
            }
            for (i, a) in starts.iter().enumerate() {
                let held = starts[i..].iter().take_while(|t| **t < a + span).count();
                assert!(
                    held <= burst as usize,
                    "{held} starts in [{a}, {a} + {span})"
                );
                // And the catch-up schedule's promise holds too.
                let bound = starts[0] + (i as u64 + 1).saturating_sub(u64::from(burst)) * period;
                assert!(*a >= bound, "start {i} at {a} before {bound}");
            }
        }
    }
}
