//! The command layer: one file per command, an options struct in, a typed report out; no
//! command prints. The CLI (`src/cli/`, `src/main.rs`) parses, calls one of these and renders
//! the report.

pub mod copy;
pub mod forget;
pub mod stats;
pub mod tag;

pub use copy::{copy, Copied, CopyReport};
pub use forget::{forget, ForgetGroup, ForgetOptions, ForgetReport};
pub use stats::{stats, StatsMode, StatsReport};
pub use tag::{split_tags, tag, TagOptions, TagReport};
