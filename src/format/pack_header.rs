//! Packs: the blob area, the sealed header of 45-byte entries, and a u32 trailer.

use super::blob::BlobType;
use super::{bad, DecodeError, Reader, FORMAT_VERSION};
use crate::crypto::Keys;
use crate::id::{BlobId, Id};

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
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.push(self.ty as u8);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    pub(super) fn read(b: &[u8]) -> Result<BlobEntry, DecodeError> {
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
