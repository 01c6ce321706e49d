//! The tree cache of a remote repository: whole tree packs kept as files, verified blob by
//! blob on every read, filled by backups (write-through) and by cold walks, cleaned of packs no
//! index names.

use super::reader::open_blob_at;
use super::FinishedPack;
use crate::backend::FileType;
use crate::format::BlobType;
use crate::id::{BlobId, Id, PackId};
use crate::index::{BlobLocation, Index};
use crate::repository::Repository;

/// A blob from the cached copy of its pack, opened: that re-checks the key and the id, so a
/// damaged or short cached pack is removed and the blob reported as absent.
pub(super) fn read_cached(
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
pub(super) fn fill_tree_cache(repo: &Repository, pack: &PackId, dir: &std::path::Path) -> bool {
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
pub(super) fn prefetch_tree_packs(repo: &Repository, index: &Index, dir: &std::path::Path) {
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
