//! The command layer: one file per command, an options struct in, a typed report out; no
//! command prints. The CLI (`src/cli/`, `src/main.rs`) parses, calls one of these and renders
//! the report.
//!
//! A command takes the state it needs ([`Locked`], [`Exclusive`] or [`Indexed`], from
//! [`session`]), so what must run under a lock cannot be called without one.

mod backup;
mod cache;
mod cat;
mod check;
mod config;
mod copy;
mod diff;
mod drill;
mod find;
mod forget;
mod init;
mod key;
mod manifest;
mod metrics;
mod open;
mod profile;
mod prune;
mod receipt;
mod restore;
mod select;
mod session;
mod snapshots;
mod stats;
mod tag;
mod unlock;
mod verification;

pub use crate::restore::{ArchiveFormat, DumpOptions};
pub use backup::{backup, BackupReport};
pub use cache::{cache, CacheOptions, CacheReport};
pub use cat::{cat, CatKind, CatOutput};
pub use check::check;
pub use config::{config, ConfigOptions, ConfigReport};
pub use copy::{copy, Copied, CopyOptions, CopyReport};
pub use diff::{diff, DiffChange, DiffOptions, DiffReport, DiffStat};
pub use drill::{drill, DrillOptions, DrillReport};
pub use find::{find, find_ids, FindOptions, FindReport, FoundObject};
pub use forget::{forget, ForgetGroup, ForgetOptions, ForgetReport};
pub use init::{init, InitReport};
pub use key::{
    key_add, key_list, key_passwd, key_remove, KeyAddOptions, KeyInfo, KeyListReport,
    KeyRemoveOptions, KeyRemoveReport,
};
pub use manifest::{manifest, ManifestEntry, ManifestReport};
pub use metrics::{write_metrics, MetricLabels};
pub use open::{open_repository, open_store, RepositoryOptions, Store, StoreOptions};
pub use profile::{
    default_profile_files, list_profiles, load_profile, profile_file, CheckSpec, CommandSource,
    DrillSpec, Hooks, Profile, ProfileRepository, Retention,
};
pub use prune::{execute_prune, plan_prune, prune};
pub use receipt::{
    redact_arguments, redact_location, write_atomic, Artifact, CheckRun, Receipt, RepositoryRef,
    RunStatus, StepRecord, VerificationNote, RECEIPT_SCHEMA, RECEIPT_VERSION,
};
pub use restore::{dump, ls, restore, DumpReport, LsReport, RestoreReport};
pub use select::{resolve_snapshot_path, select_snapshots, SnapshotPath};
pub use session::{Exclusive, Indexed, LockOptions, Locked};
pub use snapshots::{snapshots, SnapshotGroup, SnapshotsOptions, SnapshotsReport};
pub use stats::{stats, StatsMode, StatsReport};
pub use tag::{split_tags, tag, TagOptions, TagReport};
pub use unlock::{unlock, UnlockOptions, UnlockReport};
