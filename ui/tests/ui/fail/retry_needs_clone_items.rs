//! A retrying lane calls the function again with a clone of the item: items that are not `Clone`
//! are one error, which names `Clone` (and no internal trait of the crate).

use futures::StreamExt;
use tasklane::prelude::*;

struct Upload {
    bytes: Vec<u8>,
}

fn main() {
    futures::executor::block_on(async {
        let _ = vec![Upload {
            bytes: vec![1, 2, 3],
        }]
        .lane(2)
        .retry(3)
        .map_async(|upload: Upload| async move { Ok::<usize, String>(upload.bytes.len()) })
        .collect::<Vec<_>>()
        .await;
    });
}
