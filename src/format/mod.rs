//! On-disk types and their encodings, with no I/O. `docs/format.md` is the normative description;
//! every constant here appears there.

mod blob;
mod config;
mod envelope;
mod index_file;
mod lock;
mod pack_header;
mod payload;
mod snapshot;
mod tree;
mod verification;

pub use blob::{open_blob, seal_blob, uncompressed_sealed_len, verify_blob, BlobScratch, BlobType};
pub use config::{ChunkerParams, Config, LARGE_BLOB, MAX_PACK_SIZE, MIN_PACK_SIZE};
pub use envelope::{open_file, peek_version, seal_file, FileKind, ENVELOPE_HEADER_LEN, MAGIC};
pub use index_file::{IndexFile, IndexPack};
pub use lock::LockInfo;
pub use pack_header::{
    open_pack_header, seal_pack_header, split_pack, BlobEntry, BLOB_ENTRY_LEN, PACK_TRAILER_LEN,
};
pub use snapshot::{Snapshot, Summary};
pub use tree::{Node, NodeKind, Tree, Xattr};
pub use verification::{
    clip, Verification, VerificationMethod, VerificationResult, MAX_RECORD_SNAPSHOTS,
    MAX_RECORD_TEXT,
};

use crate::crypto::OpenError;
use crate::id::Id;

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Decompressed size above which a sealed file or blob is refused.
pub const MAX_OBJECT_LEN: u64 = 1 << 32;

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

#[cfg(test)]
mod tests;
