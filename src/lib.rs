//! Fan out async work safely and fast: bounded concurrency, in completion or input order, as
//! combinators on [`futures_core::Stream`], with no spawning and no runtime dependency.
//!
//! Every async program that makes many requests ends up writing the same block: a semaphore or
//! `buffer_unordered` to cap concurrency, then the bookkeeping around it. tasklane is that block done
//! once: a hand-written, poll-based state machine per terminal, driven by whoever polls it.
//!
//! **Run at most 20 fetches at once, results in input order**
//!
//! ```
//! use futures::StreamExt;
//! use tasklane::prelude::*;
//!
//! async fn fetch(url: &str) -> usize {
//!     url.len() // stands in for an HTTP request
//! }
//!
//! # futures::executor::block_on(async {
//! let urls = ["https://a.example", "https://bb.example", "https://ccc.example"];
//! let sizes: Vec<usize> = urls.lane(20).ordered().map_async(fetch).collect().await;
//! assert_eq!(sizes, [17, 18, 19]);
//! # });
//! ```
//!
//! **Run futures you already have, at most 2 at once, as they finish**
//!
//! ```
//! use futures::StreamExt;
//! use tasklane::prelude::*;
//!
//! # futures::executor::block_on(async {
//! let jobs = (1..=5).map(|n| async move { n * n });
//! let mut squares: Vec<u32> = jobs.lane(2).run().collect().await;
//! squares.sort_unstable();
//! assert_eq!(squares, [1, 4, 9, 16, 25]);
//! # });
//! ```
//!
//! **Retry failures with back-off, give each attempt a deadline**
//!
//! ```
//! use std::time::Duration;
//! use futures::TryStreamExt;
//! use tasklane::{prelude::*, Backoff};
//!
//! async fn fetch(id: u32) -> Result<u32, std::io::Error> {
//!     Ok(id * 100) // stands in for a request that can fail
//! }
//!
//! # futures::executor::block_on(async {
//! let pages: Vec<u32> = (1..=3u32)
//!     .lane(8)
//!     .ordered()
//!     .retry(3)                                         // up to 4 attempts per item
//!     .backoff(Backoff::exponential(Duration::from_millis(50)))
//!     .timeout(Duration::from_secs(10))                 // per attempt
//!     .map_async(fetch)
//!     .try_collect()                                    // fail fast on the first final error
//!     .await
//!     .unwrap();
//! assert_eq!(pages, [100, 200, 300]);
//! # });
//! ```
//!
//! # Operations
//!
//! | call | on | gives |
//! |---|---|---|
//! | [`items.into_stream()`](IterLaneExt::into_stream) | any `IntoIterator` | a lazy [`Stream`](futures_core::Stream) ([`Iter`]) |
//! | [`items.lane(limit)`](IterLaneExt::lane) | any `IntoIterator` | a [`Lane`] builder |
//! | [`stream.lane(limit)`](LaneExt::lane) | any `Stream` | a [`Lane`] builder |
//! | [`items.lane_with(&policy)`](IterLaneExt::lane_with), [`stream.lane_with(&policy)`](LaneExt::lane_with) | both | a [`Lane`] configured from a reusable [`Policy`] |
//! | [`.ordered()`](Configure::ordered), [`.window(n)`](Configure::window) | `Lane`, `Policy` ([`Configure`]) | outputs in input order (default: completion order) |
//! | [`.timeout(d)`](Configure::timeout) | `Lane`, `Policy` | each attempt gets at most `d`; items become `Result<U, Error<E>>` |
//! | [`.retry(n)`](Configure::retry) | `Lane`, `Policy` | up to `n + 1` attempts per item; items become `Result<U, Error<E>>` |
//! | [`.backoff(b)`](Configure::backoff), [`.retry_if(p)`](Configure::retry_if), [`.retry_after(h)`](Configure::retry_after) | `Lane`, `Policy` after `retry` | the delay before each retry, which failures are retried, a delay the error asks for |
//! | [`.rate(per_second)`](Configure::rate), [`.burst(n)`](Configure::burst), [`.strict_rate()`](Configure::strict_rate) | `Lane`, `Policy` | at most `per_second` attempt starts per second (GCRA), retries included; up to `n` back to back; strict: never more than `n` in any window of `n / per_second` s |
//! | [`.on_progress(f)`](Lane::on_progress) | `Lane` | `f(&`[`Progress`]`)` once per item outcome, before it is yielded |
//! | [`.map_async(f)`](Lane::map_async) | `Lane` | a stream of `f(item)`'s outcomes ([`LaneStream`]) |
//! | [`.run()`](Lane::run) | `Lane` over futures, without retry | a stream of their outputs ([`LaneStream`]) |
//! | [`.for_each_async(g)`](LaneStream::for_each_async) | the stream of `map_async` or `run` | a future that runs `g(output)` for each output while the lane keeps running |
//! | [`gather(futs, limit)`](gather()) | any `IntoIterator` of futures | a future of every output, in input order |
//! | [`try_gather(futs, limit)`](try_gather()) | futures of `Result` | `Ok` of every output, or the first error by completion time, at once |
//! | [`first(futs, limit)`](first()) | any `IntoIterator` of futures | the first output to complete (`None` for no futures) |
//! | [`first_ok(futs, limit)`](first_ok()) | futures of `Result` | the first success, or every error in completion order |
//! | [`TaskPool::new(max_workers)`](pool::TaskPool::new), [`pool::scope`] | jobs (`Send` futures) | a task pool without spawning: `submit`, `map`, `cancel`, `shutdown` |
//!
//! How limit, rate, retry, back-off and timeout compose is spelled out in
//! [`Lane`'s `# Order`](Lane#order).
//! The output streams are plain `Stream`s: everything in `StreamExt` and `TryStreamExt` works on
//! them. A stream of `Result`s gives fail-fast with `try_collect` and collect-all with `collect`.
//! Errors are values of [`Error<E>`](Error): the task's own error (never stringified) or a timeout,
//! with the number of attempts made.
//!
//! # Coming from the seed libraries
//!
//! tasklane (Rust) covers what four Python packages offer; each call has one tasklane form
//! (`n` is the concurrency limit, `f` an async function of one item):
//!
//! | package | call | tasklane |
//! |---|---|---|
//! | tasklane | `amap(f, items, limit=n)` | `items.lane(n).ordered().map_async(f).collect::<Vec<_>>()`; fail-fast (`return_exceptions=False`): `.try_collect()` |
//! | tasklane | `stream(f, items, limit=n)` | `items.lane(n).map_async(f)`: a `Stream` in completion order |
//! | tasklane | `gather(*coros, limit=n)` | [`gather(futs, n)`](gather()); fail-fast: [`try_gather(futs, n)`](try_gather()) |
//! | tasklane | `Lane(limit=n, retries=r, timeout=t, backoff=b, rate_limit=q)` | [`Policy::new(n).retry(r).timeout(t).backoff(b).rate(q)`](Policy), then `items.lane_with(&policy).map_async(f)`; or the same setters on `items.lane(n)` directly |
//! | tasklane | `on_progress=cb` | [`.on_progress(cb)`](Lane::on_progress), `cb(&Progress)` |
//! | aiometer | `run_on_each(f, args, max_at_once=n)` | `args.lane(n).map_async(f).for_each_async(\|()\| async {})` (or any handler) |
//! | aiometer | `run_all(fns, max_at_once=n)` | [`gather(fns.into_iter().map(\|f\| f()), n)`](gather()) |
//! | aiometer | `amap(f, args, max_at_once=n, max_per_second=q)` | `args.lane(n).rate(q).map_async(f)` (completion order) |
//! | aiometer | `run_any(fns, max_at_once=n)` | [`first(futs, n)`](first()) (the losers are dropped at once); first success: [`first_ok`] |
//! | cf-taskpool | `TaskPoolExecutor(max_workers=n)` | [`TaskPool::new(n)`](pool::TaskPool::new) (handle and driver), or [`pool::scope(n, \|pool\| ..)`](pool::scope) for `async with` |
//! | cf-taskpool | `executor.submit(fn, *args)`, `future.cancel()` | [`pool.submit(fut)`](pool::TaskPool::submit) → [`JobHandle`](pool::JobHandle), [`handle.cancel()`](pool::JobHandle::cancel) |
//! | cf-taskpool | `executor.map(fn, it, buffersize=k)` | [`pool.map(f, it).buffer(k)`](pool::Map::buffer) (input order) |
//! | cf-taskpool | `executor.shutdown(wait, cancel_futures)` | [`pool.shutdown(wait, cancel_queued).await`](pool::TaskPool::shutdown) |
//! | aio.tasks | `concurrent(coros, limit=n)` | `coros.lane(n).run()` (completion order); `yield_exceptions=True`: a stream of `Result`s, consumed with `collect` |
//!
//! The same translations, run:
//!
//! ```
//! use futures::{StreamExt, TryStreamExt};
//! use tasklane::{pool, prelude::*};
//!
//! async fn double(x: u32) -> u32 { x * 2 }
//! async fn check(x: u32) -> Result<u32, String> {
//!     if x < 10 { Ok(x) } else { Err(format!("{x} is too big")) }
//! }
//!
//! # futures::executor::block_on(async {
//! // tasklane.amap
//! let doubled: Vec<u32> = [1, 2, 3].lane(16).ordered().map_async(double).collect().await;
//! assert_eq!(doubled, [2, 4, 6]);
//! // tasklane.amap, fail-fast
//! let failed = [1, 20, 3].lane(16).ordered().map_async(check).try_collect::<Vec<_>>().await;
//! assert_eq!(failed, Err("20 is too big".to_string()));
//! // tasklane.gather / aiometer.run_all
//! assert_eq!(tasklane::gather([1, 2, 3].map(double), 2).await, [2, 4, 6]);
//! // aiometer.run_any
//! assert!(tasklane::first([1, 2, 3].map(double), 2).await.is_some());
//! // aiometer.run_on_each
//! let mut seen = Vec::new();
//! [1, 2, 3].lane(2).ordered().map_async(double).for_each_async(|x| {
//!     seen.push(x);
//!     async {}
//! }).await;
//! assert_eq!(seen, [2, 4, 6]);
//! // cf-taskpool: async with TaskPoolExecutor(4) as ex: list(await ex.map(...))
//! let mapped: Vec<_> = pool::scope(4, |pool| async move {
//!     pool.map(double, [1, 2, 3]).collect::<Vec<_>>().await
//! })
//! .await;
//! assert_eq!(mapped, [Ok(2), Ok(4), Ok(6)]);
//! // aio.tasks.concurrent(yield_exceptions=True)
//! let mut all: Vec<Result<u32, String>> = [1, 20].map(check).lane(4).run().collect().await;
//! all.sort();
//! assert_eq!(all, [Ok(1), Err("20 is too big".to_string())]);
//! # });
//! ```
//!
//! Rate limits (tasklane's `rate_limit=`, aiometer's `max_per_second=`) are
//! [`.rate(per_second)`](Configure::rate) on any lane; tasklane's progress callback is
//! [`.on_progress`](Lane::on_progress):
//!
//! ```
//! use futures::StreamExt;
//! use tasklane::prelude::*;
//!
//! # futures::executor::block_on(async {
//! let mut completed = 0;
//! let out: Vec<u32> = (1..=3u32)
//!     .lane(4)
//!     .ordered()
//!     .rate(1_000.0) // aiometer: max_per_second=1000
//!     .on_progress(|p| completed = p.completed)
//!     .map_async(|x| async move { x * 2 })
//!     .collect()
//!     .await;
//! assert_eq!((out, completed), (vec![2, 4, 6], 3));
//! # });
//! ```
//!
//! # Errors in the input
//!
//! A lane does not look into its items: a `Stream` of `Result`s (a fallible source, a `TryStream`)
//! goes through unchanged, each `Err` is an item like any other, and the lane keeps pulling after
//! it. Decide in the closure what a source error becomes. For **fail-fast on a source error**, pass
//! it through as the output and stop at the first `Err` with `try_collect` (or `try_next`):
//! dropping the lane then drops the in-flight work and the source. Keep source and task errors
//! apart with an enum:
//!
//! ```
//! use futures::{stream, TryStreamExt};
//! use tasklane::prelude::*;
//!
//! #[derive(Debug, PartialEq)]
//! enum Failure {
//!     Source(&'static str), // reading the input failed
//!     Task(u32),            // the work for an item failed
//! }
//!
//! async fn work(x: u32) -> Result<u32, Failure> {
//!     if x == 3 { Err(Failure::Task(x)) } else { Ok(x * 10) }
//! }
//!
//! # futures::executor::block_on(async {
//! let source = stream::iter([Ok(1), Ok(2), Err("connection reset"), Ok(4)]);
//! let out = source
//!     .lane(4)
//!     .ordered()
//!     .map_async(|item: Result<u32, &'static str>| async move {
//!         work(item.map_err(Failure::Source)?).await
//!     })
//!     .try_collect::<Vec<_>>()
//!     .await;
//! assert_eq!(out, Err(Failure::Source("connection reset")));
//!
//! // Collect-all instead: every item, the source error at its position.
//! let source = stream::iter([Ok(1), Err("connection reset"), Ok(3)]);
//! let all: Vec<_> = futures::StreamExt::collect(source.lane(4).ordered().map_async(
//!     |item: Result<u32, &'static str>| async move { work(item.map_err(Failure::Source)?).await },
//! ))
//! .await;
//! assert_eq!(all, [Ok(10), Err(Failure::Source("connection reset")), Err(Failure::Task(3))]);
//! # });
//! ```
//!
//! Python's tasklane raises a source error only after the in-flight items finish, and aio.tasks
//! raises it at once and cancels them; here it is an item in its place: `ordered()` yields it after
//! the items before it, in completion order it comes out as soon as it is pulled, and the consumer
//! decides whether to stop.
//!
//! # What every lane guarantees
//!
//! - **At most `limit` in progress.** The input is read only when a slot is free (and, with a rate
//!   limit, when a start is allowed): at most `limit` items are pulled and not yet yielded, in both
//!   orders. `lane(usize::MAX)` is unbounded and allocates nothing up front; `lane(0)` panics.
//! - **Eager refill.** When an output is returned, its slot has already been refilled from the input
//!   and the new future polled once (futures-util's `buffered` refills only on the next call).
//! - **All woken work is driven.** Every poll drives every woken in-flight future, even when an output
//!   is already waiting; only woken futures are polled, so a wake-up costs O(1) whatever the limit.
//!   After a budget of polls the lane wakes itself and returns `Pending`, so it never starves the
//!   other tasks of its executor; retries that start at once (a zero back-off) count against it too.
//! - **No wake-up is lost**, whatever way a future registers its waker: once at its first poll and
//!   never again, from another thread, spuriously, many times over. A slot woken after its last
//!   poll began is polled again, and that poll sees everything the waking side did before it called
//!   `wake` (the slot's flag is cleared with an acquiring read-modify-write before the poll; the wake
//!   protocol is model-checked with loom, see `src/engine/waker.rs`).
//! - **Exactly one output per item**, unless the stream is dropped first. Dropping it at any point
//!   drops every in-flight future, every waiting output and the input, at once.
//! - **No allocation per item** in steady state: futures live in pinned slots reused item after item,
//!   each slot with one waker made once; timeouts, back-offs, rate limits and progress included.
//! - **Panics propagate, then poison.** A panic in a user future or closure (the attempt maker,
//!   `retry_if`, `retry_after`, an item's `Clone`, a future's `Drop`, the progress callback, the
//!   input) unwinds out of the `poll_next` it happened in. The lane may have been half-way through
//!   an update, so it is then *poisoned*: every later poll panics with a message saying so, instead
//!   of losing items or hanging. Dropping it drops every in-flight future exactly once. The same
//!   holds for `gather` and its relatives, `for_each_async` and the pool's driver.
//!
//! # No spawning, and the one trap that comes with it
//!
//! tasklane never spawns a task and never names a runtime. In-flight futures make progress only
//! while the lane is polled. So if a consumer awaits something slow between two `next()` calls,
//! the in-flight work stalls for that long: the *buffered streams trap* known from futures-util's
//! `buffered` (rust-lang/futures-rs#2387), which can even deadlock when the in-flight futures and the
//! consumer's own work wait on the same resource, such as a connection pool of size one.
//!
//! **The trap.** Here the loop body lets the second item go on and waits for it to finish, but
//! nothing polls the lane while the body waits, so the second item never runs: the loop stalls for
//! good.
//!
//! ```
//! use futures::channel::oneshot;
//! use futures::{FutureExt, StreamExt};
//! use tasklane::prelude::*;
//!
//! let (go, go_rx) = oneshot::channel::<()>();
//! let (done_tx, done) = oneshot::channel::<()>();
//! let second_item = async move { go_rx.await.unwrap(); done_tx.send(()).unwrap(); 2 };
//! let mut out = vec![async { 1 }.boxed(), second_item.boxed()].lane(2).run();
//! let mut stalled = async move {
//!     while let Some(x) = out.next().await {
//!         if x == 1 {
//!             go.send(()).unwrap();
//!             done.await.unwrap(); // waits for the second item, which nobody polls
//!             break;
//!         }
//!     }
//! }
//! .boxed();
//! // Polled as often as you like, it never finishes (an executor would hang here).
//! for _ in 0..10 {
//!     assert!((&mut stalled).now_or_never().is_none());
//! }
//! ```
//!
//! **The way out: [`for_each_async`](LaneStream::for_each_async).** It polls the handler's future
//! and the lane together, so in-flight work keeps running while the handler awaits. The same
//! handler now finishes:
//!
//! ```
//! use std::sync::Mutex;
//! use futures::channel::oneshot;
//! use futures::FutureExt;
//! use tasklane::prelude::*;
//!
//! # futures::executor::block_on(async {
//! let (go, go_rx) = oneshot::channel::<()>();
//! let (done_tx, done) = oneshot::channel::<()>();
//! let second_item = async move { go_rx.await.unwrap(); done_tx.send(()).unwrap(); 2 };
//! let channels = Mutex::new(Some((go, done)));
//! let seen = Mutex::new(Vec::new());
//! vec![async { 1 }.boxed(), second_item.boxed()]
//!     .lane(2)
//!     .run()
//!     .for_each_async(|x| {
//!         seen.lock().unwrap().push(x);
//!         let wait = if x == 1 { channels.lock().unwrap().take() } else { None };
//!         async move {
//!             if let Some((go, done)) = wait {
//!                 go.send(()).unwrap();
//!                 done.await.unwrap(); // the lane keeps polling the second item meanwhile
//!             }
//!         }
//!     })
//!     .await;
//! assert_eq!(*seen.lock().unwrap(), [1, 2]);
//! # });
//! ```
//!
//! Handlers run one at a time; outputs that finish meanwhile wait in their slots (within the
//! limit). When the handling itself should run concurrently, put it inside the lane's future instead
//! (`map_async(|id| async move { store(fetch(id).await).await })`).
//!
//! # Runtime support
//!
//! Runs unchanged on tokio (current-thread and multi-thread), async-std, smol and
//! `futures::executor`: the test suite runs the same scenarios on each. A lane is `Send` when its
//! input, closures and futures are, so it can be spawned on a multi-threaded runtime, also when its
//! error type borrows (`Err("...")`, `Box<dyn Error + Send + Sync>`); a task pool's
//! [`PoolDriver`](pool::PoolDriver) is always `Send` (jobs must be), so it can be spawned too.
//! Items that borrow (`["a", "b"].lane(2)`, whose items are `&'static str`) are the exception, as
//! with futures-util's `buffered`: a compiler limitation (rust-lang/rust#102211) rejects the spawn
//! with "implementation of `FnOnce` is not general enough". Box the output stream first
//! (`StreamExt::boxed`), or give the lane owned items.
//!
//! # Non-goals
//!
//! - Spawning, or any runtime-specific API (no runtime is named, except by the timer features
//!   below, which only choose where a lane sleeps).
//! - A limit of 0 meaning "unlimited": say `usize::MAX`.
//!
//! # Feature flags
//!
//! Timers (for timeouts, back-offs and rate limits) come from futures-timer's own timer thread by
//! default, so they work on every runtime. A lane without timeout, retry or rate never creates one.
//!
//! - `async-io`: use async-io's timer (the reactor behind smol and async-std) instead.
//!   `tasklane = { version = "0.1", features = ["async-io"] }`
//! - `tokio`: a lane that first reads the time inside a tokio runtime reads the runtime's clock and
//!   sleeps on its timer: no timer thread, and tokio's paused clock (`tokio::time::pause`,
//!   `#[tokio::test(start_paused = true)]`) drives the lane's timeouts, back-offs and rate limits.
//!   Elsewhere, the timer above. The runtime needs its time driver (`enable_time` or `enable_all`,
//!   as `#[tokio::main]` has). `tasklane = { version = "0.1", features = ["tokio"] }`
//! - `wasm`: for `wasm32-unknown-unknown` in a browser: futures-timer's `setTimeout` timer, and
//!   the browser's monotonic clock (std's `Instant` panics there).
//!   `tasklane = { version = "0.1", features = ["wasm"] }`
//! - `test-util`: `time::ManualClock`, `Configure::with_clock` (on a lane or a policy), to test
//!   timeouts, back-offs, rate limits and progress by moving a clock by hand instead of sleeping.
//!   `tasklane = { version = "0.1", features = ["test-util"] }`
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

mod backoff;
mod config;
mod engine;
mod error;
mod ext;
mod gather;
mod iter;
mod lane;
pub mod limit;
pub mod mode;
mod policy;
pub mod pool;
pub mod prelude;
pub mod progress;
mod rate;
mod stream;
pub mod time;

pub use backoff::{Backoff, Jitter};
pub use config::Configure;
pub use error::Error;
pub use ext::{IterLaneExt, LaneExt};
pub use gather::{first, first_ok, gather, try_gather, First, FirstOk, Gather, TryGather};
pub use iter::Iter;
pub use lane::Lane;
pub use limit::Limiter;
pub use policy::Policy;
pub use progress::Progress;
pub use stream::{ForEachAsync, Indexed, LaneStream, MapAsync, Run};
