//! On-disk types and their encodings, with no I/O. `docs/format.md` is the normative description;
//! every constant here appears there.

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::compress;
use crate::crypto::{Keys, OpenError};
use crate::id::{BlobId, Id, PackId, TreeId};

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Magic at the start of every sealed repository file (config, index, snapshot, lock).
pub const MAGIC: &[u8; 4] = b"CSTA";
/// Bytes before the sealed part of an envelope: magic, kind, version.
pub const ENVELOPE_HEADER_LEN: usize = 6;
/// Decompressed size above which a sealed file or blob is refused.
pub const MAX_OBJECT_LEN: u64 = 1 << 32;

/// What a sealed file holds; the byte after the magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FileKind {
    Config = 1,
    Index = 2,
    Snapshot = 3,
    Lock = 4,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshot",
            FileKind::Lock => "lock",
        }
    }
}

/// Why decoding failed; callers attach the object's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The file says it is of a newer or older format version.
    Version(u32),
    /// Anything else: bad magic, failed authentication, bad encoding.
    Bad(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Version(v) => write!(f, "format version {v} is not supported"),
            DecodeError::Bad(s) => f.write_str(s),
        }
    }
}

fn bad(s: impl ToString) -> DecodeError {
    DecodeError::Bad(s.to_string())
}

impl From<OpenError> for DecodeError {
    fn from(e: OpenError) -> Self {
        bad(e)
    }
}

const COMP_NONE: u8 = 0;
const COMP_ZSTD: u8 = 1;
/// A payload's compression byte and raw length (format §5).
const PAYLOAD_HEADER: usize = 9;

thread_local! {
    // Compression output and its verification copy, reused per thread by `seal_blob`: a backup
    // seals thousands of blobs, and fresh multi-MiB buffers for each cost page faults.
    static SEAL_SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Scratch buffers grown beyond this are dropped after use, so an occasional maximum-size
/// chunk does not pin its buffers for the rest of the run.
const SCRATCH_KEEP: usize = 2 << 20;

/// `[compression u8][raw length u64 LE][payload]`, compressed when that helps.
fn pack_payload(raw: &[u8], level: Option<i32>) -> Vec<u8> {
    let (mut comp, mut check) = (Vec::new(), Vec::new());
    let compressed =
        level.is_some_and(|l| compress::compress_verified(raw, l, &mut comp, &mut check));
    let mut out = Vec::new();
    write_payload(&mut out, raw, compressed.then_some(&comp[..]));
    out
}

/// Appends the payload of `raw` to `out`: `compressed` is its verified zstd frame (every
/// compressed payload is decompressed and compared before it is stored), or `None` to store
/// `raw` as it is.
fn write_payload(out: &mut Vec<u8>, raw: &[u8], compressed: Option<&[u8]>) {
    let body = compressed.unwrap_or(raw);
    out.reserve(PAYLOAD_HEADER + body.len());
    out.push(if compressed.is_some() {
        COMP_ZSTD
    } else {
        COMP_NONE
    });
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
}

/// Splits a payload into (compressed?, declared plaintext length, body), refusing a short
/// payload, an impossible length and an unknown compression byte.
fn split_payload(p: &[u8]) -> Result<(bool, u64, &[u8]), DecodeError> {
    if p.len() < PAYLOAD_HEADER {
        return Err(bad("payload too short"));
    }
    let raw_len = u64::from_le_bytes(p[1..PAYLOAD_HEADER].try_into().unwrap());
    if raw_len > MAX_OBJECT_LEN {
        return Err(bad(format!("declared length {raw_len} is too large")));
    }
    match p[0] {
        COMP_NONE => Ok((false, raw_len, &p[PAYLOAD_HEADER..])),
        COMP_ZSTD => Ok((true, raw_len, &p[PAYLOAD_HEADER..])),
        c => Err(bad(format!("unknown compression {c}"))),
    }
}

fn unpack_payload(p: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let (compressed, raw_len, body) = split_payload(p)?;
    let out = if compressed {
        compress::decompress(body, raw_len as usize).map_err(bad)?
    } else {
        body.to_vec()
    };
    if out.len() as u64 != raw_len {
        return Err(bad("decompressed length differs from the declared one"));
    }
    Ok(out)
}

/// Seals `raw` as a repository file of `kind`: `MAGIC ‖ kind ‖ version ‖ seal(payload)`, with the
/// six header bytes as associated data.
pub fn seal_file(keys: &Keys, kind: FileKind, raw: &[u8]) -> Vec<u8> {
    let header = envelope_header(kind);
    let sealed = keys.seal(&header, &pack_payload(raw, Some(3)));
    let mut out = Vec::with_capacity(header.len() + sealed.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&sealed);
    out
}

fn envelope_header(kind: FileKind) -> [u8; ENVELOPE_HEADER_LEN] {
    let mut h = [0u8; ENVELOPE_HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = kind as u8;
    h[5] = FORMAT_VERSION as u8;
    h
}

/// Reads the envelope header without a key: checks magic and kind, returns the version.
pub fn peek_version(kind: FileKind, bytes: &[u8]) -> Result<u32, DecodeError> {
    if bytes.len() < ENVELOPE_HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(bad("not a cista file (bad magic)"));
    }
    if bytes[4] != kind as u8 {
        return Err(bad(format!(
            "holds object kind {} where a {} was expected",
            bytes[4],
            kind.name()
        )));
    }
    Ok(bytes[5] as u32)
}

/// Opens a sealed repository file of `kind`.
pub fn open_file(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let v = peek_version(kind, bytes)?;
    if v != FORMAT_VERSION {
        return Err(DecodeError::Version(v));
    }
    let payload = keys.open(&bytes[..ENVELOPE_HEADER_LEN], &bytes[ENVELOPE_HEADER_LEN..])?;
    unpack_payload(&payload)
}

/// The two kinds of blob. Stored as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum BlobType {
    Data = 0,
    Tree = 1,
}

impl BlobType {
    pub fn from_u8(b: u8) -> Option<BlobType> {
        match b {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
    /// "data blob" or "tree blob", for messages naming one.
    pub fn blob_name(self) -> &'static str {
        match self {
            BlobType::Data => "data blob",
            BlobType::Tree => "tree blob",
        }
    }
}

fn blob_aad(ty: BlobType, id: &BlobId) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = ty as u8;
    aad[1..].copy_from_slice(&id.0);
    aad
}

/// Seals a blob: `seal(payload)` with `type ‖ id` as associated data, so a blob cannot be passed
/// off under another id or type.
pub fn seal_blob(
    keys: &Keys,
    ty: BlobType,
    id: &BlobId,
    raw: &[u8],
    level: Option<i32>,
) -> Vec<u8> {
    SEAL_SCRATCH.with(|s| {
        let (comp, check) = &mut *s.borrow_mut();
        let compressed = level.is_some_and(|l| compress::compress_verified(raw, l, comp, check));
        let compressed = compressed.then_some(&comp[..]);
        let len = PAYLOAD_HEADER + compressed.map_or(raw.len(), <[u8]>::len);
        let sealed = keys.seal_with(&blob_aad(ty, id), len, |out| {
            write_payload(out, raw, compressed)
        });
        for b in [comp, check] {
            if b.capacity() > SCRATCH_KEEP {
                *b = Vec::new();
            }
        }
        sealed
    })
}

/// Opens a blob and checks that its plaintext hashes to `id` under the MAC key.
pub fn open_blob(
    keys: &Keys,
    ty: BlobType,
    id: &BlobId,
    sealed: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let payload = keys.open(&blob_aad(ty, id), sealed)?;
    let raw = unpack_payload(&payload)?;
    if keys.blob_id(&raw) != *id {
        return Err(bad("plaintext does not hash to the blob id"));
    }
    Ok(raw)
}

/// Buffers reused across `verify_blob` calls.
#[derive(Default)]
pub struct BlobScratch {
    payload: Vec<u8>,
    raw: Vec<u8>,
}

/// Checks a sealed blob as `open_blob` does (authenticates, decompresses, compares the keyed
/// hash with `id`) and that its plaintext is `raw_len` bytes, keeping nothing: the work is
/// done in `scratch`, so checking a repository allocates per pack, not per blob.
pub fn verify_blob(
    keys: &Keys,
    ty: BlobType,
    id: &BlobId,
    sealed: &[u8],
    raw_len: u32,
    scratch: &mut BlobScratch,
) -> Result<(), DecodeError> {
    keys.open_into(&blob_aad(ty, id), sealed, &mut scratch.payload)?;
    let (compressed, declared, body) = split_payload(&scratch.payload)?;
    if declared != raw_len as u64 {
        return Err(bad(format!(
            "payload declares {declared} bytes, the pack header {raw_len}"
        )));
    }
    let raw: &[u8] = if compressed {
        compress::decompress_into(body, raw_len as usize, &mut scratch.raw).map_err(bad)?;
        &scratch.raw
    } else {
        body
    };
    if raw.len() != raw_len as usize {
        return Err(bad("plaintext length differs from the declared one"));
    }
    if keys.blob_id(raw) != *id {
        return Err(bad("plaintext does not hash to the blob id"));
    }
    Ok(())
}

/// The repository configuration, sealed as `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub id: Id,
    pub chunker: ChunkerParams,
    /// Target size of a pack file in bytes.
    pub pack_size: u32,
    /// zstd level for blobs (for blobs of [`LARGE_BLOB`] bytes or more, see `large_blob_level`).
    pub compression_level: i32,
    /// zstd level for blobs of at least [`LARGE_BLOB`] bytes; absent means `compression_level`.
    /// Separate because zstd's parameters differ by input size: above 256 KiB level 4 keeps
    /// level 3's double-fast match finder with larger tables (+6% time, -1% size on the
    /// benchmark corpus), below it level 4 switches to a lazy one (+47% time for -2%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_blob_level: Option<i32>,
    /// Repository setting: clients delete nothing but their own locks (forget, prune and tag
    /// refuse). Changed only by `cista config --append-only`, which replaces this file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append_only: bool,
}

/// FastCDC sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 512 * 1024,
            avg: 1024 * 1024,
            max: 8 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020 as f;
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&self.min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&self.avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&self.max)
            && self.min < self.avg
            && self.avg < self.max
            && self.avg.is_power_of_two();
        if ok {
            Ok(())
        } else {
            Err(format!(
                "chunker sizes min={} avg={} max={} are invalid: need {}<=min<avg<max<={}, avg a power of two between {} and {}",
                self.min, self.avg, self.max, f::MINIMUM_MIN, f::MAXIMUM_MAX, f::AVERAGE_MIN, f::AVERAGE_MAX
            ))
        }
    }
}

pub const MIN_PACK_SIZE: u32 = 1 << 20;
/// Blobs of this many plaintext bytes or more use `Config::large_blob_level`.
pub const LARGE_BLOB: usize = 256 * 1024;
pub const MAX_PACK_SIZE: u32 = 1 << 30;

impl Config {
    pub fn new(chunker: ChunkerParams, pack_size: u32) -> Config {
        Config {
            version: FORMAT_VERSION,
            id: Id::random(),
            chunker,
            pack_size,
            compression_level: 3,
            large_blob_level: Some(4),
            append_only: false,
        }
    }

    /// The zstd level a writer uses for a blob of `len` plaintext bytes.
    pub fn blob_level(&self, len: usize) -> i32 {
        match self.large_blob_level {
            Some(l) if len >= LARGE_BLOB => l,
            _ => self.compression_level,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.version != FORMAT_VERSION {
            return Err(format!("config version {} is not supported", self.version));
        }
        self.chunker.validate()?;
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&self.pack_size) {
            return Err(format!(
                "pack size {} is outside {}..={}",
                self.pack_size, MIN_PACK_SIZE, MAX_PACK_SIZE
            ));
        }
        for (what, l) in [
            ("compression level", Some(self.compression_level)),
            ("large blob level", self.large_blob_level),
        ] {
            match l {
                Some(l) if !(-7..=22).contains(&l) => {
                    return Err(format!("{what} {l} is outside -7..=22"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serializes")
    }

    pub fn decode(raw: &[u8]) -> Result<Config, DecodeError> {
        let c: Config = serde_json::from_slice(raw).map_err(bad)?;
        if c.version != FORMAT_VERSION {
            return Err(DecodeError::Version(c.version));
        }
        c.validate().map_err(bad)?;
        Ok(c)
    }
}

/// One blob's entry in a pack header and in an index file: 45 bytes on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub ty: BlobType,
    pub id: BlobId,
    /// Offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

pub const BLOB_ENTRY_LEN: usize = 45;

impl BlobEntry {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.ty as u8);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    fn read(b: &[u8]) -> Result<BlobEntry, DecodeError> {
        let ty =
            BlobType::from_u8(b[0]).ok_or_else(|| bad(format!("unknown blob type {}", b[0])))?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[1..33]);
        let u = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        Ok(BlobEntry {
            ty,
            id: Id(id),
            offset: u(33),
            length: u(37),
            raw_len: u(41),
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(bad("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn id(&mut self) -> Result<Id, DecodeError> {
        let mut id = [0u8; 32];
        id.copy_from_slice(self.take(32)?);
        Ok(Id(id))
    }
    /// A count of items of `item_len` bytes each, refused if the rest cannot hold them.
    fn count(&mut self, item_len: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(item_len) > self.b.len() {
            return Err(bad(format!("count {n} exceeds the remaining bytes")));
        }
        Ok(n)
    }
    fn entries(&mut self) -> Result<Vec<BlobEntry>, DecodeError> {
        let n = self.count(BLOB_ENTRY_LEN)?;
        (0..n)
            .map(|_| BlobEntry::read(self.take(BLOB_ENTRY_LEN)?))
            .collect()
    }
    fn finish(&self) -> Result<(), DecodeError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes"))
        }
    }
}

const PACK_HEADER_AAD: &[u8] = b"cista pack header v1";
/// The pack trailer: a u32 LE length of the sealed header.
pub const PACK_TRAILER_LEN: usize = 4;

/// Encodes and seals a pack header; the caller appends it and its length after the blobs.
pub fn seal_pack_header(keys: &Keys, entries: &[BlobEntry]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(5 + entries.len() * BLOB_ENTRY_LEN);
    raw.push(FORMAT_VERSION as u8);
    raw.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        e.write(&mut raw);
    }
    keys.seal(PACK_HEADER_AAD, &raw)
}

/// Opens a sealed pack header and checks that its entries tile the blob area
/// `[0, blobs_len)` in order without gaps or overlaps.
pub fn open_pack_header(
    keys: &Keys,
    sealed: &[u8],
    blobs_len: u64,
) -> Result<Vec<BlobEntry>, DecodeError> {
    let raw = keys.open(PACK_HEADER_AAD, sealed)?;
    let mut r = Reader { b: &raw };
    let v = r.u8()?;
    if v as u32 != FORMAT_VERSION {
        return Err(DecodeError::Version(v as u32));
    }
    let entries = r.entries()?;
    r.finish()?;
    let mut pos = 0u64;
    for e in &entries {
        if e.offset as u64 != pos {
            return Err(bad(format!(
                "blob {} does not start where the previous ended",
                e.id
            )));
        }
        pos += e.length as u64;
    }
    if pos != blobs_len {
        return Err(bad("header entries do not cover the pack's blobs"));
    }
    Ok(entries)
}

/// Splits a whole pack into its blob area and sealed header.
pub fn split_pack(pack: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    if pack.len() < PACK_TRAILER_LEN {
        return Err(bad("pack shorter than its trailer"));
    }
    let (rest, trailer) = pack.split_at(pack.len() - PACK_TRAILER_LEN);
    let hlen = u32::from_le_bytes(trailer.try_into().unwrap()) as usize;
    if hlen > rest.len() {
        return Err(bad(format!("header length {hlen} exceeds the pack")));
    }
    Ok(rest.split_at(rest.len() - hlen))
}

/// One pack's entry in an index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    pub id: PackId,
    pub blobs: Vec<BlobEntry>,
}

/// The plaintext of an index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files whose content this one includes, so they can be deleted (by prune).
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        let n: usize = self
            .packs
            .iter()
            .map(|p| 36 + p.blobs.len() * BLOB_ENTRY_LEN)
            .sum();
        let mut out = Vec::with_capacity(9 + self.supersedes.len() * 32 + n);
        out.push(FORMAT_VERSION as u8);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(&s.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
            out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for e in &p.blobs {
                e.write(&mut out);
            }
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Result<IndexFile, DecodeError> {
        let mut r = Reader { b: raw };
        let v = r.u8()?;
        if v as u32 != FORMAT_VERSION {
            return Err(DecodeError::Version(v as u32));
        }
        let ns = r.count(32)?;
        let supersedes = (0..ns).map(|_| r.id()).collect::<Result<_, _>>()?;
        let np = r.count(36)?;
        let mut packs = Vec::with_capacity(np);
        for _ in 0..np {
            let id = r.id()?;
            let blobs = r.entries()?;
            packs.push(IndexPack { id, blobs });
        }
        r.finish()?;
        Ok(IndexFile { supersedes, packs })
    }
}

/// What a tree node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::File => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::Socket => "socket",
            NodeKind::CharDevice => "chardev",
            NodeKind::BlockDevice => "blockdev",
        }
    }
}

/// One extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// One directory entry with its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Raw name bytes; never contains `/` or NUL, never empty, `.` or `..`.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub atime_ns: i64,
    pub size: u64,
    pub inode: u64,
    pub device: u64,
    pub links: u64,
    #[serde(with = "serde_bytes")]
    pub link_target: Vec<u8>,
    pub rdev: u64,
    pub xattrs: Vec<Xattr>,
    pub content: Vec<BlobId>,
    pub subtree: Option<TreeId>,
    /// BLAKE3 (unkeyed) of a regular file's whole content.
    pub digest: Option<Id>,
}

impl Node {
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime_ns: 0,
            ctime_ns: 0,
            atime_ns: 0,
            size: 0,
            inode: 0,
            device: 0,
            links: 0,
            link_target: Vec::new(),
            rdev: 0,
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
            digest: None,
        }
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

fn valid_name(n: &[u8]) -> bool {
    !n.is_empty() && n != b"." && n != b".." && !n.contains(&b'/') && !n.contains(&0)
}

/// A directory: nodes sorted by raw name bytes, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

fn tree_codec() -> impl Options {
    bincode::options()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_OBJECT_LEN)
}

impl Tree {
    /// Deterministic encoding: sorts nodes first so equal directories get equal ids.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for n in &mut self.nodes {
            n.xattrs.sort();
        }
        tree_codec().serialize(&*self).expect("tree serializes")
    }

    pub fn decode(raw: &[u8]) -> Result<Tree, DecodeError> {
        let t: Tree = tree_codec().deserialize(raw).map_err(bad)?;
        for w in t.nodes.windows(2) {
            if w[0].name >= w[1].name {
                return Err(bad("nodes not sorted by name or names repeat"));
            }
        }
        for n in &t.nodes {
            if !valid_name(&n.name) {
                return Err(bad(format!("invalid node name {:?}", n.name_lossy())));
            }
            if (n.kind == NodeKind::Dir) != n.subtree.is_some() {
                return Err(bad(format!(
                    "node {:?}: subtree only on directories",
                    n.name_lossy()
                )));
            }
        }
        Ok(t)
    }

    /// Finds a node by name (nodes are sorted).
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// What a backup did, recorded in its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub data_added: u64,
    /// Bytes of new blobs as stored (compressed and sealed).
    pub data_added_packed: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
    pub backup_start: String,
    pub backup_end: String,
    pub duration_secs: f64,
}

/// A snapshot: the root of one backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// RFC 3339 with the UTC offset of the host that made it, nanosecond precision.
    pub time: String,
    pub tree: TreeId,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    pub parent: Option<Id>,
    pub program_version: String,
    pub summary: Option<Summary>,
    /// For a snapshot rewritten by `tag`: the id it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshot serializes")
    }
    pub fn decode(raw: &[u8]) -> Result<Snapshot, DecodeError> {
        let s: Snapshot = serde_json::from_slice(raw).map_err(bad)?;
        s.timestamp().map_err(bad)?;
        Ok(s)
    }
    pub fn timestamp(&self) -> Result<jiff::Timestamp, String> {
        self.time
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("snapshot time {:?}: {e}", self.time))
    }
}

/// A lock file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub time: String,
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
}

impl LockInfo {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("lock serializes")
    }
    pub fn decode(raw: &[u8]) -> Result<LockInfo, DecodeError> {
        serde_json::from_slice(raw).map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::from_master([5; 32])
    }

    fn arb_entry() -> impl Strategy<Value = BlobEntry> {
        (
            any::<bool>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(t, id, offset, length, raw_len)| BlobEntry {
                ty: if t { BlobType::Tree } else { BlobType::Data },
                id: Id(id),
                offset,
                length,
                raw_len,
            })
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(1u8..=255, 1..20),
            0usize..7,
            any::<(u32, u32, u32, i64, i64, i64, u64, u64)>(),
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            any::<Option<[u8; 32]>>(),
            proptest::collection::vec(
                (
                    proptest::collection::vec(1u8..255, 1..10),
                    proptest::collection::vec(any::<u8>(), 0..10),
                ),
                0..3,
            ),
        )
            .prop_map(|(mut name, k, m, target, content, digest, xattrs)| {
                for b in name.iter_mut() {
                    if *b == b'/' {
                        *b = b'_';
                    }
                }
                if name == b"." || name == b".." {
                    name = b"x".to_vec();
                }
                let kinds = [
                    NodeKind::File,
                    NodeKind::Dir,
                    NodeKind::Symlink,
                    NodeKind::Fifo,
                    NodeKind::Socket,
                    NodeKind::CharDevice,
                    NodeKind::BlockDevice,
                ];
                let mut n = Node::new(name, kinds[k]);
                (
                    n.mode, n.uid, n.gid, n.mtime_ns, n.ctime_ns, n.atime_ns, n.size, n.inode,
                ) = m;
                n.user = "user".into();
                n.link_target = target;
                n.content = content.into_iter().map(Id).collect();
                n.digest = digest.map(Id);
                n.xattrs = xattrs
                    .into_iter()
                    .map(|(name, value)| Xattr { name, value })
                    .collect();
                if n.kind == NodeKind::Dir {
                    n.subtree = Some(Id([1; 32]));
                }
                n
            })
    }

    proptest! {
        #[test]
        fn file_envelope_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), k in 1u8..=4) {
            let kind = [FileKind::Config, FileKind::Index, FileKind::Snapshot, FileKind::Lock][k as usize - 1];
            let s = seal_file(&keys(), kind, &data);
            prop_assert_eq!(open_file(&keys(), kind, &s).unwrap(), data);
        }

        #[test]
        fn blob_round_trip(data in proptest::collection::vec(0u8..3, 0..5000), tree in any::<bool>()) {
            let k = keys();
            let ty = if tree { BlobType::Tree } else { BlobType::Data };
            let id = k.blob_id(&data);
            let s = seal_blob(&k, ty, &id, &data, Some(3));
            prop_assert_eq!(open_blob(&k, ty, &id, &s).unwrap(), data);
            let other = if tree { BlobType::Data } else { BlobType::Tree };
            prop_assert!(open_blob(&k, other, &id, &s).is_err());
        }

        #[test]
        fn index_round_trip(packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(arb_entry(), 0..5)), 0..5), sup in proptest::collection::vec(any::<[u8; 32]>(), 0..3)) {
            let f = IndexFile {
                supersedes: sup.into_iter().map(Id).collect(),
                packs: packs.into_iter().map(|(id, blobs)| IndexPack { id: Id(id), blobs }).collect(),
            };
            prop_assert_eq!(IndexFile::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn pack_header_round_trip(lens in proptest::collection::vec(1u32..10000, 0..20)) {
            let mut off = 0;
            let entries: Vec<BlobEntry> = lens.iter().enumerate().map(|(i, &l)| {
                let e = BlobEntry { ty: BlobType::Data, id: Id([i as u8; 32]), offset: off, length: l, raw_len: l };
                off += l;
                e
            }).collect();
            let s = seal_pack_header(&keys(), &entries);
            prop_assert_eq!(open_pack_header(&keys(), &s, off as u64).unwrap(), entries);
        }

        #[test]
        fn tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..10)) {
            let mut t = Tree { nodes };
            t.nodes.sort_by(|a, b| a.name.cmp(&b.name));
            t.nodes.dedup_by(|a, b| a.name == b.name);
            let enc = t.encode();
            let d = Tree::decode(&enc).unwrap();
            prop_assert_eq!(&d, &t);
            let mut d2 = d.clone();
            prop_assert_eq!(d2.encode(), enc);
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = IndexFile::decode(&data);
            let _ = Tree::decode(&data);
            let _ = Snapshot::decode(&data);
            let _ = Config::decode(&data);
            let _ = split_pack(&data);
            let _ = open_file(&keys(), FileKind::Index, &data);
        }
    }

    proptest! {
        #[test]
        fn snapshot_json_round_trip(
            secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000, off in -50_400i32..50_400,
            paths in proptest::collection::vec(".*", 0..4), host in ".*", tags in proptest::collection::vec(".*", 0..3),
            parent in any::<Option<[u8; 32]>>(), files in any::<u64>(),
        ) {
            let ts = jiff::Timestamp::new(secs, nanos as i32).unwrap();
            let z = ts.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::Offset::from_seconds(off / 60 * 60).unwrap()));
            let s = Snapshot {
                time: z.strftime("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string(),
                tree: Id([1; 32]),
                paths, hostname: host, username: "u".into(), uid: 0, gid: 0, tags,
                parent: parent.map(Id),
                program_version: "cista".into(),
                summary: Some(Summary { files_new: files, duration_secs: 1.5, ..Default::default() }),
                original: None,
            };
            let d = Snapshot::decode(&s.encode()).unwrap();
            prop_assert_eq!(d.timestamp().unwrap(), ts);
            prop_assert_eq!(d, s);
        }

        #[test]
        fn config_round_trip(min_exp in 6u32..20, avg_gap in 1u32..3, max_gap in 1u32..3, pack in MIN_PACK_SIZE..=MAX_PACK_SIZE, level in -7i32..=22, large in proptest::option::of(-7i32..=22)) {
            let avg = 1u32 << (min_exp + avg_gap).min(22);
            let chunker = ChunkerParams { min: 1 << min_exp, avg, max: (avg << max_gap).min(1 << 24) };
            prop_assume!(chunker.validate().is_ok());
            let mut c = Config::new(chunker, pack);
            c.compression_level = level;
            c.large_blob_level = large;
            prop_assert_eq!(Config::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn lock_round_trip(host in ".*", user in ".*", pid in any::<u32>(), exclusive in any::<bool>()) {
            let l = LockInfo { time: "2026-11-22T00:00:00Z".into(), exclusive, hostname: host, username: user, pid };
            prop_assert_eq!(LockInfo::decode(&l.encode()).unwrap(), l);
        }
    }

    #[test]
    fn large_blob_level_is_optional_and_applies_from_256_kib() {
        // A config written before the field existed: every blob uses compression_level.
        let old = br#"{"version":1,"id":"0000000000000000000000000000000000000000000000000000000000000000","chunker":{"min":524288,"avg":1048576,"max":8388608},"pack_size":16777216,"compression_level":3}"#;
        let c = Config::decode(old).unwrap();
        assert_eq!(c.large_blob_level, None);
        assert_eq!(c.blob_level(LARGE_BLOB * 4), 3);
        assert!(!String::from_utf8(c.encode())
            .unwrap()
            .contains("large_blob_level"));
        let n = Config::new(ChunkerParams::default(), 1 << 24);
        assert_eq!(n.blob_level(LARGE_BLOB - 1), 3);
        assert_eq!(n.blob_level(LARGE_BLOB), 4);
        assert_eq!(Config::decode(&n.encode()).unwrap(), n);
        let mut bad = n.clone();
        bad.large_blob_level = Some(23);
        let err = Config::decode(&bad.encode()).unwrap_err().to_string();
        assert!(err.contains("large blob level 23"), "{err}");
    }

    #[test]
    fn snapshot_and_config_round_trip() {
        let s = Snapshot {
            time: "2026-11-22T07:52:44.5+01:00".into(),
            tree: Id([3; 32]),
            paths: vec!["/a".into()],
            hostname: "h".into(),
            username: "u".into(),
            uid: 1,
            gid: 2,
            tags: vec!["t".into()],
            parent: None,
            program_version: "cista 0.1.0".into(),
            summary: Some(Summary::default()),
            original: Some(Id([9; 32])),
        };
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
        let c = Config::new(ChunkerParams::default(), 16 << 20);
        assert_eq!(Config::decode(&c.encode()).unwrap(), c);
        let mut bad_c = c.clone();
        bad_c.version = 2;
        assert_eq!(
            Config::decode(&bad_c.encode()),
            Err(DecodeError::Version(2))
        );
    }

    #[test]
    fn unknown_file_version_refused() {
        let mut s = seal_file(&keys(), FileKind::Config, b"{}");
        s[5] = 9;
        assert_eq!(
            open_file(&keys(), FileKind::Config, &s),
            Err(DecodeError::Version(9))
        );
        assert_eq!(peek_version(FileKind::Config, &s), Ok(9));
    }
}
