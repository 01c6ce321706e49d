//! The library's one error type. Every variant carries enough context (object id, path, operation)
//! for an operator to find the damaged object or the unreadable file without a debugger.

use std::path::PathBuf;

/// Errors returned by the cista library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repository (no `config` object) at the given location.
    #[error("repository does not exist at {0}")]
    RepoNotFound(String),

    /// The bucket or container of an object-store location does not exist.
    #[error("bucket {container} does not exist (repository location {location}); cista does not create buckets: create it first")]
    ContainerNotFound { container: String, location: String },

    /// `init` found an existing repository.
    #[error("repository already exists at {0}")]
    RepoExists(String),

    /// `init` found objects of a repository (keys, packs, index files, snapshots) but no
    /// `config`: a new master key there would make the existing snapshots unreadable.
    #[error("refusing to create a repository at {location}: it already holds {found} but no config; \
             a new repository there would make them unreadable (restore the config, or choose an empty location)")]
    NotEmpty { location: String, found: String },

    /// No key file could be opened with the given password.
    #[error("wrong password: no key file of the repository opens with it")]
    WrongPassword,

    /// Another process holds a conflicting lock.
    #[error("repository is locked: {0}")]
    Locked(String),

    /// The repository was written by a format version this build does not read.
    #[error("repository format version {found} is not supported (this cista reads version {supported}); upgrade cista")]
    UnsupportedVersion { found: u32, supported: u32 },

    /// An object failed an integrity check: wrong storage hash, failed authentication, bad
    /// encoding, wrong keyed id. Integrity failures never degrade into wrong data.
    #[error("{what} {id} is damaged: {reason}")]
    Corrupt {
        what: &'static str,
        id: String,
        reason: String,
    },

    /// A command that must see every object of a kind (prune, forget) found one that fails
    /// verification; `remedy` says what to do.
    #[error("{what} {id} cannot be read ({reason}); {remedy}")]
    Unreadable {
        what: &'static str,
        id: String,
        reason: String,
        remedy: &'static str,
    },

    /// A referenced object does not exist.
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },

    /// The storage backend failed.
    #[error("storage: {op} {path}: {source}")]
    Backend {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A local file or directory could not be read or written.
    #[error("{path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The caller asked for something impossible (bad option, ambiguous id, bad pattern).
    #[error("{0}")]
    Invalid(String),

    /// The repository setting `append_only` forbids what deletes or rewrites snapshots, data or
    /// keys.
    #[error("the repository is append-only (its setting): this command deletes or rewrites snapshots, data or keys; `cista config append-only off` lifts the setting")]
    AppendOnly,

    /// forget's safety rule: a policy that keeps nothing of a group removes nothing at all.
    #[error(
        "refusing to remove all {count} snapshots of {group}: no --keep rule matched any of them \
             (check the options for typos, or pass --unsafe-allow-remove-all); nothing was removed"
    )]
    RemovesAll { count: usize, group: String },

    /// `key remove` refused: the key file is the repository's last usable one, without
    /// which nothing could open the repository again.
    #[error("refusing to remove key {id}: it is the repository's last usable key file, and without it the repository cannot be opened; add another key first")]
    LastKey { id: String },

    /// `key remove` refused: the key file is the one that opened this repository.
    #[error("refusing to remove key {id}: it is the key in use (the one that opened the repository); open the repository with another key, or pass --force to remove it anyway")]
    KeyInUse { id: String },

    /// A command the user ran for us (password command, stdin command) failed.
    #[error("{0}")]
    Command(String),

    /// A profile file (`cista run`) that cannot be read or does not say a valid job; the
    /// message names the setting to blame (`profiles.nightly.retention.keep-daily`).
    #[error("profile file {}: {message}", file.display())]
    Profile { file: PathBuf, message: String },

    /// The lock could not be kept fresh; the operation stopped before writing anything that
    /// depends on it.
    #[error("lock lost: {0}")]
    LockLost(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(what: &'static str, id: impl ToString, reason: impl ToString) -> Self {
        Error::Corrupt {
            what,
            id: id.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error means a stored object failed verification.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::Unreadable { .. } | Error::UnsupportedVersion { .. }
        )
    }

    /// True when the backend reported that an object does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Backend { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}
