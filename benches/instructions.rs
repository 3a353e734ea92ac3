//! Instructions per item, the figure of record for per-item cost: one drain of one stream of `N`
//! futures, counted by callgrind. `bash benches/instructions.sh` runs every case and prints the table
//! (see BENCHMARKS.md, "Instructions per item (callgrind)").
//!
//! One run drains one stream, chosen by environment variables or by `key=value` arguments (an
//! argument wins over the variable; arguments starting with `--`, such as the `--bench` that
//! `cargo bench` passes, are ignored):
//!
//! | variable | argument | values | default |
//! |---|---|---|---|
//! | `INSTR_IMPL` | `impl=` | `tasklane`, `tasklane_shared` (with a shared `Limiter` that never waits), `tasklane_timeout` (with a `.timeout(60 s)` that never fires), `futures_buffered`, `futures_util` | `tasklane` |
//! | `INSTR_ORDER` | `order=` | `unordered`, `ordered` | `unordered` |
//! | `INSTR_FUT` | `fut=` | `ready` (`async move { x }`), `yield` (`async move { yield_now().await; x }`) | `ready` |
//! | `INSTR_LIMIT` | `limit=` | the concurrency limit | `16` |
//! | `INSTR_N` | `n=` | the number of items | `100000` |
//!
//! The streams are written the way users write them: `(0..n).lane(limit)[.ordered()].map_async(f)`,
//! `stream::iter(0..n).map(f).buffered_unordered(limit)` / `.buffered_ordered(limit)`
//! (futures-buffered), `stream::iter(0..n).map(f).buffer_unordered(limit)` / `.buffered(limit)`
//! (futures-util), with `f` the closure `|x| async move { x }` or
//! `|x| async move { yield_now().await; x }`, and drained with `while let Some(x) = s.next().await`
//! under `futures::executor::block_on`. `yield_now()` wakes its task and returns `Pending` once,
//! then is ready.
//!
//! Only [`instr_drain`] is to be counted (`valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*instr_drain*'`): the drain, executor included, from the first `poll_next` to
//! the end of the stream. Building the stream before it and dropping it after it are not counted.
//! Nothing else in this file has `instr_drain` in its name: callgrind toggles collection on entry
//! to every matching function, so a second match nested inside would switch counting off.

use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};

use futures::executor::block_on;
use futures::stream::{self, Stream, StreamExt};
use futures_buffered::BufferedStreamExt;
use tasklane::prelude::*;

#[allow(dead_code)]
// reason: this bench uses only `yield_once` of the helpers the bench files share
mod common;
use common::YieldOnce;

/// The future users await to give way once: it wakes its task and returns `Pending` at its first
/// poll, and is ready at its second (like `tokio::task::yield_now`).
fn yield_now() -> YieldOnce<()> {
    common::yield_once(())
}

/// The drain that is counted: polls `stream` to its end under `block_on`, summing the outputs
/// (each through `black_box`). Returns the number of items and their sum. Never inlined, so that
/// callgrind can count it alone; generic, so each stream gets its own copy with the same name.
#[inline(never)]
fn instr_drain<S: Stream<Item = u64>>(stream: Pin<&mut S>) -> (u64, u64) {
    block_on(consume(stream))
}

/// What [`instr_drain`] runs: `while let Some(x) = stream.next().await`, counting and summing.
/// (A function of its own rather than an `async` block in `instr_drain`, whose name would contain
/// `instr_drain` and toggle callgrind's collection off again.)
async fn consume<S: Stream<Item = u64>>(mut stream: Pin<&mut S>) -> (u64, u64) {
    let (mut count, mut sum) = (0, 0);
    while let Some(x) = stream.next().await {
        count += 1;
        sum += black_box(x);
    }
    (count, sum)
}

/// The implementations under test.
#[derive(Clone, Copy, Debug)]
enum Impl {
    /// `tasklane`: `lane(limit)`, `.ordered()`, `.map_async(f)`.
    Tasklane,
    /// `tasklane` with a shared `Limiter` that never makes a start wait (concurrency 2^30):
    /// `lane(limit).limiter(&l)`, the cost of asking it and giving back its permit per item.
    TasklaneShared,
    /// The same lane with `.timeout(60 s)`, a timeout that never fires (the futures' outputs
    /// wrapped in `Ok`, the lane's unwrapped by a `StreamExt::map`).
    TasklaneTimeout,
    /// `futures-buffered`: `buffered_unordered(limit)` / `buffered_ordered(limit)`.
    FuturesBuffered,
    /// `futures-util`: `buffer_unordered(limit)` / `buffered(limit)`.
    FuturesUtil,
}

/// One case: which implementation, in which order, over how many items at which limit.
#[derive(Clone, Copy, Debug)]
struct Case {
    /// The implementation.
    imp: Impl,
    /// Outputs in input order rather than completion order.
    ordered: bool,
    /// The concurrency limit.
    limit: usize,
    /// The number of items (`0..n`).
    n: u64,
}

/// Builds the stream of `case` over `0..n` mapped through `f`, drains it in [`instr_drain`] and
/// returns what came out. The stream is built before the drain and dropped after it.
fn run<F, Fut>(case: Case, f: F) -> (u64, u64)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = u64>,
{
    fn go<S: Stream<Item = u64>>(stream: S) -> (u64, u64) {
        let mut stream = pin!(stream);
        instr_drain(stream.as_mut())
    }
    let Case {
        imp,
        ordered,
        limit,
        n,
    } = case;
    let items = 0..black_box(n);
    match (imp, ordered) {
        (Impl::Tasklane, false) => go(items.lane(limit).map_async(f)),
        (Impl::Tasklane, true) => go(items.lane(limit).ordered().map_async(f)),
        (Impl::TasklaneShared, ordered) => {
            let limiter = tasklane::Limiter::new().concurrency(1 << 30);
            let lane = items.lane(limit).limiter(&limiter);
            if ordered {
                go(lane.ordered().map_async(f))
            } else {
                go(lane.map_async(f))
            }
        }
        (Impl::TasklaneTimeout, ordered) => {
            let lane = items
                .lane(limit)
                .timeout::<()>(std::time::Duration::from_secs(60));
            let mut f = f;
            let f = move |x| {
                let fut = f(x);
                async move { Ok(fut.await) }
            };
            let unwrap = |out: Result<u64, tasklane::Error<()>>| out.expect("no timeout fires");
            if ordered {
                go(lane.ordered().map_async(f).map(unwrap))
            } else {
                go(lane.map_async(f).map(unwrap))
            }
        }
        (Impl::FuturesBuffered, false) => go(stream::iter(items).map(f).buffered_unordered(limit)),
        (Impl::FuturesBuffered, true) => go(stream::iter(items).map(f).buffered_ordered(limit)),
        (Impl::FuturesUtil, false) => go(stream::iter(items).map(f).buffer_unordered(limit)),
        (Impl::FuturesUtil, true) => go(stream::iter(items).map(f).buffered(limit)),
    }
}

/// The setting `key`: from a `key=value` argument, else from the variable `INSTR_<KEY>`, else
/// `default`.
fn setting(args: &[String], key: &str, default: &str) -> String {
    let prefix = format!("{key}=");
    args.iter()
        .rev()
        .find_map(|arg| arg.strip_prefix(&prefix).map(str::to_owned))
        .or_else(|| std::env::var(format!("INSTR_{}", key.to_uppercase())).ok())
        .unwrap_or_else(|| default.to_owned())
}

// A plain `main`: one case per process, so that callgrind counts one drain.
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    if let Some(bad) = args.iter().find(|arg| !arg.contains('=')) {
        panic!("arguments are key=value (impl, order, fut, limit, n), not {bad:?}");
    }
    let imp = match setting(&args, "impl", "tasklane").as_str() {
        "tasklane" => Impl::Tasklane,
        "tasklane_shared" => Impl::TasklaneShared,
        "tasklane_timeout" => Impl::TasklaneTimeout,
        "futures_buffered" => Impl::FuturesBuffered,
        "futures_util" => Impl::FuturesUtil,
        other => panic!(
            "impl is tasklane, tasklane_shared, tasklane_timeout, futures_buffered or futures_util, not {other:?}"
        ),
    };
    let ordered = match setting(&args, "order", "unordered").as_str() {
        "unordered" => false,
        "ordered" => true,
        other => panic!("order is unordered or ordered, not {other:?}"),
    };
    let fut = setting(&args, "fut", "ready");
    let limit = setting(&args, "limit", "16");
    let n = setting(&args, "n", "100000");
    let case = Case {
        imp,
        ordered,
        limit: limit.parse().expect("limit is a number"),
        n: n.parse().expect("n is a number"),
    };
    assert!(case.limit > 0, "limit is at least 1");

    // `block_on`'s thread-local state is made on its first use: make it here, before the count.
    block_on(async {});
    let (count, sum) = match fut.as_str() {
        "ready" => run(case, |x| async move { x }),
        "yield" => run(case, |x| async move {
            yield_now().await;
            x
        }),
        other => panic!("fut is ready or yield, not {other:?}"),
    };
    assert_eq!(count, case.n, "one output per item");
    assert_eq!(
        sum,
        case.n * case.n.saturating_sub(1) / 2,
        "every output once"
    );
    println!(
        "impl={imp:?} order={} fut={fut} limit={} n={}: {count} items, sum {sum}",
        if ordered { "ordered" } else { "unordered" },
        case.limit,
        case.n,
    );
}
