//! A backend opened with a key: the config, typed sealed files, snapshots, verification
//! records.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{write_content_addressed, Backend, FileType};
use crate::chunker::Chunker;
use crate::crypto::{KdfParams, KeyFile, Keys};
use crate::error::{Error, Result};
use crate::format::{self, ChunkerParams, Config, DecodeError, FileKind, FORMAT_VERSION};
use crate::id::Id;
use crate::util::{hostname, now_string, username};

mod files;
mod loaded;
mod open;
mod verifications;

pub use files::sort_snapshots;
pub(crate) use loaded::{refuse_damaged, warn_skipped};
pub use loaded::{Loaded, SnapshotFilter};
pub use open::load_key_file;
pub use verifications::{Freshness, LastVerified, Recorded, VerificationLog};

/// At most this many key files are tried with Argon2id when opening a repository (restic
/// tries 20 too): the hinted key comes first, so a host is never slowed by others' keys.
pub const MAX_KEY_TRIES: usize = 20;

/// How `Repository::open_with` finds the key file.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// A key file id (or prefix) to try first, as restic's `--key-hint`.
    pub key_hint: Option<String>,
    /// Where the name of the key file that last opened each repository is remembered (the
    /// cache's `key-hints/`); `None` remembers nothing.
    pub hint_dir: Option<std::path::PathBuf>,
}

/// Settings chosen at `init`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub pack_size: u32,
    pub kdf: KdfParams,
    /// The repository's append-only setting (see `Config::append_only`).
    pub append_only: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            pack_size: 16 << 20,
            kdf: KdfParams::default(),
            append_only: false,
        }
    }
}

/// Writes a key file wrapping `keys`' master key under `password`; returns its name.
fn write_key_file(
    be: &dyn Backend,
    keys: &Keys,
    password: &[u8],
    kdf: KdfParams,
    host: &str,
    user: &str,
) -> Result<Id> {
    let kf = KeyFile::create(keys, password, kdf, host, user, &now_string())?;
    let bytes = kf.encode();
    let id = Id::of_bytes(&bytes);
    write_content_addressed(be, FileType::Key, &id.to_hex(), &bytes)?;
    Ok(id)
}

/// Bytes of whole packs that reads in flight may hold at once (see `pack_width`).
const PACK_READ_BUDGET: u64 = 64 << 20;

/// An open repository.
#[derive(Clone)]
pub struct Repository {
    be: Arc<dyn Backend>,
    /// The backend without the repository's own append-only guard: settings are changed here.
    settings_be: Arc<dyn Backend>,
    keys: Keys,
    config: Config,
    chunker: Arc<Chunker>,
    tree_cache: Option<std::path::PathBuf>,
    /// Tree packs fetched whole into the tree cache by this process (see `pack::read_blob`).
    tree_packs: Arc<std::sync::Mutex<HashMap<Id, Arc<std::sync::OnceLock<bool>>>>>,
    /// Set once this process has fetched every tree pack the cache lacked (`pack::read_blob`).
    tree_prefetch: Arc<std::sync::OnceLock<()>>,
    /// Threads for many small requests at once on an object store (see `in_flight`).
    io_pool: Arc<std::sync::OnceLock<Option<rayon::ThreadPool>>>,
    /// The key file that opened (or, at init, created) this repository; `None` once this
    /// process removed it (`commands::key_remove` with `force`). Shared by clones: they are
    /// one session.
    current_key: Arc<std::sync::Mutex<Option<Id>>>,
    /// Where the name of the key file that opened the repository is remembered on this host
    /// (see `OpenOptions::hint_dir`), so a password change updates it.
    key_hint_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.be.location())
    }
}

fn decode_err(what: &'static str, id: impl ToString, e: DecodeError) -> Error {
    match e {
        DecodeError::Version(v) => Error::UnsupportedVersion {
            found: v,
            supported: FORMAT_VERSION,
        },
        DecodeError::Bad(reason) => Error::corrupt(what, id, reason),
    }
}

/// Fails with `Error::NotEmpty` naming what `be` holds under keys/, data/, index/ and
/// snapshots/: a repository whose config was lost (or a half-deleted one) is not a fresh start.
fn refuse_existing_objects(be: &dyn Backend) -> Result<()> {
    let mut found = Vec::new();
    let mut keys = false;
    for t in [
        FileType::Key,
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
    ] {
        let names = be.list(t)?;
        if let Some((first, _)) = names.first() {
            keys |= t == FileType::Key;
            found.push(format!(
                "{} object(s) in {}/ (e.g. {})",
                names.len(),
                t.dir(),
                crate::backend::object_path(t, first)
            ));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    if found.len() == 1 && keys {
        found[0].push_str(", which an interrupted init leaves behind: delete it to start over");
    }
    Err(Error::NotEmpty {
        location: be.location(),
        found: found.join(", "),
    })
}

impl Repository {
    /// Creates a repository; refuses when a `config` already exists, or when the location
    /// holds repository objects without one (`Error::NotEmpty`).
    pub fn init(be: Arc<dyn Backend>, password: &[u8], opts: InitOptions) -> Result<Repository> {
        let mut config = Config::new(opts.chunker, opts.pack_size);
        config.append_only = opts.append_only;
        config.validate().map_err(Error::Invalid)?;
        opts.kdf.check()?;
        match be.read(FileType::Config, "config") {
            Ok(_) => return Err(Error::RepoExists(be.location())),
            // cista does not create buckets: a missing one is named before anything else.
            Err(e) if e.is_not_found() => be.probe()?,
            Err(e) => return Err(e),
        }
        refuse_existing_objects(&*be)?;
        be.create()?;
        let keys = Keys::generate();
        let key = write_key_file(&*be, &keys, password, opts.kdf, &hostname(), &username())?;
        let repo = Repository::assemble(be, keys, config, key);
        let sealed = format::seal_file(&repo.keys, FileKind::Config, &repo.config.encode());
        match repo.be.write(FileType::Config, "config", &sealed) {
            Err(Error::Backend { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Err(Error::RepoExists(repo.be.location()))
            }
            r => r.map(|_| repo),
        }
    }

    fn assemble(be: Arc<dyn Backend>, keys: Keys, config: Config, key: Id) -> Repository {
        let chunker = Arc::new(Chunker::new(config.chunker, keys.chunker_key()));
        let settings_be = be.clone();
        let be: Arc<dyn Backend> = if config.append_only {
            Arc::new(crate::backend::AppendOnly(be))
        } else {
            be
        };
        Repository {
            settings_be,
            be,
            keys,
            config,
            chunker,
            tree_cache: None,
            tree_packs: Default::default(),
            tree_prefetch: Default::default(),
            io_pool: Default::default(),
            current_key: Arc::new(std::sync::Mutex::new(Some(key))),
            key_hint_file: None,
        }
    }

    /// Keeps index files, snapshots, key files and tree blobs in a local cache under
    /// `dir/<repository id>`, so that commands on a remote repository read them only once. A
    /// cache directory that cannot be written is warned about and not used: the command goes
    /// on reading everything from the repository.
    pub fn with_cache(mut self, dir: &std::path::Path) -> Repository {
        let d = dir.join(self.config.id.to_hex());
        if let Err(e) = crate::backend::prepare_repo_cache(&d) {
            tracing::warn!(
                "cache directory {} cannot be written ({e}): going on without a cache",
                d.display()
            );
            return self;
        }
        self.be = Arc::new(crate::backend::CacheBackend::new(
            self.be.clone(),
            d.clone(),
        ));
        // Tree packs, whole, as stored: a cold walk fills the cache with one file per pack,
        // not one per tree (thousands of small files cost more to create than to fetch).
        // `trees/`, one file per tree, is how earlier versions cached them.
        let _ = std::fs::remove_dir_all(d.join("trees"));
        self.tree_cache = Some(d.join("packs"));
        self
    }

    /// Runs `f`, whose parallel iterators each wait on one small request (index files,
    /// snapshots, deletes), with 2 x `connections` requests in flight on an object store
    /// instead of one per core: a store answers after a round trip, so a repository with
    /// hundreds of snapshots would otherwise load them two at a time. Local disk runs `f` as
    /// it is.
    pub(crate) fn in_flight<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.io_pool() {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// Starts `f` on the threads `in_flight` uses, without waiting for it; false (and `f` not
    /// run) on local disk, where a read is cheapest done by the thread that needs it.
    pub(crate) fn spawn_io(&self, f: impl FnOnce() + Send + 'static) -> bool {
        match self.io_pool() {
            Some(p) => {
                p.spawn(f);
                true
            }
            None => false,
        }
    }

    fn io_pool(&self) -> Option<&rayon::ThreadPool> {
        self.io_pool
            .get_or_init(|| {
                let n = self.be.connections();
                (n > 0)
                    .then(|| {
                        rayon::ThreadPoolBuilder::new()
                            .num_threads((2 * n).max(rayon::current_num_threads()))
                            .thread_name(|i| format!("cista-fetch-{i}"))
                            .build()
                            .ok()
                    })
                    .flatten()
            })
            .as_ref()
    }

    /// How many whole-object reads to keep in flight: 2 x `connections` on an object store
    /// (as `in_flight`), 0 on local disk, where a read costs no round trip and callers read
    /// on the cores that use the bytes.
    pub(crate) fn io_width(&self) -> usize {
        2 * self.be.connections()
    }

    /// `io_width` for reads of whole packs, bounded to `PACK_READ_BUDGET` bytes of packs
    /// held at once (but at least two, so one is on the wire while one is used): 4 packs of
    /// the default 16 MiB, where 2 x `connections` would hold 128 MiB.
    pub(crate) fn pack_width(&self) -> usize {
        let fit = (PACK_READ_BUDGET / self.config.pack_size.max(1) as u64).max(2) as usize;
        self.io_width().min(fit)
    }

    /// The once-per-process slot for fetching tree pack `pack` whole.
    pub(crate) fn tree_pack_fetch(&self, pack: &Id) -> Arc<std::sync::OnceLock<bool>> {
        self.tree_packs
            .lock()
            .unwrap()
            .entry(*pack)
            .or_default()
            .clone()
    }

    /// The once-per-process slot for fetching every tree pack the cache lacks.
    pub(crate) fn tree_prefetch(&self) -> &std::sync::OnceLock<()> {
        &self.tree_prefetch
    }

    /// Where tree blobs are cached, if anywhere.
    pub fn tree_cache(&self) -> Option<&std::path::Path> {
        self.tree_cache.as_deref()
    }

    /// Adds a key file wrapping this repository's master key under `password`, recording
    /// this host and user.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<Id> {
        self.add_key_as(password, kdf, &hostname(), &username())
    }

    /// Adds a key file wrapping this repository's master key under `password`, recording
    /// `host` and `user` as its creator (informational, as restic's `key add --host --user`).
    pub fn add_key_as(
        &self,
        password: &[u8],
        kdf: KdfParams,
        host: &str,
        user: &str,
    ) -> Result<Id> {
        write_key_file(&*self.be, &self.keys, password, kdf, host, user)
    }

    /// The key file that opened this repository (at init: the one init wrote); `None` once
    /// this process removed it.
    pub fn current_key(&self) -> Option<Id> {
        *self.current_key.lock().unwrap()
    }

    /// The key file this host last opened the repository with, and when (from the key
    /// hint; `None` without a cache directory).
    pub(crate) fn key_last_used_here(&self) -> Option<(Id, std::time::SystemTime)> {
        let p = self.key_hint_file.as_ref()?;
        let id = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
        Some((id, std::fs::metadata(p).ok()?.modified().ok()?))
    }

    /// Records `key` as the key file in use (after a password change, or `None` after its
    /// removal), and remembers it as this host's key hint when the repository was opened
    /// with one.
    pub(crate) fn set_current_key(&self, key: Option<Id>) {
        *self.current_key.lock().unwrap() = key;
        if let Some(p) = &self.key_hint_file {
            match key {
                Some(k) => crate::backend::cache_put_file(p, k.to_hex().as_bytes()),
                None => {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }

    /// `Error::AppendOnly` when the repository's setting forbids deleting or rewriting
    /// snapshots and data (forget, prune, tag).
    pub fn refuse_if_append_only(&self) -> Result<()> {
        if self.config.append_only {
            return Err(Error::AppendOnly);
        }
        Ok(())
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.be
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Turns the repository's append-only setting on or off by replacing the config (refused
    /// when the backend itself is append-only, as with `--append-only`). Takes effect for
    /// every client that opens the repository afterwards.
    pub fn set_append_only(&mut self, on: bool) -> Result<()> {
        let mut c = self.config.clone();
        c.append_only = on;
        let sealed = format::seal_file(&self.keys, FileKind::Config, &c.encode());
        self.settings_be.replace_config(&sealed)?;
        self.config = c;
        Ok(())
    }

    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }
}
