//! A backend opened with a key: the config, typed sealed files, snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::backend::{write_content_addressed, Backend, FileType};
use crate::chunker::Chunker;
use crate::crypto::{KdfParams, KeyFile, Keys};
use crate::error::{Error, Result};
use crate::format::{self, ChunkerParams, Config, DecodeError, FileKind, Snapshot, FORMAT_VERSION};
use crate::id::{Id, SnapshotId};
use crate::util::{hostname, now_string, username};

/// At most this many key files are tried with Argon2id when opening a repository (restic
/// tries 20 too): the hinted key comes first, so a host is never slowed by others' keys.
pub const MAX_KEY_TRIES: usize = 20;

/// How `Repository::open_with` finds the key file.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// A key file id (or prefix) to try first, as restic's `--key-hint`.
    pub key_hint: Option<String>,
    /// Where the name of the key file that last opened each repository is remembered (the
    /// cache's `key-hints/`); `None` remembers nothing.
    pub hint_dir: Option<std::path::PathBuf>,
}

/// Settings chosen at `init`.
#[derive(Clone, Debug)]
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
        let repo = Repository::assemble(be, keys, config);
        repo.add_key(password, opts.kdf)?;
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

    fn assemble(be: Arc<dyn Backend>, keys: Keys, config: Config) -> Repository {
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

    /// Opens a repository with a password.
    pub fn open(be: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        Self::open_with(be, password, &OpenOptions::default())
    }

    /// Opens a repository, trying first the key file `opts.key_hint` names, else the one that
    /// opened it last on this host (recorded under `opts.hint_dir`, one small file per
    /// repository location, written after a successful open). A hint is only an order: a wrong
    /// or stale one costs nothing but the usual search, so planted key files cannot slow a
    /// host that has opened the repository before.
    pub fn open_with(
        be: Arc<dyn Backend>,
        password: &[u8],
        opts: &OpenOptions,
    ) -> Result<Repository> {
        let hint_file = opts
            .hint_dir
            .as_ref()
            .map(|d| d.join(Id::of_bytes(be.location().as_bytes()).to_hex()));
        let remembered = hint_file
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string());
        let hint = opts.key_hint.clone().or_else(|| remembered.clone());
        // A full key file name (the usual remembered hint) is fetched beside the config, and
        // keys/ is listed only if it does not open: a warm open costs one round trip, not three.
        let first = hint
            .as_deref()
            .filter(|h| crate::backend::is_object_name(h));
        let (raw, prefetched) = std::thread::scope(|s| {
            let key = first.map(|h| s.spawn(|| (h.to_string(), load_key_file(&*be, h))));
            let raw = be.read(FileType::Config, "config");
            (raw, key.map(|k| k.join().expect("key file fetch panicked")))
        });
        let raw = match raw {
            Ok(r) => r,
            Err(e) if e.is_not_found() => {
                be.probe()?;
                return Err(Error::RepoNotFound(be.location()));
            }
            Err(e) => return Err(e),
        };
        match format::peek_version(FileKind::Config, &raw) {
            Ok(FORMAT_VERSION) => {}
            Ok(v) => {
                return Err(Error::UnsupportedVersion {
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Err(e) => return Err(decode_err("config", "config", e)),
        }
        let given = opts.key_hint.is_some();
        let (repo, key) = Self::unlock(be, password, &raw, hint.as_deref(), given, prefetched)?;
        if let Some(p) = hint_file {
            if remembered.as_deref() != Some(key.as_str()) {
                crate::backend::cache_put_file(&p, key.as_bytes());
            }
        }
        Ok(repo)
    }

    /// Tries the key files, the hinted one first, running Argon2id for at most
    /// `MAX_KEY_TRIES` of them (each may cost up to the KDF ceiling, so junk key files must
    /// not multiply it without bound). A key file that opens with the password but whose
    /// master key does not open the config (left by an interrupted `init`, say) is passed
    /// over, as is one that cannot be read or has out-of-range parameters; when no key works,
    /// a damaged key file is reported rather than a wrong password, since the right key may be
    /// the damaged one. Returns the repository and the name of the key file that opened it.
    /// `prefetched` is the hinted key file read beside the config; when it opens the
    /// repository, keys/ is not listed. A hint the user gave (`hint_given`) that matches no
    /// key file is warned about; a remembered one that went stale is not.
    fn unlock(
        be: Arc<dyn Backend>,
        password: &[u8],
        config_raw: &[u8],
        hint: Option<&str>,
        hint_given: bool,
        prefetched: Option<(String, Result<KeyFile>)>,
    ) -> Result<(Repository, String)> {
        let mut damaged = None;
        let mut config_err = None;
        let mut tries = 0;
        let mut tried = None;
        if let Some((name, Ok(kf))) = prefetched {
            if kf.params.check().is_ok() {
                tries += 1;
                match try_key(&kf, password, config_raw) {
                    KeyTry::Opened(k) => {
                        let (keys, config) = *k;
                        return Ok((Repository::assemble(be, keys, config), name));
                    }
                    KeyTry::NotThisKey => {}
                    KeyTry::Damaged(e) => {
                        damaged.get_or_insert(e);
                    }
                    KeyTry::ConfigFailed(e) => {
                        config_err.get_or_insert(e);
                    }
                }
                tried = Some(name);
            }
        }
        let mut names: Vec<String> = be.list(FileType::Key)?.into_iter().map(|n| n.0).collect();
        if names.is_empty() {
            return Err(Error::corrupt(
                "repository",
                be.location(),
                "it has no key files",
            ));
        }
        if let Some(h) = hint {
            let h = h.to_ascii_lowercase();
            match names.iter().position(|n| n.starts_with(&h)) {
                Some(i) => {
                    let n = names.remove(i);
                    names.insert(0, n);
                }
                // A remembered hint goes stale when the repository is made anew.
                None if hint_given => tracing::warn!("no key file matches the key hint {h}"),
                None => tracing::debug!("no key file matches the remembered key {h}"),
            }
        }
        for name in &names {
            if tried.as_ref() == Some(name) {
                continue; // opened above with the same password: no second Argon2id run
            }
            let checked = load_key_file(&*be, name).and_then(|kf| {
                kf.params
                    .check()
                    .map_err(|e| Error::corrupt("key file", name, e))?;
                Ok(kf)
            });
            let kf = match checked {
                Ok(kf) => kf,
                Err(e) => {
                    damaged.get_or_insert(e);
                    continue;
                }
            };
            if tries == MAX_KEY_TRIES {
                tracing::warn!(
                    "stopped after trying {MAX_KEY_TRIES} of {} key files",
                    names.len()
                );
                break;
            }
            tries += 1;
            match try_key(&kf, password, config_raw) {
                KeyTry::Opened(k) => {
                    let (keys, config) = *k;
                    return Ok((Repository::assemble(be, keys, config), name.clone()));
                }
                KeyTry::NotThisKey => {}
                KeyTry::Damaged(e) => {
                    damaged.get_or_insert(e);
                }
                KeyTry::ConfigFailed(e) => {
                    config_err.get_or_insert(e);
                }
            }
        }
        Err(config_err.or(damaged).unwrap_or(Error::WrongPassword))
    }

    /// Adds a key file wrapping this repository's master key under `password`.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<Id> {
        let kf = KeyFile::create(
            &self.keys,
            password,
            kdf,
            &hostname(),
            &username(),
            &now_string(),
        )?;
        let bytes = kf.encode();
        let id = Id::of_bytes(&bytes);
        write_content_addressed(&*self.be, FileType::Key, &id.to_hex(), &bytes)?;
        Ok(id)
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

    /// Seals and stores a file of `kind`; returns its id (the BLAKE3 of the stored bytes).
    pub fn save_file(&self, kind: FileKind, t: FileType, raw: &[u8]) -> Result<Id> {
        let sealed = format::seal_file(&self.keys, kind, raw);
        let id = Id::of_bytes(&sealed);
        write_content_addressed(&*self.be, t, &id.to_hex(), &sealed)?;
        Ok(id)
    }

    /// Reads a stored file, checks its storage hash, and opens it.
    pub fn load_file(&self, kind: FileKind, t: FileType, id: &Id) -> Result<Vec<u8>> {
        let bytes = self.be.read(t, &id.to_hex()).map_err(|e| {
            if e.is_not_found() {
                Error::NotFound {
                    what: kind.name(),
                    id: id.to_hex(),
                }
            } else {
                e
            }
        })?;
        if Id::of_bytes(&bytes) != *id {
            return Err(Error::corrupt(
                kind.name(),
                id,
                "stored bytes do not hash to the file name",
            ));
        }
        format::open_file(&self.keys, kind, &bytes).map_err(|e| decode_err(kind.name(), id, e))
    }

    /// Ids of all stored objects of a type.
    pub fn list_ids(&self, t: FileType) -> Result<Vec<Id>> {
        Ok(self
            .be
            .list(t)?
            .into_iter()
            .filter_map(|(n, _)| n.parse().ok())
            .collect())
    }

    /// Every stored pack with its size.
    pub fn pack_sizes(&self) -> Result<std::collections::HashMap<Id, u64>> {
        Ok(self
            .be
            .list(FileType::Pack)?
            .into_iter()
            .filter_map(|(n, s)| Some((n.parse().ok()?, s)))
            .collect())
    }

    pub fn save_snapshot(&self, s: &Snapshot) -> Result<SnapshotId> {
        self.save_file(FileKind::Snapshot, FileType::Snapshot, &s.encode())
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let raw = self.load_file(FileKind::Snapshot, FileType::Snapshot, id)?;
        Snapshot::decode(&raw).map_err(|e| decode_err("snapshot", id, e))
    }

    /// Every snapshot that opens, oldest first. A snapshot file that fails verification is
    /// left out with a warning naming it: anyone with put rights (an append-only client, say)
    /// can store junk under a valid-looking name, and that must not stop every other host's
    /// backups and restores. Commands that must see every snapshot (prune, forget) use
    /// `all_snapshots`, and `check` reports the damage.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let loaded = self.all_snapshots()?;
        for (id, e) in &loaded.damaged {
            warn_skipped("snapshot", id, e);
        }
        Ok(loaded.ok)
    }

    /// Every snapshot, oldest first, and apart from them those that failed verification. A
    /// snapshot deleted between the listing and the read (by a concurrent forget) is left out;
    /// any other read error fails the call, since a snapshot that is merely unreachable is not
    /// damaged.
    pub fn all_snapshots(&self) -> Result<Loaded<Snapshot>> {
        let ids = self.list_ids(FileType::Snapshot)?;
        let got: Vec<(SnapshotId, Result<Snapshot>)> = self.in_flight(|| {
            ids.par_iter()
                .map(|id| (*id, self.load_snapshot(id)))
                .collect()
        });
        let mut loaded = Loaded::sort_out(got)?;
        sort_snapshots(&mut loaded.ok);
        Ok(loaded)
    }

    /// Resolves a unique id prefix of a stored object.
    pub fn find_id(&self, t: FileType, prefix: &str) -> Result<Id> {
        if let Ok(id) = prefix.parse::<Id>() {
            return Ok(id);
        }
        let p = prefix.to_ascii_lowercase();
        let matches: Vec<Id> = self
            .list_ids(t)?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&p))
            .collect();
        match matches.len() {
            1 => Ok(matches[0]),
            0 => Err(Error::NotFound {
                what: t.name(),
                id: prefix.to_string(),
            }),
            n => Err(Error::Invalid(format!(
                "{} prefix {prefix:?} is ambiguous: {n} match",
                t.name()
            ))),
        }
    }

    /// Resolves `latest`, an id or a unique prefix, honouring `filter` for `latest`.
    pub fn resolve_snapshot(
        &self,
        spec: &str,
        filter: &SnapshotFilter,
    ) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            let all = self.snapshots()?;
            return all
                .into_iter()
                .rev()
                .find(|(_, s)| filter.matches(s))
                .ok_or_else(|| Error::NotFound {
                    what: "snapshot",
                    id: "latest (matching the filters)".into(),
                });
        }
        let id = self.find_id(FileType::Snapshot, spec)?;
        Ok((id, self.load_snapshot(&id)?))
    }
}

impl Repository {
    /// Deletes snapshots (`forget`), `check` called before each delete (the caller's lock
    /// still held). On an object store 2 x `connections` deletes are in flight at once, as
    /// prune's: forgetting a year of daily snapshots one round trip at a time takes long. The
    /// first error is returned; deletes already started complete, and a snapshot left behind
    /// is forgotten again by the next run.
    pub fn remove_snapshots(
        &self,
        ids: &[SnapshotId],
        check: impl Fn() -> Result<()> + Sync,
    ) -> Result<()> {
        self.in_flight(|| {
            ids.par_iter().try_for_each(|id| {
                check()?;
                self.be.remove(FileType::Snapshot, &id.to_hex())
            })
        })
    }

    /// Rewrites a snapshot's tags: the new snapshot is written first (recording the id it
    /// replaces), then the old one deleted. Returns the new id, or `None` when nothing changed.
    pub fn change_tags(
        &self,
        id: &SnapshotId,
        add: &[String],
        remove: &[String],
        set: Option<&[String]>,
    ) -> Result<Option<SnapshotId>> {
        let old = self.load_snapshot(id)?;
        let mut s = old.clone();
        if let Some(set) = set {
            s.tags = set.to_vec();
        }
        s.tags.retain(|t| !remove.contains(t));
        s.tags.extend(add.iter().cloned());
        s.tags.sort();
        s.tags.dedup();
        if s.tags == old.tags {
            return Ok(None);
        }
        s.original = Some(old.original.unwrap_or(*id));
        let new = self.save_snapshot(&s)?;
        self.be.remove(FileType::Snapshot, &id.to_hex())?;
        Ok(Some(new))
    }
}

/// The objects of one kind that opened, and those that failed verification (with why).
#[derive(Debug, Default)]
pub struct Loaded<T> {
    pub ok: Vec<(Id, T)>,
    pub damaged: Vec<(Id, Error)>,
}

impl<T> Loaded<T> {
    /// Sorts read results into opened and damaged; objects gone since the listing are
    /// dropped, and any other error (storage, I/O) is returned.
    pub(crate) fn sort_out(got: Vec<(Id, Result<T>)>) -> Result<Loaded<T>> {
        let mut out = Loaded {
            ok: Vec::with_capacity(got.len()),
            damaged: Vec::new(),
        };
        for (id, r) in got {
            match r {
                Ok(v) => out.ok.push((id, v)),
                Err(e) if e.is_not_found() => {}
                Err(e) if e.is_integrity() => out.damaged.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Fails on the first damaged object, with what to do about it: for commands that would
    /// delete data on a partial view of the repository.
    pub fn require_all(self, what: &'static str, remedy: &'static str) -> Result<Vec<(Id, T)>> {
        refuse_damaged(self.damaged, what, remedy)?;
        Ok(self.ok)
    }
}

/// `Error::Unreadable` for the first of `damaged`, with `remedy`; `Ok` when there is none.
pub(crate) fn refuse_damaged(
    damaged: Vec<(Id, Error)>,
    what: &'static str,
    remedy: &'static str,
) -> Result<()> {
    match damaged.into_iter().next() {
        None => Ok(()),
        Some((id, e)) => Err(Error::Unreadable {
            what,
            id: id.to_hex(),
            reason: e.to_string(),
            remedy,
        }),
    }
}

/// Warns once per process about an object a command skips.
pub(crate) fn warn_skipped(what: &str, id: &Id, e: &Error) {
    static WARNED: std::sync::Mutex<Vec<Id>> = std::sync::Mutex::new(Vec::new());
    let mut w = WARNED.lock().unwrap();
    if !w.contains(id) {
        w.push(*id);
        tracing::warn!("skipping {what} {id}: {e} (`cista check` reports it)");
    }
}

/// Oldest first; ties broken by id so the order is stable.
pub fn sort_snapshots(v: &mut [(SnapshotId, Snapshot)]) {
    v.sort_by_cached_key(|(id, s)| (s.timestamp().unwrap_or_default(), *id));
}

/// Reads a key file and checks its storage hash.
/// Opens key file `kf` with `password`, then the config with its master key.
fn try_key(kf: &KeyFile, password: &[u8], config_raw: &[u8]) -> KeyTry {
    let keys = match kf.open(password) {
        Ok(Some(k)) => k,
        Ok(None) => return KeyTry::NotThisKey,
        Err(e) => return KeyTry::Damaged(e),
    };
    match format::open_file(&keys, FileKind::Config, config_raw)
        .and_then(|plain| Config::decode(&plain))
    {
        Ok(config) => KeyTry::Opened(Box::new((keys, config))),
        Err(e) => KeyTry::ConfigFailed(decode_err("config", "config", e)),
    }
}

enum KeyTry {
    Opened(Box<(Keys, Config)>),
    NotThisKey,
    Damaged(Error),
    ConfigFailed(Error),
}

pub fn load_key_file(be: &dyn Backend, name: &str) -> Result<KeyFile> {
    let bytes = be.read(FileType::Key, name)?;
    if Id::of_bytes(&bytes).to_hex() != name {
        return Err(Error::corrupt(
            "key file",
            name,
            "stored bytes do not hash to the file name",
        ));
    }
    KeyFile::decode(&bytes).map_err(|e| Error::corrupt("key file", name, e))
}

/// Which snapshots a command considers: restic's `--host`, `--tag`, `--path`.
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    /// Any of these hosts (empty: any host).
    pub hosts: Vec<String>,
    /// Any of these tag lists; a list `a,b` needs both tags.
    pub tags: Vec<String>,
    /// Snapshots whose paths include all of these.
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// No host, tag or path given: every snapshot matches.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty()
                || self
                    .tags
                    .iter()
                    .any(|list| crate::util::tag_list(list).all(|t| s.tags.iter().any(|x| x == t))))
            && self.paths.iter().all(|p| s.paths.contains(p))
    }
}
