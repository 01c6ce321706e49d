//! The in-memory blob index: blob id → pack, offset and lengths.
//!
//! Two sorted arrays (data and tree blobs) of 48-byte entries and one array of pack ids; a
//! lookup is a binary search. Index files are decoded in parallel and merged once.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{BlobType, FileKind, IndexFile, IndexPack};
use crate::id::{BlobId, Id, PackId};
use crate::repository::Repository;

/// Separates the index files in force from those a stored index file supersedes. A prune writes
/// `supersedes` only into the last of its new index files, after the others are durable, so a
/// superseding file proves the whole new index is stored; the old files it names are then
/// ignored even if deleting them failed (Object Lock, a put-only credential, a crash).
pub fn split_superseded(
    files: impl Iterator<Item = (Id, IndexFile)>,
) -> (Vec<(Id, IndexFile)>, Vec<Id>) {
    let files: Vec<(Id, IndexFile)> = files.collect();
    let gone: std::collections::HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let (superseded, active): (Vec<_>, Vec<_>) =
        files.into_iter().partition(|(id, _)| gone.contains(id));
    (active, superseded.into_iter().map(|(id, _)| id).collect())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    id: BlobId,
    pack: u32,
    offset: u32,
    length: u32,
    raw_len: u32,
}

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub offset: u32,
    pub length: u32,
    pub raw_len: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Index {
    packs: Vec<PackId>,
    data: Vec<Entry>,
    tree: Vec<Entry>,
    /// The index files this index was built from.
    files: Vec<Id>,
    /// Index files still stored whose content a newer index file includes (left when a prune
    /// could not delete them); they are not read into the index.
    superseded: Vec<Id>,
    /// Further copies of blobs stored in more than one pack, sorted by id: a reader falls back
    /// on them when the first copy is damaged, and a copy in a missing or short pack is ranked
    /// after the others (see `rank_packs`).
    data_alt: Vec<Entry>,
    tree_alt: Vec<Entry>,
    /// Index files left out because they failed verification (see `Index::load`).
    damaged: Vec<Id>,
}

/// A pack the index names that the store lacks or holds shorter than the index requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedPack {
    pub id: PackId,
    /// The stored size, `None` when the pack is missing.
    pub stored: Option<u64>,
    /// The least size the index entries imply.
    pub needed: u64,
}

impl DamagedPack {
    /// This pack as a problem with `message`: `Missing`, or `SizeMismatch` when short.
    pub(crate) fn problem(&self, message: String) -> crate::problem::Problem {
        use crate::problem::{ObjectKind, Problem, ProblemKind};
        let kind = match self.stored {
            None => ProblemKind::Missing,
            Some(_) => ProblemKind::SizeMismatch,
        };
        Problem::new(kind, message).with_object(ObjectKind::Pack, self.id)
    }
}

impl std::fmt::Display for DamagedPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.stored {
            None => write!(f, "pack {} is named by the index but missing", self.id),
            Some(s) => write!(
                f,
                "pack {} is {s} bytes, shorter than the {} its index entries need",
                self.id, self.needed
            ),
        }
    }
}

impl Index {
    /// Loads every index file that opens. One that fails verification is left out with a
    /// warning naming it: junk stored under a valid-looking name (by anyone with put rights)
    /// must not stop every backup and restore. Its blobs then look absent, which costs a backup
    /// a re-upload and a restore a reported missing blob, never wrong data.
    pub fn load(repo: &Repository) -> Result<Index> {
        let (idx, damaged) = Index::load_files(repo)?;
        for (id, e) in &damaged {
            crate::repository::warn_skipped("index file", id, e);
        }
        crate::pack::clean_tree_cache(repo, &idx);
        Ok(idx)
    }

    /// Loads every index file, failing on a damaged one: for prune, which would otherwise
    /// delete the packs a damaged index file names as unreferenced.
    pub fn load_complete(repo: &Repository) -> Result<Index> {
        let (idx, damaged) = Index::load_files(repo)?;
        crate::repository::refuse_damaged(
            damaged,
            "index file",
            "prune needs every index file, or it would delete the packs a damaged one names; \
             if the file was not written by cista (it fails authentication), delete it from \
             the store (index/<id>); `cista check` lists every damaged object",
        )?;
        Ok(idx)
    }

    fn load_files(repo: &Repository) -> Result<(Index, Vec<(Id, Error)>)> {
        let ids = repo.list_ids(FileType::Index)?;
        let got: Vec<(Id, Result<IndexFile>)> = repo.in_flight(|| {
            ids.par_iter()
                .map(|id| (*id, load_index_file(repo, id)))
                .collect()
        });
        let loaded = crate::repository::Loaded::sort_out(got)?;
        let (active, superseded) = split_superseded(loaded.ok.into_iter());
        let mut idx = Index::from_files(active.iter().map(|(_, f)| f));
        idx.files = active.iter().map(|(id, _)| *id).collect();
        idx.superseded = superseded;
        if !idx.data_alt.is_empty() || !idx.tree_alt.is_empty() {
            // Which copy comes first matters only when there are several: then one listing
            // makes readers use a copy whose pack is there and whole.
            let bad = idx.damaged_packs(&repo.pack_sizes()?);
            idx.rank_packs(&bad, false);
        }
        idx.damaged = loaded.damaged.iter().map(|(id, _)| *id).collect();
        Ok((idx, loaded.damaged))
    }

    /// Stored index files left out because they failed verification.
    pub fn damaged_files(&self) -> &[Id] {
        &self.damaged
    }

    /// Packs whose stored size (from one listing of data/) is missing or below what the index
    /// entries need: the blob area up to the last entry's end, plus a header of at least the
    /// entries the index names, plus the trailer.
    pub fn damaged_packs(&self, stored: &HashMap<PackId, u64>) -> Vec<DamagedPack> {
        let mut need: Vec<(u64, u64)> = vec![(0, 0); self.packs.len()];
        let tables = [(&self.data, &self.data_alt), (&self.tree, &self.tree_alt)];
        for e in tables.iter().flat_map(|(t, a)| t.iter().chain(a.iter())) {
            let n = &mut need[e.pack as usize];
            n.0 = n.0.max(e.offset as u64 + e.length as u64);
            n.1 += 1;
        }
        let mut out: Vec<DamagedPack> = need
            .iter()
            .enumerate()
            .filter(|(_, (_, count))| *count > 0)
            .filter_map(|(i, &(end, count))| {
                let id = self.packs[i];
                let needed = end + pack_overhead(count);
                let got = stored.get(&id).copied();
                got.is_none_or(|s| s < needed).then_some(DamagedPack {
                    id,
                    stored: got,
                    needed,
                })
            })
            .collect();
        out.sort_by_key(|d| d.id);
        out
    }

    /// Ranks copies in `bad` packs after the others; with `drop`, forgets them instead, so a
    /// blob stored only there is absent.
    pub fn rank_packs(&mut self, bad: &[DamagedPack], drop: bool) {
        if bad.is_empty() {
            return;
        }
        let bad: HashSet<PackId> = bad.iter().map(|d| d.id).collect();
        let bad: Vec<bool> = self.packs.iter().map(|p| bad.contains(p)).collect();
        for (t, alt) in [
            (&mut self.data, &mut self.data_alt),
            (&mut self.tree, &mut self.tree_alt),
        ] {
            let mut all: Vec<Entry> = std::mem::take(t);
            all.append(alt);
            all.retain(|e| !(drop && bad[e.pack as usize]));
            // Stable: among equally good copies the first-added stays first.
            all.par_sort_by_key(|e| (e.id, bad[e.pack as usize]));
            (*t, *alt) = split_copies(all);
        }
    }

    /// The copies after the first of a blob stored in several packs.
    pub fn alternates(&self, ty: BlobType, id: &BlobId) -> Vec<BlobLocation> {
        let alt = match ty {
            BlobType::Data => &self.data_alt,
            BlobType::Tree => &self.tree_alt,
        };
        let start = alt.partition_point(|e| e.id < *id);
        alt[start..]
            .iter()
            .take_while(|e| e.id == *id)
            .map(|e| self.location(e))
            .collect()
    }

    fn location(&self, e: &Entry) -> BlobLocation {
        BlobLocation {
            pack: self.packs[e.pack as usize],
            offset: e.offset,
            length: e.length,
            raw_len: e.raw_len,
        }
    }

    pub fn from_files<'a>(files: impl Iterator<Item = &'a IndexFile>) -> Index {
        let mut b = IndexBuilder::default();
        for f in files {
            for p in &f.packs {
                b.add_pack(p);
            }
        }
        b.build()
    }

    fn table(&self, ty: BlobType) -> &[Entry] {
        match ty {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        }
    }

    pub fn get(&self, ty: BlobType, id: &BlobId) -> Option<BlobLocation> {
        let t = self.table(ty);
        t.binary_search_by(|e| e.id.cmp(id))
            .ok()
            .map(|i| self.location(&t[i]))
    }

    pub fn contains(&self, ty: BlobType, id: &BlobId) -> bool {
        self.table(ty).binary_search_by(|e| e.id.cmp(id)).is_ok()
    }

    /// Number of distinct blobs of a type.
    pub fn len(&self, ty: BlobType) -> usize {
        self.table(ty).len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.tree.is_empty()
    }

    /// Every pack some index entry points into.
    pub fn packs(&self) -> &[PackId] {
        &self.packs
    }

    /// Every pack holding a tree blob (the packs a tree cache keeps), each once.
    pub fn tree_packs(&self) -> Vec<PackId> {
        let mut seen = vec![false; self.packs.len()];
        for e in self.table(BlobType::Tree) {
            seen[e.pack as usize] = true;
        }
        let mut v: Vec<PackId> = self
            .tree_alt
            .iter()
            .map(|e| self.packs[e.pack as usize])
            .collect();
        v.extend(
            self.packs
                .iter()
                .zip(seen)
                .filter(|(_, s)| *s)
                .map(|(p, _)| *p),
        );
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn index_files(&self) -> &[Id] {
        &self.files
    }

    /// Stored index files that a newer one supersedes (see `split_superseded`).
    pub fn superseded_files(&self) -> &[Id] {
        &self.superseded
    }

    /// Every (type, id, location).
    pub fn iter(&self) -> impl Iterator<Item = (BlobType, BlobId, BlobLocation)> + '_ {
        let f = move |ty: BlobType| {
            self.table(ty).iter().map(move |e| {
                (
                    ty,
                    e.id,
                    BlobLocation {
                        pack: self.packs[e.pack as usize],
                        offset: e.offset,
                        length: e.length,
                        raw_len: e.raw_len,
                    },
                )
            })
        };
        f(BlobType::Data).chain(f(BlobType::Tree))
    }

    /// Bytes of memory per blob entry (the target is at most 48).
    pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
}

/// Collects packs, then sorts once.
#[derive(Default)]
pub struct IndexBuilder {
    packs: Vec<PackId>,
    pack_pos: std::collections::HashMap<PackId, u32>,
    data: Vec<Entry>,
    tree: Vec<Entry>,
}

impl IndexBuilder {
    pub fn add_pack(&mut self, p: &IndexPack) {
        let next = self.packs.len() as u32;
        let pos = *self.pack_pos.entry(p.id).or_insert(next);
        if pos == next {
            self.packs.push(p.id);
        }
        for b in &p.blobs {
            let e = Entry {
                id: b.id,
                pack: pos,
                offset: b.offset,
                length: b.length,
                raw_len: b.raw_len,
            };
            match b.ty {
                BlobType::Data => self.data.push(e),
                BlobType::Tree => self.tree.push(e),
            }
        }
    }

    pub fn build(mut self) -> Index {
        let mut alts = [Vec::new(), Vec::new()];
        for (t, alt) in [&mut self.data, &mut self.tree].into_iter().zip(&mut alts) {
            // Stable sort keeps the first-added copy of a blob stored in several packs.
            t.par_sort_by(|a, b| a.id.cmp(&b.id));
            let (first, rest) = split_copies(std::mem::take(t));
            (*t, *alt) = (first, rest);
            t.shrink_to_fit();
        }
        let [data_alt, tree_alt] = alts;
        Index {
            packs: self.packs,
            data: self.data,
            tree: self.tree,
            files: Vec::new(),
            superseded: Vec::new(),
            damaged: Vec::new(),
            data_alt,
            tree_alt,
        }
    }
}

/// Splits entries sorted by id into the first copy of each blob and the further copies; a copy
/// naming the same pack again (a pack listed by two index files) is dropped. In place: the
/// table is the index's bulk.
fn split_copies(mut all: Vec<Entry>) -> (Vec<Entry>, Vec<Entry>) {
    let mut rest: Vec<Entry> = Vec::new();
    let mut w = 0;
    for r in 0..all.len() {
        let e = all[r];
        if w > 0 && all[w - 1].id == e.id {
            let again = all[w - 1].pack == e.pack
                || rest
                    .last()
                    .is_some_and(|x| x.id == e.id && x.pack == e.pack);
            if !again {
                rest.push(e);
            }
        } else {
            all[w] = e;
            w += 1;
        }
    }
    all.truncate(w);
    (all, rest)
}

/// Bytes a pack holds beyond its blobs: a header of `n` entries, sealed, and its length.
pub fn pack_overhead(n: u64) -> u64 {
    (crate::crypto::SEAL_OVERHEAD + 5 + crate::format::PACK_TRAILER_LEN) as u64
        + n * crate::format::BLOB_ENTRY_LEN as u64
}

pub fn load_index_file(repo: &Repository, id: &Id) -> Result<IndexFile> {
    let raw = repo.load_file(FileKind::Index, FileType::Index, id)?;
    IndexFile::decode(&raw).map_err(|e| Error::corrupt("index", id, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::BlobEntry;

    #[test]
    fn entry_is_48_bytes() {
        assert_eq!(Index::ENTRY_BYTES, 48);
    }

    #[test]
    fn lookup_and_duplicates() {
        let e = |i: u8, ty| BlobEntry {
            ty,
            id: Id([i; 32]),
            offset: i as u32,
            length: 10,
            raw_len: 5,
        };
        let f = IndexFile {
            supersedes: vec![],
            packs: vec![
                IndexPack {
                    id: Id([100; 32]),
                    blobs: vec![e(1, BlobType::Data), e(2, BlobType::Tree)],
                },
                IndexPack {
                    id: Id([101; 32]),
                    blobs: vec![e(1, BlobType::Data), e(3, BlobType::Data)],
                },
            ],
        };
        let idx = Index::from_files([&f].into_iter());
        assert_eq!(idx.len(BlobType::Data), 2);
        assert_eq!(
            idx.get(BlobType::Data, &Id([1; 32])).unwrap().pack,
            Id([100; 32])
        );
        assert_eq!(
            idx.get(BlobType::Data, &Id([3; 32])).unwrap().pack,
            Id([101; 32])
        );
        assert!(idx.get(BlobType::Data, &Id([2; 32])).is_none());
        assert!(idx.contains(BlobType::Tree, &Id([2; 32])));
        assert_eq!(
            idx.alternates(BlobType::Data, &Id([1; 32]))
                .iter()
                .map(|l| l.pack)
                .collect::<Vec<_>>(),
            vec![Id([101; 32])]
        );
    }

    #[test]
    fn damaged_packs_are_ranked_last_or_dropped() {
        let e = |i: u8, offset| BlobEntry {
            ty: BlobType::Data,
            id: Id([i; 32]),
            offset,
            length: 10,
            raw_len: 5,
        };
        let (a, b) = (Id([100; 32]), Id([101; 32]));
        let f = IndexFile {
            supersedes: vec![],
            packs: vec![
                IndexPack {
                    id: a,
                    blobs: vec![e(1, 0), e(2, 10)],
                },
                IndexPack {
                    id: b,
                    blobs: vec![e(1, 0)],
                },
            ],
        };
        let whole_a = 20 + pack_overhead(2);
        let stored = HashMap::from([(a, whole_a - 1), (b, 10 + pack_overhead(1))]);
        let mut idx = Index::from_files([&f].into_iter());
        let bad = idx.damaged_packs(&stored);
        assert_eq!(
            bad,
            vec![DamagedPack {
                id: a,
                stored: Some(whole_a - 1),
                needed: whole_a
            }]
        );
        let mut dropped = idx.clone();
        idx.rank_packs(&bad, false);
        assert_eq!(idx.get(BlobType::Data, &Id([1; 32])).unwrap().pack, b);
        assert_eq!(idx.get(BlobType::Data, &Id([2; 32])).unwrap().pack, a);
        dropped.rank_packs(&bad, true);
        assert_eq!(dropped.get(BlobType::Data, &Id([1; 32])).unwrap().pack, b);
        assert!(!dropped.contains(BlobType::Data, &Id([2; 32])));
        assert!(dropped.alternates(BlobType::Data, &Id([1; 32])).is_empty());
    }
}
