//! Opening what a command works on: the store at a location (with its request counter, rate
//! limits and append-only guard) and the repository in it (key hint, local cache).

use std::path::PathBuf;
use std::sync::Arc;

use crate::backend::{self, AppendOnly, Backend, Counting, Limited, RequestStats};
use crate::error::Result;
use crate::repository::{OpenOptions, Repository};

/// Where the repository is and how to reach it.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// A path, `local:PATH`, `file:///PATH`, `s3://…`, `gs://…` or `az://…`.
    pub location: String,
    /// Object store settings as key/value pairs (object_store's key names).
    pub options: Vec<(String, String)>,
    /// Upload and download limits in KiB per second.
    pub limit_upload: Option<u64>,
    pub limit_download: Option<u64>,
    /// Delete nothing but this process's own locks (a host with put-only rights).
    pub append_only: bool,
}

impl StoreOptions {
    pub fn new(location: impl Into<String>) -> StoreOptions {
        StoreOptions {
            location: location.into(),
            ..Default::default()
        }
    }
}

/// An opened store, and what it has been asked so far.
#[derive(Clone)]
pub struct Store {
    pub backend: Arc<dyn Backend>,
    /// Requests and bytes by kind, counted below any cache (what reached the store).
    pub requests: Arc<RequestStats>,
    /// The location without credentials, for messages.
    pub location: String,
    /// An object store (a network away), not local disk.
    pub remote: bool,
}

/// Opens the store `opts` name, counting its requests.
pub fn open_store(opts: &StoreOptions) -> Result<Store> {
    let counting = Counting::new(backend::open_location(&opts.location, &opts.options)?);
    let requests = counting.stats();
    let location = counting.location();
    let remote = counting.connections() > 0;
    let mut be: Arc<dyn Backend> = Arc::new(counting);
    if opts.limit_upload.is_some() || opts.limit_download.is_some() {
        be = Arc::new(Limited::new(be, opts.limit_upload, opts.limit_download));
    }
    if opts.append_only {
        be = Arc::new(AppendOnly(be));
    }
    Ok(Store {
        backend: be,
        requests,
        location,
        remote,
    })
}

/// How to open the repository in a store.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RepositoryOptions {
    /// A key file id (or prefix) to try first.
    pub key_hint: Option<String>,
    /// The directory of every repository's cache (`None`: no cache, no remembered key).
    pub cache_dir: Option<PathBuf>,
}

/// Opens the repository in `store` with `password`. An object store gets a local cache of
/// index files, snapshots and trees under `opts.cache_dir`; local disk reads as fast as a
/// cache would, so it gets none.
pub fn open_repository(
    store: &Store,
    password: &[u8],
    opts: &RepositoryOptions,
) -> Result<Repository> {
    let o = OpenOptions {
        key_hint: opts.key_hint.clone(),
        hint_dir: opts.cache_dir.as_ref().map(|d| d.join("key-hints")),
    };
    let repo = Repository::open_with(store.backend.clone(), password, &o)?;
    Ok(match &opts.cache_dir {
        Some(dir) if store.remote => repo.with_cache(dir),
        _ => repo,
    })
}
