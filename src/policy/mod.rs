//! Retention policies: which snapshots `forget` keeps, with restic's semantics.
//!
//! Pure: snapshots and a policy in, keep/remove with reasons out; no I/O, no repository
//! (`commands::forget` lists the snapshots, applies the safety rule and deletes).
//!
//! Snapshots are grouped (by host and paths unless told otherwise) and each group is handled
//! on its own, newest first. A calendar rule (`--keep-daily 7`) keeps the newest snapshot of each
//! of the last N hours/days/ISO weeks/months/years that have one, in the local time zone; the
//! rules are ORed. A group in which nothing is kept is refused unless explicitly allowed: a
//! mistyped `--keep-tag` must not empty a repository (restic #4568).
//!
//! - `keep`: [`KeepPolicy`] and [`apply`], the decision for one group with its reasons;
//! - `within`: [`Within`], the `--keep-within*` spans (`2y5m7d3h`);
//! - `group`: [`GroupBy`], [`GroupKey`] and [`group`].

mod group;
mod keep;
mod within;

pub use group::{group, GroupBy, GroupKey};
pub use keep::{apply, Count, GroupDecision, KeepPolicy, Kept};
pub use within::Within;

#[cfg(test)]
mod tests;
