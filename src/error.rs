//! [`Error`]: why an item of a retrying or timed lane failed, and after how many attempts.

use std::fmt;

use crate::engine::Refusal;
use crate::limit::LimitError;

/// The error of an item whose last attempt failed, in a lane with
/// [`retry`](crate::Configure::retry) or [`timeout`](crate::Configure::timeout).
///
/// It tells apart the task's own error `E` (the last attempt's, unchanged) and a timeout of the last
/// attempt, and says how many attempts were made in all.
///
/// # Display
///
/// `{}` is a lowercase phrase, `task failed after 4 attempts` or `task timed out after 1 attempt`,
/// without the task's own error: that is the error's [`source`](std::error::Error::source) (when
/// `E` is a `std::error::Error`), and by the std convention a `Display` does not repeat its source,
/// so that a reporter walking `source()` prints each cause once.
///
/// The alternate form `{:#}` prints the cause too: after `": "`, the task's error, itself formatted
/// with `{:#}`, so that an error whose alternate form prints its own causes (another
/// `tasklane::Error`, as when a task runs a lane of its own, or `anyhow::Error`) prints its whole
/// chain, each link separated by `": "`. A timeout has no cause: its `{:#}` is its `{}`.
///
/// ```
/// use futures::StreamExt;
/// use tasklane::{prelude::*, Backoff};
///
/// # futures::executor::block_on(async {
/// let mut out = [()]
///     .lane(1)
///     .retry(3)
///     .backoff(Backoff::constant(std::time::Duration::ZERO))
///     .map_async(|()| async { Err::<(), _>(std::io::Error::other("HTTP status 503")) });
/// let err = out.next().await.unwrap().unwrap_err();
/// assert_eq!(format!("{err}"), "task failed after 4 attempts");
/// assert_eq!(format!("{err:#}"), "task failed after 4 attempts: HTTP status 503");
/// // The cause, the std way:
/// let source = std::error::Error::source(&err).unwrap();
/// assert_eq!(source.to_string(), "HTTP status 503");
/// # });
/// ```
///
/// `Display` needs `E: Display`. The sources of a `std::error::Error` `E` itself are not walked by
/// `{:#}` (that would need `E: std::error::Error`, which `&str`, `String` and
/// `Box<dyn Error + Send + Sync>` are not, and Rust cannot choose between the two): walk them from
/// [`source`](std::error::Error::source), or print them in the alternate form of your error type.
///
/// ```
/// use std::error::Error as _;
/// # use futures::StreamExt;
/// # use tasklane::prelude::*;
/// # futures::executor::block_on(async {
/// #[derive(Debug)]
/// struct HttpError { status: u16, cause: std::io::Error }
/// impl std::fmt::Display for HttpError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "HTTP status {}", self.status)
///     }
/// }
/// impl std::error::Error for HttpError {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.cause)
///     }
/// }
///
/// let mut out = [()].lane(1).timeout(std::time::Duration::from_secs(5)).map_async(|()| async {
///     let cause = std::io::Error::other("connection reset");
///     Err::<(), _>(HttpError { status: 503, cause })
/// });
/// let err = out.next().await.unwrap().unwrap_err();
/// assert_eq!(format!("{err:#}"), "task failed after 1 attempt: HTTP status 503");
/// let mut chain = err.to_string();
/// let mut source = err.source();
/// while let Some(cause) = source {
///     chain = format!("{chain}: {cause}");
///     source = cause.source();
/// }
/// assert_eq!(chain, "task failed after 1 attempt: HTTP status 503: connection reset");
/// # });
/// ```
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use tasklane::prelude::*;
///
/// # futures::executor::block_on(async {
/// let out: Vec<Result<u32, tasklane::Error<String>>> = [1u32]
///     .lane(1)
///     .retry(2)
///     .backoff(tasklane::Backoff::constant(std::time::Duration::from_millis(1)))
///     .map_async(|x| async move { Err::<u32, _>(format!("item {x} failed")) })
///     .collect()
///     .await;
/// let err = out[0].as_ref().unwrap_err();
/// assert_eq!(err.attempts(), 3);
/// assert!(!err.is_timeout());
/// assert_eq!(err.inner().map(String::as_str), Some("item 1 failed"));
/// assert_eq!(err.to_string(), "task failed after 3 attempts");
/// # });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Error<E> {
    kind: Kind<E>,
    attempts: u32,
    index: usize,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind<E> {
    Task(E),
    Timeout,
    /// A limiter could never admit the item (its cost is above what the limiter can grant).
    Rejected,
    /// A limiter failed to answer, and does not fail open.
    Limit(LimitError),
}

impl<E> Error<E> {
    pub(crate) fn task(error: E, attempts: u32, index: usize) -> Self {
        Error {
            kind: Kind::Task(error),
            attempts,
            index,
        }
    }

    pub(crate) fn timeout(attempts: u32, index: usize) -> Self {
        Error {
            kind: Kind::Timeout,
            attempts,
            index,
        }
    }

    pub(crate) fn refused(refusal: Refusal, attempts: u32, index: usize) -> Self {
        Error {
            kind: match refusal {
                Refusal::Rejected => Kind::Rejected,
                Refusal::Failed(error) => Kind::Limit(error),
            },
            attempts,
            index,
        }
    }

    /// The failed item's position in the lane's input, counting from 0: in completion order, this
    /// is how to tell which item an error belongs to (the [`indexed`](crate::LaneStream::indexed)
    /// terminal gives every outcome its position).
    ///
    /// ```
    /// # use tasklane::prelude::*;
    /// # use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let out: Vec<_> = ["a", "b", "c"].lane(3).timeout(std::time::Duration::from_secs(5))
    ///     .map_async(|s| async move { if s == "b" { Err("bad") } else { Ok(s) } })
    ///     .collect()
    ///     .await;
    /// let err = out.iter().find_map(|r| r.as_ref().err()).unwrap();
    /// assert_eq!(err.index(), 1); // "b"
    /// # });
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many attempts were made for the item, the failed last one included (at least 1).
    ///
    /// ```
    /// # use tasklane::prelude::*;
    /// # use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let mut out = [()].lane(1).retry(1).backoff(tasklane::Backoff::constant(std::time::Duration::from_millis(1)))
    ///     .map_async(|()| async { Err::<(), _>("no") });
    /// assert_eq!(out.next().await.unwrap().unwrap_err().attempts(), 2);
    /// # });
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether the last attempt ran out of time (see [`timeout`](crate::Configure::timeout)).
    ///
    /// ```
    /// # use tasklane::prelude::*;
    /// # use futures::StreamExt;
    /// # use std::time::Duration;
    /// # futures::executor::block_on(async {
    /// let mut out = [()].lane(1).timeout(Duration::from_millis(5))
    ///     .map_async(|()| async { futures::future::pending::<Result<(), String>>().await });
    /// assert!(out.next().await.unwrap().unwrap_err().is_timeout());
    /// # });
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout)
    }

    /// Whether a limiter refused the item for good: it could never admit the item's attempt (see
    /// [`Admit::can_ever_admit`](crate::limit::Admit::can_ever_admit)). The item made no attempt
    /// after that (`attempts()` counts the ones before).
    ///
    /// ```
    /// # use tasklane::prelude::*;
    /// # use std::task::{Context, Poll};
    /// # use futures::StreamExt;
    /// use tasklane::limit::{Admit, LimitError, Verdict, Waiter};
    ///
    /// /// A limiter whose budget is gone for good.
    /// #[derive(Debug, Clone)]
    /// struct Closed;
    ///
    /// impl Admit for Closed {
    ///     fn poll_admit(&self, _: &Waiter, _: u32, _: &mut Context<'_>)
    ///         -> Poll<Result<Verdict, LimitError>> {
    ///         Poll::Pending // never asked: see `can_ever_admit`
    ///     }
    ///     fn release(&self, _: u32) {}
    ///     fn cancel(&self, _: &Waiter, _: u32) {}
    ///     fn leave(&self, _: &Waiter) {}
    ///     fn can_ever_admit(&self, _cost: u32) -> bool { false }
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let mut out = [5u32].lane(1).limiter(&Closed).timeout(std::time::Duration::from_secs(1))
    ///     .map_async(|x| async move { Ok::<u32, ()>(x) });
    /// let err = out.next().await.unwrap().unwrap_err();
    /// assert!(err.is_rejected());
    /// assert_eq!(err.attempts(), 0);
    /// # });
    /// ```
    pub fn is_rejected(&self) -> bool {
        matches!(self.kind, Kind::Rejected)
    }

    /// The error of a limiter that failed to answer for the item (and does not fail open: see
    /// [`Admit::fails_open`](crate::limit::Admit::fails_open)).
    ///
    /// ```
    /// # use tasklane::prelude::*;
    /// # use std::task::{Context, Poll};
    /// # use futures::StreamExt;
    /// use tasklane::limit::{Admit, LimitError, Verdict, Waiter};
    ///
    /// #[derive(Debug, Clone)]
    /// struct Down;
    ///
    /// impl Admit for Down {
    ///     fn poll_admit(&self, _: &Waiter, _: u32, _: &mut Context<'_>)
    ///         -> Poll<Result<Verdict, LimitError>> {
    ///         Poll::Ready(Err(LimitError::new("down")))
    ///     }
    ///     fn release(&self, _: u32) {}
    ///     fn cancel(&self, _: &Waiter, _: u32) {}
    ///     fn leave(&self, _: &Waiter) {}
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let mut out = [1].lane(1).limiter(&Down).timeout(std::time::Duration::from_secs(1))
    ///     .map_async(|x| async move { Ok::<i32, ()>(x) });
    /// let err = out.next().await.unwrap().unwrap_err();
    /// assert_eq!(err.limit_error().map(|e| e.message()), Some("down"));
    /// # });
    /// ```
    pub fn limit_error(&self) -> Option<&LimitError> {
        match &self.kind {
            Kind::Limit(error) => Some(error),
            _ => None,
        }
    }

    /// The last attempt's own error, unless it timed out.
    ///
    /// ```
    /// # use tasklane::prelude::*;
    /// # use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let mut out = [7].lane(1).timeout(std::time::Duration::from_secs(1))
    ///     .map_async(|x| async move { Err::<(), _>(x) });
    /// assert_eq!(out.next().await.unwrap().unwrap_err().inner(), Some(&7));
    /// # });
    /// ```
    pub fn inner(&self) -> Option<&E> {
        match &self.kind {
            Kind::Task(e) => Some(e),
            _ => None,
        }
    }

    /// The last attempt's own error, by value, unless it timed out.
    ///
    /// ```
    /// # use tasklane::prelude::*;
    /// # use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let mut out = [7].lane(1).timeout(std::time::Duration::from_secs(1))
    ///     .map_async(|x| async move { Err::<(), _>(vec![x]) });
    /// assert_eq!(out.next().await.unwrap().unwrap_err().into_inner(), Some(vec![7]));
    /// # });
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self.kind {
            Kind::Task(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Task(e) => f
                .debug_struct("Error")
                .field("task", e)
                .field("attempts", &self.attempts)
                .field("index", &self.index)
                .finish(),
            Kind::Timeout => f
                .debug_struct("Error")
                .field("timeout", &true)
                .field("attempts", &self.attempts)
                .field("index", &self.index)
                .finish(),
            Kind::Rejected => f
                .debug_struct("Error")
                .field("rejected", &true)
                .field("attempts", &self.attempts)
                .field("index", &self.index)
                .finish(),
            Kind::Limit(e) => f
                .debug_struct("Error")
                .field("limit", e)
                .field("attempts", &self.attempts)
                .field("index", &self.index)
                .finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    /// A lowercase phrase: the task's own error is the [`source`](std::error::Error::source), not
    /// repeated here. The alternate form `{:#}` adds it, itself in its alternate form (see
    /// [`Error`'s `# Display`](Error#display)).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            Kind::Task(_) => "task failed",
            Kind::Timeout => "task timed out",
            Kind::Rejected => {
                return write!(
                    f,
                    "task rejected: its cost is more than a limiter can ever grant"
                )
            }
            Kind::Limit(e) => return write!(f, "task not started: {e}"),
        };
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(f, "{what} after {} attempt{plural}", self.attempts)?;
        match &self.kind {
            Kind::Task(e) if f.alternate() => write!(f, ": {e:#}"),
            _ => Ok(()),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Task(e) => Some(e),
            Kind::Limit(e) => Some(e),
            _ => None,
        }
    }
}
