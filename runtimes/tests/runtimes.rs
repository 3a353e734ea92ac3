//! The same scenarios on every runtime tasklane promises to work on (API.md section 8).
//!
//! Each scenario is a runtime-agnostic `async fn`: it sleeps with `futures_timer::Delay` and
//! coordinates with `futures::channel`, never with a runtime's own API. `runtime_matrix!` runs every
//! scenario on tokio (current-thread, and multi-thread with the scenario `tokio::spawn`ed, which
//! needs every scenario future, lane included, to be `Send`), async-std, smol and
//! `futures::executor`, one `#[test]` per pair: `tokio_multi_thread::ordered_output_...`.
//!
//! Also here: the auto traits of every public type, and wake-ups that come from other OS threads
//! while the lane is driven by an executor that polls only when woken.

#[macro_use]
mod matrix;

use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::future::{self, Either};
use futures::stream::{self, Stream, StreamExt};
use futures::task::AtomicWaker;
use futures::FutureExt;
use futures_test::stream::StreamTestExt;
use futures_timer::Delay;
use tasklane::prelude::*;
use tasklane::{Iter, Lane, MapAsync, Run};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Futures alive right now, and the most alive at once.
#[derive(Debug, Default)]
struct Gauge {
    active: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    /// Counts one more future alive until the guard drops (so a cancelled future counts out too).
    fn enter(self: &Arc<Self>) -> GaugeGuard {
        let now = self.active.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        GaugeGuard(Arc::clone(self))
    }

    fn active(&self) -> usize {
        self.active.load(SeqCst)
    }

    fn peak(&self) -> usize {
        self.peak.load(SeqCst)
    }
}

#[derive(Debug)]
struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, SeqCst);
    }
}

/// Increments a counter when dropped.
#[derive(Debug)]
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A future that returns `Pending` once (after waking itself), then its value.
#[derive(Debug)]
struct YieldOnce<T> {
    value: Option<T>,
    yielded: bool,
}

fn yield_once<T>(value: T) -> YieldOnce<T> {
    YieldOnce {
        value: Some(value),
        yielded: false,
    }
}

impl<T: Unpin> Future for YieldOnce<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(
            self.value
                .take()
                .expect("YieldOnce polled after completion"),
        )
    }
}

/// Records each index once; panics on a duplicate or an index out of range.
#[derive(Debug)]
struct ExactlyOnce {
    seen: Vec<bool>,
    count: usize,
}

impl ExactlyOnce {
    fn new(n: usize) -> Self {
        ExactlyOnce {
            seen: vec![false; n],
            count: 0,
        }
    }

    fn record(&mut self, i: usize) {
        assert!(i < self.seen.len(), "output {i} was never an input");
        assert!(!self.seen[i], "output {i} yielded twice");
        self.seen[i] = true;
        self.count += 1;
    }

    fn assert_complete(&self) {
        let missing: Vec<usize> = (0..self.seen.len()).filter(|&i| !self.seen[i]).collect();
        assert!(
            missing.is_empty(),
            "{} of {} items never yielded an output, the first: {:?}",
            missing.len(),
            self.seen.len(),
            &missing[..missing.len().min(10)]
        );
    }
}

/// Asserts that `out` holds every item of `0..n` exactly once, and in input order when `ordered`.
#[track_caller]
fn assert_each_once(out: &[usize], n: usize, ordered: bool, what: &str) {
    let mut once = ExactlyOnce::new(n);
    out.iter().for_each(|&i| once.record(i));
    once.assert_complete();
    if ordered {
        assert!(out.iter().copied().eq(0..n), "{what}: not in input order");
    }
}

fn lane_in<St>(lane: Lane<St>, ordered: bool) -> Lane<St> {
    if ordered {
        lane.ordered()
    } else {
        lane
    }
}

fn order_name(ordered: bool) -> &'static str {
    if ordered {
        "ordered"
    } else {
        "unordered"
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios: plain `async fn`s, no runtime API inside.
// ---------------------------------------------------------------------------------------------

/// 50 items of ~5 ms each, limit 5: never more than 5 in flight, and the 5 slots stay full (every
/// output is handed over with its slot already refilled) until the input runs out.
async fn limit_is_respected_and_filled() {
    const ITEMS: usize = 50;
    const LIMIT: usize = 5;
    for ordered in [false, true] {
        let gauge = Arc::new(Gauge::default());
        let pulled = Arc::new(AtomicUsize::new(0));
        let input = stream::iter(0..ITEMS).inspect({
            let pulled = Arc::clone(&pulled);
            move |_| {
                pulled.fetch_add(1, SeqCst);
            }
        });
        let started = Instant::now();
        let mut out = lane_in(input.lane(LIMIT), ordered).map_async(|i| {
            let gauge = Arc::clone(&gauge);
            async move {
                let _alive = gauge.enter();
                Delay::new(ms(5)).await;
                i
            }
        });
        let mut once = ExactlyOnce::new(ITEMS);
        while let Some(i) = out.next().await {
            once.record(i);
            if ordered {
                assert_eq!(i, once.count - 1, "ordered output out of order");
            }
            let pulled = pulled.load(SeqCst);
            let outstanding = pulled - once.count;
            assert!(
                outstanding <= LIMIT,
                "{}: {outstanding} items pulled and not yet yielded, limit {LIMIT}",
                order_name(ordered)
            );
            assert!(gauge.active() <= LIMIT);
            if pulled < ITEMS {
                // Eager refill: the slot this output freed was refilled before it was handed over.
                assert_eq!(
                    outstanding,
                    LIMIT,
                    "{}: a slot was left empty while input remained (after output #{})",
                    order_name(ordered),
                    once.count
                );
                assert_eq!(out.in_progress(), LIMIT);
            }
        }
        once.assert_complete();
        assert_eq!(
            gauge.peak(),
            LIMIT,
            "{}: peak in flight",
            order_name(ordered)
        );
        assert_eq!(gauge.active(), 0);
        // Each item takes at least 5 ms and at most 5 run at once: at least 50 ms in all. (A lower
        // bound only: it cannot fail on a slow machine.)
        let elapsed = started.elapsed();
        assert!(
            elapsed >= ms(5 * (ITEMS / LIMIT) as u64),
            "{}: 50 items of 5 ms at 5 at once took only {elapsed:?}",
            order_name(ordered)
        );
    }
}

/// Items finish in reverse input order (item `i` sleeps `(N - i) * 2` ms); `.ordered()` still yields
/// them in input order, with the whole window in flight and with a window smaller than the input.
async fn ordered_output_despite_reversed_completion() {
    const N: usize = 16;
    for (limit, use_run) in [(N, false), (4, true), (N, true), (4, false)] {
        let finished = Arc::new(Mutex::new(Vec::new()));
        let work = |i: usize| {
            let finished = Arc::clone(&finished);
            async move {
                Delay::new(ms(2 * (N - i) as u64)).await;
                finished.lock().unwrap().push(i);
                i
            }
        };
        let out: Vec<usize> = if use_run {
            (0..N).map(work).lane(limit).ordered().run().collect().await
        } else {
            (0..N).lane(limit).ordered().map_async(work).collect().await
        };
        assert_eq!(
            out,
            (0..N).collect::<Vec<_>>(),
            "limit {limit}, run: {use_run}"
        );
        // Sanity: the completions really were out of order, or this scenario would prove nothing.
        let finished = finished.lock().unwrap();
        assert_eq!(finished.len(), N);
        assert_ne!(
            finished.first(),
            Some(&0),
            "item 0 (the slowest) finished first"
        );
    }
}

/// Unordered output is completion order. Deterministic part: items gated by oneshots are released
/// one at a time in a shuffled order, and each release must produce exactly that item next. Timed
/// part: with staggered delays, the output order is exactly the order in which the futures
/// themselves observed their completion.
async fn unordered_output_in_completion_order() {
    const N: usize = 12;
    // Lockstep with oneshots.
    let mut rng = fastrand::Rng::with_seed(0x1a2e);
    let mut order: Vec<usize> = (0..N).collect();
    rng.shuffle(&mut order);
    let (mut senders, receivers): (Vec<_>, Vec<_>) = (0..N)
        .map(|_| {
            let (tx, rx) = oneshot::channel::<()>();
            (Some(tx), rx)
        })
        .unzip();
    let mut out = receivers
        .into_iter()
        .enumerate()
        .lane(N)
        .map_async(|(i, rx)| async move {
            rx.await.expect("sender kept alive");
            i
        });
    assert_eq!(
        out.next().now_or_never(),
        None,
        "an output before any release"
    );
    for &i in &order {
        senders[i].take().unwrap().send(()).unwrap();
        assert_eq!(out.next().await, Some(i), "release order {order:?}");
    }
    assert_eq!(out.next().await, None);

    // Staggered delays; the log is written inside each future just before it returns `Ready`.
    for use_run in [false, true] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let work = |i: usize| {
            let log = Arc::clone(&log);
            async move {
                Delay::new(ms(((i * 7) % N) as u64 * 3)).await;
                log.lock().unwrap().push(i);
                i
            }
        };
        let out: Vec<usize> = if use_run {
            (0..N).map(work).lane(N).run().collect().await
        } else {
            (0..N).lane(N).map_async(work).collect().await
        };
        assert_eq!(
            out,
            *log.lock().unwrap(),
            "run: {use_run}: output order is not completion order"
        );
        assert_ne!(
            out,
            (0..N).collect::<Vec<_>>(),
            "completions happened in input order: nothing was tested"
        );
    }
}

/// Dropping the output stream mid-flight drops every in-flight future, every finished output that
/// waits its turn and the input, at once; afterwards nothing keeps running.
async fn dropping_the_stream_cancels_in_flight_work() {
    const LIMIT: usize = 8;
    for ordered in [false, true] {
        let started = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let ticks = Arc::new(AtomicUsize::new(0));
        let input_dropped = Arc::new(AtomicUsize::new(0));
        let input_guard = DropCount(Arc::clone(&input_dropped));
        let input = stream::iter(0..100usize).map(move |i| {
            let _keep = &input_guard;
            i
        });
        let mut out = lane_in(input.lane(LIMIT), ordered).map_async(|i| {
            started.fetch_add(1, SeqCst);
            let guard = DropCount(Arc::clone(&dropped));
            let ticks = Arc::clone(&ticks);
            async move {
                // Every fourth item finishes at once (its guard rides along with the output); the
                // others tick forever.
                if i % 4 == 0 {
                    return (i, guard);
                }
                let _guard = guard;
                loop {
                    Delay::new(ms(1)).await;
                    ticks.fetch_add(1, SeqCst);
                }
            }
        });
        // Unordered: 0, 4 and 8 finish; 8 long-running items then fill the slots. Ordered: only 0 may
        // be yielded; 4 and 8 finish and wait behind 1.
        let expect_outputs = if ordered { 1 } else { 3 };
        for _ in 0..expect_outputs {
            let (i, guard) = out.next().await.expect("an output");
            assert_eq!(i % 4, 0);
            drop(guard);
        }
        // Keep polling a while: the long-running items tick, nothing more comes out.
        match future::select(out.next(), Delay::new(ms(30))).await {
            Either::Left((item, _)) => panic!(
                "{}: unexpected output {:?}",
                order_name(ordered),
                item.map(|(i, _)| i)
            ),
            Either::Right(((), _)) => {}
        }
        assert!(ticks.load(SeqCst) > 0, "the in-flight futures never ran");
        assert_eq!(out.in_progress(), LIMIT);
        let total_started = started.load(SeqCst);
        assert_eq!(total_started, if ordered { 9 } else { 11 });
        assert_eq!(input_dropped.load(SeqCst), 0);

        drop(out);
        assert_eq!(
            dropped.load(SeqCst),
            total_started,
            "{}: a future or a waiting output survived the drop",
            order_name(ordered)
        );
        assert_eq!(input_dropped.load(SeqCst), 1, "the input was not dropped");
        let ticks_at_drop = ticks.load(SeqCst);
        Delay::new(ms(20)).await;
        assert_eq!(
            ticks.load(SeqCst),
            ticks_at_drop,
            "work kept running after the drop"
        );
    }
}

/// The input stream returns `Pending` between items: an mpsc channel fed by a producer that sleeps
/// between sends (an outside wake-up), and a stream that returns `Pending` once before each item
/// (a self wake-up).
async fn stream_input_that_is_pending_between_items() {
    const N: usize = 60;
    const LIMIT: usize = 3;
    for ordered in [false, true] {
        let (tx, rx) = mpsc::unbounded::<usize>();
        let producer = async move {
            for i in 0..N {
                tx.unbounded_send(i).unwrap();
                if i % 5 == 0 {
                    Delay::new(ms(1)).await;
                }
            }
            // Dropping `tx` ends the input.
        };
        let gauge = Arc::new(Gauge::default());
        let consumer = lane_in(rx.lane(LIMIT), ordered)
            .map_async(|i| {
                let gauge = Arc::clone(&gauge);
                async move {
                    let _alive = gauge.enter();
                    if i % 2 == 0 {
                        Delay::new(ms(2)).await;
                    } else {
                        yield_once(()).await;
                    }
                    i
                }
            })
            .collect::<Vec<usize>>();
        let ((), out) = future::join(producer, consumer).await;
        assert_each_once(&out, N, ordered, order_name(ordered));
        assert!(gauge.peak() <= LIMIT);

        // Self-waking `Pending` between every item of the input, with `run`.
        let lane = stream::iter((0..N).map(yield_once))
            .interleave_pending()
            .lane(LIMIT);
        let out: Vec<usize> = lane_in(lane, ordered).run().collect().await;
        assert_each_once(&out, N, ordered, order_name(ordered));
    }
}

/// `lane(usize::MAX)` is unbounded: all 1_000 gated items are in flight at once (the gates open only
/// once every item has started), and all of them come out.
async fn unbounded_lane_runs_everything_at_once() {
    const N: usize = 1_000;
    for ordered in [false, true] {
        let started = Arc::new(AtomicUsize::new(0));
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..N).map(|_| oneshot::channel::<()>()).unzip();
        let lane = receivers.into_iter().enumerate().lane(usize::MAX);
        assert_eq!(lane.limit(), usize::MAX);
        let consumer = lane_in(lane, ordered)
            .map_async(|(i, rx)| {
                started.fetch_add(1, SeqCst);
                async move {
                    rx.await.expect("sender kept alive");
                    i
                }
            })
            .collect::<Vec<usize>>();
        let controller = async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while started.load(SeqCst) < N {
                assert!(
                    Instant::now() < deadline,
                    "{}: only {} of {N} items started in an unbounded lane",
                    order_name(ordered),
                    started.load(SeqCst)
                );
                Delay::new(ms(1)).await;
            }
            // Open the gates last to first.
            for tx in senders.into_iter().rev() {
                tx.send(()).unwrap();
            }
        };
        let (out, ()) = future::join(consumer, controller).await;
        assert_each_once(&out, N, ordered, order_name(ordered));
    }
}

/// 10_000 futures that each yield once, limit 256, both orders and both terminals: every item
/// exactly once, the limit respected and filled.
async fn large_fan_out_yields_each_item_exactly_once() {
    const N: usize = 10_000;
    const LIMIT: usize = 256;
    for ordered in [false, true] {
        for use_run in [false, true] {
            let gauge = Arc::new(Gauge::default());
            let work = |i: usize| {
                let alive = gauge.enter();
                async move {
                    let i = yield_once(i).await;
                    drop(alive);
                    i
                }
            };
            let out: Vec<usize> = if use_run {
                // A lazy iterator of futures: each is made only when the lane pulls it.
                lane_in((0..N).map(work).lane(LIMIT), ordered)
                    .run()
                    .collect()
                    .await
            } else {
                lane_in((0..N).lane(LIMIT), ordered)
                    .map_async(work)
                    .collect()
                    .await
            };
            let what = format!("{}, run: {use_run}", order_name(ordered));
            assert_eq!(out.len(), N, "{what}");
            assert_each_once(&out, N, ordered, &what);
            assert_eq!(gauge.peak(), LIMIT, "{what}: peak in flight");
            assert_eq!(gauge.active(), 0, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Runtimes
// ---------------------------------------------------------------------------------------------

runtime_matrix!(
    limit_is_respected_and_filled,
    ordered_output_despite_reversed_completion,
    unordered_output_in_completion_order,
    dropping_the_stream_cancels_in_flight_work,
    stream_input_that_is_pending_between_items,
    unbounded_lane_runs_everything_at_once,
    large_fan_out_yields_each_item_exactly_once,
);

// ---------------------------------------------------------------------------------------------
// Auto traits (compile-time: these tests fail by not compiling)
// ---------------------------------------------------------------------------------------------

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_unpin<T: Unpin>() {}
fn assert_send_sync_unpin<T: Send + Sync + Unpin>() {}

/// A future that is `Send + Sync` but not `Unpin`.
#[derive(Debug)]
struct Pinned(PhantomPinned);

impl Future for Pinned {
    type Output = u8;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u8> {
        Poll::Ready(0)
    }
}

/// A stream that is `Send + Sync` but not `Unpin`.
#[derive(Debug)]
struct PinnedStream(PhantomPinned);

impl Stream for PinnedStream {
    type Item = u8;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<u8>> {
        Poll::Ready(None)
    }
}

#[test]
fn public_types_are_send_sync_unpin_when_their_parts_are() {
    type Items = Iter<std::vec::IntoIter<u8>>;
    type Ready = std::future::Ready<u8>;
    type F = fn(u8) -> Ready;

    assert_send_sync_unpin::<Items>();
    assert_send_sync_unpin::<Lane<Items>>();
    assert_send_sync_unpin::<Lane<stream::Iter<std::ops::Range<u8>>>>();
    assert_send_sync_unpin::<MapAsync<Items, F>>();
    assert_send_sync_unpin::<Run<Iter<std::vec::IntoIter<Ready>>>>();
    assert_send_sync_unpin::<Run<stream::Iter<std::vec::IntoIter<Ready>>>>();

    // Channel parts (what real lanes hold): the lane is Send.
    type Receiving =
        futures::future::Map<oneshot::Receiver<u8>, fn(Result<u8, oneshot::Canceled>) -> u8>;
    assert_send::<Run<Iter<std::vec::IntoIter<Receiving>>>>();
    assert_send::<MapAsync<mpsc::Receiver<u8>, F>>();
    assert_send::<Lane<mpsc::Receiver<u8>>>();

    // The in-flight futures live in the lane's own pinned slots, so the output stream is Unpin even
    // when the futures are not (`stream.next().await` needs no `pin!`, as the `in_progress` doctests
    // rely on); only the input's own `Unpin` counts.
    assert_unpin::<MapAsync<Items, fn(u8) -> Pinned>>();
    assert_unpin::<Run<Iter<std::vec::IntoIter<Pinned>>>>();
    assert_send_sync_unpin::<MapAsync<Items, fn(u8) -> Pinned>>();
    // `Iter` is Unpin whatever the iterator (it is never pinned).
    assert_unpin::<Iter<std::iter::Once<PhantomPinned>>>();
    // Sync with Sync parts, input not Unpin.
    assert_send::<Lane<PinnedStream>>();
    assert_sync::<MapAsync<PinnedStream, F>>();
    assert_send::<Run<stream::Iter<std::vec::IntoIter<Pinned>>>>();

    // Real async blocks and closures.
    fn check_stream<S: Stream + Send + Unpin>(_: &S) {}
    let lane = (0..3u64).lane(2).map_async(|x| async move {
        Delay::new(ms(x)).await;
        x
    });
    check_stream(&lane);
    let jobs = (0..3u64).map(|x| async move {
        Delay::new(ms(x)).await;
        x
    });
    check_stream(&jobs.lane(2).ordered().run());
    fn check_lane_builder<T: Send + Sync>(_: &T) {}
    check_lane_builder(&[1, 2, 3].lane(2));
}

// ---------------------------------------------------------------------------------------------
// Cross-thread wake-ups, with an executor that polls only when woken
// ---------------------------------------------------------------------------------------------

/// The driver's waker: sets a flag and unparks the driver thread.
#[derive(Debug)]
struct Unparker {
    woken: AtomicBool,
    driver: thread::Thread,
}

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        self.driver.unpark();
    }
}

/// With no output for this long, the run counts as a lost wake-up.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Drives `stream` on this thread, polling it again only after its waker fired (or after it returned
/// an item). Returns the outputs, or the lost wake-up it detected: no output for `watchdog`.
fn drive_only_when_woken<S: Stream + Unpin>(
    mut stream: S,
    expected: usize,
    watchdog: Duration,
) -> Result<Vec<S::Item>, String> {
    let unparker = Arc::new(Unparker {
        woken: AtomicBool::new(true), // the first poll
        driver: thread::current(),
    });
    let waker = Waker::from(Arc::clone(&unparker));
    let mut cx = Context::from_waker(&waker);
    let mut out = Vec::with_capacity(expected);
    let mut last_progress = Instant::now();
    loop {
        if unparker.woken.swap(false, SeqCst) {
            loop {
                match stream.poll_next_unpin(&mut cx) {
                    Poll::Ready(Some(item)) => {
                        out.push(item);
                        last_progress = Instant::now();
                    }
                    Poll::Ready(None) => return Ok(out),
                    Poll::Pending => break,
                }
            }
        } else if last_progress.elapsed() >= watchdog {
            return Err(format!(
                "lost wake-up: {} of {expected} outputs after {} s",
                out.len(),
                watchdog.as_secs_f64()
            ));
        } else {
            thread::park_timeout(ms(20));
        }
    }
}

/// A gate opened from another thread: an `AtomicBool` and a stored waker.
#[derive(Debug, Default)]
struct Gate {
    open: AtomicBool,
    waker: AtomicWaker,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, SeqCst);
        self.waker.wake();
    }

    async fn wait(&self) {
        future::poll_fn(|cx| {
            if self.open.load(SeqCst) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.open.load(SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

#[derive(Debug, Clone, Copy)]
enum GateKind {
    Oneshot,
    AtomicWaker,
}

/// One way to open a gate from a release thread.
enum Release {
    Oneshot(oneshot::Sender<()>),
    Gate(Arc<Gate>),
}

impl Release {
    fn fire(self) {
        match self {
            // The lane never drops a receiver before its item finished.
            Release::Oneshot(tx) => tx.send(()).expect("gate receiver dropped early"),
            Release::Gate(gate) => gate.open(),
        }
    }
}

/// Item `i`'s future: waits for its gate, then returns `i`. Each time it returns `Pending` (its waker
/// registered), it sets `armed[i]`, so a release thread can fire right then, while the driver is
/// still finishing its poll: the moment a lost wake-up would hide in.
fn gated_item(
    i: usize,
    kind: GateKind,
    armed: &Arc<Vec<AtomicBool>>,
) -> (Release, Pin<Box<dyn Future<Output = usize> + Send>>) {
    let armed = Arc::clone(armed);
    match kind {
        GateKind::Oneshot => {
            let (tx, mut rx) = oneshot::channel::<()>();
            let item = future::poll_fn(move |cx| match rx.poll_unpin(cx) {
                Poll::Ready(result) => {
                    result.expect("gate sender dropped");
                    Poll::Ready(i)
                }
                Poll::Pending => {
                    armed[i].store(true, SeqCst);
                    Poll::Pending
                }
            });
            (Release::Oneshot(tx), Box::pin(item))
        }
        GateKind::AtomicWaker => {
            let gate = Arc::new(Gate::default());
            let release = Release::Gate(Arc::clone(&gate));
            let item = async move {
                gate.wait().await;
                i
            };
            let item = future::poll_fn({
                let mut item = Box::pin(item);
                move |cx| {
                    let poll = item.as_mut().poll(cx);
                    if poll.is_pending() {
                        armed[i].store(true, SeqCst);
                    }
                    poll
                }
            });
            (release, Box::pin(item))
        }
    }
}

/// Sets a flag when dropped: tells the release threads to stop, even if the driver panicked.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// `N` gated items, released from 2 to 4 other OS threads in a random order, while this thread
/// drives the lane only when woken. A quarter of the gates are opened whenever their thread gets to
/// them; the rest only once their item is armed (polled and waiting), after a random spin, so that
/// wake-ups land at every point of the driver's poll. Every item must come out exactly once (in
/// input order if `ordered`), with no lost wake-up.
fn cross_thread_wakes(limit: usize, ordered: bool) {
    const N: usize = 2_000;
    let mut seeds = vec![0x7a5c_1a4e_u64];
    seeds.extend((0..3).map(|_| fastrand::u64(..)));
    for seed in seeds {
        for kind in [GateKind::Oneshot, GateKind::AtomicWaker] {
            let what = format!(
                "limit {limit}, {}, {kind:?} gates, seed {seed:#x}",
                order_name(ordered)
            );
            let mut rng = fastrand::Rng::with_seed(seed);
            let armed: Arc<Vec<AtomicBool>> =
                Arc::new((0..N).map(|_| AtomicBool::new(false)).collect());
            let (releases, items): (Vec<_>, Vec<_>) =
                (0..N).map(|i| gated_item(i, kind, &armed)).unzip();

            // Shuffle, then deal the releases out to the threads, each keeping the shuffled order.
            let mut order: Vec<usize> = (0..N).collect();
            rng.shuffle(&mut order);
            let threads = rng.usize(2..=4);
            let mut releases: Vec<Option<Release>> = releases.into_iter().map(Some).collect();
            let mut per_thread: Vec<Vec<(usize, bool, Release)>> =
                (0..threads).map(|_| Vec::new()).collect();
            for (k, &i) in order.iter().enumerate() {
                let eager = rng.u8(..4) == 0;
                per_thread[k % threads].push((i, eager, releases[i].take().unwrap()));
            }
            let thread_seeds: Vec<u64> = (0..threads).map(|_| rng.u64(..)).collect();

            let lane = lane_in(items.lane(limit), ordered).run();
            let stop = AtomicBool::new(false);
            let result = thread::scope(|scope| {
                for (mut pending, thread_seed) in per_thread.into_iter().zip(thread_seeds) {
                    let (armed, stop) = (&armed, &stop);
                    scope.spawn(move || {
                        let mut rng = fastrand::Rng::with_seed(thread_seed);
                        while !pending.is_empty() && !stop.load(SeqCst) {
                            let mut fired = false;
                            let mut k = 0;
                            while k < pending.len() {
                                let (i, eager, _) = pending[k];
                                if !eager && !armed[i].load(SeqCst) {
                                    k += 1;
                                    continue;
                                }
                                // Mostly a few spins (the race window is nanoseconds wide).
                                let spins = if rng.bool() {
                                    rng.u32(..8)
                                } else {
                                    rng.u32(..128)
                                };
                                for _ in 0..spins {
                                    std::hint::spin_loop();
                                }
                                pending.swap_remove(k).2.fire();
                                fired = true;
                                if rng.u8(..) < 8 {
                                    thread::yield_now();
                                }
                            }
                            if !fired {
                                thread::yield_now();
                            }
                        }
                    });
                }
                let _stop = SetOnDrop(&stop);
                drive_only_when_woken(lane, N, WATCHDOG)
            });
            let out = result.unwrap_or_else(|lost| panic!("{what}: {lost}"));
            assert_eq!(out.len(), N, "{what}");
            assert_each_once(&out, N, ordered, &what);
        }
    }
}

macro_rules! cross_thread_tests {
    ($($name:ident: $limit:expr, $ordered:expr;)*) => {
        $(
            #[test]
            #[cfg_attr(miri, ignore = "threads, thousands of items")]
            fn $name() {
                cross_thread_wakes($limit, $ordered);
            }
        )*
    };
}

cross_thread_tests! {
    cross_thread_wakes_limit_1_unordered: 1, false;
    cross_thread_wakes_limit_1_ordered: 1, true;
    cross_thread_wakes_limit_16_unordered: 16, false;
    cross_thread_wakes_limit_16_ordered: 16, true;
    cross_thread_wakes_limit_256_unordered: 256, false;
    cross_thread_wakes_limit_256_ordered: 256, true;
}

/// The driver itself is checked: it reports a stream that is never woken as a lost wake-up instead
/// of hanging, and it never polls again without a wake-up.
#[test]
#[cfg_attr(miri, ignore = "wall-clock watchdog")]
fn the_driver_reports_a_lost_wake_up_and_never_polls_unwoken() {
    let polls = AtomicUsize::new(0);
    let never = stream::poll_fn(|_cx| {
        polls.fetch_add(1, SeqCst);
        Poll::<Option<usize>>::Pending // and never wakes
    });
    let err = drive_only_when_woken(never, 3, ms(200)).unwrap_err();
    assert_eq!(err, "lost wake-up: 0 of 3 outputs after 0.2 s");
    assert_eq!(polls.load(SeqCst), 1, "polled again without a wake-up");
}
