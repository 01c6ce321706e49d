//! Reading packs: a whole pack checked against its name and opened, its header alone by range,
//! and single blobs by range, through the index (trees through the cache).

use super::tree_cache::{fill_tree_cache, prefetch_tree_packs, read_cached};
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{self, BlobEntry, BlobType};
use crate::id::{BlobId, Id, PackId};
use crate::index::{BlobLocation, Index};
use crate::repository::Repository;

/// Parses a whole pack read from storage: checks its storage hash and opens its header.
pub fn parse_pack(repo: &Repository, id: &PackId, bytes: &[u8]) -> Result<Vec<BlobEntry>> {
    if Id::of_bytes(bytes) != *id {
        return Err(Error::corrupt(
            "pack",
            id,
            "stored bytes do not hash to the pack name",
        ));
    }
    let (blobs, header) = format::split_pack(bytes).map_err(|e| Error::corrupt("pack", id, e))?;
    format::open_pack_header(repo.keys(), header, blobs.len() as u64)
        .map_err(|e| Error::corrupt("pack", id, format!("header: {e}")))
}

/// Opens one sealed blob and checks its id.
pub fn open_blob(
    repo: &Repository,
    ty: BlobType,
    id: &BlobId,
    pack: &PackId,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    format::open_blob(repo.keys(), ty, id, sealed)
        .map_err(|e| Error::corrupt(ty.blob_name(), id, format!("in pack {pack}: {e}")))
}

/// Opens one sealed blob found at `loc` and checks its id and that its length is the one the
/// index gives.
pub fn open_blob_at(
    repo: &Repository,
    ty: BlobType,
    id: &BlobId,
    loc: &BlobLocation,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let raw = open_blob(repo, ty, id, &loc.pack, sealed)?;
    if raw.len() != loc.raw_len as usize {
        return Err(Error::corrupt(
            ty.blob_name(),
            id,
            "length differs from the index",
        ));
    }
    Ok(raw)
}

/// Reads, opens and verifies one blob at a known location.
pub fn read_blob_at(
    repo: &Repository,
    ty: BlobType,
    id: &BlobId,
    loc: &BlobLocation,
) -> Result<Vec<u8>> {
    let sealed = repo.backend().read_range(
        FileType::Pack,
        &loc.pack.to_hex(),
        loc.offset as u64,
        loc.length as u64,
    )?;
    open_blob_at(repo, ty, id, loc, &sealed)
}

/// Reads a blob through the index (and, for trees, the repository's cache).
pub fn read_blob(repo: &Repository, index: &Index, ty: BlobType, id: &BlobId) -> Result<Vec<u8>> {
    let loc = index.get(ty, id).ok_or_else(|| Error::NotFound {
        what: ty.blob_name(),
        id: id.to_hex(),
    })?;
    if let Some(dir) = repo.tree_cache().filter(|_| ty == BlobType::Tree) {
        if let Some(raw) = read_cached(repo, ty, id, &loc, dir) {
            return Ok(raw);
        }
        // A cold cache: one request for every tree the pack holds, not one per tree (a walk
        // needs most of them, and a round trip to a store costs 10-50 ms). Trees live in their
        // own packs, so this fetches no file data.
        prefetch_tree_packs(repo, index, dir);
        if fill_tree_cache(repo, &loc.pack, dir) {
            if let Some(raw) = read_cached(repo, ty, id, &loc, dir) {
                return Ok(raw);
            }
        }
    }
    match read_blob_at(repo, ty, id, &loc) {
        Ok(raw) => Ok(raw),
        // A blob stored again (a backup re-uploads what it found damaged) has further copies.
        Err(e) => index
            .alternates(ty, id)
            .iter()
            .find_map(|l| read_blob_at(repo, ty, id, l).ok())
            .ok_or(e),
    }
}
