//! `use tasklane::prelude::*;` brings every extension trait into scope (anonymously, so their names
//! cannot clash with yours).
//!
//! ```
//! use futures::StreamExt;
//! use tasklane::prelude::*;
//!
//! # futures::executor::block_on(async {
//! let from_iter: Vec<i32> = [1, 2].lane(2).ordered().map_async(|x| async move { x }).collect().await;
//! let from_stream: Vec<i32> = [1, 2].into_stream().lane(2).ordered().map_async(|x| async move { x }).collect().await;
//! assert_eq!(from_iter, from_stream);
//! # });
//! ```

pub use crate::ext::{IterLaneExt as _, LaneExt as _};
