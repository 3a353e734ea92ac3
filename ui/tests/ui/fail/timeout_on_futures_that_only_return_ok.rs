//! Futures that only return `Ok` never name the error type: E0282 at `timeout`. The fix is the
//! collected type, `Ok::<_, E>(x)` or `timeout::<E>` (see `# Type inference` on `Configure::timeout`).

use std::time::Duration;

use futures::TryStreamExt;
use tasklane::prelude::*;

fn main() {
    futures::executor::block_on(async {
        let _ = [1u8]
            .lane(1)
            .timeout(Duration::from_secs(1))
            .map_async(|x| async move { Ok(x) })
            .try_collect::<Vec<_>>()
            .await;
    });
}
