//! The `async-io` feature: the lane's timeouts and back-offs sleep on async-io's timer (smol's
//! reactor) instead of futures-timer's thread.
//!
//! Run with `cargo test -p tasklane-runtimes --features async-io --test async_io_timer` (the
//! member's `async-io` feature turns on tasklane's). Real time: lower bounds strict, upper bounds
//! generous.
#![cfg(feature = "async-io")]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod timers;
use timers::{backoff_scenario, ms, timeout_scenario};

/// Real time since the first reading.
fn now() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

#[test]
#[cfg_attr(miri, ignore = "real time, async-io's reactor")]
fn async_io_timeout_under_smol() {
    smol::block_on(timeout_scenario(ms(30), now));
}

#[test]
#[cfg_attr(miri, ignore = "real time, async-io's reactor")]
fn async_io_backoff_under_smol() {
    smol::block_on(backoff_scenario(ms(10), now));
}

#[test]
#[cfg_attr(miri, ignore = "real time, async-io's reactor")]
fn async_io_timer_works_off_smol_too() {
    // async-io drives its reactor from a thread of its own when no `block_on` of its runs.
    futures::executor::block_on(async {
        timeout_scenario(ms(30), now).await;
        backoff_scenario(ms(10), now).await;
    });
}
