//! One round trip: the admission script, its arguments, its reply, and the time limit on it. No
//! `Poll` here: [`Call::send`] makes the future that [`RedisLimiter`](crate::RedisLimiter) polls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{self, Either};
use redis::aio::ConnectionManager;
use tasklane::limit::LimitError;

/// The script (see `admit.lua`): sent by hash (`EVALSHA`); when the server answers `NOSCRIPT`
/// (after a restart, or a `SCRIPT FLUSH`), `redis::Script` loads it (`SCRIPT LOAD`) and sends the
/// `EVALSHA` again.
pub(crate) fn script() -> redis::Script {
    redis::Script::new(include_str!("admit.lua"))
}

/// What the script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Admitted: this many units of the rate (at least the units asked for, at most the lease),
    /// and every new lease id of the call.
    Granted(u32),
    /// Reserved: this many units of the rate (and every new lease id of the call) are the
    /// caller's, to start after this long, without asking again.
    Reserved(u32, Duration),
    /// Denied (by the rate or the concurrency): ask again after this long.
    Denied(Duration),
}

/// The future of one call: the reply, or why there is none.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<Reply, LimitError>> + Send>>;

/// The arguments of one call (see the header of `admit.lua`).
#[derive(Debug, Default)]
pub(crate) struct Call {
    /// Microseconds between two units of the rate (0: no rate).
    pub(crate) interval_us: f64,
    pub(crate) burst: u32,
    /// Units of the rate needed now (0: the caller has them).
    pub(crate) want: u32,
    /// Units of the rate to take at most.
    pub(crate) most: u32,
    /// The concurrency (0: none).
    pub(crate) limit: u32,
    pub(crate) ttl_ms: u64,
    pub(crate) poll_ms: u64,
    /// Microseconds ahead a denied call may reserve its units.
    pub(crate) ahead_us: u64,
    /// Units of the rate given back unused.
    pub(crate) refund: u32,
    /// Lease ids to give back.
    pub(crate) free: Vec<String>,
    /// Lease ids to renew.
    pub(crate) renew: Vec<String>,
    /// Lease ids to take.
    pub(crate) new: Vec<String>,
}

impl Call {
    /// Sends the call on `conn` (as its future is first polled), with an answer in `timeout` or an
    /// error.
    pub(crate) fn send(
        &self,
        script: &Arc<redis::Script>,
        keys: &Arc<[String; 2]>,
        mut conn: ConnectionManager,
        timeout: Duration,
    ) -> Pending {
        let script = Arc::clone(script);
        let keys = Arc::clone(keys);
        let args = self.args();
        Box::pin(async move {
            let invoke = async {
                let mut invocation = script.prepare_invoke();
                invocation.key(&keys[0]).key(&keys[1]);
                for arg in &args {
                    invocation.arg(arg);
                }
                invocation.invoke_async::<(i64, i64, i64)>(&mut conn).await
            };
            let invoke = std::pin::pin!(invoke);
            match future::select(invoke, futures_timer::Delay::new(timeout)).await {
                Either::Left((Ok(reply), _)) => parse(reply),
                Either::Left((Err(err), _)) => Err(LimitError::new(format!("redis: {err}"))),
                Either::Right(_) => Err(LimitError::new(format!(
                    "redis: no answer within {timeout:?}"
                ))),
            }
        })
    }

    /// The script's arguments, in its order.
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            self.interval_us.to_string(),
            self.burst.to_string(),
            self.want.to_string(),
            self.most.to_string(),
            self.limit.to_string(),
            self.ttl_ms.to_string(),
            self.poll_ms.to_string(),
            self.ahead_us.to_string(),
            self.refund.to_string(),
            self.free.len().to_string(),
            self.renew.len().to_string(),
            self.new.len().to_string(),
        ];
        args.extend(self.free.iter().cloned());
        args.extend(self.renew.iter().cloned());
        args.extend(self.new.iter().cloned());
        args
    }
}

/// The script's reply `{status, units, retry_us}` as a [`Reply`].
fn parse((status, units, retry_us): (i64, i64, i64)) -> Result<Reply, LimitError> {
    match status {
        1 => Ok(Reply::Granted(u32::try_from(units).unwrap_or(u32::MAX))),
        3 => Ok(Reply::Reserved(
            u32::try_from(units).unwrap_or(u32::MAX),
            Duration::from_micros(u64::try_from(retry_us).unwrap_or(0).max(1)),
        )),
        0 | 2 => Ok(Reply::Denied(Duration::from_micros(
            u64::try_from(retry_us).unwrap_or(0).max(1),
        ))),
        _ => Err(LimitError::new(format!(
            "redis: unexpected reply from the admission script: {status}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        assert_eq!(parse((1, 3, 0)), Ok(Reply::Granted(3)));
        assert_eq!(
            parse((0, 0, 1500)),
            Ok(Reply::Denied(Duration::from_micros(1500)))
        );
        assert_eq!(
            parse((2, 0, 0)),
            Ok(Reply::Denied(Duration::from_micros(1)))
        );
        assert_eq!(
            parse((3, 1, 250)),
            Ok(Reply::Reserved(1, Duration::from_micros(250)))
        );
        assert!(parse((7, 0, 0)).is_err());
    }

    #[test]
    fn args_follow_the_script_order() {
        let call = Call {
            interval_us: 200.0,
            burst: 5,
            want: 1,
            most: 4,
            limit: 3,
            ttl_ms: 30_000,
            poll_ms: 20,
            ahead_us: 100_000,
            refund: 0,
            free: vec!["a".into()],
            renew: vec![],
            new: vec!["b".into(), "c".into()],
        };
        assert_eq!(
            call.args(),
            [
                "200", "5", "1", "4", "3", "30000", "20", "100000", "0", "1", "0", "2", "a", "b",
                "c"
            ]
        );
    }
}
