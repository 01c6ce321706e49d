//! The library's command layer called directly, as a library user would: every command with
//! typed options in and a typed report out, under the lock state it needs.

mod common;

use std::sync::Arc;

use cista::backend::LocalBackend;
use cista::commands::{
    self, CatKind, CatOutput, Copied, ForgetOptions, LockOptions, StatsMode, StatsReport,
    TagOptions,
};
use cista::{
    BackupOptions, Error, KeepPolicy, NamedCommand, Repository, RestoreOptions, SnapshotId, Source,
};
use common::*;

fn repo_at(dir: &std::path::Path) -> Repository {
    let be = Arc::new(LocalBackend::new(dir.to_path_buf()));
    commands::init(be, PASSWORD.as_bytes(), &Default::default())
        .unwrap()
        .repository
}

fn shared() -> LockOptions {
    LockOptions::default()
}

/// A backup of `src` with `tags`; returns its snapshot id.
fn back_up(repo: &Repository, src: &std::path::Path, tags: &[&str]) -> SnapshotId {
    let ix = repo.lock(&shared()).unwrap().indexed().unwrap();
    let mut opts = BackupOptions::default();
    opts.tags = tags.iter().map(|t| t.to_string()).collect();
    opts.force = true;
    let r = commands::backup(&ix, Source::Paths(vec![src.to_path_buf()]), &opts).unwrap();
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
    let ex = repo.lock_exclusive(&shared()).unwrap();
    // A mistyped --keep-tag matches nothing: refused, with the group named.
    let mut opts = ForgetOptions::default();
    opts.policy = KeepPolicy {
        tags: vec!["nigthly".into()],
        ..Default::default()
    };
    let e = commands::forget(&ex, &opts).unwrap_err();
    assert!(matches!(e, Error::RemovesAll { count: 3, .. }), "{e}");
    assert!(e.to_string().contains("host ["), "{e}");
    assert_eq!(repo.snapshots().unwrap().len(), 3);
    // Allowed explicitly, it removes them all.
    opts.unsafe_allow_remove_all = true;
    let r = commands::forget(&ex, &opts).unwrap();
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
    let ex = repo.lock_exclusive(&shared()).unwrap();
    let mut opts = ForgetOptions::default();
    opts.policy = KeepPolicy {
        last: Some(1),
        ..Default::default()
    };
    opts.dry_run = true;
    let r = commands::forget(&ex, &opts).unwrap();
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].decision.keep.len(), 1);
    assert_eq!(r.remove.len(), 2);
    assert_eq!(repo.snapshots().unwrap().len(), 3);
    opts.dry_run = false;
    let r = commands::forget(&ex, &opts).unwrap();
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
    let r = commands::forget(&ex, &ForgetOptions::default()).unwrap();
    assert!(r.no_policy && r.remove.is_empty());
}

#[test]
fn tag_adds_removes_and_sets_and_reports_what_changed() {
    let env = Env::empty();
    let repo = repo_at(&env.repo());
    let src = env.path("src");
    small_tree(&src);
    back_up(&repo, &src, &["a"]);
    let ex = repo.lock_exclusive(&shared()).unwrap();
    let targets = repo.snapshots().unwrap();
    let mut opts = TagOptions::default();
    opts.add = vec!["b,c".into()];
    opts.remove = vec!["a".into()];
    let r = commands::tag(&ex, &targets, &opts).unwrap();
    assert_eq!(r.changed.len(), 1);
    let (old, new) = r.changed[0];
    let s = repo.load_snapshot(&new).unwrap();
    assert_eq!(s.tags, ["b", "c"]);
    assert_eq!(s.original, Some(old));
    // The same again changes nothing.
    let targets = repo.snapshots().unwrap();
    let r = commands::tag(&ex, &targets, &opts).unwrap();
    assert!(r.changed.is_empty() && r.unchanged.len() == 1);
    let mut set = TagOptions::default();
    set.set = Some(vec!["x".into()]);
    let r = commands::tag(&ex, &targets, &set).unwrap();
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
    let ix = repo.lock(&shared()).unwrap().indexed().unwrap();
    let snaps = commands::select_snapshots(&repo, &[], &Default::default()).unwrap();
    match commands::stats(&ix, &snaps, StatsMode::RestoreSize).unwrap() {
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
    match commands::stats(&ix, &snaps, StatsMode::RawData).unwrap() {
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
    let from = src_repo.lock(&shared()).unwrap().indexed().unwrap();
    let to = dst_repo.lock(&shared()).unwrap();
    let mut heard = 0;
    let r = commands::copy(&to, &from, &snaps, &Default::default(), &mut |_, _, _| {
        heard += 1
    })
    .unwrap();
    assert_eq!((r.copied(), r.skipped(), heard), (2, 0, 2));
    assert_eq!(dst_repo.snapshots().unwrap().len(), 2);
    let r = commands::copy(&to, &from, &snaps, &Default::default(), &mut |_, _, _| {}).unwrap();
    assert_eq!((r.copied(), r.skipped()), (0, 2));
    assert!(r.snapshots.iter().all(|(_, c)| *c == Copied::Present));
    // What was copied restores as the source.
    drop(to);
    let ix = dst_repo.lock(&shared()).unwrap().indexed().unwrap();
    let latest = commands::resolve_snapshot_path(&dst_repo, "latest", &Default::default()).unwrap();
    let mut opts = RestoreOptions::default();
    opts.target = env.path("restored");
    let sum = commands::restore(&ix, &latest.snapshot, &latest.path, &opts).unwrap();
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
    let mut opts = cista::InitOptions::default();
    opts.append_only = true;
    let repo = commands::init(be, PASSWORD.as_bytes(), &opts)
        .unwrap()
        .repository;
    let src = env.path("src");
    small_tree(&src);
    back_up(&repo, &src, &[]);
    let before = repo.snapshots().unwrap();
    // forget, tag and prune take an exclusive lock, which an append-only repository refuses.
    let e = repo.lock_exclusive(&shared()).err().expect("refused");
    assert!(matches!(e, Error::AppendOnly), "{e}");
    assert_eq!(repo.snapshots().unwrap(), before);
    // Shared locks (backup, restore, check) still work.
    assert!(repo.lock(&shared()).is_ok());
}

#[test]
fn exclusive_lock_refuses_no_lock_and_conflicts_with_a_shared_one() {
    let env = Env::empty();
    let repo = repo_at(&env.repo());
    let e = repo
        .lock_exclusive(&LockOptions::none())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("always locks"), "{e}");
    let held = repo.lock(&shared()).unwrap();
    let e = repo.lock_exclusive(&shared()).err().expect("locked");
    assert!(matches!(e, Error::Locked(_)), "{e}");
    drop(held);
    assert!(repo.lock_exclusive(&shared()).is_ok());
}

#[test]
fn init_backup_restore_dump_ls_check_and_prune_through_the_command_layer() {
    let env = Env::empty();
    let repo = repo_at(&env.repo());
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("db.dump"), &bytes(400_000, 7));
    let first = back_up(&repo, &src, &["a"]);
    std::fs::remove_file(src.join("db.dump")).unwrap();
    let second = back_up(&repo, &src, &["b"]);

    // snapshots, grouped by tags.
    let mut so = commands::SnapshotsOptions::default();
    so.group_by = Some("tags".parse().unwrap());
    let r = commands::snapshots(&repo, &so).unwrap();
    assert_eq!(r.groups.len(), 2);
    assert!(r
        .groups
        .iter()
        .all(|g| g.key.is_some() && g.snapshots.len() == 1));

    // ls and dump of the first snapshot.
    let ix = repo.lock(&shared()).unwrap().indexed().unwrap();
    let snap = repo.load_snapshot(&first).unwrap();
    let dir = src.to_string_lossy().into_owned();
    let mut seen = Vec::new();
    let listed = commands::ls(&ix, &snap, &dir, &mut |p, _| {
        seen.push(p.to_string());
        Ok(())
    })
    .unwrap();
    assert_eq!(listed.entries as usize, seen.len());
    assert!(seen.iter().any(|p| p.ends_with("/db.dump")), "{seen:?}");
    // A failing visitor stops the listing with its error.
    let e = commands::ls(&ix, &snap, &dir, &mut |_, _| {
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    })
    .unwrap_err();
    assert!(e.to_string().contains("roken pipe"), "{e}");
    let mut out = Vec::new();
    let d = commands::dump(
        &ix,
        &snap,
        &format!("{dir}/db.dump"),
        &Default::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(d.bytes, 400_000);
    assert_eq!(out, bytes(400_000, 7));

    // restore of a sub-path.
    let sp = commands::resolve_snapshot_path(
        &repo,
        &format!("{}:{dir}", second.to_hex()),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(sp.id, second);
    let mut ro = RestoreOptions::default();
    ro.target = env.path("restored");
    ro.verify = true;
    let sum = commands::restore(&ix, &sp.snapshot, &sp.path, &ro).unwrap();
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    assert!(sum.files > 0 && sum.verified_files == sum.files);
    assert_same_tree(&snapshot_meta(&src), &src, &ro.target);
    drop(ix);

    // forget the first, prune, then check --read-data passes.
    let ex = repo.lock_exclusive(&shared()).unwrap();
    let mut fo = ForgetOptions::default();
    fo.ids = vec![first.to_hex()];
    assert_eq!(commands::forget(&ex, &fo).unwrap().remove, [first]);
    let mut po = cista::PruneOptions::default();
    po.max_unused = cista::MaxUnused::Bytes(0);
    let plan = commands::plan_prune(&ex, &po).unwrap();
    assert!(plan.report().bytes_unused >= 400_000, "{:?}", plan.report());
    let pr = commands::execute_prune(&ex, plan).unwrap();
    assert!(
        pr.packs_removed > 0 && pr.delete_failed.is_empty(),
        "{pr:?}"
    );
    drop(ex);
    let l = repo.lock(&shared()).unwrap();
    let mut co = cista::CheckOptions::default();
    co.read_data = Some(cista::Subset::All);
    let rep = commands::check(&l, &co).unwrap();
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(rep.snapshots, 1);
}

#[test]
fn cat_config_and_unlock_report_typed_values() {
    let env = Env::empty();
    let mut repo = repo_at(&env.repo());
    let src = env.path("src");
    small_tree(&src);
    let id = back_up(&repo, &src, &[]);
    match commands::cat(&repo, CatKind::Snapshot, Some(&id.to_hex()[..8])).unwrap() {
        CatOutput::Json(v) => assert_eq!(v["id"], id.to_hex()),
        other => panic!("{other:?}"),
    }
    assert!(commands::cat(&repo, CatKind::Tree, None).is_err());
    assert!("bogus".parse::<CatKind>().is_err());

    let c = commands::config(&mut repo, &Default::default()).unwrap();
    assert!(!c.append_only);
    let mut o = commands::ConfigOptions::default();
    o.append_only = Some(true);
    assert!(commands::config(&mut repo, &o).unwrap().append_only);
    assert!(repo.lock_exclusive(&shared()).is_err());
    o.append_only = Some(false);
    assert!(!commands::config(&mut repo, &o).unwrap().append_only);

    // A lock left by a process that is gone is stale; unlock removes it, a live one stays.
    let live = repo.lock(&shared()).unwrap();
    let r = commands::unlock(&repo, &Default::default()).unwrap();
    assert_eq!(r.removed, 0);
    let mut all = commands::UnlockOptions::default();
    all.remove_all = true;
    assert_eq!(commands::unlock(&repo, &all).unwrap().removed, 1);
    drop(live);
}

/// `Source::Mixed` and `allow_empty` through the command layer; `dump` of a directory as a
/// tar and `DumpOptions::stream`.
#[test]
fn mixed_source_allow_empty_and_dump_options() {
    let env = Env::empty();
    let repo = repo_at(&env.repo());
    let src = env.path("src");
    small_tree(&src);
    let ix = repo.lock(&shared()).unwrap().indexed().unwrap();
    let empty = Source::Reader {
        name: "db.sql".into(),
        reader: Box::new(std::io::empty()),
    };
    let e = commands::backup(&ix, empty, &BackupOptions::default()).unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
    let source = Source::Mixed {
        paths: vec![src.clone()],
        commands: vec![
            NamedCommand::new("db/one", vec!["echo".into(), "one".into()]),
            NamedCommand::shell("db/empty", "true"),
        ],
    };
    let mut opts = BackupOptions::default();
    opts.allow_empty = true;
    let r = commands::backup(&ix, source, &opts).unwrap();
    let snap = repo.load_snapshot(&r.snapshot_id.unwrap()).unwrap();
    drop(ix);

    let ix = repo.lock(&shared()).unwrap().indexed().unwrap();
    let mut out = Vec::new();
    let mut stream = commands::DumpOptions::default();
    stream.stream = true;
    let d = commands::dump(&ix, &snap, "/db/one", &stream, &mut out).unwrap();
    assert_eq!((d.bytes, &out[..]), (4, &b"one\n"[..]));
    out.clear();
    let d = commands::dump(&ix, &snap, "/db", &Default::default(), &mut out).unwrap();
    assert_eq!((d.entries, d.bytes), (2, 4));
    let mut ar = tar::Archive::new(&out[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["empty", "one"]);
    let e = commands::dump(&ix, &snap, "/nope", &Default::default(), &mut out).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}
