//! A local cache of the small, immutable objects every command reads: index files, snapshots,
//! key files and verification records. Entries are the sealed bytes as stored, named as in the repository, checked
//! against their name (the BLAKE3 of their bytes) on every read, and written through a
//! temporary file and rename; a damaged or missing entry is fetched again. The cache may be
//! deleted at any time. Tree blobs are cached by the repository layer (`Repository::with_cache`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Backend, FileType};
use crate::error::Result;
use crate::id::Id;

#[derive(Debug)]
pub struct CacheBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
}

fn cached(t: FileType) -> bool {
    matches!(
        t,
        FileType::Index | FileType::Snapshot | FileType::Key | FileType::Verification
    )
}

/// Creates `dir` and its missing parents private to this user (0700): the cache holds only
/// sealed bytes, but which objects a user has, and their sizes, are nobody else's business.
pub(crate) fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Makes the cache directory of one repository ready: created private, or tightened to 0700
/// when an older cista made it with the umask's mode (only a directory named by repository id
/// is changed: the base, `CISTA_CACHE_DIR` say, may be the operator's own), then proved
/// writable with a scratch file, so a cache that cannot be written is known up front.
pub(crate) fn prepare_repo_cache(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match fs::metadata(dir) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?
        }
        Ok(_) => {}
        Err(_) => make_private_dir(dir)?,
    }
    let probe = dir.join(format!(
        ".probe-{}",
        hex::encode(crate::crypto::random_bytes::<8>())
    ));
    fs::File::create(&probe)?;
    fs::remove_file(&probe)
}

/// Stores `data` under `path` atomically, readable by this user only (0600); failures only
/// cost a later re-fetch.
pub(crate) fn put_file(path: &Path, data: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(dir) = path.parent() else { return };
    if make_private_dir(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".tmp-{}",
        hex::encode(crate::crypto::random_bytes::<8>())
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data));
    if written.is_ok() && fs::rename(&tmp, path).is_ok() {
        return;
    }
    let _ = fs::remove_file(&tmp);
}

impl CacheBackend {
    /// Caches `inner`'s objects under `dir` (one directory per repository).
    pub fn new(inner: Arc<dyn Backend>, dir: PathBuf) -> CacheBackend {
        CacheBackend { inner, dir }
    }

    fn path(&self, t: FileType, name: &str) -> PathBuf {
        self.dir.join(t.dir()).join(name)
    }
}

impl Backend for CacheBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn probe(&self) -> Result<()> {
        self.inner.probe()
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        if !cached(t) {
            return self.inner.read(t, name);
        }
        let p = self.path(t, name);
        if let Ok(b) = super::read_local_object(&p, t, name) {
            if Id::of_bytes(&b).to_hex() == name {
                return Ok(b);
            }
            let _ = fs::remove_file(&p);
        }
        let b = self.inner.read(t, name)?;
        if Id::of_bytes(&b).to_hex() == name {
            put_file(&p, &b);
        }
        Ok(b)
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.inner.read_range(t, name, offset, length)
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(t, name, data)?;
        if cached(t) {
            put_file(&self.path(t, name), data);
        }
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let l = self.inner.list(t)?;
        if cached(t) {
            // Drop entries the repository no longer has (deleted by prune or forget).
            if let Ok(rd) = fs::read_dir(self.dir.join(t.dir())) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if !l.iter().any(|(x, _)| *x == n) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        Ok(l)
    }

    fn replace_config(&self, data: &[u8]) -> Result<()> {
        self.inner.replace_config(data)
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.inner.remove(t, name)?;
        if cached(t) {
            let _ = fs::remove_file(self.path(t, name));
        }
        Ok(())
    }

    fn retention(&self, t: FileType, name: &str) -> Result<Option<super::Retention>> {
        self.inner.retention(t, name)
    }
    fn connections(&self) -> usize {
        self.inner.connections()
    }
}

/// The default cache directory: `CISTA_CACHE_DIR`, else `$XDG_CACHE_HOME/cista`, else
/// `~/.cache/cista`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CISTA_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("cista"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("cista"))
}

/// One repository's directory in a cache base directory.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CacheDir {
    /// The repository id (the directory's name).
    pub id: String,
    pub path: PathBuf,
    /// When a command last used it (the directory's mtime: opening a repository writes and
    /// removes a scratch file there).
    #[serde(serialize_with = "serialize_time")]
    pub last_used: std::time::SystemTime,
    /// Bytes of the files below it; `None` when not asked for.
    pub size: Option<u64>,
}

fn serialize_time<S: serde::Serializer>(
    t: &std::time::SystemTime,
    s: S,
) -> Result<S::Ok, S::Error> {
    let ts = jiff::Timestamp::try_from(*t).map_err(serde::ser::Error::custom)?;
    s.serialize_str(&ts.to_string())
}

impl CacheDir {
    /// How long ago it was last used (zero for a time in the future).
    pub fn age(&self) -> std::time::Duration {
        self.last_used.elapsed().unwrap_or_default()
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The repository caches under `base` (directories named by a repository id), oldest use
/// first; with `sizes`, each one's size too. A missing base has none.
pub fn list_caches(base: &Path, sizes: bool) -> Result<Vec<CacheDir>> {
    let rd = match fs::read_dir(base) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::Error::io("list cache directory", base, e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(m) = e.metadata() else { continue };
        if !m.is_dir() || !super::is_object_name(&name) {
            continue;
        }
        out.push(CacheDir {
            id: name,
            path: e.path(),
            last_used: m.modified().unwrap_or(std::time::UNIX_EPOCH),
            size: sizes.then(|| dir_size(&e.path())),
        });
    }
    out.sort_by_key(|c| c.last_used);
    Ok(out)
}

/// Removes the repository caches under `base` not used for longer than `max_age`; returns
/// what it removed. A cache is only a copy: the next command on that repository refills it.
pub fn remove_old_caches(base: &Path, max_age: std::time::Duration) -> Result<Vec<CacheDir>> {
    let mut removed = Vec::new();
    for c in list_caches(base, false)? {
        if c.age() > max_age {
            fs::remove_dir_all(&c.path)
                .map_err(|e| crate::Error::io("remove cache directory", &c.path, e))?;
            removed.push(c);
        }
    }
    Ok(removed)
}
