//! The library's command layer called directly, as a library user would: forget's safety rule,
//! tag, stats and copy, each with a typed report.

mod common;

use std::sync::Arc;

use cista::backend::LocalBackend;
use cista::backup::{backup, BackupOptions, Source};
use cista::commands::{self, Copied, ForgetOptions, StatsMode, StatsReport, TagOptions};
use cista::index::Index;
use cista::lock::LockGuard;
use cista::policy::KeepPolicy;
use cista::{Error, Repository};
use common::*;

fn repo_at(dir: &std::path::Path) -> Repository {
    let be = Arc::new(LocalBackend::new(dir.to_path_buf()));
    Repository::init(be, PASSWORD.as_bytes(), Default::default()).unwrap()
}

/// A backup of `src` with `tags`; returns its snapshot id.
fn back_up(repo: &Repository, src: &std::path::Path, tags: &[&str]) -> cista::id::SnapshotId {
    let index = Index::load(repo).unwrap();
    let opts = BackupOptions {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        force: true,
        ..Default::default()
    };
    let r = backup(
        repo,
        &index,
        Source::Paths(vec![src.to_path_buf()]),
        &opts,
        None,
    )
    .unwrap();
    r.snapshot_id.unwrap()
}

#[test]
fn forget_refuses_a_policy_that_keeps_nothing_of_a_group_and_removes_nothing() {
    let env = Env::empty();
    let repo = repo_at(&env.repo());
    let src = env.path("src");
    small_tree(&src);
    for _ in 0..3 {
        back_up(&repo, &src, &["nightly"]);
    }
    let lock = LockGuard::acquire(&repo, true).unwrap();
    // A mistyped --keep-tag matches nothing: refused, with the group named.
    let mut opts = ForgetOptions::default();
    opts.policy = KeepPolicy {
        tags: vec!["nigthly".into()],
        ..Default::default()
    };
    let e = commands::forget(&repo, &opts, &lock).unwrap_err();
    assert!(matches!(e, Error::RemovesAll { count: 3, .. }), "{e}");
    assert!(e.to_string().contains("host ["), "{e}");
    assert_eq!(repo.snapshots().unwrap().len(), 3);
    // Allowed explicitly, it removes them all.
    opts.unsafe_allow_remove_all = true;
    let r = commands::forget(&repo, &opts, &lock).unwrap();
    assert_eq!(r.remove.len(), 3);
    assert!(repo.snapshots().unwrap().is_empty());
}

#[test]
fn forget_by_policy_reports_groups_and_a_dry_run_removes_nothing() {
    let env = Env::empty();
    let repo = repo_at(&env.repo());
    let src = env.path("src");
    small_tree(&src);
    let ids: Vec<_> = (0..3).map(|_| back_up(&repo, &src, &[])).collect();
    let lock = LockGuard::acquire(&repo, true).unwrap();
    let mut opts = ForgetOptions::default();
    opts.policy = KeepPolicy {
        last: Some(1),
        ..Default::default()
    };
    opts.dry_run = true;
    let r = commands::forget(&repo, &opts, &lock).unwrap();
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].decision.keep.len(), 1);
    assert_eq!(r.remove.len(), 2);
    assert_eq!(repo.snapshots().unwrap().len(), 3);
    opts.dry_run = false;
    let r = commands::forget(&repo, &opts, &lock).unwrap();
    let left: Vec<_> = repo
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left.len(), 1);
    assert!(!r.remove.contains(&left[0]));
    assert!(ids.contains(&left[0]));
    // No ids and no policy: nothing is removed, and the report says why.
    let r = commands::forget(&repo, &ForgetOptions::default(), &lock).unwrap();
    assert!(r.no_policy && r.remove.is_empty());
}

#[test]
fn tag_adds_removes_and_sets_and_reports_what_changed() {
    let env = Env::empty();
    let repo = repo_at(&env.repo());
    let src = env.path("src");
    small_tree(&src);
    back_up(&repo, &src, &["a"]);
    let lock = LockGuard::acquire(&repo, true).unwrap();
    let targets = repo.snapshots().unwrap();
    let mut opts = TagOptions::default();
    opts.add = vec!["b,c".into()];
    opts.remove = vec!["a".into()];
    let r = commands::tag(&repo, &targets, &opts, &lock).unwrap();
    assert_eq!(r.changed.len(), 1);
    let (old, new) = r.changed[0];
    let s = repo.load_snapshot(&new).unwrap();
    assert_eq!(s.tags, ["b", "c"]);
    assert_eq!(s.original, Some(old));
    // The same again changes nothing.
    let targets = repo.snapshots().unwrap();
    let r = commands::tag(&repo, &targets, &opts, &lock).unwrap();
    assert!(r.changed.is_empty() && r.unchanged.len() == 1);
    let mut set = TagOptions::default();
    set.set = Some(vec!["x".into()]);
    let r = commands::tag(&repo, &targets, &set, &lock).unwrap();
    assert_eq!(repo.load_snapshot(&r.changed[0].1).unwrap().tags, ["x"]);
}

#[test]
fn stats_count_restore_size_and_distinct_blobs() {
    let env = Env::empty();
    let repo = repo_at(&env.repo());
    let src = env.path("src");
    write(&src.join("a"), &bytes(300_000, 1));
    write(&src.join("b"), &bytes(300_000, 1)); // the same content: one set of blobs
    write(&src.join("c"), b"small");
    back_up(&repo, &src, &[]);
    back_up(&repo, &src, &[]);
    let index = Index::load(&repo).unwrap();
    let snaps = repo.snapshots().unwrap();
    match commands::stats(&repo, &index, &snaps, StatsMode::RestoreSize).unwrap() {
        StatsReport::RestoreSize {
            snapshots_count,
            total_size,
            total_file_count,
        } => {
            assert_eq!(snapshots_count, 2);
            assert_eq!(total_file_count, 2 * 3);
            assert_eq!(total_size, 2 * (600_000 + 5));
        }
        other => panic!("{other:?}"),
    }
    match commands::stats(&repo, &index, &snaps, StatsMode::RawData).unwrap() {
        StatsReport::RawData {
            total_uncompressed_size,
            total_blob_count,
            ..
        } => {
            // Data: one copy of the 300,000 bytes and the small file; plus the trees.
            assert!(
                total_uncompressed_size >= 300_005,
                "{total_uncompressed_size}"
            );
            assert!(
                total_uncompressed_size < 600_000,
                "{total_uncompressed_size}"
            );
            assert!(total_blob_count >= 3, "{total_blob_count}");
        }
        other => panic!("{other:?}"),
    }
    assert!("bogus".parse::<StatsMode>().is_err());
}

#[test]
fn copy_stores_each_snapshot_once_and_skips_what_is_there() {
    let env = Env::empty();
    let src_repo = repo_at(&env.repo());
    let dst_repo = repo_at(&env.path("dst"));
    let src = env.path("src");
    small_tree(&src);
    back_up(&src_repo, &src, &[]);
    write(&src.join("more"), b"more");
    back_up(&src_repo, &src, &[]);
    let snaps = src_repo.snapshots().unwrap();
    let mut heard = 0;
    let r = commands::copy(&dst_repo, &src_repo, &snaps, None, &mut |_, _, _| {
        heard += 1
    })
    .unwrap();
    assert_eq!((r.copied(), r.skipped(), heard), (2, 0, 2));
    assert_eq!(dst_repo.snapshots().unwrap().len(), 2);
    let r = commands::copy(&dst_repo, &src_repo, &snaps, None, &mut |_, _, _| {}).unwrap();
    assert_eq!((r.copied(), r.skipped()), (0, 2));
    assert!(r.snapshots.iter().all(|(_, c)| *c == Copied::Present));
    // What was copied restores as the source.
    let index = Index::load(&dst_repo).unwrap();
    let (_, latest) = dst_repo
        .resolve_snapshot("latest", &Default::default())
        .unwrap();
    let opts = cista::restore::RestoreOptions {
        target: env.path("restored"),
        ..Default::default()
    };
    let sum = cista::restore::restore(&dst_repo, &index, &latest, "", &opts).unwrap();
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    assert_same_tree(
        &snapshot_meta(&src),
        &src,
        &opts.target.join(src.strip_prefix("/").unwrap()),
    );
}

#[test]
fn forget_tag_and_prune_refuse_an_append_only_repository() {
    let env = Env::empty();
    let be = Arc::new(LocalBackend::new(env.repo()));
    let opts = cista::InitOptions {
        append_only: true,
        ..Default::default()
    };
    let repo = Repository::init(be, PASSWORD.as_bytes(), opts).unwrap();
    let src = env.path("src");
    small_tree(&src);
    back_up(&repo, &src, &[]);
    let lock = LockGuard::acquire(&repo, true).unwrap();
    let mut f = ForgetOptions::default();
    f.policy = KeepPolicy {
        last: Some(1),
        ..Default::default()
    };
    f.unsafe_allow_remove_all = true;
    let e = commands::forget(&repo, &f, &lock).unwrap_err();
    assert!(matches!(e, Error::AppendOnly), "{e}");
    let mut t = TagOptions::default();
    t.add = vec!["x".into()];
    let targets = repo.snapshots().unwrap();
    let e = commands::tag(&repo, &targets, &t, &lock).unwrap_err();
    assert!(matches!(e, Error::AppendOnly), "{e}");
    assert_eq!(repo.snapshots().unwrap(), targets);
    let e = cista::prune::prune(&repo, &Default::default(), Some(&lock)).unwrap_err();
    assert!(matches!(e, Error::AppendOnly), "{e}");
}
