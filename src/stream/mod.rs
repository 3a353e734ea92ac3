//! The streams that the [`Lane`](crate::Lane) terminals return.

mod map_async;
mod run;

pub use map_async::MapAsync;
pub use run::Run;
