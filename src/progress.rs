//! [`Progress`]: the snapshot that [`on_progress`](crate::Lane::on_progress) hands its callback, and
//! the counters behind it.

use std::time::Duration;

/// A snapshot of a lane's run, taken when an item's outcome is about to be yielded.
///
/// Given to the [`on_progress`](crate::Lane::on_progress) callback, once per item outcome (a success
/// or a final failure, never per attempt), on the consumer's side, before that outcome is yielded.
///
/// In every snapshot: `succeeded + failed == completed`; `in_flight` is at most the lane's limit;
/// `completed + in_flight` is at most the number of items pulled from the input; and in the last
/// snapshot of a run that was drained to the end, `in_flight == 0`.
///
/// ```
/// use std::time::Duration;
/// use tasklane::Progress;
///
/// let p = Progress {
///     completed: 2,
///     succeeded: 2,
///     failed: 0,
///     in_flight: 3,
///     retries: 0,
///     total: Some(8),
///     elapsed: Duration::from_secs(1),
/// };
/// assert_eq!(p.remaining(), Some(6));
/// assert_eq!(p.fraction(), Some(0.25));
/// assert_eq!(p.rate(), 2.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    /// Items whose outcome has been yielded, counting the one this snapshot is for.
    pub completed: u64,
    /// Completed items that succeeded: every output of a plain lane, the `Ok` outcomes of a lane with
    /// [`retry`](crate::Configure::retry) or [`timeout`](crate::Configure::timeout).
    pub succeeded: u64,
    /// Completed items that failed: the `Err` outcomes of a lane with `retry` or `timeout` (after the
    /// last attempt). A plain lane's outputs are yours and opaque to it, so it counts none.
    pub failed: u64,
    /// Items pulled from the input and not yet completed: running, backing off, waiting for the
    /// rate limiter, or finished and waiting for their turn in an
    /// [`ordered`](crate::Configure::ordered) lane.
    pub in_flight: u64,
    /// Attempts beyond the first, so far, over all items.
    pub retries: u64,
    /// How many items the run has in all, when the input's `size_hint` was exact at the first poll.
    pub total: Option<u64>,
    /// Time since the lane was first polled.
    pub elapsed: Duration,
}

impl Progress {
    /// Items not yet completed, when the total is known.
    ///
    /// ```
    /// let p = tasklane::Progress { completed: 5, total: None, ..Default::default() };
    /// assert_eq!(p.remaining(), None);
    /// let p = tasklane::Progress { completed: 5, total: Some(7), ..Default::default() };
    /// assert_eq!(p.remaining(), Some(2));
    /// ```
    pub fn remaining(&self) -> Option<u64> {
        self.total.map(|total| total.saturating_sub(self.completed))
    }

    /// The completed share of the total, from 0.0 to 1.0; `None` when the total is unknown or 0.
    ///
    /// ```
    /// let p = tasklane::Progress { completed: 1, total: Some(4), ..Default::default() };
    /// assert_eq!(p.fraction(), Some(0.25));
    /// let empty = tasklane::Progress { total: Some(0), ..Default::default() };
    /// assert_eq!(empty.fraction(), None);
    /// ```
    pub fn fraction(&self) -> Option<f64> {
        match self.total {
            Some(total) if total > 0 => Some((self.completed as f64 / total as f64).min(1.0)),
            _ => None,
        }
    }

    /// Completed items per second of [`elapsed`](Progress::elapsed) time; 0.0 before any time has
    /// passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = tasklane::Progress { completed: 5, elapsed: Duration::ZERO, ..Default::default() };
    /// assert_eq!(p.rate(), 0.0);
    /// let p = tasklane::Progress { completed: 5, elapsed: Duration::from_millis(500), ..Default::default() };
    /// assert_eq!(p.rate(), 10.0);
    /// ```
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.completed as f64 / secs
        } else {
            0.0
        }
    }
}

/// What a lane does with its progress: nothing ([`Silent`], the default), or call a callback
/// ([`Report`]). Sealed.
///
/// ```
/// fn reports<R: tasklane::progress::Reporter>() {}
/// reports::<tasklane::progress::Silent>();
/// ```
pub trait Reporter: sealed::Sealed {
    /// Whether the lane keeps counters and takes snapshots at all.
    #[doc(hidden)]
    const ENABLED: bool;
    /// Hands a snapshot over.
    #[doc(hidden)]
    fn report(&mut self, progress: &Progress);
}

/// No progress callback: the lane keeps no counters and reads no clock for them.
///
/// ```
/// use tasklane::prelude::*;
/// use tasklane::{mode::Plain, progress::Silent};
/// let lane: tasklane::Lane<_, Plain, Silent> = [1].lane(1);
/// assert_eq!(lane.limit(), 1);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

/// A progress callback, set by [`on_progress`](crate::Lane::on_progress).
///
/// ```
/// use tasklane::prelude::*;
/// let lane = [1].lane(1).on_progress(|p: &tasklane::Progress| println!("{}", p.completed));
/// let _: &tasklane::Lane<_, tasklane::mode::Plain, tasklane::progress::Report<_>> = &lane;
/// ```
#[derive(Clone)]
pub struct Report<F>(pub(crate) F);

impl<F> std::fmt::Debug for Report<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Report")
    }
}

impl Reporter for Silent {
    const ENABLED: bool = false;
    #[inline]
    fn report(&mut self, _: &Progress) {}
}

impl<F: FnMut(&Progress)> Reporter for Report<F> {
    const ENABLED: bool = true;
    #[inline]
    fn report(&mut self, progress: &Progress) {
        (self.0)(progress)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Silent {}
    impl<F> Sealed for super::Report<F> {}
}

/// The counters a reporting lane keeps.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) completed: u64,
    pub(crate) succeeded: u64,
    pub(crate) retries: u64,
    pub(crate) total: Option<u64>,
    /// The clock reading at the first poll (`None`: not polled yet).
    pub(crate) started_at: Option<u64>,
}

impl Counters {
    /// The snapshot after one more outcome, with `in_flight` items left in progress, at `now`.
    pub(crate) fn complete(&mut self, success: bool, in_flight: usize, now: u64) -> Progress {
        self.completed += 1;
        self.succeeded += u64::from(success);
        Progress {
            completed: self.completed,
            succeeded: self.succeeded,
            failed: self.completed - self.succeeded,
            in_flight: in_flight as u64,
            retries: self.retries,
            total: self.total,
            elapsed: Duration::from_nanos(now.saturating_sub(self.started_at.unwrap_or(now))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_snapshot_counts_one_more_outcome_and_keeps_the_invariants() {
        let mut counters = Counters {
            total: Some(3),
            started_at: Some(1_000),
            ..Counters::default()
        };
        let first = counters.complete(true, 2, 1_500);
        assert_eq!((first.completed, first.succeeded, first.failed), (1, 1, 0));
        assert_eq!(first.in_flight, 2);
        assert_eq!(first.elapsed, Duration::from_nanos(500));
        counters.retries = 4;
        let second = counters.complete(false, 1, 2_000);
        assert_eq!(
            (second.completed, second.succeeded, second.failed),
            (2, 1, 1)
        );
        assert_eq!((second.retries, second.total), (4, Some(3)));
        let third = counters.complete(true, 0, 2_000);
        assert_eq!(third.succeeded + third.failed, third.completed);
        assert_eq!(third.completed, 3);
    }

    #[test]
    fn a_snapshot_before_the_clock_started_has_no_elapsed_time() {
        let mut counters = Counters::default();
        let snapshot = counters.complete(true, 0, 7);
        assert_eq!(snapshot.elapsed, Duration::ZERO);
        assert_eq!(snapshot.total, None);
    }
}
