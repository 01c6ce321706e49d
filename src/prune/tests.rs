//! The plan's decisions: `choose` on made-up packs, where every number is known, and
//! `PrunePlan::new` on repositories built with the library.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::plan::{choose, PackPlan};
use super::used::used_blobs;
use super::*;
use crate::backend::{Backend, FileType, MemBackend};
use crate::backup::{backup, BackupOptions, Source};
use crate::format::{uncompressed_sealed_len, BlobEntry, BlobType};
use crate::id::{Id, PackId, SnapshotId};
use crate::index::Index;
use crate::repository::{InitOptions, Repository};

/// A pack of `size` bytes holding one used blob and `unused` unused bytes.
fn pack(i: u8, size: u64, unused: u64) -> PackPlan {
    let e = BlobEntry {
        ty: BlobType::Data,
        id: Id([i; 32]),
        offset: 0,
        length: (size - unused) as u32,
        raw_len: 1,
    };
    PackPlan {
        id: Id([i; 32]),
        size,
        keep: if size > unused { vec![e] } else { vec![] },
        unused_bytes: unused,
        uncompressed: false,
    }
}

fn ids(packs: &[PackPlan]) -> Vec<u8> {
    packs.iter().map(|p| p.id.0[0]).collect()
}

fn opts(max_unused: MaxUnused) -> PruneOptions {
    PruneOptions {
        max_unused,
        ..Default::default()
    }
}

#[test]
fn choose_sorts_packs_by_use() {
    let packs = vec![pack(1, 100, 0), pack(2, 100, 100), pack(3, 100, 10)];
    let c = choose(packs.clone(), 190, &opts(MaxUnused::Bytes(0)));
    assert_eq!(
        (ids(&c.keep), ids(&c.repack), ids(&c.delete)),
        (vec![1], vec![3], vec![2])
    );
    assert_eq!((c.bytes_repacked, c.unused_after), (100, 0));
    // Unlimited keeps the partly used pack, and its unused bytes stay.
    let c = choose(packs, 190, &opts(MaxUnused::Unlimited));
    assert_eq!((ids(&c.keep), ids(&c.repack)), (vec![1, 3], vec![]));
    assert_eq!((c.bytes_repacked, c.unused_after), (0, 10));
}

#[test]
fn choose_repacks_the_most_unused_until_within_max_unused() {
    // Ratios 0.3, 0.5, 0.4 and, tied with pack 2, pack 9.
    let packs = vec![
        pack(1, 100, 30),
        pack(9, 100, 50),
        pack(2, 100, 50),
        pack(3, 100, 40),
    ];
    // 10% of the size after prune with 900 bytes used: 100 unused bytes may stay.
    let c = choose(packs.clone(), 900, &opts(MaxUnused::Percent(10.0)));
    // 170 unused: pack 2 (tie broken by id), then 9 brings it to 70.
    assert_eq!(ids(&c.repack), vec![2, 9]);
    assert_eq!(ids(&c.keep), vec![3, 1]);
    assert_eq!((c.bytes_repacked, c.unused_after), (200, 70));
    // A byte limit just below what two repacks leave takes a third.
    let c = choose(packs, 900, &opts(MaxUnused::Bytes(69)));
    assert_eq!(ids(&c.repack), vec![2, 9, 3]);
    assert_eq!(c.unused_after, 30);
}

#[test]
fn choose_skips_what_exceeds_max_repack_size_and_goes_on() {
    let packs = vec![pack(1, 300, 200), pack(2, 200, 150), pack(3, 100, 10)];
    let o = PruneOptions {
        max_repack_size: Some(350),
        ..opts(MaxUnused::Bytes(0))
    };
    // 2 (0.75) fits, 1 (0.67) would make 500, 3 (0.1) fits in what is left.
    let c = choose(packs, 240, &o);
    assert_eq!((ids(&c.repack), ids(&c.keep)), (vec![2, 3], vec![1]));
    assert_eq!((c.bytes_repacked, c.unused_after), (300, 200));
}

#[test]
fn choose_forces_uncompressed_packs_only_when_asked() {
    let mut raw = pack(1, 100, 0);
    raw.uncompressed = true;
    let packs = vec![raw, pack(2, 100, 0)];
    let c = choose(packs.clone(), 200, &opts(MaxUnused::Unlimited));
    assert_eq!((ids(&c.keep), ids(&c.repack)), (vec![1, 2], vec![]));
    let o = PruneOptions {
        repack_uncompressed: true,
        ..opts(MaxUnused::Unlimited)
    };
    let c = choose(packs.clone(), 200, &o);
    assert_eq!((ids(&c.keep), ids(&c.repack)), (vec![2], vec![1]));
    // The size cap still holds.
    let o = PruneOptions {
        max_repack_size: Some(99),
        ..o
    };
    assert!(choose(packs, 200, &o).repack.is_empty());
}

// Repositories made with the library.

/// Incompressible bytes, different for each seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn repo() -> (Arc<MemBackend>, Repository) {
    let be = Arc::new(MemBackend::new());
    let o = InitOptions {
        pack_size: 1 << 20,
        ..Default::default()
    };
    let repo = Repository::init(be.clone(), b"pw", o).unwrap();
    (be, repo)
}

/// `n` files of 200 KiB (one blob each, about five to a pack), seeded from `seed`.
fn files(dir: &Path, n: u64, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i:02}")), noise(200 << 10, seed + i)).unwrap();
    }
}

fn back_up(repo: &Repository, dir: &Path) -> SnapshotId {
    let index = Index::load(repo).unwrap();
    let o = BackupOptions {
        force: true,
        ..Default::default()
    };
    let r = backup(repo, &index, Source::Paths(vec![dir.into()]), &o, None).unwrap();
    r.snapshot_id.expect("a new snapshot")
}

fn stored_packs(be: &MemBackend) -> HashSet<PackId> {
    let names = be.list(FileType::Pack).unwrap();
    names.iter().map(|(n, _)| n.parse().unwrap()).collect()
}

fn plan(repo: &Repository, o: &PruneOptions) -> PrunePlan {
    PrunePlan::new(repo, &Index::load_complete(repo).unwrap(), o).unwrap()
}

fn set(v: Vec<PackId>) -> HashSet<PackId> {
    v.into_iter().collect()
}

#[test]
fn plan_deletes_the_packs_of_a_forgotten_snapshot_and_unindexed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (be, repo) = repo();
    files(&tmp.path().join("a"), 8, 0);
    let first = back_up(&repo, &tmp.path().join("a"));
    let old = stored_packs(&be);
    files(&tmp.path().join("b"), 8, 100);
    back_up(&repo, &tmp.path().join("b"));
    let new: HashSet<PackId> = stored_packs(&be).difference(&old).copied().collect();
    repo.remove_snapshots(&[first], || Ok(())).unwrap();
    // A pack a killed backup left behind, named by no index.
    let junk = Id([7; 32]);
    be.write(FileType::Pack, &junk.to_hex(), b"left over")
        .unwrap();

    let p = plan(&repo, &opts(MaxUnused::Bytes(0)));
    let mut doomed = old.clone();
    doomed.insert(junk);
    assert_eq!(set(p.delete_packs()), doomed);
    assert_eq!(set(p.keep_packs()), new);
    assert!(p.repack_packs().is_empty());
    let r = p.report();
    assert_eq!(
        (r.snapshots, r.packs_deleted, r.packs_unindexed_deleted),
        (1, old.len(), 1)
    );
    assert_eq!((r.packs_kept, r.packs_repacked), (new.len(), 0));
    assert!(
        r.blobs_unused >= 8 && r.bytes_unused > 8 * (200 << 10),
        "{r:?}"
    );

    // Executed, it removes exactly what it planned.
    let planned = r.clone();
    let done = p.execute(&repo, None).unwrap();
    assert_eq!(
        done.packs_removed,
        planned.packs_deleted + planned.packs_unindexed_deleted
    );
    assert_eq!(done.bytes_removed, planned.bytes_deleted);
    assert_eq!(stored_packs(&be), new);
    assert_eq!(set(Index::load(&repo).unwrap().packs().to_vec()), new);
}

#[test]
fn plan_repacks_partly_used_packs_as_the_options_say() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (be, repo) = repo();
    files(&src, 20, 0);
    let first = back_up(&repo, &src);
    let old = stored_packs(&be);
    // Every other file goes: each data pack of the first backup keeps some blobs.
    for i in (0..20).step_by(2) {
        std::fs::remove_file(src.join(format!("f{i:02}"))).unwrap();
    }
    back_up(&repo, &src);
    repo.remove_snapshots(&[first], || Ok(())).unwrap();

    // What is used where, worked out from the index and the snapshots.
    let index = Index::load_complete(&repo).unwrap();
    let (_, used) = used_blobs(&repo, &index).unwrap();
    let mut blobs: HashMap<PackId, (usize, usize)> = HashMap::new();
    for (ty, id, loc) in index.iter() {
        let n = blobs.entry(loc.pack).or_default();
        n.0 += 1;
        n.1 += used.contains(&(ty, id)) as usize;
    }
    let partly: HashSet<PackId> = blobs
        .iter()
        .filter(|(_, (all, used))| *used > 0 && used < all)
        .map(|(id, _)| *id)
        .collect();
    let unused: HashSet<PackId> = blobs
        .iter()
        .filter(|(_, (_, used))| *used == 0)
        .map(|(id, _)| *id)
        .collect();
    assert!(partly.len() >= 3 && partly.is_subset(&old), "{blobs:?}");
    assert!(!unused.is_empty(), "the first backup's trees are unused");

    // Unlimited: partly used packs stay, and so do their unused bytes.
    let p = plan(&repo, &opts(MaxUnused::Unlimited));
    assert!(p.repack_packs().is_empty());
    assert!(partly.is_subset(&set(p.keep_packs())));
    assert_eq!(set(p.delete_packs()), unused);
    let r = p.report();
    assert_eq!(
        r.unused_after,
        r.bytes_unused - unused_bytes(&repo, &unused)
    );

    // No unused bytes allowed: every partly used pack is repacked, the most unused first.
    let p = plan(&repo, &opts(MaxUnused::Bytes(0)));
    assert_eq!(set(p.repack_packs()), partly);
    assert_eq!(p.report().unused_after, 0);
    let ratio = |pp: &PackPlan| pp.unused_bytes as f64 / pp.size as f64;
    assert!(p.repack.windows(2).all(|w| ratio(&w[0]) >= ratio(&w[1])));

    // A repack budget of one pack's size repacks one pack.
    let first_size = p.repack[0].size;
    let o = PruneOptions {
        max_repack_size: Some(first_size),
        ..opts(MaxUnused::Bytes(0))
    };
    let one = plan(&repo, &o);
    assert_eq!(one.repack_packs().len(), 1, "{:?}", one.report());
    assert_eq!(one.report().bytes_repacked, first_size);

    // Executed: the repacked packs are gone and every used blob is indexed elsewhere.
    let done = p.execute(&repo, None).unwrap();
    assert!(
        done.packs_written >= 1 && done.index_files_written >= 1,
        "{done:?}"
    );
    let after = Index::load(&repo).unwrap();
    assert!(set(after.packs().to_vec()).is_disjoint(&partly));
    assert!(stored_packs(&be).is_disjoint(&partly));
    for (ty, id) in &used {
        assert!(after.contains(*ty, id), "{id:?} lost");
    }
    // Nothing is left to do.
    let again = plan(&repo, &opts(MaxUnused::Bytes(0)));
    assert!(again.nothing_to_do(), "{:?}", again.report());
}

/// The bytes of the entries that packs `ids` hold (all unused).
fn unused_bytes(repo: &Repository, ids: &HashSet<PackId>) -> u64 {
    let index = Index::load_complete(repo).unwrap();
    index
        .iter()
        .filter(|(_, _, loc)| ids.contains(&loc.pack))
        .map(|(_, _, loc)| loc.length as u64)
        .sum()
}

#[test]
fn plan_marks_packs_with_uncompressed_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (_, repo) = repo();
    // Noise does not compress: the blobs are stored as they are.
    files(&src, 3, 0);
    back_up(&repo, &src);
    let index = Index::load_complete(&repo).unwrap();
    let raw = index
        .iter()
        .filter(|(ty, _, loc)| {
            *ty == BlobType::Data && loc.length as u64 == uncompressed_sealed_len(loc.raw_len)
        })
        .count();
    assert_eq!(raw, 3);
    let p = plan(&repo, &opts(MaxUnused::Unlimited));
    assert!(p.repack_packs().is_empty() && p.nothing_to_do());
    let o = PruneOptions {
        repack_uncompressed: true,
        ..opts(MaxUnused::Unlimited)
    };
    let p = plan(&repo, &o);
    assert!(!p.repack_packs().is_empty());
    assert!(p.repack.iter().all(|pp| pp.uncompressed));
}
