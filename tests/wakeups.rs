//! No lost wake-up, whatever way a future registers its waker (issue 9 §1, acceptance 1).
//!
//! The probe: a future that stores its waker once, at its first poll, and afterwards only checks an
//! `AtomicBool` with an Acquire load (it never registers again: the `Future` contract allows that).
//! A helper thread wakes it twice: once spuriously, then, a few spin-loop iterations later, after
//! setting the flag (Release). The consumer polls the lane (or gather, or the pool's driver) in a
//! busy loop, so that it re-polls the future right after the spurious wake-up, while the flag is
//! being set on the other core. If the slot's queued flag is cleared with a plain store, the
//! store-buffering pattern (consumer: clear the queued flag, load the event; waker: store the
//! event, `fetch_or` the queued flag) loses the second wake-up: the slot is never polled again.
//!
//! Where the window is depends on how fast the consumer gets from the spurious wake-up to the
//! future's load, so each run sweeps the spin count item by item, from 0 up to the test's 8, 16 or
//! 32 ([`sweep`]). On today's engine an optimized build (`cargo test --release --test wakeups`)
//! stops within milliseconds to seconds; a debug build, whose engine takes far longer (and stores
//! far more) between clearing the flag and the future's load, hits the window only rarely.
//!
//! A watchdog on the test thread fails a run that makes no progress for [`STALL`], naming the item
//! where it stopped. A run that is still going after [`RUN_TIME`] (a slow or busy machine) ends
//! there and passes. The probes run one at a time. Too slow under Miri (real threads, a million
//! items).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use futures_test::task::noop_context;
use tasklane::pool::{JobError, JobHandle, TaskPool};
use tasklane::prelude::*;

/// Items per lane run: about 2.5 s in a debug build on two free cores.
const ITEMS: usize = 1_000_000;

/// How long a run may go without a new item completing before the watchdog fails it.
const STALL: Duration = Duration::from_secs(5);

/// A run still going after this long ends at its next item, and passes: on a busy machine the
/// probe is slow (its two threads share a core), and the stall it looks for, when it exists, shows
/// within seconds on two free cores.
const RUN_TIME: Duration = Duration::from_secs(8);

/// Empty polls (or empty checks of the channel) after which a spinning thread yields its core, so
/// that the probe still moves on a machine where it gets only one.
const YIELD_AFTER: u32 = 1_000;

/// The probes run one at a time: each keeps two threads spinning.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The spin counts of a run whose largest is `max`: 0, then the powers of two up to `max`. The
/// helper's `k`-th request waits `sweep[k % len]` spin-loop iterations.
fn sweep(max: u32) -> Vec<u32> {
    std::iter::once(0)
        .chain((0..).map(|k| 1 << k).take_while(|&s| s <= max))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The helper thread
// ---------------------------------------------------------------------------------------------

/// What the helper does for one registration: wake, spin, then `fire`, which wakes again.
struct Request {
    waker: Waker,
    fire: Fire,
}

/// What sets the event the future waits for.
enum Fire {
    /// Set the future's flag (Release), then wake it.
    Flag(Arc<AtomicBool>),
    /// Cancel a pool job from this thread (which wakes its slot), and send its handle back.
    Cancel(Arc<Mutex<Option<JobHandle<()>>>>, Sender<JobHandle<()>>),
}

/// A long-lived thread that serves [`Request`]s as they come. It spins on the channel instead of
/// parking, so that it answers within the consumer's busy loop. It stops when every sender is gone.
struct Helper {
    tx: Option<HelperTx>,
    thread: Option<JoinHandle<()>>,
    /// Requests sent to the helper, and requests it has fired (both wake-ups delivered).
    sent: Arc<AtomicUsize>,
    fired: Arc<AtomicUsize>,
}

/// Sends requests to the helper, counting them.
#[derive(Clone)]
struct HelperTx {
    tx: Sender<Request>,
    sent: Arc<AtomicUsize>,
}

impl HelperTx {
    fn send(&self, request: Request) {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.tx.send(request).expect("the helper runs");
    }
}

impl Helper {
    fn start(spins: Vec<u32>) -> Helper {
        let (tx, rx) = mpsc::channel::<Request>();
        let fired = Arc::new(AtomicUsize::new(0));
        let f = Arc::clone(&fired);
        let thread = std::thread::spawn(move || serve(&rx, &spins, &f));
        let sent = Arc::new(AtomicUsize::new(0));
        Helper {
            tx: Some(HelperTx {
                tx,
                sent: Arc::clone(&sent),
            }),
            thread: Some(thread),
            sent,
            fired,
        }
    }

    fn sender(&self) -> HelperTx {
        self.tx.clone().expect("the helper runs")
    }

    /// Whether the helper has delivered every wake-up asked of it so far: a run that makes no
    /// progress then waits for nothing but a wake-up that was lost.
    fn idle(&self) -> bool {
        self.fired.load(Ordering::SeqCst) == self.sent.load(Ordering::SeqCst)
    }
}

fn serve(rx: &Receiver<Request>, spins: &[u32], fired: &AtomicUsize) {
    let mut served = 0;
    let mut idle = 0u32;
    loop {
        let request = match rx.try_recv() {
            Ok(request) => request,
            Err(TryRecvError::Empty) => {
                idle += 1;
                if idle % YIELD_AFTER == 0 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            Err(TryRecvError::Disconnected) => return,
        };
        idle = 0;
        // The spurious wake-up: the consumer re-polls the future, which finds nothing yet.
        request.waker.wake_by_ref();
        for _ in 0..spins[served % spins.len()] {
            std::hint::spin_loop();
        }
        served += 1;
        match request.fire {
            Fire::Flag(flag) => {
                flag.store(true, Ordering::Release);
                request.waker.wake();
                fired.fetch_add(1, Ordering::SeqCst);
            }
            Fire::Cancel(cell, back) => {
                let handle = cell
                    .lock()
                    .unwrap()
                    .take()
                    .expect("the test stores the handle before the job runs");
                // `cancel` wakes the job's slot through the waker the job stored at its first poll.
                // (It does nothing if the test has dropped the driver meanwhile, its time up.)
                handle.cancel();
                drop(request.waker);
                fired.fetch_add(1, Ordering::SeqCst);
                let _ = back.send(handle);
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.tx.take());
        // Every future holding a sender is gone by now (the terminal is dropped before the
        // helper), so the thread sees the channel closed and returns.
        if let Some(thread) = self.thread.take() {
            if !std::thread::panicking() {
                thread.join().expect("the helper thread panicked");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The probe future
// ---------------------------------------------------------------------------------------------

/// Stores its waker at its first poll (sends it to the helper), and afterwards only checks its flag
/// with an Acquire load: it never registers again.
struct RegisterOnce {
    id: usize,
    flag: Arc<AtomicBool>,
    helper: Option<HelperTx>,
    done: Arc<AtomicUsize>,
}

impl RegisterOnce {
    fn new(id: usize, helper: &HelperTx, done: &Arc<AtomicUsize>) -> Self {
        RegisterOnce {
            id,
            flag: Arc::new(AtomicBool::new(false)),
            helper: Some(helper.clone()),
            done: Arc::clone(done),
        }
    }
}

impl Future for RegisterOnce {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        if let Some(helper) = self.helper.take() {
            let request = Request {
                waker: cx.waker().clone(),
                fire: Fire::Flag(Arc::clone(&self.flag)),
            };
            helper.send(request);
            return Poll::Pending;
        }
        if self.flag.load(Ordering::Acquire) {
            self.done.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(self.id)
        } else {
            Poll::Pending
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The busy loop and its watchdog
// ---------------------------------------------------------------------------------------------

/// How a busy run ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// Every item went through.
    Finished,
    /// [`RUN_TIME`] was up (a slow or busy machine); no stall had been seen.
    TimeUp,
}

/// Calls `step` in a busy loop (no sleeping; a yield only after [`YIELD_AFTER`] polls without
/// progress) until it returns `true`, or until [`RUN_TIME`] is up at a moment of progress. Fails if
/// the `progress` counter does not move for [`STALL`] while the helper has delivered every wake-up
/// (a starved helper does not count), naming the item where the run stopped.
#[track_caller]
fn busy_drive(
    what: &str,
    total: usize,
    progress: &AtomicUsize,
    helper: &Helper,
    mut step: impl FnMut() -> bool,
) -> Ended {
    let start = Instant::now();
    let mut last = progress.load(Ordering::Relaxed);
    let mut idle = 0u32;
    let mut stalled_since = start;
    let ended = loop {
        if step() {
            break Ended::Finished;
        }
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            let new_thousand = now / 1024 != last / 1024;
            last = now;
            idle = 0;
            if new_thousand && start.elapsed() > RUN_TIME {
                break Ended::TimeUp;
            }
            continue;
        }
        idle += 1;
        if idle % YIELD_AFTER == 0 {
            std::thread::yield_now();
            if idle == YIELD_AFTER || !helper.idle() {
                // No progress for a while (or the helper still has work): the watchdog (re)starts.
                stalled_since = Instant::now();
            } else if stalled_since.elapsed() > STALL {
                panic!(
                    "{what}: stopped for good at item {now} of {total}, {:.1?} into the run (no \
                     item completed for {STALL:?}, and the helper had delivered all {} wake-ups asked of \
                     it): it was woken and never polled again, a lost wake-up",
                    stalled_since - start,
                    helper.fired.load(Ordering::SeqCst)
                );
            }
        }
    };
    eprintln!(
        "{what}: {ended:?}, {} of {total} items in {:.1?}",
        progress.load(Ordering::Relaxed),
        start.elapsed()
    );
    ended
}

/// Drives a stream of ids in a busy loop with a no-op waker; returns how it ended and how many
/// items came out.
fn drain_busy<S: Stream<Item = usize> + Unpin>(
    what: &str,
    total: usize,
    done: &AtomicUsize,
    helper: &Helper,
    stream: &mut S,
) -> (Ended, usize) {
    let mut cx = noop_context();
    let mut yielded = 0;
    let ended = busy_drive(what, total, done, helper, || {
        match stream.poll_next_unpin(&mut cx) {
            Poll::Ready(Some(_)) => {
                yielded += 1;
                false
            }
            Poll::Ready(None) => true,
            Poll::Pending => false,
        }
    });
    (ended, yielded)
}

// ---------------------------------------------------------------------------------------------
// The lane
// ---------------------------------------------------------------------------------------------

fn lane_probe(max_spins: u32, ordered: bool) {
    let _serial = serial();
    let spins = sweep(max_spins);
    let what = format!(
        "lane(1){}.map_async, spins {spins:?}",
        if ordered { ".ordered()" } else { "" }
    );
    let helper = Helper::start(spins);
    let tx = helper.sender();
    let done = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&done);
    let lane = (0..ITEMS).lane(1);
    let lane = if ordered { lane.ordered() } else { lane };
    let mut out = lane.map_async(move |i| RegisterOnce::new(i, &tx, &d));
    let (ended, yielded) = drain_busy(&what, ITEMS, &done, &helper, &mut out);
    drop(out);
    if ended == Ended::Finished {
        assert_eq!(yielded, ITEMS, "{what}: every item comes out once");
    }
    drop(helper);
}

/// A future that registers its waker once, woken from another thread 0 to 8 spin-loop iterations
/// after a spurious wake-up, is never lost by a lane polled in a busy loop: every item completes.
#[test]
#[cfg_attr(miri, ignore = "a million items on real threads")]
fn a_lane_loses_no_wake_up_0_to_8_spins_after_a_spurious_one() {
    lane_probe(8, false);
}

/// The same probe, 0 to 16 spin-loop iterations between the spurious wake-up and the real one.
#[test]
#[cfg_attr(miri, ignore = "a million items on real threads")]
fn a_lane_loses_no_wake_up_0_to_16_spins_after_a_spurious_one() {
    lane_probe(16, false);
}

/// The same probe, 0 to 32 spin-loop iterations between the spurious wake-up and the real one.
#[test]
#[cfg_attr(miri, ignore = "a million items on real threads")]
fn a_lane_loses_no_wake_up_0_to_32_spins_after_a_spurious_one() {
    lane_probe(32, false);
}

/// The probe through an ordered lane (its own emit path), 0 to 32 spins.
#[test]
#[cfg_attr(miri, ignore = "a million items on real threads")]
fn an_ordered_lane_loses_no_wake_up_after_a_spurious_one() {
    lane_probe(32, true);
}

// ---------------------------------------------------------------------------------------------
// gather
// ---------------------------------------------------------------------------------------------

/// `gather` over register-once futures (limit 1), polled in a busy loop, woken 0 to 32 spins after
/// a spurious wake-up: every future completes and every output is at its input position.
#[test]
#[cfg_attr(miri, ignore = "a million items on real threads")]
fn gather_loses_no_wake_up_after_a_spurious_one() {
    let _serial = serial();
    let spins = sweep(32);
    let what = format!("gather(.., 1), spins {spins:?}");
    let helper = Helper::start(spins);
    let tx = helper.sender();
    let done = Arc::new(AtomicUsize::new(0));
    let futs = (0..ITEMS).map(|i| RegisterOnce::new(i, &tx, &done));
    let mut gather = tasklane::gather(futs, 1);
    let mut cx = noop_context();
    let mut out = None;
    let ended = busy_drive(&what, ITEMS, &done, &helper, || {
        match gather.poll_unpin(&mut cx) {
            Poll::Ready(v) => {
                out = Some(v);
                true
            }
            Poll::Pending => false,
        }
    });
    drop(gather);
    drop(tx);
    if ended == Ended::Finished {
        let out = out.expect("gather finished");
        assert!(
            out.iter().copied().eq(0..ITEMS),
            "{what}: outputs in input order"
        );
    }
    drop(helper);
}

// ---------------------------------------------------------------------------------------------
// The pool
// ---------------------------------------------------------------------------------------------

/// A pool job that, at its first poll, asks the helper to wake it spuriously and then cancel it
/// from the helper's thread; it stays pending until then. The job's own future (`JobFuture`) stored
/// the slot's waker once, and checks its `cancelled` flag with one Acquire load at every poll.
struct CancelledByHelper {
    cell: Arc<Mutex<Option<JobHandle<()>>>>,
    helper: Option<(HelperTx, Sender<JobHandle<()>>)>,
    started: Arc<AtomicUsize>,
}

impl Future for CancelledByHelper {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some((helper, back)) = self.helper.take() {
            self.started.fetch_add(1, Ordering::Relaxed);
            let request = Request {
                waker: cx.waker().clone(),
                fire: Fire::Cancel(Arc::clone(&self.cell), back),
            };
            helper.send(request);
        }
        Poll::Pending // until the driver drops it, cancelled
    }
}

/// A running pool job cancelled from another thread 0 to 32 spin-loop iterations after a spurious
/// wake-up of its slot is never lost by a driver polled in a busy loop: the driver (one worker)
/// gets through every job and finishes, and every handle resolves to `Cancelled`.
#[test]
#[cfg_attr(miri, ignore = "a million jobs on real threads")]
fn the_pool_loses_no_cancel_of_a_running_job() {
    let _serial = serial();
    let spins = sweep(32);
    let what = format!("TaskPool::new(1), spins {spins:?}");
    let helper = Helper::start(spins);
    let (back_tx, back_rx) = mpsc::channel();
    let started = Arc::new(AtomicUsize::new(0));
    let (pool, driver) = TaskPool::new(1);
    let mut pool = Some(pool);
    let mut submitted = 0;
    let mut driver = Box::pin(driver);
    let mut cx = noop_context();
    // Progress: jobs started (each starts only once the one before was cancelled and dropped).
    // Jobs are submitted as they go, a few ahead of the driver.
    let ended = busy_drive(&what, ITEMS, &started, &helper, || {
        if let Some(p) = &pool {
            while submitted < ITEMS && p.queued() < 4 {
                let cell = Arc::new(Mutex::new(None));
                let job = CancelledByHelper {
                    cell: Arc::clone(&cell),
                    helper: Some((helper.sender(), back_tx.clone())),
                    started: Arc::clone(&started),
                };
                *cell.lock().unwrap() = Some(p.submit(job));
                submitted += 1;
            }
            if submitted == ITEMS {
                pool = None; // the driver ends once every job is done
            }
        }
        driver.as_mut().poll(&mut cx).is_ready()
    });
    drop(driver); // cancels the jobs still queued, if the time was up
    drop(pool);
    drop(back_tx);
    let mut resolved = 0;
    for mut handle in back_rx.iter() {
        assert_eq!(
            handle.poll_unpin(&mut cx),
            Poll::Ready(Err(JobError::Cancelled)),
            "{what}: a cancelled job's handle"
        );
        resolved += 1;
    }
    if ended == Ended::Finished {
        assert_eq!(resolved, ITEMS, "{what}: every job was cancelled once");
    }
    drop(helper);
}
