//! "Per item in steady state: no heap allocation" (API.md section 8), as a test.
//!
//! A counting `#[global_allocator]` counts the allocations made on the current thread while
//! counting is switched on there (so the test harness's other threads cannot pollute a count).
//! Driving 110_000 items through a lane must allocate no more than driving 10_000 with the same
//! limit: the fixed costs (slots, queues) are the same for both, so any allocation per item shows up
//! as a difference of about 100_000. A control run shows that the counter sees the per-item
//! allocations of futures-util's `buffer_unordered`, so the test cannot pass vacuously.
//! Anchor: futures-buffered `tests/alloc.rs`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{Either, FutureExt};
use futures::stream::{self, Stream, StreamExt};
use futures_test::stream::{InterleavePending, StreamTestExt};
use tasklane::prelude::*;
use tasklane::time::ManualClock;
use tasklane::Lane;

// ---------------------------------------------------------------------------------------------
// The counting allocator
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// Whether allocations on this thread are being counted.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Allocations counted on this thread.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Wraps `System`, counting `alloc`, `alloc_zeroed` and `realloc` calls on threads that opted in.
struct Counting;

impl Counting {
    fn note(&self) {
        // `try_with`: the thread-locals may be gone while a thread shuts down. Both are `const`
        // initialized `Cell`s without destructors, so touching them never allocates.
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting only
// touches thread-local `Cell`s and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` on this thread and returns the allocations it made here, and its result.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            COUNTING.with(|c| c.set(false));
        }
    }
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    let off = Off; // switches counting off even if `f` panics
    let result = f();
    drop(off);
    (ALLOCATIONS.with(Cell::get) - before, result)
}

// ---------------------------------------------------------------------------------------------
// Driving a stream
// ---------------------------------------------------------------------------------------------

/// Polls `stream` to the end with a no-op waker, re-polling at once on `Pending` (every future here
/// is ready or wakes itself). Returns (outputs, sum of outputs) without storing them.
fn drain<S: Stream<Item = u64> + Unpin>(mut stream: S) -> (u64, u64) {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut count, mut sum) = (0, 0);
    loop {
        match stream.poll_next_unpin(&mut cx) {
            Poll::Ready(Some(x)) => {
                count += 1;
                sum += x;
            }
            Poll::Ready(None) => return (count, sum),
            Poll::Pending => {}
        }
    }
}

/// A future that returns `Pending` once (after waking itself), then its value.
struct YieldOnce {
    value: u64,
    yielded: bool,
}

fn yield_once(value: u64) -> YieldOnce {
    YieldOnce {
        value,
        yielded: false,
    }
}

impl Future for YieldOnce {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if self.yielded {
            return Poll::Ready(self.value);
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[derive(Debug, Clone, Copy)]
enum Work {
    /// `async move { x }`: ready at the first poll.
    Ready,
    /// Pending once (waking itself), then ready.
    YieldOnce,
}

#[derive(Debug, Clone, Copy)]
enum Terminal {
    MapAsync,
    Run,
}

/// The shape of the input stream.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// Always ready: every freed slot is refilled at once.
    Ready,
    /// `Pending` (waking itself) before every item: freed slots wait on the free list.
    PendingBetween,
}

type Numbers = Either<stream::Iter<Range<u64>>, InterleavePending<stream::Iter<Range<u64>>>>;

fn numbers(n: u64, input: Input) -> Numbers {
    match input {
        Input::Ready => Either::Left(stream::iter(0..n)),
        Input::PendingBetween => Either::Right(stream::iter(0..n).interleave_pending()),
    }
}

fn maybe_ordered<St>(lane: Lane<St>, ordered: bool) -> Lane<St> {
    if ordered {
        lane.ordered()
    } else {
        lane
    }
}

/// One lane configuration.
#[derive(Debug, Clone, Copy)]
struct Case {
    limit: usize,
    ordered: bool,
    work: Work,
    terminal: Terminal,
    input: Input,
}

/// Drives `n` items through a lane and returns the allocations that took, the lane's construction
/// and drop included. Checks that every item came out.
fn lane_allocations(n: u64, case: Case) -> usize {
    let Case {
        limit,
        ordered,
        work,
        terminal,
        input,
    } = case;
    let (allocations, (count, sum)) = count_allocations(|| {
        let source = numbers(n, input);
        match (work, terminal) {
            (Work::Ready, Terminal::MapAsync) => {
                drain(maybe_ordered(source.lane(limit), ordered).map_async(|x| async move { x }))
            }
            (Work::YieldOnce, Terminal::MapAsync) => {
                drain(maybe_ordered(source.lane(limit), ordered).map_async(yield_once))
            }
            (Work::Ready, Terminal::Run) => {
                drain(maybe_ordered(source.map(|x| async move { x }).lane(limit), ordered).run())
            }
            (Work::YieldOnce, Terminal::Run) => {
                drain(maybe_ordered(source.map(yield_once).lane(limit), ordered).run())
            }
        }
    });
    assert_eq!(count, n, "{case:?}: outputs");
    assert_eq!(sum, n * (n - 1) / 2, "{case:?}: sum of outputs");
    allocations
}

const SMALL: u64 = 10_000;
const LARGE: u64 = 110_000;

fn limits() -> &'static [usize] {
    &[1, 16, 256, 4096]
}

/// `allocs(110_000) <= allocs(10_000)`, exactly, for every limit, both terminals and both inputs.
fn assert_no_allocation_per_item(ordered: bool, work: Work) {
    for &limit in limits() {
        for terminal in [Terminal::MapAsync, Terminal::Run] {
            for input in [Input::Ready, Input::PendingBetween] {
                let case = Case {
                    limit,
                    ordered,
                    work,
                    terminal,
                    input,
                };
                let small = lane_allocations(SMALL, case);
                let large = lane_allocations(LARGE, case);
                assert!(
                    large <= small,
                    "{case:?}: {large} allocations for {LARGE} items but {small} for {SMALL}: \
                     the lane allocates per item"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn the_counter_counts_this_threads_allocations() {
    let (n, boxed) = count_allocations(|| Box::new(7u64));
    assert_eq!(n, 1);
    drop(boxed);
    let (n, v) = count_allocations(|| {
        let mut v = Vec::with_capacity(1);
        v.extend(0..100u64); // one allocation, then reallocations
        v
    });
    assert!(n >= 2, "{n}");
    drop(v);
    let (n, ()) = count_allocations(|| {});
    assert_eq!(n, 0);
}

/// Control: futures-util's `buffer_unordered` and `buffered` allocate per item (one task node per
/// future in `FuturesUnordered`), and the counter sees it. Without this the lane tests could pass
/// with a counter that counts nothing.
#[test]
#[cfg_attr(miri, ignore = "drives 240_000 items")]
fn control_futures_util_allocates_per_item_and_the_counter_sees_it() {
    let buffer_unordered = |n: u64| {
        let (allocations, (count, _)) = count_allocations(|| {
            drain(
                stream::iter(0..n)
                    .map(|x| async move { x })
                    .buffer_unordered(16),
            )
        });
        assert_eq!(count, n);
        allocations
    };
    let buffered = |n: u64| {
        let (allocations, (count, _)) =
            count_allocations(|| drain(stream::iter(0..n).map(|x| async move { x }).buffered(16)));
        assert_eq!(count, n);
        allocations
    };
    for (name, allocations) in [
        (
            "buffer_unordered",
            &buffer_unordered as &dyn Fn(u64) -> usize,
        ),
        ("buffered", &buffered),
    ] {
        let (small, large) = (allocations(SMALL), allocations(LARGE));
        assert!(
            large >= small + (LARGE - SMALL) as usize,
            "{name}: {large} allocations for {LARGE} items, {small} for {SMALL}: the counter \
             should see at least one allocation per item"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore = "drives 2 million items")]
fn ready_futures_unordered_allocate_nothing_per_item() {
    assert_no_allocation_per_item(false, Work::Ready);
}

#[test]
#[cfg_attr(miri, ignore = "drives 2 million items")]
fn ready_futures_ordered_allocate_nothing_per_item() {
    assert_no_allocation_per_item(true, Work::Ready);
}

#[test]
#[cfg_attr(miri, ignore = "drives 2 million items")]
fn yield_once_futures_unordered_allocate_nothing_per_item() {
    assert_no_allocation_per_item(false, Work::YieldOnce);
}

#[test]
#[cfg_attr(miri, ignore = "drives 2 million items")]
fn yield_once_futures_ordered_allocate_nothing_per_item() {
    assert_no_allocation_per_item(true, Work::YieldOnce);
}

/// The fixed cost is small and does not grow with the item count: a lane of limit 16 allocates a
/// handful of times in all (its shared state, one chunk of slots with their wakers, its queues).
#[test]
#[cfg_attr(miri, ignore = "drives 110_000 items")]
fn a_lane_allocates_only_a_fixed_handful() {
    for ordered in [false, true] {
        let case = Case {
            limit: 16,
            ordered,
            work: Work::YieldOnce,
            terminal: Terminal::MapAsync,
            input: Input::Ready,
        };
        let n = lane_allocations(LARGE, case);
        // 1 shared state + 16 slot wakers + 1 chunk + chunk list + free list + queue (with growth).
        assert!(
            n <= 64,
            "ordered: {ordered}: {n} allocations for a lane of limit 16"
        );
    }
}

/// `lane(usize::MAX)` allocates nothing up front: building the lane and its output stream, and
/// dropping them unpolled, costs what it costs with `lane(1)`, whatever the limit.
#[test]
fn an_unbounded_lane_allocates_nothing_up_front() {
    let unpolled = |limit: usize| {
        count_allocations(|| {
            let out = (0..10u64).lane(limit).map_async(yield_once);
            drop(out);
            let out = (0..10u64).map(yield_once).lane(limit).ordered().run();
            drop(out);
        })
        .0
    };
    let one = unpolled(1);
    assert!(
        one <= 4,
        "{one} allocations for two unpolled lanes of limit 1"
    );
    for limit in [1 << 20, usize::MAX] {
        assert_eq!(unpolled(limit), one, "limit {limit}");
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts and retries
// ---------------------------------------------------------------------------------------------

/// Like [`drain`] for lanes whose items are `Result`s, moving a manual clock by `step` whenever the
/// lane is pending with nothing ready (so back-offs end without real sleeping).
fn drain_results<S, E>(mut stream: S, clock: Option<(&ManualClock, Duration)>) -> (u64, u64)
where
    S: Stream<Item = Result<u64, tasklane::Error<E>>> + Unpin,
{
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut count, mut sum) = (0, 0);
    loop {
        match stream.poll_next_unpin(&mut cx) {
            Poll::Ready(Some(Ok(x))) => {
                count += 1;
                sum += x;
            }
            Poll::Ready(Some(Err(e))) => panic!("an item failed after {} attempts", e.attempts()),
            Poll::Ready(None) => return (count, sum),
            Poll::Pending => {
                if let Some((clock, step)) = clock {
                    clock.advance(step);
                }
            }
        }
    }
}

/// A `.timeout(60 s)` that never fires costs no allocation per item (its attempts finish long
/// before it), ready and yield-once futures, both orders, on the real timer.
#[test]
#[cfg_attr(miri, ignore)]
fn a_timeout_that_never_fires_allocates_nothing_per_item() {
    let timeout = Duration::from_secs(60);
    for &limit in limits() {
        for ordered in [false, true] {
            for work in [Work::Ready, Work::YieldOnce] {
                let run = |n: u64| {
                    let (allocations, (count, sum)) = count_allocations(|| {
                        let lane = maybe_ordered(stream::iter(0..n).lane(limit), ordered);
                        let lane = lane.timeout::<()>(timeout);
                        match work {
                            Work::Ready => {
                                drain_results(lane.map_async(|x| async move { Ok(x) }), None)
                            }
                            Work::YieldOnce => drain_results(
                                lane.map_async(|x| async move { Ok(yield_once(x).await) }),
                                None,
                            ),
                        }
                    });
                    assert_eq!((count, sum), (n, n * (n - 1) / 2));
                    allocations
                };
                let (small, large) = (run(SMALL), run(LARGE));
                assert!(
                    large <= small,
                    "limit {limit}, ordered {ordered}, {work:?}: {large} allocations for {LARGE} \
                     items with a timeout but {small} for {SMALL}"
                );
            }
        }
    }
}

/// Retries that succeed on the second attempt, after a real back-off through the lane's timer (on
/// the manual clock), cost no allocation per item: the item waits in its slot and in the lane's
/// back-off heap, which stops growing at `limit` entries.
/// The attempt maker of the retry tests: item `x` fails unless `failed[x]` is set, and sets it.
fn fails_once(
    failed: &[Cell<bool>],
) -> impl FnMut(u64) -> std::future::Ready<Result<u64, ()>> + '_ {
    move |x| {
        let second = failed[x as usize].replace(true);
        std::future::ready(if second { Ok(x) } else { Err(()) })
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn retries_that_succeed_on_the_second_attempt_allocate_nothing_per_item() {
    // One flag per item, made before counting: "has this item failed once already?"
    let failed: Vec<Cell<bool>> = (0..LARGE).map(|_| Cell::new(false)).collect();
    for &limit in limits() {
        for ordered in [false, true] {
            for backoff in [Duration::ZERO, Duration::from_millis(1)] {
                let run = |n: u64| {
                    failed.iter().for_each(|f| f.set(false));
                    let clock = ManualClock::new();
                    let (allocations, (count, sum)) = count_allocations(|| {
                        let lane = maybe_ordered(stream::iter(0..n).lane(limit), ordered)
                            .with_clock(&clock)
                            .retry(3)
                            .backoff(tasklane::Backoff::constant(backoff));
                        let stream = lane.map_async(fails_once(&failed));
                        drain_results(stream, Some((&clock, backoff)))
                    });
                    assert_eq!((count, sum), (n, n * (n - 1) / 2));
                    assert!(
                        failed[..n as usize].iter().all(Cell::get),
                        "every item failed once"
                    );
                    allocations
                };
                let (small, large) = (run(SMALL), run(LARGE));
                assert!(
                    large <= small,
                    "limit {limit}, ordered {ordered}, back-off {backoff:?}: {large} allocations \
                     for {LARGE} retried items but {small} for {SMALL}"
                );
            }
        }
    }
}

/// Polls `fut` to completion with a no-op waker (every future here is ready or wakes itself).
fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// `gather`, `try_gather` and `first_ok` allocate nothing per future: their output `Vec` grows by
/// doubling as futures are pulled (never from the input's `size_hint`, which a lazy or endless input
/// may overstate: issue "No lost wake-up, no corrupted lane"), and the rest is the lane's fixed
/// handful. From `SMALL` to `LARGE` futures that is at most 4 more reallocations (2^4 > 11).
#[test]
#[cfg_attr(miri, ignore = "drives 240_000 futures per limit")]
fn gather_and_its_relatives_allocate_nothing_per_future() {
    for &limit in limits() {
        let gather = |n: u64| {
            let (allocations, out) =
                count_allocations(|| block_on(tasklane::gather((0..n).map(yield_once), limit)));
            assert_eq!(out.len() as u64, n);
            allocations
        };
        let try_gather = |n: u64| {
            let (allocations, out) = count_allocations(|| {
                let futs = (0..n).map(|x| async move { Ok::<u64, ()>(yield_once(x).await) });
                block_on(tasklane::try_gather(futs, limit))
            });
            assert_eq!(out.map(|v| v.len() as u64), Ok(n));
            allocations
        };
        let first_ok = |n: u64| {
            let (allocations, out) = count_allocations(|| {
                let futs = (0..n).map(|x| async move { Err::<(), u64>(yield_once(x).await) });
                block_on(tasklane::first_ok(futs, limit))
            });
            assert_eq!(out.map_err(|e| e.len() as u64), Err(n));
            allocations
        };
        for (name, allocations) in [
            ("gather", &gather as &dyn Fn(u64) -> usize),
            ("try_gather", &try_gather),
        ] {
            let (small, large) = (allocations(SMALL), allocations(LARGE));
            assert!(
                large <= small + 4,
                "{name}, limit {limit}: {large} allocations for {LARGE} futures, {small} for {SMALL}"
            );
        }
        // first_ok keeps every error: its `Vec` of errors grows by doubling, nothing else.
        let (small, large) = (first_ok(SMALL), first_ok(LARGE));
        assert!(
            large <= small + 8,
            "first_ok, limit {limit}: {large} allocations for {LARGE} futures, {small} for {SMALL}"
        );
    }
}

/// A pool job costs two allocations (the boxed job and the state its handle shares with it), and
/// nothing else per job.
#[test]
#[cfg_attr(miri, ignore = "runs 30_000 jobs")]
fn a_pool_job_costs_two_allocations() {
    let run = |n: u64| {
        let (allocations, sum) = count_allocations(|| {
            let (pool, driver) = tasklane::pool::TaskPool::new(64);
            let mut handles = Vec::with_capacity(n as usize);
            handles.extend((0..n).map(|i| pool.submit(yield_once(i))));
            drop(pool);
            block_on(driver);
            handles
                .into_iter()
                .map(|h| block_on(h).unwrap())
                .sum::<u64>()
        });
        assert_eq!(sum, n * (n - 1) / 2);
        allocations
    };
    let (small, large) = (run(10_000), run(20_000));
    let per_job = (large - small) as f64 / 10_000.0;
    assert!(
        (2.0..2.01).contains(&per_job),
        "{per_job} allocations per job ({large} for 20,000 jobs, {small} for 10,000)"
    );
}

// ---------------------------------------------------------------------------------------------
// Rate limiting and progress
// ---------------------------------------------------------------------------------------------

/// A rate limit that makes every start wait for the lane's timer (on the manual clock, one period
/// per step), retries that pass the limiter again, and a progress callback: still no allocation per
/// item, both orders.
#[test]
#[cfg_attr(miri, ignore)]
fn rate_limiting_and_progress_allocate_nothing_per_item() {
    let failed: Vec<Cell<bool>> = (0..LARGE).map(|_| Cell::new(false)).collect();
    let period = Duration::from_millis(1);
    for &limit in limits() {
        for ordered in [false, true] {
            for retried in [false, true] {
                let run = |n: u64| {
                    failed.iter().for_each(|f| f.set(!retried));
                    let clock = ManualClock::new();
                    let snapshots = Cell::new(0u64);
                    let (allocations, (count, sum)) = count_allocations(|| {
                        let lane = maybe_ordered(stream::iter(0..n).lane(limit), ordered)
                            .with_clock(&clock)
                            .rate(1_000.0)
                            .burst(4)
                            .retry(1)
                            .backoff(tasklane::Backoff::constant(Duration::ZERO))
                            .on_progress(|p| snapshots.set(p.completed));
                        let stream = lane.map_async(fails_once(&failed));
                        drain_results(stream, Some((&clock, period)))
                    });
                    assert_eq!((count, sum), (n, n * (n - 1) / 2));
                    assert_eq!(snapshots.get(), n, "one snapshot per item");
                    allocations
                };
                let (small, large) = (run(SMALL), run(LARGE));
                assert!(
                    large <= small,
                    "limit {limit}, ordered {ordered}, retried {retried}: {large} allocations for \
                     {LARGE} rate-limited items but {small} for {SMALL}"
                );
            }
        }
    }
}

/// The strict schedule keeps the times of the last `burst` starts in a log allocated once per run:
/// with starts that wait for the window on the manual clock (one period per step), retries that pass
/// it again and a progress callback, still no allocation per item, both orders.
#[test]
#[cfg_attr(miri, ignore)]
fn the_strict_rate_allocates_nothing_per_item() {
    let failed: Vec<Cell<bool>> = (0..LARGE).map(|_| Cell::new(false)).collect();
    let period = Duration::from_millis(1);
    for &limit in limits() {
        for ordered in [false, true] {
            let run = |n: u64| {
                failed.iter().for_each(|f| f.set(false));
                let clock = ManualClock::new();
                let snapshots = Cell::new(0u64);
                let (allocations, (count, sum)) = count_allocations(|| {
                    let lane = maybe_ordered(stream::iter(0..n).lane(limit), ordered)
                        .with_clock(&clock)
                        .rate(1_000.0)
                        .burst(4)
                        .strict_rate()
                        .retry(1)
                        .backoff(tasklane::Backoff::constant(Duration::ZERO))
                        .on_progress(|p| snapshots.set(p.completed));
                    let stream = lane.map_async(fails_once(&failed));
                    drain_results(stream, Some((&clock, period)))
                });
                assert_eq!((count, sum), (n, n * (n - 1) / 2));
                assert_eq!(snapshots.get(), n, "one snapshot per item");
                allocations
            };
            let (small, large) = (run(SMALL), run(LARGE));
            assert!(
                large <= small,
                "limit {limit}, ordered {ordered}: {large} allocations for {LARGE} items under \
                 the strict rate but {small} for {SMALL}"
            );
        }
    }
}

/// On the system clock, a rate that never makes a start wait costs no allocation per item either.
#[test]
#[cfg_attr(miri, ignore)]
fn a_rate_that_never_waits_allocates_nothing_per_item() {
    for &limit in limits() {
        let run = |n: u64| {
            let (allocations, (count, sum)) = count_allocations(|| {
                drain(
                    stream::iter(0..n)
                        .lane(limit)
                        .rate(1e9)
                        .burst(1_000_000)
                        .map_async(|x| async move { x }),
                )
            });
            assert_eq!((count, sum), (n, n * (n - 1) / 2));
            allocations
        };
        let (small, large) = (run(SMALL), run(LARGE));
        assert!(large <= small, "limit {limit}: {large} vs {small}");
    }
}

// ---------------------------------------------------------------------------------------------
// Shared limiters
// ---------------------------------------------------------------------------------------------

/// A shared `Limiter` costs no allocation per item: with a concurrency below the lane's limit (so
/// the lane waits in its line and is woken by releases), with a shared rate on the manual clock (so
/// it waits for the schedule too), and with two lanes taking turns on one limiter; ready and
/// yield-once futures, both orders.
#[test]
#[cfg_attr(miri, ignore = "drives 240,000 items per case")]
fn a_shared_limiter_allocates_nothing_per_item() {
    for ordered in [false, true] {
        for work in [Work::Ready, Work::YieldOnce] {
            for limit in [1usize, 16, 256] {
                let run = |n: u64| {
                    let limiter = tasklane::Limiter::new().concurrency(limit.div_ceil(2));
                    let (allocations, (count, sum)) = count_allocations(|| {
                        let lane = maybe_ordered(numbers(n, Input::Ready).lane(limit), ordered)
                            .limiter(&limiter);
                        match work {
                            Work::Ready => drain(lane.map_async(|x| async move { x })),
                            Work::YieldOnce => drain(lane.map_async(yield_once)),
                        }
                    });
                    assert_eq!((count, sum), (n, n * (n - 1) / 2));
                    assert_eq!(limiter.in_flight(), 0);
                    allocations
                };
                let (small, large) = (run(SMALL), run(LARGE));
                assert!(
                    large <= small,
                    "concurrency, limit {limit}, ordered {ordered}, {work:?}: {large} allocations \
                     for {LARGE} items but {small} for {SMALL}"
                );

                let run = |n: u64| {
                    let clock = ManualClock::new();
                    let limiter = tasklane::Limiter::new()
                        .rate(1000.0)
                        .burst(8)
                        .with_clock(&clock);
                    let (allocations, (count, sum)) = count_allocations(|| {
                        let lane = maybe_ordered(numbers(n, Input::Ready).lane(limit), ordered)
                            .with_clock(&clock)
                            .limiter(&limiter)
                            .timeout(Duration::from_secs(3600));
                        let stream = match work {
                            Work::Ready => {
                                Either::Left(lane.map_async(|x| async move { Ok::<_, ()>(x) }))
                            }
                            Work::YieldOnce => {
                                Either::Right(lane.map_async(|x| yield_once(x).map(Ok::<_, ()>)))
                            }
                        };
                        drain_results(stream, Some((&clock, Duration::from_micros(500))))
                    });
                    assert_eq!((count, sum), (n, n * (n - 1) / 2));
                    allocations
                };
                let (small, large) = (run(SMALL), run(LARGE));
                assert!(
                    large <= small,
                    "rate, limit {limit}, ordered {ordered}, {work:?}: {large} allocations for \
                     {LARGE} items but {small} for {SMALL}"
                );
            }
        }
    }
}

/// Two lanes taking turns on one shared limiter, polled in alternation: no allocation per item.
#[test]
#[cfg_attr(miri, ignore = "drives 240,000 items")]
fn two_lanes_taking_turns_on_one_limiter_allocate_nothing_per_item() {
    let run = |n: u64| {
        let limiter = tasklane::Limiter::new().concurrency(4);
        let (allocations, (count, sum)) = count_allocations(|| {
            let a = numbers(n, Input::Ready)
                .lane(4)
                .limiter(&limiter)
                .map_async(yield_once);
            let b = numbers(n, Input::Ready)
                .lane(4)
                .limiter(&limiter)
                .map_async(yield_once);
            drain(stream::select(a, b))
        });
        assert_eq!((count, sum), (2 * n, n * (n - 1)));
        allocations
    };
    let (small, large) = (run(SMALL), run(LARGE));
    assert!(
        large <= small,
        "{large} allocations for {LARGE} items but {small} for {SMALL}"
    );
}

/// A keyed limiter costs no allocation per item once every key has been seen once: 64 keys
/// cycled, `concurrency(1)` each (so items wait for their key and the lane reads ahead past
/// them), ready and yield-once futures, both orders.
#[test]
#[cfg_attr(miri, ignore = "drives 240,000 items per case")]
fn a_keyed_limiter_allocates_nothing_per_item_once_its_keys_are_known() {
    for ordered in [false, true] {
        for work in [Work::Ready, Work::YieldOnce] {
            let run = |n: u64| {
                let per_key = tasklane::Limiter::keyed::<u64>()
                    .concurrency(1)
                    .idle(Duration::from_secs(3600));
                // Every key once, before counting: the table's entries are the fixed cost.
                let warm = maybe_ordered(numbers(64, Input::Ready).lane(16), ordered)
                    .limiter_by(&per_key, |&x| x % 64)
                    .map_async(|x| async move { x });
                assert_eq!(drain(warm).0, 64);
                let (allocations, (count, sum)) = count_allocations(|| {
                    let lane = maybe_ordered(numbers(n, Input::Ready).lane(16), ordered)
                        .limiter_by(&per_key, |&x| x % 64);
                    match work {
                        Work::Ready => drain(lane.map_async(|x| async move { x })),
                        Work::YieldOnce => drain(lane.map_async(yield_once)),
                    }
                });
                assert_eq!((count, sum), (n, n * (n - 1) / 2));
                assert_eq!(per_key.len(), 64);
                allocations
            };
            let (small, large) = (run(SMALL), run(LARGE));
            assert!(
                large <= small,
                "keyed, ordered {ordered}, {work:?}: {large} allocations for {LARGE} items but \
                 {small} for {SMALL}"
            );
        }
    }
}
