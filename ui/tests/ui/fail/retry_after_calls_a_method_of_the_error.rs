//! A `retry_after` closure that calls a method of the error type, which only `map_async` names:
//! E0282. The fix is `|e: &HttpError|` (see `# Type inference` on `Configure::retry_after`).

use std::time::Duration;

use futures::StreamExt;
use tasklane::prelude::*;

#[derive(Debug)]
struct HttpError(u64);

impl HttpError {
    fn retry_after(&self) -> Option<Duration> {
        Some(Duration::from_millis(self.0))
    }
}

fn main() {
    futures::executor::block_on(async {
        let _ = [1u64]
            .lane(1)
            .retry(3)
            .retry_after(|e| e.retry_after())
            .map_async(|ms| async move { Err::<(), _>(HttpError(ms)) })
            .collect::<Vec<_>>()
            .await;
    });
}
