//! `prune`: delete what no snapshot uses, repacking partly used packs.
//!
//! Safe order, so that a kill at any point leaves a repository `check` calls sound:
//! 1. find every blob the snapshots reach (abort, deleting nothing, if one is missing);
//! 2. copy the used blobs of packs chosen for repacking into new packs (each blob is opened and
//!    verified first, so damage is never copied);
//! 3. write new index files naming only used blobs, superseding all old ones;
//! 4. delete the old index files;
//! 5. delete packs no index names any more.
//!
//! Steps 2–3 leave at most unindexed packs behind; after step 3 every index entry points at a
//! pack that exists until step 5, which only removes packs the new index does not name.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{self, BlobEntry, BlobType, FileKind, IndexFile, IndexPack, NodeKind};
use crate::id::{BlobId, Id, PackId, TreeId};
use crate::index::{load_index_file, Index};
use crate::lock::LockGuard;
use crate::pack::parse_pack;
use crate::repository::Repository;
use crate::tree::load_tree;

/// How much unused space may remain in partly used packs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// Percent of the repository's size after prune.
    Percent(f64),
    Bytes(u64),
    Unlimited,
}

impl std::str::FromStr for MaxUnused {
    type Err = Error;
    fn from_str(s: &str) -> Result<MaxUnused> {
        let s = s.trim();
        if s == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .parse()
                .map_err(|_| Error::Invalid(format!("--max-unused {s:?}")))?;
            if !(0.0..100.0).contains(&p) {
                return Err(Error::Invalid(format!(
                    "--max-unused {s:?}: percent must be in 0..100"
                )));
            }
            return Ok(MaxUnused::Percent(p));
        }
        Ok(MaxUnused::Bytes(parse_size(s)?))
    }
}

/// Parses a size in bytes: `4096`, `10k`, `200M`, `1.5G`, `1GiB`, `1GB` (case-insensitive).
pub fn parse_size(s: &str) -> Result<u64> {
    parse_size_in(s, 1)
}

/// Parses a size whose bare numbers count `unit` bytes (`--pack-size 16` is 16 MiB).
///
/// A lone K, M, G, T, P or E is binary, as restic reads it (`1G` = 1 GiB); KiB, MiB, GiB
/// are binary and KB, MB, GB decimal, as their SI and IEC names say.
pub fn parse_size_in(s: &str, unit: u64) -> Result<u64> {
    let t = s.trim();
    let lone_prefix = t.chars().last().is_some_and(|c| "kmgtpeKMGTPE".contains(c))
        && t.chars()
            .nth_back(1)
            .is_some_and(|c| !c.is_ascii_alphabetic());
    let text = if lone_prefix {
        format!("{t}i")
    } else {
        t.to_string()
    };
    parse_size::Config::new()
        .with_default_factor(unit)
        .parse_size(&text)
        .map_err(|e| {
            Error::Invalid(format!(
                "size {s:?}: {e} (write e.g. 4096, 500M, 1.5G, 1GiB or 1GB)"
            ))
        })
}

#[derive(Clone, Debug)]
pub struct PruneOptions {
    pub dry_run: bool,
    pub max_unused: MaxUnused,
    pub max_repack_size: Option<u64>,
    pub repack_uncompressed: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            max_unused: MaxUnused::Percent(5.0),
            max_repack_size: None,
            repack_uncompressed: false,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub blobs_used: usize,
    pub blobs_unused: usize,
    pub bytes_used: u64,
    pub bytes_unused: u64,
    pub packs_kept: usize,
    pub bytes_kept: u64,
    pub packs_repacked: usize,
    pub bytes_repacked: u64,
    pub packs_deleted: usize,
    pub bytes_deleted: u64,
    pub packs_unindexed_deleted: usize,
    pub packs_written: usize,
    pub bytes_written: u64,
    pub index_files_written: usize,
    pub index_files_deleted: usize,
    pub unused_after: u64,
    /// Packs actually deleted (unused, repacked and unindexed ones) and their bytes.
    pub packs_removed: usize,
    pub bytes_removed: u64,
    /// Objects prune meant to delete that the store holds under retention (S3 Object Lock):
    /// left in place, and removed by a prune after the date shown.
    pub retained: Vec<RetainedObject>,
    pub bytes_retained: u64,
    /// Objects whose delete failed (a put-only credential, say). The repository is consistent
    /// without deleting them; a later prune retries.
    pub delete_failed: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RetainedObject {
    pub path: String,
    pub size: u64,
    #[serde(flatten)]
    pub retention: crate::backend::Retention,
}

/// Every blob reachable from a snapshot. Fails if any tree cannot be loaded or any data blob
/// is missing from the index: pruning on a partial view would delete data still needed.
pub fn used_blobs(
    repo: &Repository,
    index: &Index,
) -> Result<(usize, HashSet<(BlobType, BlobId)>)> {
    let snaps = repo.all_snapshots()?.require_all(
        "snapshot",
        "prune needs every snapshot, or it would delete data a damaged one still uses; \
         `cista forget <id>` removes a damaged snapshot, `cista check` lists every damaged object",
    )?;
    let mut used = HashSet::new();
    let mut level: Vec<TreeId> = Vec::new();
    for (_, s) in &snaps {
        if used.insert((BlobType::Tree, s.tree)) {
            level.push(s.tree);
        }
    }
    while !level.is_empty() {
        let found: Vec<(Vec<TreeId>, Vec<BlobId>)> = level
            .par_iter()
            .map(|t| {
                let tree = load_tree(repo, index, t)?;
                let mut subs = Vec::new();
                let mut data = Vec::new();
                for n in tree.nodes {
                    match n.kind {
                        NodeKind::Dir => subs.extend(n.subtree),
                        NodeKind::File => data.extend(n.content),
                        _ => {}
                    }
                }
                Ok((subs, data))
            })
            .collect::<Result<_>>()?;
        let mut next = Vec::new();
        for (subs, data) in found {
            for d in data {
                if used.insert((BlobType::Data, d)) && !index.contains(BlobType::Data, &d) {
                    return Err(Error::NotFound {
                        what:
                            "data blob (referenced by a snapshot; nothing was deleted, run check)",
                        id: d.to_hex(),
                    });
                }
            }
            for s in subs {
                if used.insert((BlobType::Tree, s)) {
                    next.push(s);
                }
            }
        }
        level = next;
    }
    Ok((snaps.len(), used))
}

/// A pack shorter than its index entries need has lost blobs or its header: repacking would
/// fail half way, and keeping its index entries would hide the loss. Prune stops, deleting
/// nothing, and says how to get past it. (A missing pack is handled below: its blobs count as
/// absent, and prune refuses only if a snapshot needs one.)
fn refuse_short_packs(index: &Index, stored: &HashMap<PackId, u64>) -> Result<()> {
    let short: Vec<_> = index
        .damaged_packs(stored)
        .into_iter()
        .filter(|d| d.stored.is_some())
        .collect();
    let Some(first) = short.first() else {
        return Ok(());
    };
    let path = crate::backend::object_path(FileType::Pack, &first.id.to_hex());
    Err(Error::Corrupt {
        what: "pack",
        id: first.id.to_hex(),
        reason: format!(
            "{} bytes stored, {} needed by its index entries ({} short pack(s) in all); nothing \
             was deleted. Run `cista check` to see what is affected, back up those paths again \
             (a backup stores the blobs of a damaged pack anew), then delete {path} from the \
             repository and prune again: prune then drops the pack from the index, and refuses \
             only if a snapshot still needs a blob stored nowhere else (forget that snapshot)",
            first.stored.unwrap_or(0),
            first.needed,
            short.len()
        ),
    })
}

struct PackPlan {
    id: PackId,
    size: u64,
    /// Entries whose copy in this pack is the one kept.
    keep: Vec<BlobEntry>,
    unused_bytes: u64,
    uncompressed: bool,
}

/// Runs prune. The caller holds an exclusive lock, checked before anything is deleted.
pub fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    lock: Option<&LockGuard>,
) -> Result<PruneReport> {
    let index = Index::load_complete(repo)?;
    let index_ids = index.index_files().to_vec();
    // Every stored index file, superseded leftovers included: the new index supersedes them
    // all, so a leftover never comes back into force when its superseder is deleted.
    let all_index_ids: Vec<Id> = index_ids
        .iter()
        .chain(index.superseded_files())
        .copied()
        .collect();
    let files: Vec<IndexFile> = repo.in_flight(|| {
        index_ids
            .par_iter()
            .map(|id| load_index_file(repo, id))
            .collect::<Result<_>>()
    })?;
    let stored: HashMap<PackId, u64> = repo.pack_sizes()?;
    refuse_short_packs(&index, &stored)?;
    let (snapshots, used) = used_blobs(repo, &index)?;
    let mut rep = PruneReport {
        dry_run: opts.dry_run,
        snapshots,
        ..Default::default()
    };

    // The first indexed copy of a used blob is kept; other copies count as unused.
    let mut claimed: HashSet<(BlobType, BlobId)> = HashSet::new();
    let mut plans: Vec<PackPlan> = Vec::new();
    let mut seen_packs = HashSet::new();
    for p in files.iter().flat_map(|f| f.packs.iter()) {
        if !seen_packs.insert(p.id) {
            continue;
        }
        let size = stored.get(&p.id).copied();
        let mut plan = PackPlan {
            id: p.id,
            size: size.unwrap_or(0),
            keep: Vec::new(),
            unused_bytes: 0,
            uncompressed: false,
        };
        for e in &p.blobs {
            let k = (e.ty, e.id);
            if used.contains(&k) && size.is_some() && claimed.insert(k) {
                plan.uncompressed |=
                    e.length as u64 == e.raw_len as u64 + crate::crypto::SEAL_OVERHEAD as u64 + 9;
                plan.keep.push(*e);
            } else {
                plan.unused_bytes += e.length as u64;
            }
        }
        if size.is_some() {
            plans.push(plan);
        }
    }
    if let Some(missing) = used.iter().find(|k| !claimed.contains(k)) {
        return Err(Error::NotFound {
            what: "blob (its pack is missing; nothing was deleted, run check)",
            id: missing.1.to_hex(),
        });
    }
    rep.blobs_used = claimed.len();
    rep.blobs_unused = files
        .iter()
        .flat_map(|f| f.packs.iter())
        .map(|p| p.blobs.len())
        .sum::<usize>()
        - claimed.len();
    rep.bytes_used = plans
        .iter()
        .flat_map(|p| p.keep.iter())
        .map(|e| e.length as u64)
        .sum();
    rep.bytes_unused = plans.iter().map(|p| p.unused_bytes).sum();

    // Decide per pack: delete (nothing used), keep, or repack.
    let (mut delete, mut partly, mut keep): (Vec<&PackPlan>, Vec<&PackPlan>, Vec<&PackPlan>) =
        (vec![], vec![], vec![]);
    for p in &plans {
        if p.keep.is_empty() {
            delete.push(p);
        } else if p.unused_bytes > 0 || (opts.repack_uncompressed && p.uncompressed) {
            partly.push(p);
        } else {
            keep.push(p);
        }
    }
    let limit = match opts.max_unused {
        MaxUnused::Unlimited => u64::MAX,
        MaxUnused::Bytes(b) => b,
        MaxUnused::Percent(pc) => (rep.bytes_used as f64 * pc / (100.0 - pc)) as u64,
    };
    let mut unused_left: u64 = partly.iter().map(|p| p.unused_bytes).sum();
    partly.sort_by(|a, b| {
        let ra = a.unused_bytes as f64 / a.size.max(1) as f64;
        let rb = b.unused_bytes as f64 / b.size.max(1) as f64;
        rb.partial_cmp(&ra).unwrap().then(a.id.cmp(&b.id))
    });
    let mut repack: Vec<&PackPlan> = Vec::new();
    let mut repack_bytes = 0u64;
    for p in partly {
        let forced = opts.repack_uncompressed && p.uncompressed;
        let within_budget = opts
            .max_repack_size
            .is_none_or(|m| repack_bytes + p.size <= m);
        if (forced || unused_left > limit) && within_budget {
            unused_left -= p.unused_bytes;
            repack_bytes += p.size;
            repack.push(p);
        } else {
            keep.push(p);
        }
    }
    let indexed: HashSet<PackId> = plans.iter().map(|p| p.id).collect();
    let unindexed: Vec<(PackId, u64)> = stored
        .iter()
        .filter(|(id, _)| !indexed.contains(id))
        .map(|(i, s)| (*i, *s))
        .collect();
    rep.packs_kept = keep.len();
    rep.bytes_kept = keep.iter().map(|p| p.size).sum();
    rep.packs_repacked = repack.len();
    rep.bytes_repacked = repack_bytes;
    rep.packs_deleted = delete.len();
    rep.bytes_deleted =
        delete.iter().map(|p| p.size).sum::<u64>() + unindexed.iter().map(|(_, s)| s).sum::<u64>();
    rep.packs_unindexed_deleted = unindexed.len();
    rep.unused_after = unused_left;
    if opts.dry_run {
        return Ok(rep);
    }
    let nothing_to_do = repack.is_empty()
        && delete.is_empty()
        && unindexed.is_empty()
        && rep.blobs_unused == 0
        && index.superseded_files().is_empty();
    if nothing_to_do {
        return Ok(rep);
    }
    let check_lock = || lock.map_or(Ok(()), |l| l.check());
    check_lock()?;

    // 2. Repack.
    // Prune writes its own index (below), naming the new packs with the kept ones.
    let saver = crate::pack::BlobSaver::new(repo, None);
    let repack_one = |p: &PackPlan, bytes: Vec<u8>| -> Result<()> {
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
                let resealed = (opts.repack_uncompressed && uncompressed).then(|| {
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
    };
    let width = repo.pack_width();
    if width == 0 {
        for p in &repack {
            repack_one(p, repo.backend().read(FileType::Pack, &p.id.to_hex())?)?;
        }
    } else {
        // An object store: the next packs are on the wire while this one is repacked, at
        // most `width` of them held at once (so memory stays at `width` packs).
        crate::ahead::fetch_in_order(
            &repack,
            width,
            |p| repo.backend().read(FileType::Pack, &p.id.to_hex()),
            |p, bytes| repack_one(p, bytes?),
        )?;
    }
    saver.finish_packs()?;
    let new_packs = saver.take_stored();
    let (packs, bytes) = saver.written();
    (rep.packs_written, rep.bytes_written) = (packs as usize, bytes);

    // 3. New index: kept packs with their used entries, plus the new packs.
    let mut all: Vec<IndexPack> = keep
        .iter()
        .map(|p| IndexPack {
            id: p.id,
            blobs: p.keep.clone(),
        })
        .collect();
    all.extend(new_packs);
    all.sort_by_key(|p| p.id);
    // Only the last file names the old ones: it is written after the others are durable, so
    // the old files drop out of force only once the whole new index is stored.
    let mut chunks: Vec<&[IndexPack]> = all.chunks(256).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let f = IndexFile {
            supersedes: if i == last {
                all_index_ids.clone()
            } else {
                vec![]
            },
            packs: chunk.to_vec(),
        };
        repo.save_file(FileKind::Index, FileType::Index, &f.encode())?;
        rep.index_files_written += 1;
    }

    // 4. Old index files, then 5. packs nothing names. Neither is needed any more, so an
    // object the store will not delete yet is reported and left for a later prune instead of
    // stopping half way.
    check_lock()?;
    let index_sizes: HashMap<String, u64> =
        repo.backend().list(FileType::Index)?.into_iter().collect();
    let doomed_index: Vec<(FileType, Id, u64)> = all_index_ids
        .iter()
        .map(|id| {
            let size = index_sizes.get(&id.to_hex()).copied().unwrap_or(0);
            (FileType::Index, *id, size)
        })
        .collect();
    let doomed_packs: Vec<(FileType, Id, u64)> = delete
        .iter()
        .map(|p| (p.id, p.size))
        .chain(repack.iter().map(|p| (p.id, p.size)))
        .chain(unindexed.iter().copied())
        .map(|(id, size)| (FileType::Pack, id, size))
        .collect();
    // Index files before packs; every delete first checks the lock is still held.
    for doomed in [doomed_index, doomed_packs] {
        let be = repo.backend();
        let outcome: Vec<Result<DeleteOutcome>> = repo.in_flight(|| {
            doomed
                .par_iter()
                .map(|&(t, id, size)| {
                    let name = id.to_hex();
                    // A store that cannot say is treated as holding nothing: the delete then
                    // either works or is reported as failed.
                    if let Ok(Some(r)) = be.retention(t, &name) {
                        return Ok(DeleteOutcome::Retained(RetainedObject {
                            path: crate::backend::object_path(t, &name),
                            size,
                            retention: r,
                        }));
                    }
                    check_lock()?;
                    Ok(match be.remove(t, &name) {
                        Ok(()) => DeleteOutcome::Deleted(t, size),
                        Err(e) => DeleteOutcome::Failed(format!("{e}")),
                    })
                })
                .collect()
        });
        for o in outcome {
            match o? {
                DeleteOutcome::Deleted(FileType::Index, _) => rep.index_files_deleted += 1,
                DeleteOutcome::Deleted(_, size) => {
                    rep.packs_removed += 1;
                    rep.bytes_removed += size;
                }
                DeleteOutcome::Retained(r) => {
                    rep.bytes_retained += r.size;
                    rep.retained.push(r);
                }
                DeleteOutcome::Failed(e) => rep.delete_failed.push(e),
            }
        }
    }
    rep.retained.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(rep)
}

/// A blob sealed again (`--repack-uncompressed`) and its raw length.
type Resealed = (Vec<u8>, u32);

enum DeleteOutcome {
    Deleted(FileType, u64),
    Retained(RetainedObject),
    Failed(String),
}
