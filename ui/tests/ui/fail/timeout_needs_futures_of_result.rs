//! A lane with `timeout` needs futures that output a `Result`. (A method called on what `map_async`
//! returned then fails too, with an E0599 about the stream's `Stream` bounds: not pinned here, as its
//! text quotes the source of a dependency's macro.)

use std::time::Duration;

use tasklane::prelude::*;

fn main() {
    let _ = [1u8]
        .lane(1)
        .timeout(Duration::from_secs(1))
        .map_async(|x| async move { x });
}
