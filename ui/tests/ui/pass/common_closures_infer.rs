//! The common `retry_if`, `retry_after` and `timeout` forms compile with no annotation: each closure
//! uses only `Error`'s own methods, patterns, operators or functions of a known type, and the futures
//! name the error type (see `# Type inference` on `Configure::retry_if`).

use std::time::Duration;

use futures::StreamExt;
use tasklane::{prelude::*, Backoff, Error};

#[derive(Debug)]
enum HttpError {
    TooManyRequests { retry_after: Duration },
    Unavailable,
    NotFound,
}

fn is_transient(e: &HttpError) -> bool {
    matches!(
        e,
        HttpError::TooManyRequests { .. } | HttpError::Unavailable
    )
}

async fn get(id: u32) -> Result<u32, HttpError> {
    match id {
        0 => Err(HttpError::TooManyRequests {
            retry_after: Duration::from_millis(1),
        }),
        1 => Err(HttpError::Unavailable),
        2 => Err(HttpError::NotFound),
        _ => Ok(id),
    }
}

fn main() {
    futures::executor::block_on(async {
        // `retry_if` on `Error`'s own methods, on a pattern, and on a typed function of `E`;
        // `retry_after` on a `match`.
        let _: Vec<Result<u32, Error<HttpError>>> = (0..4u32)
            .lane(4)
            .retry(3)
            .backoff(Backoff::constant(Duration::ZERO))
            .retry_if(|e| e.is_timeout() || e.inner().is_some_and(is_transient))
            .retry_if(|e| e.attempts() < 3 && !matches!(e.inner(), Some(HttpError::NotFound)))
            .retry_after(|e| match e {
                HttpError::TooManyRequests { retry_after } => Some(*retry_after),
                _ => None,
            })
            .timeout(Duration::from_secs(5))
            .map_async(get)
            .collect()
            .await;

        // An operator on `E`.
        let _ = (0..2u16)
            .lane(2)
            .retry(1)
            .retry_if(|e| e.inner().is_some_and(|status| *status >= 500))
            .map_async(|status| async move { Err::<(), u16>(status) })
            .collect::<Vec<_>>()
            .await;

        // `timeout` on futures that only return `Ok`: the error type is named once, in any of the
        // documented places.
        let d = Duration::from_secs(5);
        let _ = [1u8]
            .lane(1)
            .timeout::<std::io::Error>(d)
            .map_async(|x| async move { Ok(x) });
        let _ = [1u8]
            .lane(1)
            .timeout(d)
            .map_async(|x| async move { Ok::<_, std::io::Error>(x) });
        let _: Vec<Result<u8, Error<std::io::Error>>> = [1u8]
            .lane(1)
            .timeout(d)
            .map_async(|x| async move { Ok(x) })
            .collect()
            .await;
    });
}
