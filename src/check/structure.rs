//! The phases every check runs: key files, index files, the packs against the index,
//! snapshots, and the trees the snapshots reach.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::Findings;
use crate::backend::FileType;
use crate::error::Result;
use crate::format::{BlobType, IndexFile, NodeKind};
use crate::id::{Id, PackId, TreeId};
use crate::index::{load_index_file, BlobLocation, DamagedPack, Index, IndexBuilder};
use crate::problem::{ObjectKind, Problem, ProblemKind};
use crate::repository::{load_key_file, Repository};
use crate::tree::load_tree;

/// Every key file hashes to its name and decodes.
pub(super) fn keys(repo: &Repository, rep: &Findings) -> Result<()> {
    for (name, _) in repo.backend().list(FileType::Key)? {
        if let Err(e) = load_key_file(&**repo.backend(), &name) {
            rep.error(unreadable(&e).or_object(ObjectKind::Key, &name));
        }
    }
    Ok(())
}

/// The index from every index file that verifies, each loaded on its own so one damaged file
/// does not hide the rest.
pub(super) fn index(repo: &Repository, rep: &Findings) -> Result<Index> {
    let index_ids = repo.list_ids(FileType::Index)?;
    // One small request each: in flight on an object store (see `Repository::in_flight`).
    let files: Vec<(Id, IndexFile)> = repo.in_flight(|| {
        index_ids
            .par_iter()
            .filter_map(|id| match load_index_file(repo, id) {
                Ok(f) => Some((*id, f)),
                Err(e) => {
                    rep.error(unreadable(&e).or_object(ObjectKind::Index, id));
                    None
                }
            })
            .collect()
    });
    let (files, superseded) = crate::index::split_superseded(files.into_iter());
    if !superseded.is_empty() {
        let message = format!(
            "{} index file(s) superseded by a newer one are still stored (a prune could not delete them; the next prune retries)",
            superseded.len()
        );
        rep.note(Problem::new(ProblemKind::SupersededIndex, message));
    }
    let mut b = IndexBuilder::default();
    for (_, f) in &files {
        for p in &f.packs {
            b.add_pack(p);
        }
    }
    Ok(b.build())
}

/// `e`, met loading an object, as a problem: by what `e` says, else `Unreadable`.
pub(super) fn unreadable(e: &crate::Error) -> Problem {
    Problem::from_error(e, ProblemKind::Unreadable)
}

/// The stored packs and what the index says each holds.
pub(super) struct Packs {
    /// Every stored pack and its size.
    pub stored: HashMap<PackId, u64>,
    /// The index's entries, by the pack they name.
    pub by_pack: HashMap<PackId, Vec<(BlobType, Id, BlobLocation)>>,
}

impl Packs {
    pub fn list(repo: &Repository, index: &Index) -> Result<Packs> {
        Ok(Packs::of(repo.pack_sizes()?, index))
    }

    fn of(stored: HashMap<PackId, u64>, index: &Index) -> Packs {
        let mut by_pack: HashMap<PackId, Vec<(BlobType, Id, BlobLocation)>> = HashMap::new();
        for (ty, id, loc) in index.iter() {
            by_pack.entry(loc.pack).or_default().push((ty, id, loc));
        }
        Packs { stored, by_pack }
    }
}

/// The index against the stored packs: a pack it names must exist and hold every entry;
/// a stored pack it does not name is only a note.
pub(super) fn packs(index: &Index, packs: &Packs, rep: &Findings) {
    let Packs { stored, by_pack } = packs;
    let short: HashMap<PackId, DamagedPack> = index
        .damaged_packs(stored)
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    for (pack, blobs) in by_pack {
        match stored.get(pack) {
            None => rep.error(
                Problem::new(
                    ProblemKind::Missing,
                    format!(
                        "pack {pack} is named by the index ({} blobs) but does not exist",
                        blobs.len()
                    ),
                )
                .with_object(ObjectKind::Pack, pack),
            ),
            Some(&size) => {
                if let Some((_, id, _)) = blobs
                    .iter()
                    .find(|(_, _, l)| l.offset as u64 + l.length as u64 + 4 > size)
                {
                    let message = format!(
                        "pack {pack}: index entry for blob {id} lies beyond the pack's {size} bytes"
                    );
                    rep.error(
                        Problem::new(ProblemKind::SizeMismatch, message)
                            .with_object(ObjectKind::Pack, pack),
                    );
                } else if let Some(d) = short.get(pack) {
                    // Backup and prune judge packs by the same rule.
                    rep.error(d.problem(d.to_string()));
                }
            }
        }
    }
    // A damaged pack whose blobs all have an earlier copy elsewhere (a backup stored them
    // again) is still damage: its index entries point at what is not there.
    for (pack, d) in &short {
        if !by_pack.contains_key(pack) {
            rep.error(d.problem(d.to_string()));
        }
    }
    let indexed: HashSet<PackId> = index.packs().iter().copied().collect();
    rep.with(|r| {
        r.packs = stored.len();
        r.pack_bytes = stored.values().sum();
        for p in stored.keys() {
            if !indexed.contains(p) {
                let message = format!(
                    "pack {p} is not in any index (left by an interrupted backup; prune removes it)"
                );
                r.notes.push(
                    Problem::new(ProblemKind::UnindexedPack, message)
                        .with_object(ObjectKind::Pack, p),
                );
            }
        }
    });
}

/// The snapshots that load, with their root trees.
pub(super) fn snapshots(repo: &Repository, rep: &Findings) -> Result<Vec<(Id, TreeId)>> {
    let snap_ids = repo.list_ids(FileType::Snapshot)?;
    let roots: Vec<(Id, TreeId)> = repo.in_flight(|| {
        snap_ids
            .par_iter()
            .filter_map(|id| match repo.load_snapshot(id) {
                Ok(s) => Some((*id, s.tree)),
                Err(e) => {
                    rep.error(unreadable(&e).or_object(ObjectKind::Snapshot, id));
                    None
                }
            })
            .collect()
    });
    rep.with(|r| {
        r.snapshots = roots.len();
        r.checked = roots.iter().map(|(id, _)| *id).collect();
    });
    Ok(roots)
}

/// Every tree the snapshots reach loads, and every data blob a file names is in the index.
/// Level by level, each level in parallel, each tree once; a problem is named by its path.
pub(super) fn trees(repo: &Repository, index: &Index, roots: Vec<(Id, TreeId)>, rep: &Findings) {
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
            .map(|(tid, path)| tree(repo, index, tid, path, rep))
            .collect();
        rep.with(|r| r.trees += level.len());
        level = next
            .into_iter()
            .flatten()
            .filter(|(t, _)| seen.insert(*t))
            .collect();
    }
}

/// Checks tree `tid` at `path` and returns its subtrees with their paths.
fn tree(
    repo: &Repository,
    index: &Index,
    tid: &TreeId,
    path: &str,
    rep: &Findings,
) -> Vec<(TreeId, String)> {
    let tree = match load_tree(repo, index, tid) {
        Ok(t) => t,
        Err(e) => {
            rep.error(
                unreadable(&e)
                    .or_object(ObjectKind::Tree, tid)
                    .with_path(path)
                    .with_message(format!("{path}: {e}")),
            );
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
                        rep.error(
                            Problem::new(
                                ProblemKind::Missing,
                                format!("{p}: data blob {b} is not in the index"),
                            )
                            .with_object(ObjectKind::Blob, b)
                            .with_path(&p),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    subs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{damage, mem_repo, names, noise};
    use crate::format::{BlobEntry, IndexPack};
    use crate::problem::ObjectRef;

    fn flip_middle(b: &mut [u8]) {
        let i = b.len() / 2;
        b[i] ^= 0x20;
    }

    #[test]
    fn a_damaged_key_file_is_an_error_naming_it() {
        let repo = mem_repo("f", noise(1000));
        let rep = Findings::default();
        keys(&repo, &rep).unwrap();
        assert!(rep.into_report().errors.is_empty());
        let key = names(&repo, FileType::Key).pop().unwrap();
        damage(&repo, FileType::Key, &key, flip_middle);
        let rep = Findings::default();
        keys(&repo, &rep).unwrap();
        let errors = rep.into_report().errors;
        assert!(
            errors.len() == 1 && errors[0].message.contains(&key),
            "{errors:?}"
        );
        assert_eq!(errors[0].kind, ProblemKind::Damaged);
        assert_eq!(
            errors[0].object,
            Some(ObjectRef::new(ObjectKind::Key, &key))
        );
    }

    #[test]
    fn a_damaged_index_file_is_an_error_and_left_out_of_the_index() {
        let repo = mem_repo("f", noise(1000));
        let rep = Findings::default();
        assert!(!index(&repo, &rep).unwrap().packs().is_empty());
        assert!(rep.into_report().errors.is_empty());
        let file = names(&repo, FileType::Index).pop().unwrap();
        damage(&repo, FileType::Index, &file, flip_middle);
        let rep = Findings::default();
        assert!(index(&repo, &rep).unwrap().packs().is_empty());
        let errors = rep.into_report().errors;
        assert!(
            errors.len() == 1 && errors[0].message.contains(&file),
            "{errors:?}"
        );
        assert_eq!(errors[0].kind, ProblemKind::Damaged);
        assert_eq!(
            errors[0].object,
            Some(ObjectRef::new(ObjectKind::Index, &file))
        );
    }

    #[test]
    fn packs_missing_or_short_are_errors_and_unindexed_ones_notes() {
        let pack = |i: u8, end: u32| IndexPack {
            id: Id([i; 32]),
            blobs: vec![BlobEntry {
                ty: BlobType::Data,
                id: Id([i + 100; 32]),
                offset: end - 10,
                length: 10,
                raw_len: 10,
            }],
        };
        let f = IndexFile {
            supersedes: vec![],
            packs: vec![pack(1, 100), pack(2, 100), pack(3, 100)],
        };
        let index = Index::from_files([&f].into_iter());
        // Pack 1 as the index needs it, 2 missing, 3 cut short, 4 in no index.
        let stored = HashMap::from([(Id([1; 32]), 1000), (Id([3; 32]), 50), (Id([4; 32]), 9)]);
        let rep = Findings::default();
        packs(&index, &Packs::of(stored, &index), &rep);
        let r = rep.into_report();
        let mut errors = r.errors.clone();
        errors.sort_by(|a, b| a.message.cmp(&b.message));
        assert_eq!(errors.len(), 2, "{errors:?}");
        let (missing, short) = (&errors[0], &errors[1]);
        assert!(
            missing.message.contains(&Id([2; 32]).to_hex())
                && missing.message.contains("does not exist")
        );
        assert_eq!(missing.kind, ProblemKind::Missing);
        assert_eq!(
            missing.object,
            Some(ObjectRef::new(ObjectKind::Pack, Id([2; 32])))
        );
        assert!(short.message.contains(&Id([3; 32]).to_hex()) && short.message.contains("beyond"));
        assert_eq!(short.kind, ProblemKind::SizeMismatch);
        assert_eq!(
            short.object,
            Some(ObjectRef::new(ObjectKind::Pack, Id([3; 32])))
        );
        assert_eq!(r.notes.len(), 1);
        assert!(
            r.notes[0].message.contains(&Id([4; 32]).to_hex()),
            "{:?}",
            r.notes
        );
        assert_eq!(r.notes[0].kind, ProblemKind::UnindexedPack);
        assert_eq!(
            r.notes[0].object,
            Some(ObjectRef::new(ObjectKind::Pack, Id([4; 32])))
        );
        assert_eq!(r.packs, 3);
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_and_not_walked() {
        let repo = mem_repo("f", noise(1000));
        let rep = Findings::default();
        assert_eq!(snapshots(&repo, &rep).unwrap().len(), 1);
        let snap = names(&repo, FileType::Snapshot).pop().unwrap();
        damage(&repo, FileType::Snapshot, &snap, flip_middle);
        let rep = Findings::default();
        assert!(snapshots(&repo, &rep).unwrap().is_empty());
        let r = rep.into_report();
        assert!(
            r.errors.len() == 1 && r.errors[0].message.contains(&snap),
            "{:?}",
            r.errors
        );
        assert_eq!(r.errors[0].kind, ProblemKind::Damaged);
        assert_eq!(
            r.errors[0].object,
            Some(ObjectRef::new(ObjectKind::Snapshot, &snap))
        );
        assert_eq!(r.snapshots, 0);
    }

    /// The repository's index without the packs holding blobs of type `ty`.
    fn index_without(repo: &Repository, ty: BlobType) -> Index {
        let mut b = IndexBuilder::default();
        for id in repo.list_ids(FileType::Index).unwrap() {
            for p in &load_index_file(repo, &id).unwrap().packs {
                if p.blobs.iter().all(|e| e.ty != ty) {
                    b.add_pack(p);
                }
            }
        }
        b.build()
    }

    #[test]
    fn trees_name_the_path_of_what_the_index_lacks() {
        let repo = mem_repo("file.bin", noise(1000));
        let roots = snapshots(&repo, &Findings::default()).unwrap();
        let path = format!("snapshot {}", roots[0].0.short());

        let rep = Findings::default();
        trees(&repo, &Index::load(&repo).unwrap(), roots.clone(), &rep);
        let r = rep.into_report();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(r.trees >= 1);

        let rep = Findings::default();
        trees(
            &repo,
            &index_without(&repo, BlobType::Data),
            roots.clone(),
            &rep,
        );
        let errors = rep.into_report().errors;
        assert!(!errors.is_empty(), "a file's data blob is missing");
        for e in &errors {
            assert!(
                e.message.contains("/file.bin: data blob")
                    && e.message.contains("not in the index"),
                "{e}"
            );
            assert_eq!(e.kind, ProblemKind::Missing);
            assert_eq!(e.path, Some(format!("{path}/file.bin")));
            let blob = e.object.as_ref().expect("names the blob");
            assert!(
                blob.kind == ObjectKind::Blob && e.message.contains(&blob.id),
                "{e:?}"
            );
        }

        let rep = Findings::default();
        trees(&repo, &index_without(&repo, BlobType::Tree), roots, &rep);
        let r = rep.into_report();
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(
            r.errors[0].message.starts_with(&format!("{path}: ")),
            "{}",
            r.errors[0]
        );
        assert_eq!(r.errors[0].kind, ProblemKind::Missing);
        assert_eq!(r.errors[0].path.as_deref(), Some(path.as_str()));
        assert_eq!(
            r.errors[0].object.as_ref().map(|o| o.kind),
            Some(ObjectKind::Tree)
        );
        assert_eq!(r.trees, 1, "the root was tried, nothing below it");
    }
}
