//! The soak test (issue 14, item 4): 10,000,000 items through one ordered lane,
//! `.lane(64).ordered().retry(3).timeout(1 ms)` with no back-off, with seeded failures, retries
//! and timeouts, on `futures::executor::block_on`:
//!
//! - no item is lost: every index comes out once, in input order, with the outcome and the number
//!   of attempts that the plan gives it;
//! - memory stays flat: the peak resident set (`VmHWM` in `/proc/self/status`) after 10,000,000
//!   items is within 1 MiB of what it was after 1,000,000.
//!
//! The plan, a hash of the seed, the item and the attempt: attempt 0 fails at once for 1 % of the
//! items and stays pending (so that the 1 ms timeout fires) for 0.1 %; attempt 1 fails for 0.5 %
//! and stays pending for 0.05 %; attempt 2 fails for 1 %; attempt 3 succeeds; and about one item
//! in a million fails at every attempt, so that its error is its outcome. A timeout holds up the
//! ordered lane for its millisecond, so the 10,000 or so timeouts take most of the run's time.
//!
//! Ignored by default (about 15 s optimized, far longer unoptimized); `.ci/run` runs it with
//! `cargo test -p tasklane-demos --release --test soak -- --ignored --nocapture`.
//! `TASKLANE_SOAK_ITEMS=1000000` makes it shorter (the memory check then compares a tenth of the
//! run with the whole).

use std::cell::RefCell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tasklane::{prelude::*, Backoff};

const ITEMS: u64 = 10_000_000;
const LIMIT: usize = 64;
const RETRIES: u32 = 3;
const TIMEOUT: Duration = Duration::from_millis(1);
/// The ring of attempts' size (see [`Slot`]).
const RING: usize = LIMIT + 1;
const SEED: u64 = 0x5eed_0014;
/// How much the peak resident set may grow from the first checkpoint to the end.
const FLAT: u64 = 1024 * 1024;
const WATCHDOG: Duration = Duration::from_secs(600);

/// What an attempt does.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Succeed,
    Fail,
    /// Stays pending, until the timeout drops it.
    Hang,
}

/// splitmix64's finalizer.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The plan: what `item`'s attempt `attempt` does (see the module docs).
fn step(item: u64, attempt: u32) -> Step {
    let per_item = mix(SEED ^ item.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if per_item % 1_000_000 == 17 {
        return Step::Fail;
    }
    let roll = mix(per_item ^ u64::from(attempt + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)) % 100_000;
    match (attempt, roll) {
        (0, 0..=99) | (1, 0..=49) => Step::Hang,
        (0, 100..=1_099) | (1, 50..=549) | (2, 0..=999) => Step::Fail,
        _ => Step::Succeed,
    }
}

/// The attempts the plan gives `item`: until a success, at most `RETRIES + 1`.
fn planned(item: u64) -> (u32, Step) {
    for attempt in 0..=RETRIES {
        let s = step(item, attempt);
        if s == Step::Succeed || attempt == RETRIES {
            return (attempt + 1, s);
        }
    }
    unreachable!()
}

/// `VmHWM` and `VmRSS` of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("a field of /proc/self/status")
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// An item's attempts so far, in a ring of `RING` slots indexed by the item: an ordered lane holds
/// at most `LIMIT` items pulled and not yet yielded, and they are consecutive; the lane refills the
/// slot of the output it returns before the consumer sees that output, so the consumer sees at most
/// `LIMIT + 1` items pulled and not yet handled, and `item % RING` is free when an item is pulled
/// (checked).
#[derive(Clone, Copy, Default)]
struct Slot {
    item: u64,
    attempts: u32,
    live: bool,
}

#[test]
#[ignore = "10,000,000 items: run optimized, by .ci/run (cargo test -p tasklane-demos --release --test soak -- --ignored)"]
fn ten_million_items_none_lost_memory_flat() {
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        soak();
        done_tx.send(()).ok();
    });
    match done_rx.recv_timeout(WATCHDOG) {
        Ok(()) => thread.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the soak test hung for {WATCHDOG:?}"),
    }
}

fn soak() {
    let items: u64 = std::env::var("TASKLANE_SOAK_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ITEMS);
    let checkpoint = items / 10;
    let ring = RefCell::new(vec![Slot::default(); RING]);
    let started = Instant::now();

    let mut out = (0..items)
        .lane(LIMIT)
        .ordered()
        .retry(RETRIES)
        .backoff(Backoff::constant(Duration::ZERO))
        .timeout(TIMEOUT)
        .map_async(|item| {
            let attempt = {
                let mut ring = ring.borrow_mut();
                let slot = &mut ring[item as usize % RING];
                if slot.live {
                    assert_eq!(
                        slot.item, item,
                        "more than {LIMIT} items pulled and not yet yielded"
                    );
                } else {
                    *slot = Slot {
                        item,
                        attempts: 0,
                        live: true,
                    };
                }
                slot.attempts += 1;
                slot.attempts - 1
            };
            let what = step(item, attempt);
            async move {
                match what {
                    Step::Succeed => Ok(item),
                    Step::Fail => Err(item),
                    Step::Hang => std::future::pending().await,
                }
            }
        });

    let (mut failures, mut retries, mut timeouts) = (0u64, 0u64, 0u64);
    let mut at_checkpoint = None;
    let mut next = 0u64;
    futures::executor::block_on(async {
        while let Some(outcome) = out.next().await {
            let index = match &outcome {
                Ok(item) => *item,
                Err(e) => e.index() as u64,
            };
            assert_eq!(index, next, "out of order, or an item lost or repeated");
            let slot = std::mem::take(&mut ring.borrow_mut()[index as usize % RING]);
            assert!(
                slot.live && slot.item == index,
                "item {index}: never pulled"
            );
            let (attempts, last) = planned(index);
            assert_eq!(slot.attempts, attempts, "item {index}: attempts");
            match (last, &outcome) {
                (Step::Succeed, Ok(_)) => {}
                (Step::Fail, Err(e)) => {
                    assert_eq!(e.inner(), Some(&index));
                    assert_eq!(e.attempts(), attempts);
                    failures += 1;
                }
                (last, outcome) => panic!("item {index}: planned {last:?}, got {outcome:?}"),
            }
            retries += u64::from(attempts - 1);
            timeouts += (0..attempts)
                .filter(|&a| step(index, a) == Step::Hang)
                .count() as u64;
            next += 1;
            if next == checkpoint {
                at_checkpoint = Some((memory(), started.elapsed()));
            }
        }
    });
    let elapsed = started.elapsed();
    let (hwm, rss) = memory();
    assert_eq!(next, items, "every item came out");
    let ((hwm_1, rss_1), at_1) = at_checkpoint.expect("the checkpoint");
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{items} items in {:.1} s ({:.0} ns per item): {failures} failed, {retries} retries, \
         {timeouts} timeouts; peak RSS {:.2} MiB at {checkpoint} items ({:.1} s; RSS {:.2} MiB), \
         {:.2} MiB at {items} (RSS {:.2} MiB): {:+} KiB",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / items as f64,
        mib(hwm_1),
        at_1.as_secs_f64(),
        mib(rss_1),
        mib(hwm),
        mib(rss),
        (hwm as i64 - hwm_1 as i64) / 1024,
    );
    assert!(
        hwm <= hwm_1 + FLAT,
        "the peak resident set grew from {hwm_1} to {hwm} bytes"
    );
    assert!(
        timeouts > 0 && retries > 0 && failures > 0,
        "the plan has each"
    );
}
