//! `run` runs each future once: a lane with `retry` cannot `run`.

use futures::StreamExt;
use tasklane::prelude::*;

fn main() {
    futures::executor::block_on(async {
        let jobs = (1..=3).map(|x| async move { Ok::<i32, String>(x) });
        let _ = jobs.lane(2).retry(3).run().collect::<Vec<_>>().await;
    });
}
