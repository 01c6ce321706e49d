//! cista: a content-addressed, deduplicating, encrypted backup engine.
//!
//! Data flows one way. Backup: source walk → [`chunker`] → [`backup`] (dedup against the
//! [`index`]) → [`pack`] → [`backend`]. Restore: snapshot → [`tree`] → [`index`] → [`pack`] reader
//! → [`restore`] → destination. Lower modules never use higher ones; the backend never sees
//! keys or plaintext. `docs/format.md` describes every stored byte.
//!
//! ```
//! use std::sync::Arc;
//! use cista::{backend::LocalBackend, backup, index::Index, restore, Repository};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let src = dir.path().join("src");
//! std::fs::create_dir(&src).unwrap();
//! std::fs::write(src.join("hello.txt"), b"hello, world").unwrap();
//!
//! let be = Arc::new(LocalBackend::new(dir.path().join("repo")));
//! let repo = Repository::init(be, b"secret", Default::default()).unwrap();
//! let index = Index::load(&repo).unwrap();
//! let opts = backup::BackupOptions::default();
//! let res = backup::backup(&repo, &index, backup::Source::Paths(vec![src.clone()]), &opts, None).unwrap();
//!
//! let index = Index::load(&repo).unwrap();
//! let target = dir.path().join("restore");
//! let ropts = restore::RestoreOptions { target: target.clone(), ..Default::default() };
//! let sum = restore::restore(&repo, &index, &res.snapshot, "", &ropts).unwrap();
//! assert!(sum.errors.is_empty());
//! let restored = target.join(src.strip_prefix("/").unwrap()).join("hello.txt");
//! assert_eq!(std::fs::read(restored).unwrap(), b"hello, world");
//! ```

mod ahead;
pub mod backend;
pub mod backup;
pub mod check;
pub mod chunker;
pub mod commands;
pub mod compress;
pub mod crypto;
pub mod error;
pub mod forget;
pub mod format;
pub mod id;
pub mod index;
pub mod lock;
pub mod pack;
pub mod problem;
pub mod prune;
pub mod repository;
pub mod restore;
pub mod tree;
pub mod util;

pub use error::{Error, Result};
pub use id::Id;
pub use problem::{ObjectKind, ObjectRef, Problem, ProblemKind};
pub use repository::{InitOptions, Loaded, OpenOptions, Repository, SnapshotFilter};
