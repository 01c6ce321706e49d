//! The CLI: parses, opens, calls one library command, renders its report. `main.rs` maps
//! errors to exit codes.

mod args;
mod cmd;
pub(crate) mod outcome;
mod progress;
mod render;
mod run;
mod setup;

pub(crate) use super::{EXIT_PARTIAL, EXIT_SIGINT, EXIT_SIGTERM};
pub(crate) use args::*;
pub(crate) use cmd::run::StepExit;
pub(crate) use progress::show as show_progress;
pub(crate) use render::*;
pub(crate) use run::*;
pub(crate) use setup::*;
