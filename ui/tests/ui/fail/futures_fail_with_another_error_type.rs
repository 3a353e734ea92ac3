//! The lane's error type was named by the `retry_if` closure; the futures fail with another one.

use futures::StreamExt;
use tasklane::{prelude::*, Error};

fn main() {
    futures::executor::block_on(async {
        let _ = [1u8]
            .lane(1)
            .retry(3)
            .retry_if(|e: &Error<std::io::Error>| e.is_timeout())
            .map_async(|x| async move { Err::<u8, String>(format!("item {x}")) })
            .collect::<Vec<_>>()
            .await;
    });
}
