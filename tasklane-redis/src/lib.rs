//! A rate (and optionally a concurrency) shared by every process of a fleet through Redis, for
//! [tasklane]'s lanes: [`RedisLimiter`] implements [`tasklane::limit::Admit`], so
//! `.limiter(&redis_limiter)` on any lane, policy or pool makes every process that uses the same
//! key draw on one budget.
//!
//! ```no_run
//! use futures::StreamExt;
//! use tasklane::prelude::*;
//! use tasklane_redis::RedisLimiter;
//!
//! # #[tokio::main] async fn main() -> Result<(), redis::RedisError> {
//! let client = redis::Client::open("redis://127.0.0.1:6379/")?;
//! // 200 starts per second over every process that runs this, at most 20 running at once.
//! let api = RedisLimiter::new(client, "api").rate(200.0).burst(10).concurrency(20);
//! let done = (0..1000u32)
//!     .lane(32)
//!     .limiter(&api)
//!     .timeout(std::time::Duration::from_secs(5)) // items can fail: a Redis fault fails them
//!     .map_async(|id| async move { Ok::<u32, std::io::Error>(id) })
//!     .filter(|out| std::future::ready(out.is_ok()))
//!     .count()
//!     .await;
//! println!("{done} done");
//! # Ok(()) }
//! ```
//!
//! # How it decides
//!
//! Each decision is one Lua script on the server (`EVALSHA`; after a `NOSCRIPT`, as from a
//! restarted server, the script is loaded again and the call repeated), atomic there, on the server's clock (`TIME`), so the processes' clocks do not
//! matter:
//! - the rate is GCRA (the generic cell rate algorithm, as redis-cell and go-redis's
//!   `redis_rate` use): one key holds the theoretical arrival time, which expires once it has
//!   passed; in any window of length `t` at most `burst + per_second × t` units start;
//! - the concurrency is a sorted set of leases scored by their expiry: a crashed process's
//!   permits come back when their leases expire;
//! - both keys are `{key}:…`, one hash slot, so the script can run on a Redis Cluster node; the
//!   [`Backend`] is a single server's connection (a Cluster connection is not supported yet: point
//!   it at the node that owns the slot, or use a single server or a proxy).
//!
//! # Cheap under load
//!
//! A denied lane does not ask again at once: the script says how long until the rate would admit
//! it, and the lane waits that long on its own timer ([`Verdict::NotBefore`]). With
//! [`lease(k)`](RedisLimiter::lease) one round trip takes up to `k` units, which this process hands
//! out without asking (for the precision that costs, see there). Await
//! [`flush`](RedisLimiter::flush) at the end of a batch or before exiting to give back what the
//! process holds unused (leased units, the concurrency's leases of ended attempts) at once.
//!
//! # What each `Admit` call does
//!
//! - `poll_admit`: hands out units this process holds (a lease, a cancelled attempt's, a
//!   reservation whose time has come) without a round trip; else sends one call per waiting lane
//!   and answers `Pending` until its reply is in (the reply's future wakes the lane).
//! - `release`: the concurrency's leases of the attempt go back with this process's next call (or
//!   [`flush`](RedisLimiter::flush)); the rate keeps its units (they were used).
//! - `cancel`: as `release`, and the rate's units go back to this process's pool for its next
//!   start (not to the server).
//! - `leave`: drops the lane's call in flight (its leases are given back with the next call) and
//!   its reservation (whose units are lost).
//!
//! # Faults
//!
//! Every call has a time limit ([`call_timeout`](RedisLimiter::call_timeout), 1 s by default).
//! A call that fails or times out is a [`LimitError`]: the item fails
//! ([`fail_closed`](RedisLimiter::fail_closed), the default, on a lane whose items can fail) or
//! starts anyway ([`fail_open`](RedisLimiter::fail_open)). Either way every item yields exactly
//! one output, and none starts twice. The connection is a [`redis::aio::ConnectionManager`],
//! which reconnects after the server comes back (after at most about 100 ms between attempts).
//!
//! # Runtime support
//!
//! The lane needs no runtime; the Redis connection does, to drive its socket. Choose it with a
//! feature:
//!
//! ```toml
//! tasklane-redis = "0.1"                                                         # tokio
//! tasklane-redis = { version = "0.1", default-features = false, features = ["smol-comp"] } # smol
//! ```
//!
//! - `tokio-comp` (default): poll the lanes inside a tokio runtime (the connection is made on the
//!   first start, and spawns its driver there).
//! - `smol-comp`: the driver runs on smol's global executor, so lanes run under any executor,
//!   `futures::executor::block_on` included.
//!
//! With both, redis uses tokio inside a tokio runtime and smol elsewhere.
//!
//! [`LimitError`]: tasklane::limit::LimitError
//! [`Verdict::NotBefore`]: tasklane::limit::Verdict::NotBefore
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod admit;
mod call;
mod limiter;

pub use limiter::{Backend, RedisLimiter};
/// The `redis` crate this one is built on, for [`redis::Client`] and
/// [`redis::aio::ConnectionManager`] of the same version.
pub use redis;
