//! `check`: the repository's structure and, with `read_data`, every stored byte.

use crate::check::{CheckOptions, CheckReport};
use crate::error::Result;

use super::Locked;

/// Checks the repository `l` holds locked; damage is in the report, not an error.
pub fn check(l: &Locked, opts: &CheckOptions) -> Result<CheckReport> {
    crate::check::check(l.repo(), opts)
}
