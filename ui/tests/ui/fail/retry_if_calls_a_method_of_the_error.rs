//! A `retry_if` closure that calls a method of the error type, which only `map_async` names: E0282.
//! The fix is `|e: &Error<HttpError>|` (see `# Type inference` on `Configure::retry_if`).

use futures::StreamExt;
use tasklane::prelude::*;

#[derive(Debug)]
struct HttpError(u16);

impl HttpError {
    fn retryable(&self) -> bool {
        self.0 >= 500
    }
}

fn main() {
    futures::executor::block_on(async {
        let _ = [503u16]
            .lane(1)
            .retry(3)
            .retry_if(|e| e.inner().is_some_and(|h| h.retryable()))
            .map_async(|status| async move { Err::<(), _>(HttpError(status)) })
            .collect::<Vec<_>>()
            .await;
    });
}
