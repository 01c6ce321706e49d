//! Storage: a small trait shaped like an object store (get, ranged get, put-if-absent, list,
//! delete). A backend sees only names and sealed bytes, never keys or plaintext.

mod cache;
pub mod conformance;
mod counting;
mod limit;
mod local;
mod mem;
mod object;

pub use cache::{default_cache_dir, list_caches, remove_old_caches, CacheBackend, CacheDir};
pub(crate) use cache::{prepare_repo_cache, put_file as cache_put_file};
pub use counting::{Counting, RequestCounts, RequestStats};
pub use limit::Limited;

pub use local::LocalBackend;
pub use mem::MemBackend;
pub use object::{ObjectStoreBackend, MULTIPART_THRESHOLD};

use crate::error::Result;

/// The kinds of stored object; each lives under its own prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    /// Verification records: what a check or drill verified (format §19).
    Verification,
}

impl FileType {
    pub const ALL: [FileType; 7] = [
        FileType::Config,
        FileType::Key,
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
        FileType::Lock,
        FileType::Verification,
    ];

    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Verification => "verifications",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "key",
            FileType::Pack => "pack",
            FileType::Index => "index",
            FileType::Snapshot => "snapshot",
            FileType::Lock => "lock",
            FileType::Verification => "verification record",
        }
    }
}

/// The path of an object relative to the repository root: `config`, `keys/<id>`,
/// `data/<first 2 hex>/<id>`, `index/<id>`, `snapshots/<id>`, `locks/<id>`,
/// `verifications/<id>`.
pub fn object_path(t: FileType, name: &str) -> String {
    match t {
        FileType::Config => "config".to_string(),
        FileType::Pack => format!("data/{}/{}", &name[..name.len().min(2)], name),
        _ => format!("{}/{}", t.dir(), name),
    }
}

/// True for names a listing should report: 64 lowercase hex digits.
pub fn is_object_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The largest stored object of each type that a whole-object read accepts. The stored size
/// is checked before anything is allocated, so an object planted by someone with put rights
/// (a multi-gigabyte "snapshot", say) cannot exhaust memory; docs/format.md §16 lists the
/// caps. They sit far above what cista writes (a config, key or lock file is under 1 KiB;
/// an index file names at most 256 packs).
pub const fn max_read_len(t: FileType) -> u64 {
    match t {
        FileType::Config => 1 << 20,
        FileType::Key | FileType::Lock => 64 << 10,
        // A record names every snapshot a check saw: 67 bytes of JSON each.
        FileType::Snapshot | FileType::Verification => 64 << 20,
        FileType::Index => 1 << 30,
        // A pack is at most the largest pack size plus one blob and its header.
        FileType::Pack => 2 << 30,
    }
}

/// Fails when a whole-object read of `len` bytes would pass `max_read_len`.
pub(crate) fn check_read_len(t: FileType, name: &str, len: u64) -> Result<()> {
    let max = max_read_len(t);
    if len > max {
        return Err(crate::Error::corrupt(
            t.name(),
            object_path(t, name),
            format!(
                "it is {len} bytes, more than the {max} bytes a {} may have",
                t.name()
            ),
        ));
    }
    Ok(())
}

/// Reads a local file as a whole object of type `t`, checking its size first.
pub(crate) fn read_local_object(
    path: &std::path::Path,
    t: FileType,
    name: &str,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| backend_err("read", t, name, e))?;
    let len = f
        .metadata()
        .map_err(|e| backend_err("read", t, name, e))?
        .len();
    check_read_len(t, name, len)?;
    let mut buf = Vec::with_capacity(len as usize);
    // A file growing under us is still read only up to the cap.
    f.take(max_read_len(t) + 1)
        .read_to_end(&mut buf)
        .map_err(|e| backend_err("read", t, name, e))?;
    check_read_len(t, name, buf.len() as u64)?;
    Ok(buf)
}

/// Where a repository's objects are kept.
///
/// Guarantees a backend must give (see docs/format.md): a completed `write` is durable and
/// visible to `read` and `list`; `write` never replaces an existing object and never leaves a
/// partial object under the final name; `list` may lag behind writes and deletes, and cista never
/// depends on it being complete right after a write.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A human-readable location for messages.
    fn location(&self) -> String;
    /// Prepares an empty repository location (directories on disk; nothing on object stores,
    /// where `init` probes that the bucket exists: cista does not create buckets).
    fn create(&self) -> Result<()>;
    /// Tells a missing bucket or container (`Error::ContainerNotFound`) from a missing
    /// repository: called when `config` is not found, so it costs nothing on success.
    fn probe(&self) -> Result<()> {
        Ok(())
    }
    /// Reads a whole object, refusing one larger than `max_read_len(t)` before allocating.
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>>;
    /// Reads a whole object into `buf` (replacing its content), so a caller reading many
    /// objects (check --read-data) reuses one buffer.
    fn read_into(&self, t: FileType, name: &str, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.read(t, name)?;
        Ok(())
    }
    /// Maps a whole object into memory, for backends that can (local files). `None` means
    /// "use `read_into`". Check --read-data uses it to skip copying every pack.
    fn map(&self, _t: FileType, _name: &str) -> Result<Option<memmap2::Mmap>> {
        Ok(None)
    }
    /// Reads `length` bytes at `offset`; a short object is an error.
    fn read_range(&self, t: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>>;
    /// Stores an object under a name not yet used. An existing object is left as it is and the
    /// call fails with an `AlreadyExists` I/O error.
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()>;
    /// Names and sizes of the objects of a type.
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>>;
    /// Deletes an object; deleting a missing object is not an error.
    fn remove(&self, t: FileType, name: &str) -> Result<()>;
    /// Replaces the `config` object atomically: a reader sees the old or the new one, whole.
    /// The one overwrite in the format, for repository settings.
    fn replace_config(&self, data: &[u8]) -> Result<()>;
    /// Whether the store holds the object under a retention that forbids deleting it now (S3
    /// Object Lock). `None` where the store has no such notion or nothing holds the object.
    fn retention(&self, _t: FileType, _name: &str) -> Result<Option<Retention>> {
        Ok(None)
    }
    /// How many writes may run at once: 0 for a store written inline by the thread that filled
    /// the pack (local disk, where a write is a page-cache copy), N > 0 for a store worth N
    /// uploads in flight while chunking goes on.
    fn connections(&self) -> usize {
        0
    }
}

/// A store's hold on an object (S3 Object Lock retention or legal hold).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Retention {
    /// `COMPLIANCE`, `GOVERNANCE` or `LEGAL HOLD`.
    pub mode: String,
    /// When the retention ends; `None` for a legal hold, which lasts until lifted.
    pub until: Option<jiff::Timestamp>,
}

/// The locations `open_location` accepts, for messages.
pub const SUPPORTED_LOCATIONS: &str = "a local path, local:PATH, file:///PATH, \
     s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX";

/// Object-store schemes `ObjectStoreBackend::open` knows.
const OBJECT_SCHEMES: [&str; 7] = ["s3", "s3a", "gs", "az", "azure", "abfs", "abfss"];

/// The `scheme` of a location shaped like `scheme:...` or `scheme://...`. A scheme is a letter
/// followed by letters, digits, `+`, `-` or `.` (RFC 3986); `./a:b` or `/srv/a:b` has none.
fn scheme_of(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Opens a repository location: a path, `local:PATH` or `file:///path` (local disk), or
/// `s3://`, `gs://`, `az://` (object stores, configured from the environment and `options`).
///
/// Any other `scheme:` prefix (sftp:, rest:, rclone:, b2:, ...) is refused rather than taken
/// for a relative directory name: `sftp:user@host:/srv` would otherwise become a local
/// directory and a backup the user believes is off-site would sit next to the data.
pub fn open_location(
    location: &str,
    options: &[(String, String)],
) -> Result<std::sync::Arc<dyn Backend>> {
    let path = match scheme_of(location) {
        None => location,
        Some("file") => location.strip_prefix("file://").ok_or_else(|| {
            crate::Error::Invalid(format!(
                "repository location {location:?}: write file:///PATH (or just the path)"
            ))
        })?,
        Some("local") => &location["local:".len()..],
        Some(s) if OBJECT_SCHEMES.contains(&s) && location[s.len()..].starts_with("://") => {
            return Ok(std::sync::Arc::new(ObjectStoreBackend::open(
                location, options,
            )?));
        }
        Some(s) => {
            return Err(crate::Error::Invalid(format!(
                "repository location {location:?}: {s}: is not a kind of location cista supports; \
                 use {SUPPORTED_LOCATIONS} (./{location} for a local directory of that name)"
            )))
        }
    };
    if path.is_empty() {
        return Err(crate::Error::Invalid("empty repository path".into()));
    }
    if !options.is_empty() {
        return Err(crate::Error::Invalid(
            "-o options apply to object stores only".into(),
        ));
    }
    Ok(std::sync::Arc::new(LocalBackend::new(path)))
}

/// A wrapper under which nothing but lock files can be deleted: for hosts whose credentials
/// allow put, get and list only, and as a guard against a compromised host destroying backups.
#[derive(Debug)]
pub struct AppendOnly(pub std::sync::Arc<dyn Backend>);

impl Backend for AppendOnly {
    fn location(&self) -> String {
        self.0.location()
    }
    fn create(&self) -> Result<()> {
        self.0.create()
    }
    fn probe(&self) -> Result<()> {
        self.0.probe()
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        self.0.read(t, name)
    }
    fn read_into(&self, t: FileType, name: &str, buf: &mut Vec<u8>) -> Result<()> {
        self.0.read_into(t, name, buf)
    }
    fn map(&self, t: FileType, name: &str) -> Result<Option<memmap2::Mmap>> {
        self.0.map(t, name)
    }
    fn read_range(&self, t: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.0.read_range(t, name, offset, length)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.0.write(t, name, data)
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        self.0.list(t)
    }
    fn replace_config(&self, _data: &[u8]) -> Result<()> {
        Err(crate::Error::Invalid(
            "append-only mode: refusing to replace the config".into(),
        ))
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        if t != FileType::Lock {
            return Err(crate::Error::Invalid(format!(
                "append-only mode: refusing to delete {}",
                object_path(t, name)
            )));
        }
        self.0.remove(t, name)
    }
    fn retention(&self, t: FileType, name: &str) -> Result<Option<Retention>> {
        self.0.retention(t, name)
    }
    fn connections(&self) -> usize {
        self.0.connections()
    }
}

/// `write` that treats an existing object of the same name as success: for content-addressed
/// names an existing object has the same content (or is damaged, which `check` reports).
pub fn write_content_addressed(
    be: &dyn Backend,
    t: FileType,
    name: &str,
    data: &[u8],
) -> Result<()> {
    match be.write(t, name, data) {
        Err(crate::Error::Backend { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            Ok(())
        }
        r => r,
    }
}

pub(crate) fn backend_err(
    op: &'static str,
    t: FileType,
    name: &str,
    e: std::io::Error,
) -> crate::Error {
    crate::Error::Backend {
        op,
        path: object_path(t, name),
        source: e,
    }
}
