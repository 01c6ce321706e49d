//! `check`: structural consistency, and with `read_data` every stored byte.
//!
//! Every problem is collected with the object it concerns; nothing stops at the first one.
//! Leftovers that do no harm (packs no index names, after an interrupted backup) are reported
//! as notes, not errors.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::backend::FileType;
use crate::error::Result;
use crate::format::{self, BlobType, IndexFile, NodeKind};
use crate::id::{Id, PackId, TreeId};
use crate::index::{load_index_file, BlobLocation, IndexBuilder};
use crate::pack::parse_pack;
use crate::repository::{load_key_file, Repository};
use crate::tree::load_tree;

thread_local! {
    // Blobs are opened and decompressed into per-thread buffers: check keeps no plaintext.
    static SCRATCH: std::cell::RefCell<format::BlobScratch> = std::cell::RefCell::new(Default::default());
    static PACK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Which packs `--read-data` reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    All,
    /// Group `n` of `m` (1-based, `m` at most 256): packs whose first id byte modulo `m` is
    /// `n - 1`, as restic groups them. The groups are fixed by the pack ids, so reading 1/m to
    /// m/m (on different days, say) reads every pack exactly once.
    Part(u32, u32),
    /// This percentage of the packs (rounded, at least one), chosen at random.
    Percent(f64),
    /// Packs chosen at random until they add up to this many bytes (at least one pack).
    Bytes(u64),
}

/// The most `n/m` groups: packs are grouped by the first byte of their id.
pub const MAX_GROUPS: u32 = 256;

impl std::str::FromStr for Subset {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| crate::Error::Invalid(format!("--read-data-subset {s:?}: {why}"));
        let usage =
            || bad("use n/m (group n of m, e.g. 2/5), p% (e.g. 5%) or a size (e.g. 500M)".into());
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| usage())?;
            if p.is_nan() || p <= 0.0 {
                return Err(bad(
                    "reads no pack: give a percentage above 0 and at most 100".into(),
                ));
            }
            if p > 100.0 {
                return Err(bad(
                    "a percentage is at most 100 (100% reads every pack)".into()
                ));
            }
            return Ok(Subset::Percent(p));
        }
        if let Some((n, m)) = s.split_once('/') {
            let (n, m): (u32, u32) = (
                n.trim().parse().map_err(|_| usage())?,
                m.trim().parse().map_err(|_| usage())?,
            );
            if m == 0 || m > MAX_GROUPS {
                return Err(bad(format!(
                    "the number of groups m must be 1 to {MAX_GROUPS}"
                )));
            }
            if n == 0 || n > m {
                return Err(bad(format!(
                    "there is no group {n} of {m}: groups are numbered 1 to {m}"
                )));
            }
            return Ok(Subset::Part(n, m));
        }
        match crate::prune::parse_size(s) {
            Ok(0) => Err(bad("reads no pack: give a size above 0".into())),
            Ok(b) => Ok(Subset::Bytes(b)),
            Err(_) => Err(usage()),
        }
    }
}

/// The packs `subset` reads out of `stored`, sorted by id.
pub fn select_packs(stored: &HashMap<PackId, u64>, subset: Subset) -> Vec<(PackId, u64)> {
    let mut packs: Vec<(PackId, u64)> = stored.iter().map(|(id, s)| (*id, *s)).collect();
    let take = match subset {
        Subset::All => packs.len(),
        Subset::Part(n, m) => {
            packs.retain(|(id, _)| id.0[0] as u32 % m == n - 1);
            packs.len()
        }
        Subset::Percent(p) => {
            shuffle(&mut packs);
            ((packs.len() as f64 * p / 100.0).round() as usize).clamp(1, packs.len().max(1))
        }
        Subset::Bytes(limit) => {
            shuffle(&mut packs);
            let mut total = 0u64;
            let within = packs
                .iter()
                .take_while(|(_, s)| {
                    total = total.saturating_add(*s);
                    total <= limit
                })
                .count();
            within.max(1)
        }
    };
    packs.truncate(take);
    packs.sort();
    packs
}

/// A random order: the packs sorted by a keyed hash of their id under a fresh random key.
fn shuffle(packs: &mut [(PackId, u64)]) {
    let key: [u8; 32] = crate::crypto::random_bytes();
    packs.sort_by_cached_key(|(id, _)| *blake3::keyed_hash(&key, &id.0).as_bytes());
}

#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub read_data: Option<Subset>,
}

#[derive(Debug, Default)]
pub struct CheckReport {
    /// Damage: each names the object.
    pub errors: Vec<String>,
    /// Harmless findings.
    pub notes: Vec<String>,
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs_read: usize,
    pub bytes_read: u64,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    let rep = Mutex::new(CheckReport::default());
    let err = |s: String| rep.lock().unwrap().errors.push(s);

    // Key files.
    for (name, _) in repo.backend().list(FileType::Key)? {
        if let Err(e) = load_key_file(&**repo.backend(), &name) {
            err(format!("{e}"));
        }
    }

    // Index files, each on its own so one damaged file does not hide the rest.
    let index_ids = repo.list_ids(FileType::Index)?;
    // One small request each: in flight on an object store (see `Repository::in_flight`).
    let files: Vec<(Id, IndexFile)> = repo.in_flight(|| {
        index_ids
            .par_iter()
            .filter_map(|id| match load_index_file(repo, id) {
                Ok(f) => Some((*id, f)),
                Err(e) => {
                    err(format!("{e}"));
                    None
                }
            })
            .collect()
    });
    let (files, superseded) = crate::index::split_superseded(files.into_iter());
    if !superseded.is_empty() {
        rep.lock().unwrap().notes.push(format!(
            "{} index file(s) superseded by a newer one are still stored (a prune could not delete them; the next prune retries)",
            superseded.len()
        ));
    }
    let mut b = IndexBuilder::default();
    for (_, f) in &files {
        for p in &f.packs {
            b.add_pack(p);
        }
    }
    let index = b.build();

    let stored: HashMap<PackId, u64> = repo.pack_sizes()?;
    let mut by_pack: HashMap<PackId, Vec<(BlobType, Id, BlobLocation)>> = HashMap::new();
    for (ty, id, loc) in index.iter() {
        by_pack.entry(loc.pack).or_default().push((ty, id, loc));
    }
    let short: HashMap<PackId, crate::index::DamagedPack> = index
        .damaged_packs(&stored)
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    for (pack, blobs) in &by_pack {
        match stored.get(pack) {
            None => err(format!(
                "pack {pack} is named by the index ({} blobs) but does not exist",
                blobs.len()
            )),
            Some(&size) => {
                if let Some((_, id, _)) = blobs
                    .iter()
                    .find(|(_, _, l)| l.offset as u64 + l.length as u64 + 4 > size)
                {
                    err(format!("pack {pack}: index entry for blob {id} lies beyond the pack's {size} bytes"));
                } else if let Some(d) = short.get(pack) {
                    // Backup and prune judge packs by the same rule.
                    err(format!("{d}"));
                }
            }
        }
    }
    // A damaged pack whose blobs all have an earlier copy elsewhere (a backup stored them
    // again) is still damage: its index entries point at what is not there.
    for (pack, d) in &short {
        if !by_pack.contains_key(pack) {
            err(format!("{d}"));
        }
    }
    let indexed: HashSet<PackId> = index.packs().iter().copied().collect();
    {
        let mut r = rep.lock().unwrap();
        r.packs = stored.len();
        for p in stored.keys() {
            if !indexed.contains(p) {
                r.notes.push(format!(
                    "pack {p} is not in any index (left by an interrupted backup; prune removes it)"
                ));
            }
        }
    }

    // Snapshots and their trees.
    let snap_ids = repo.list_ids(FileType::Snapshot)?;
    let roots: Vec<(Id, TreeId)> = repo.in_flight(|| {
        snap_ids
            .par_iter()
            .filter_map(|id| match repo.load_snapshot(id) {
                Ok(s) => Some((*id, s.tree)),
                Err(e) => {
                    err(format!("{e}"));
                    None
                }
            })
            .collect()
    });
    rep.lock().unwrap().snapshots = roots.len();
    let mut seen: HashSet<TreeId> = HashSet::new();
    let mut level: Vec<(TreeId, String)> = Vec::new();
    for (sid, t) in roots {
        if seen.insert(t) {
            level.push((t, format!("snapshot {}", sid.short())));
        }
    }
    while !level.is_empty() {
        let next: Vec<Vec<(TreeId, String)>> = level
            .par_iter()
            .map(|(tid, path)| {
                let tree = match load_tree(repo, &index, tid) {
                    Ok(t) => t,
                    Err(e) => {
                        err(format!("{path}: {e}"));
                        return vec![];
                    }
                };
                let mut subs = Vec::new();
                for n in &tree.nodes {
                    let p = format!("{path}/{}", n.name_lossy());
                    match n.kind {
                        NodeKind::Dir => subs.push((n.subtree.expect("decoded"), p)),
                        NodeKind::File => {
                            for b in &n.content {
                                if !index.contains(BlobType::Data, b) {
                                    err(format!("{p}: data blob {b} is not in the index"));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                subs
            })
            .collect();
        rep.lock().unwrap().trees += level.len();
        level = next
            .into_iter()
            .flatten()
            .filter(|(t, _)| seen.insert(*t))
            .collect();
    }

    if let Some(subset) = opts.read_data {
        let packs = select_packs(&stored, subset);
        if packs.is_empty() && !stored.is_empty() {
            if let Subset::Part(n, m) = subset {
                rep.lock().unwrap().notes.push(format!(
                    "group {n}/{m} holds none of the {} packs: no data was read",
                    stored.len()
                ));
            }
        }
        let check_pack = |pack: &PackId, bytes: &[u8]| {
            let entries = match parse_pack(repo, pack, bytes) {
                Ok(e) => e,
                Err(e) => return err(format!("{e}")),
            };
            let in_header: HashMap<(BlobType, Id), (u32, u32)> = entries
                .iter()
                .map(|e| ((e.ty, e.id), (e.offset, e.length)))
                .collect();
            for (ty, id, loc) in by_pack.get(pack).map(|v| v.as_slice()).unwrap_or(&[]) {
                if in_header.get(&(*ty, *id)) != Some(&(loc.offset, loc.length)) {
                    err(format!(
                        "pack {pack}: index entry for {} blob {id} does not match the pack header",
                        ty.name()
                    ));
                }
            }
            // Blobs in parallel too, so the last pack does not leave a core idle.
            let n: usize = entries
                .par_chunks(16)
                .map(|chunk| {
                    SCRATCH.with(|scratch| {
                        let scratch = &mut scratch.borrow_mut();
                        let mut n = 0;
                        for e in chunk {
                            let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
                            match format::verify_blob(
                                repo.keys(),
                                e.ty,
                                &e.id,
                                sealed,
                                e.raw_len,
                                scratch,
                            ) {
                                Ok(()) => n += 1,
                                Err(why) => err(format!(
                                    "{} {}: in pack {pack}: {why}",
                                    e.ty.blob_name(),
                                    e.id
                                )),
                            }
                        }
                        n
                    })
                })
                .sum();
            let mut r = rep.lock().unwrap();
            r.packs_read += 1;
            r.blobs_read += n;
            r.bytes_read += bytes.len() as u64;
        };
        let width = repo.pack_width();
        if width > 0 {
            // An object store: 2 x `connections` packs on the wire at once, instead of one per
            // core waiting a round trip each. Fetch threads of their own leave the cores to
            // decrypting and verifying, and at most `width` packs are held at any time.
            crate::ahead::fetch_unordered(
                &packs,
                width,
                |(pack, _)| repo.backend().read(FileType::Pack, &pack.to_hex()),
                |(pack, _), bytes| match bytes {
                    Ok(b) => check_pack(pack, &b),
                    Err(e) => err(format!("{e}")),
                },
            );
            return Ok(rep.into_inner().unwrap());
        }
        packs.par_iter().for_each(|(pack, _)| {
            let name = pack.to_hex();
            match repo.backend().map(FileType::Pack, &name) {
                Ok(Some(m)) => return check_pack(pack, &m),
                Ok(None) => {}
                Err(e) => return err(format!("{e}")),
            }
            let mut bytes = PACK_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
            if let Err(e) = repo.backend().read_into(FileType::Pack, &name, &mut bytes) {
                return err(format!("{e}"));
            }
            check_pack(pack, &bytes);
            PACK_BUF.with(|b| *b.borrow_mut() = bytes);
        });
    }
    Ok(rep.into_inner().unwrap())
}
