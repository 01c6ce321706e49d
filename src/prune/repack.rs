//! Step 2 of prune: the used blobs of the packs chosen for repacking, copied into new packs.

use rayon::prelude::*;

use super::plan::PackPlan;
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{self, IndexPack};
use crate::pack::{parse_pack, BlobSaver};
use crate::repository::Repository;

/// A blob sealed again (`--repack-uncompressed`) and its raw length.
type Resealed = (Vec<u8>, u32);

/// What repacking stored: the new packs' index entries, their count and bytes.
pub(super) struct Repacked {
    pub(super) packs: Vec<IndexPack>,
    pub(super) packs_written: u64,
    pub(super) bytes_written: u64,
}

/// Copies the kept blobs of `packs`, in order, into new packs. Every blob is opened (so
/// verified) before it is copied; with `reseal`, uncompressed blobs are compressed anew.
/// The new packs are not indexed here: prune writes its own index, naming them with the kept
/// packs.
pub(super) fn repack(
    repo: &Repository,
    packs: &[PackPlan],
    reseal: bool,
    progress: Option<&crate::util::Progress>,
) -> Result<Repacked> {
    let saver = BlobSaver::new(repo, None);
    if let Some(p) = progress {
        p.set_totals(packs.len() as u64, packs.iter().map(|p| p.size).sum());
    }
    let done = |p: &PackPlan| {
        if let Some(pr) = progress {
            pr.add_files(1);
            pr.add_bytes(p.size);
        }
    };
    let width = repo.pack_width();
    if width == 0 {
        for p in packs {
            let bytes = repo.backend().read(FileType::Pack, &p.id.to_hex())?;
            repack_one(repo, &saver, p, bytes, reseal)?;
            done(p);
        }
    } else {
        // An object store: the next packs are on the wire while this one is repacked, at
        // most `width` of them held at once (so memory stays at `width` packs).
        crate::ahead::fetch_in_order(
            packs,
            width,
            |p| repo.backend().read(FileType::Pack, &p.id.to_hex()),
            |p, bytes| {
                repack_one(repo, &saver, p, bytes?, reseal)?;
                done(p);
                Ok(())
            },
        )?;
    }
    saver.finish_packs()?;
    let new_packs = saver.take_stored();
    let (packs_written, bytes_written) = saver.written();
    Ok(Repacked {
        packs: new_packs,
        packs_written,
        bytes_written,
    })
}

/// Copies one pack's kept blobs (`bytes` is the whole pack) into `saver`.
fn repack_one(
    repo: &Repository,
    saver: &BlobSaver,
    p: &PackPlan,
    bytes: Vec<u8>,
    reseal: bool,
) -> Result<()> {
    parse_pack(repo, &p.id, &bytes)?;
    // Opened (and, when asked, resealed) on every core; added in the plan's order.
    let opened: Vec<(&[u8], Option<Resealed>)> = p
        .keep
        .par_iter()
        .map(|e| {
            let sealed = bytes
                .get(e.offset as usize..e.offset as usize + e.length as usize)
                .ok_or_else(|| {
                    Error::corrupt("pack", p.id, format!("blob {} lies beyond the pack", e.id))
                })?;
            let raw = crate::pack::open_blob(repo, e.ty, &e.id, &p.id, sealed)?;
            let uncompressed = e.length as u64 == format::uncompressed_sealed_len(e.raw_len);
            let resealed = (reseal && uncompressed).then(|| {
                let level = Some(repo.config().blob_level(raw.len()));
                let s = format::seal_blob(repo.keys(), e.ty, &e.id, &raw, level);
                (s, raw.len() as u32)
            });
            Ok((sealed, resealed))
        })
        .collect::<Result<_>>()?;
    for (e, (sealed, resealed)) in p.keep.iter().zip(opened) {
        match resealed {
            Some((s, raw_len)) => saver.add(e.ty, e.id, &s, raw_len)?,
            None => saver.add(e.ty, e.id, sealed, e.raw_len)?,
        }
    }
    Ok(())
}
