//! Packs: sealed blobs, then a sealed header naming them, then the header's length.
//! The packer fills one pack per blob type; the reader fetches single blobs by range.

use crate::backend::FileType;
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::format::{self, BlobEntry, BlobType, PACK_TRAILER_LEN};
use crate::id::{BlobId, Id, PackId};
use crate::index::{BlobLocation, Index};
use crate::repository::Repository;

/// A pack being filled.
#[derive(Debug)]
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

/// A finished pack, ready to store.
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<BlobEntry>,
}

impl PackWriter {
    pub fn new(capacity: usize) -> PackWriter {
        PackWriter {
            buf: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, ty: BlobType, id: BlobId, sealed: &[u8], raw_len: u32) {
        self.entries.push(BlobEntry {
            ty,
            id,
            offset: self.buf.len() as u32,
            length: sealed.len() as u32,
            raw_len,
        });
        self.buf.extend_from_slice(sealed);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the header and appends it and its length; the pack id is the BLAKE3 of the bytes.
    pub fn finish(mut self, keys: &Keys) -> FinishedPack {
        let header = format::seal_pack_header(keys, &self.entries);
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        FinishedPack {
            id: Id::of_bytes(&self.buf),
            bytes: self.buf,
            entries: self.entries,
        }
    }
}

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

/// Reads only a pack's header, by range, given the pack's size.
pub fn read_pack_header(repo: &Repository, id: &PackId, size: u64) -> Result<Vec<BlobEntry>> {
    let name = id.to_hex();
    let corrupt = |r: String| Error::corrupt("pack", id, r);
    if size < PACK_TRAILER_LEN as u64 {
        return Err(corrupt("shorter than its trailer".into()));
    }
    let be = repo.backend();
    let t = be.read_range(
        FileType::Pack,
        &name,
        size - PACK_TRAILER_LEN as u64,
        PACK_TRAILER_LEN as u64,
    )?;
    let hlen = u32::from_le_bytes(t[..4].try_into().unwrap()) as u64;
    if hlen + PACK_TRAILER_LEN as u64 > size {
        return Err(corrupt(format!("header length {hlen} exceeds the pack")));
    }
    let blobs_len = size - PACK_TRAILER_LEN as u64 - hlen;
    let h = be.read_range(FileType::Pack, &name, blobs_len, hlen)?;
    format::open_pack_header(repo.keys(), &h, blobs_len)
        .map_err(|e| corrupt(format!("header: {e}")))
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

/// A blob from the cached copy of its pack, opened: that re-checks the key and the id, so a
/// damaged or short cached pack is removed and the blob reported as absent.
fn read_cached(
    repo: &Repository,
    ty: BlobType,
    id: &BlobId,
    loc: &BlobLocation,
    dir: &std::path::Path,
) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let p = dir.join(loc.pack.to_hex());
    let f = std::fs::File::open(&p).ok()?;
    let mut sealed = vec![0u8; loc.length as usize];
    let opened = f
        .read_exact_at(&mut sealed, loc.offset as u64)
        .ok()
        .and_then(|()| open_blob_at(repo, ty, id, loc, &sealed).ok());
    if opened.is_none() {
        let _ = std::fs::remove_file(&p);
    }
    opened
}

/// Fetches a tree pack whole into the cache directory `dir`; false when that failed (the
/// caller then reads the one blob it needs). Each pack is fetched at most once per process:
/// threads that want the same pack wait for the first one.
fn fill_tree_cache(repo: &Repository, pack: &PackId, dir: &std::path::Path) -> bool {
    let once = repo.tree_pack_fetch(pack);
    *once.get_or_init(|| {
        match repo.backend().read(FileType::Pack, &pack.to_hex()) {
            // Named by its hash: a pack that arrived whole is the pack.
            Ok(bytes) if Id::of_bytes(&bytes) == *pack => {
                crate::backend::cache_put_file(&dir.join(pack.to_hex()), &bytes);
                true
            }
            Ok(_) => {
                tracing::debug!("tree pack {pack} does not hash to its name");
                false
            }
            Err(e) => {
                tracing::debug!("fetching tree pack {pack} whole failed: {e}");
                false
            }
        }
    })
}

/// On an object store, the first tree missing from the cache fetches every tree pack the cache
/// lacks, `connections` at a time: a walk of a snapshot would otherwise wait one round trip and
/// one pack's transfer per pack it reaches, one after another (a restore on a fresh machine
/// needs them all). The cache keeps all tree packs anyway, as restic's does. At most
/// `connections` packs are in memory at once. Local disk reads single blobs as cheaply.
fn prefetch_tree_packs(repo: &Repository, index: &Index, dir: &std::path::Path) {
    let n = repo.backend().connections();
    if n == 0 {
        return;
    }
    repo.tree_prefetch().get_or_init(|| {
        let missing: Vec<PackId> = index
            .tree_packs()
            .into_iter()
            .filter(|p| !dir.join(p.to_hex()).exists())
            .collect();
        if missing.len() < 2 {
            return; // the caller's own fetch is all there is to do
        }
        tracing::debug!("fetching {} tree packs into the cache", missing.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..n.min(missing.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = missing.get(i) else { break };
                    fill_tree_cache(repo, p, dir);
                });
            }
        });
    });
}

/// Removes cached packs no index file names any more (pruned, or written by a backup that
/// never stored its index), as restic's cache cleanup does: the cache stays bounded by the
/// repository's tree packs.
pub(crate) fn clean_tree_cache(repo: &Repository, index: &Index) {
    let Some(dir) = repo.tree_cache() else { return };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut known: Option<std::collections::HashSet<PackId>> = None;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str().and_then(|n| n.parse::<Id>().ok()) else {
            continue;
        };
        let known = known.get_or_insert_with(|| index.packs().iter().copied().collect());
        if !known.contains(&id) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes through the tree cache: a tree pack this process stores goes into the cache too,
/// so the next backup on this host reads nothing remote for its parent's trees.
pub(crate) fn cache_trees(repo: &Repository, p: &FinishedPack) {
    let Some(dir) = repo.tree_cache() else { return };
    if p.entries.iter().any(|e| e.ty == BlobType::Tree) {
        crate::backend::cache_put_file(&dir.join(p.id.to_hex()), &p.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec((any::<bool>(), proptest::collection::vec(0u8..4, 0..3000)), 1..12)) {
            let keys = Keys::from_master([4; 32]);
            let mut w = PackWriter::new(0);
            let mut want = Vec::new();
            for (tree, data) in &blobs {
                let ty = if *tree { BlobType::Tree } else { BlobType::Data };
                let id = keys.blob_id(data);
                w.add(ty, id, &format::seal_blob(&keys, ty, &id, data, Some(3)), data.len() as u32);
                want.push((ty, id, data.clone()));
            }
            let p = w.finish(&keys);
            prop_assert_eq!(p.id, Id::of_bytes(&p.bytes));
            let (area, header) = format::split_pack(&p.bytes).unwrap();
            let entries = format::open_pack_header(&keys, header, area.len() as u64).unwrap();
            prop_assert_eq!(&entries, &p.entries);
            for (e, (ty, id, data)) in entries.iter().zip(&want) {
                prop_assert_eq!((e.ty, e.id), (*ty, *id));
                let sealed = &area[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&format::open_blob(&keys, *ty, id, sealed).unwrap(), data);
            }
        }
    }
}
