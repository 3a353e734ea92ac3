//! The rate limiter's arithmetic: GCRA (the generic cell rate algorithm, in its virtual-scheduling
//! form) in integer nanoseconds. No `Poll` here: the engine asks, the limiter answers.
//!
//! Terms (see [`Lane::rate`](crate::Lane::rate)):
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

/// How far behind the present the schedule may be and still catch up when work was waiting (late
/// timer wake-ups of up to this much cost no throughput; a longer stall is not made up for).
pub(crate) const CATCH_UP: u64 = 5_000_000;

/// A validated rate: the period in nanoseconds and the burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    /// `⌈1 s / rate⌉`, at least 1 ns, saturating at `u64::MAX`.
    pub(crate) period: u64,
    /// Starts allowed back to back, at least 1.
    pub(crate) burst: u32,
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

    /// Checks a burst.
    #[track_caller]
    pub(crate) fn check_burst(burst: u32) -> u32 {
        assert!(burst > 0, "tasklane: `burst` must be at least 1, got 0");
        burst
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn gcra(per_second: f64, burst: u32) -> Gcra {
        Gcra::new(Rate {
            period: Rate::period(per_second),
            burst,
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
        Rate::check_burst(0);
    }
}
