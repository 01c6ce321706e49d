//! `--read-data`: packs read whole, each checked against its storage hash, its header against
//! the index, and every blob opened and its keyed id verified.

use std::collections::HashMap;

use rayon::prelude::*;

use super::structure::Packs;
use super::{select_packs, Findings, Subset};
use crate::backend::FileType;
use crate::format::{self, BlobEntry, BlobType};
use crate::id::{Id, PackId};
use crate::index::BlobLocation;
use crate::pack::parse_pack;
use crate::repository::Repository;

thread_local! {
    // Blobs are opened and decompressed into per-thread buffers: check keeps no plaintext.
    static SCRATCH: std::cell::RefCell<format::BlobScratch> = std::cell::RefCell::new(Default::default());
    static PACK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads the packs of `subset` and checks each.
pub(super) fn read_data(repo: &Repository, packs: &Packs, subset: Subset, rep: &Findings) {
    let chosen = select_packs(&packs.stored, subset);
    if chosen.is_empty() && !packs.stored.is_empty() {
        if let Subset::Part(n, m) = subset {
            rep.note(format!(
                "group {n}/{m} holds none of the {} packs: no data was read",
                packs.stored.len()
            ));
        }
    }
    let check = |pack: &PackId, bytes: &[u8]| {
        let indexed = packs.by_pack.get(pack).map(|v| v.as_slice()).unwrap_or(&[]);
        check_pack(repo, pack, bytes, indexed, rep)
    };
    let width = repo.pack_width();
    if width > 0 {
        // An object store: 2 x `connections` packs on the wire at once, instead of one per
        // core waiting a round trip each. Fetch threads of their own leave the cores to
        // decrypting and verifying, and at most `width` packs are held at any time.
        crate::ahead::fetch_unordered(
            &chosen,
            width,
            |(pack, _)| repo.backend().read(FileType::Pack, &pack.to_hex()),
            |(pack, _), bytes| match bytes {
                Ok(b) => check(pack, &b),
                Err(e) => rep.error(format!("{e}")),
            },
        );
        return;
    }
    chosen.par_iter().for_each(|(pack, _)| {
        let name = pack.to_hex();
        // Local disk: pack files are never changed in place, so mapping them is safe and
        // saves copying them.
        match repo.backend().map(FileType::Pack, &name) {
            Ok(Some(m)) => return check(pack, &m),
            Ok(None) => {}
            Err(e) => return rep.error(format!("{e}")),
        }
        let mut bytes = PACK_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
        if let Err(e) = repo.backend().read_into(FileType::Pack, &name, &mut bytes) {
            return rep.error(format!("{e}"));
        }
        check(pack, &bytes);
        PACK_BUF.with(|b| *b.borrow_mut() = bytes);
    });
}

/// Checks pack `pack`, read whole into `bytes`, against its index entries `indexed`.
fn check_pack(
    repo: &Repository,
    pack: &PackId,
    bytes: &[u8],
    indexed: &[(BlobType, Id, BlobLocation)],
    rep: &Findings,
) {
    let entries = match parse_pack(repo, pack, bytes) {
        Ok(e) => e,
        Err(e) => return rep.error(format!("{e}")),
    };
    let in_header: HashMap<(BlobType, Id), (u32, u32)> = entries
        .iter()
        .map(|e| ((e.ty, e.id), (e.offset, e.length)))
        .collect();
    for (ty, id, loc) in indexed {
        if in_header.get(&(*ty, *id)) != Some(&(loc.offset, loc.length)) {
            rep.error(format!(
                "pack {pack}: index entry for {} blob {id} does not match the pack header",
                ty.name()
            ));
        }
    }
    // Blobs in parallel too, so the last pack does not leave a core idle.
    let n: usize = entries
        .par_chunks(16)
        .map(|chunk| verify_blobs(repo, pack, bytes, chunk, rep))
        .sum();
    rep.with(|r| {
        r.packs_read += 1;
        r.blobs_read += n;
        r.bytes_read += bytes.len() as u64;
    });
}

/// Opens each blob of `chunk` in `bytes` and verifies its id; returns how many verified.
fn verify_blobs(
    repo: &Repository,
    pack: &PackId,
    bytes: &[u8],
    chunk: &[BlobEntry],
    rep: &Findings,
) -> usize {
    SCRATCH.with(|scratch| {
        let scratch = &mut scratch.borrow_mut();
        let mut n = 0;
        for e in chunk {
            let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            match format::verify_blob(repo.keys(), e.ty, &e.id, sealed, e.raw_len, scratch) {
                Ok(()) => n += 1,
                Err(why) => rep.error(format!(
                    "{} {}: in pack {pack}: {why}",
                    e.ty.blob_name(),
                    e.id
                )),
            }
        }
        n
    })
}
