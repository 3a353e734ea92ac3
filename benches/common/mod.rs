//! What the bench files share: a future that yields once, a no-op-waker poll loop that drains a
//! stream and checks what came out, and the process's CPU time.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::Stream;
use futures::task::noop_waker_ref;

/// A future that wakes itself and returns `Pending` at its first poll, and is ready with its value at
/// its second.
pub(crate) struct YieldOnce<T> {
    value: T,
    yielded: bool,
}

impl<T: Copy + Unpin> Future for YieldOnce<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.yielded {
            Poll::Ready(self.value)
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A future that yields once, then is ready with `value`.
pub(crate) fn yield_once<T>(value: T) -> YieldOnce<T> {
    YieldOnce {
        value,
        yielded: false,
    }
}

/// Polls `stream` to its end with a no-op waker (a `Pending` is simply polled again); `ok` turns each
/// item into its value, `None` for an error. Returns the number of items and their sum; panics on an
/// error.
pub(crate) fn drain<S: Stream>(stream: S, ok: impl Fn(S::Item) -> Option<u64>) -> (u64, u64) {
    let mut stream = pin!(stream);
    let mut cx = Context::from_waker(noop_waker_ref());
    let (mut count, mut sum) = (0, 0);
    loop {
        match stream.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(x)) => {
                count += 1;
                sum += ok(x).expect("every item comes back Ok");
            }
            Poll::Ready(None) => return (count, sum),
            Poll::Pending => {}
        }
    }
}

/// Asserts what a run over `0..n` must yield: `n` items summing to `0 + 1 + ... + (n - 1)`.
pub(crate) fn check(n: u64, (count, sum): (u64, u64)) {
    assert_eq!(count, n);
    assert_eq!(sum, n * (n - 1) / 2);
}

/// CPU time of the whole process so far: the sum over its live threads (the timer threads
/// included) of the nanoseconds each has run, from `/proc/self/task/*/schedstat`.
#[allow(dead_code)] // reason: only the rate and shared benches read the CPU time
pub(crate) fn process_cpu_time() -> Duration {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("Linux /proc") {
        let path = task.expect("a task entry").path().join("schedstat");
        if let Ok(stat) = std::fs::read_to_string(path) {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

// Not every bench that includes this module drives more than one executor.
#[allow(dead_code)]
/// An executor, ready to drive runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Exec<'a> {
    /// `futures::executor::block_on`.
    BlockOn,
    /// `Runtime::block_on` on this current-thread runtime.
    Tokio(&'a tokio::runtime::Runtime),
}

#[allow(dead_code)]
impl Exec<'_> {
    /// Drives `fut` to completion on this executor.
    pub(crate) fn block_on<F: Future>(self, fut: F) -> F::Output {
        match self {
            Exec::BlockOn => futures::executor::block_on(fut),
            Exec::Tokio(rt) => rt.block_on(fut),
        }
    }

    /// The executor's name in the tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Exec::BlockOn => "block_on",
            Exec::Tokio(_) => "tokio",
        }
    }
}
