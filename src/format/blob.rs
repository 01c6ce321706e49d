//! Blobs: a sealed payload with `type ‖ id` as associated data.

use serde::{Deserialize, Serialize};

use super::payload::{split_payload, unpack_payload, write_payload, PAYLOAD_HEADER, SCRATCH_KEEP};
use super::{bad, DecodeError};
use crate::compress;
use crate::crypto::Keys;
use crate::id::BlobId;

thread_local! {
    // Compression output and its verification copy, reused per thread by `seal_blob`: a backup
    // seals thousands of blobs, and fresh multi-MiB buffers for each cost page faults.
    static SEAL_SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
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

/// The stored length of a blob of `raw_len` plaintext bytes kept uncompressed (the payload
/// header, the plaintext, the seal's nonce and tag): a stored blob of this length was not
/// compressed.
pub fn uncompressed_sealed_len(raw_len: u32) -> u64 {
    PAYLOAD_HEADER as u64 + raw_len as u64 + crate::crypto::SEAL_OVERHEAD as u64
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
