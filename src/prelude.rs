//! `use tasklane::prelude::*;` brings every extension trait into scope (anonymously, so their names
//! cannot clash with yours).

pub use crate::ext::{IterLaneExt as _, LaneExt as _};
