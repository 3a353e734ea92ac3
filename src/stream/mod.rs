//! The streams that the [`Lane`](crate::Lane) terminals return.
//!
//! They are plain [`Stream`](futures_core::Stream)s and [`FusedStream`](futures_core::FusedStream)s:
//!
//! ```
//! use futures::stream::{FusedStream, StreamExt};
//! use tasklane::prelude::*;
//! use tasklane::stream::MapAsync;
//!
//! # futures::executor::block_on(async {
//! let mut out = [1, 2].lane(1).map_async(|x| async move { x });
//! fn is_map_async<St, Fut: std::future::Future, F>(_: &MapAsync<St, Fut, F>) {}
//! is_map_async(&out);
//! while out.next().await.is_some() {}
//! assert!(out.is_terminated());
//! assert_eq!(out.next().await, None); // and stays done
//! # });
//! ```

mod map_async;
mod run;

pub use map_async::MapAsync;
pub use run::Run;
