//! cista: a content-addressed, deduplicating, encrypted backup engine.
//!
//! A library user works with the [`commands`] layer: open a [`Store`](commands::Store) and a
//! [`Repository`] in it, take the lock state a command needs ([`Repository::lock`],
//! [`Repository::lock_exclusive`], [`Locked::indexed`](commands::Locked::indexed)), call one
//! command with its options, and read its typed report. Commands never print; the `cista`
//! binary is one such user.
//!
//! ```
//! use cista::commands::{self, LockOptions, StoreOptions};
//! use cista::{BackupOptions, RestoreOptions, Source};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let src = dir.path().join("src");
//! std::fs::create_dir(&src).unwrap();
//! std::fs::write(src.join("hello.txt"), b"hello, world").unwrap();
//!
//! // init
//! let location = dir.path().join("repo").to_string_lossy().into_owned();
//! let store = commands::open_store(&StoreOptions::new(location)).unwrap();
//! let repo = commands::init(store.backend.clone(), b"secret", &Default::default())
//!     .unwrap()
//!     .repository;
//!
//! // backup, under a shared lock with the index loaded after it was taken
//! let ix = repo.lock(&LockOptions::default()).unwrap().indexed().unwrap();
//! let saved = commands::backup(&ix, Source::Paths(vec![src.clone()]), &BackupOptions::default())
//!     .unwrap();
//! assert!(saved.warnings.is_empty());
//! drop(ix);
//!
//! // restore the latest snapshot
//! let ix = repo.lock(&LockOptions::default()).unwrap().indexed().unwrap();
//! let latest = commands::resolve_snapshot_path(&repo, "latest", &Default::default()).unwrap();
//! assert_eq!(Some(latest.id), saved.snapshot_id);
//! let mut opts = RestoreOptions::default();
//! opts.target = dir.path().join("restore");
//! let report = commands::restore(&ix, &latest.snapshot, &latest.path, &opts).unwrap();
//! assert!(report.errors.is_empty());
//! let restored = opts.target.join(src.strip_prefix("/").unwrap()).join("hello.txt");
//! assert_eq!(std::fs::read(restored).unwrap(), b"hello, world");
//! ```
//!
//! Data flows one way. Backup: source walk → chunker → backup (dedup against the index) →
//! pack → backend. Restore: snapshot → tree → index → pack reader → restore → destination.
//! Lower modules never use higher ones; the backend never sees keys or plaintext.
//! `docs/format.md` describes every stored byte, `docs/design.md` the module map.
//!
//! Public modules besides [`commands`] are the building blocks below the engine, for tools,
//! fuzzing and storage implementors: [`backend`] (the storage trait and its contract),
//! [`format`] (bytes only: every on-disk object's encoder and decoder), [`crypto`],
//! [`chunker`], [`compress`] and [`util`]. The engine itself (index, pack, backup, restore,
//! check, prune, retention, locks) is reached through the commands and the types re-exported
//! here.

mod ahead;
pub mod backend;
mod backup;
mod check;
pub mod chunker;
pub mod commands;
pub mod compress;
pub mod crypto;
mod error;
pub mod format;
mod id;
mod index;
mod lock;
mod pack;
mod policy;
mod problem;
mod prune;
mod repository;
mod restore;
mod tree;
pub mod util;

pub use backend::{default_cache_dir, Backend, CacheDir, RequestCounts, RequestStats};
pub use backup::{BackupOptions, BackupResult, NamedCommand, Source};
pub use check::{CheckOptions, CheckReport, Subset};
pub use error::{Error, Result};
pub use format::{
    BlobType, ChunkerParams, Node, NodeKind, Snapshot, Summary, Tree, Verification,
    VerificationMethod, VerificationResult,
};
pub use id::{BlobId, Id, PackId, SnapshotId, TreeId};
pub use index::Index;
pub use lock::{release_all as release_all_locks, LockGuard};
pub use policy::{Count, GroupBy, GroupDecision, GroupKey, KeepPolicy, Kept, Within};
pub use problem::{ObjectKind, ObjectRef, Problem, ProblemKind};
pub use prune::PruneOptions;
pub use prune::{MaxUnused, PrunePlan, PruneReport, RetainedObject};
pub use repository::{
    Freshness, InitOptions, LastVerified, Loaded, OpenOptions, Recorded, Repository,
    SnapshotFilter, MAX_KEY_TRIES,
};
pub use restore::{ItemAction, OnItem, Overwrite, RestoreOptions, RestoreSummary};
pub use util::{Progress, ProgressReading};
