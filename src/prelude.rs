//! `use tasklane::prelude::*;` brings every extension trait into scope (anonymously, so their names
//! cannot clash with yours): [`LaneExt`](crate::LaneExt) and [`IterLaneExt`](crate::IterLaneExt),
//! which start a lane, and [`Configure`](crate::Configure), the setters of a lane and of a policy.
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

pub use crate::config::Configure as _;
pub use crate::ext::{IterLaneExt as _, LaneExt as _};
