//! `backoff`, `retry_if` and `retry_after` say how a lane retries, so they come after `retry`: set
//! before it, on a lane or a policy, the error says to call `.retry(n)` first.

use std::time::Duration;

use tasklane::{prelude::*, Backoff, Policy};

fn main() {
    let _ = [1u8]
        .lane(1)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .retry(3);
    let _ = Policy::new(1)
        .timeout(Duration::from_secs(1))
        .retry_if(|e: &tasklane::Error<std::io::Error>| e.is_timeout());
}
