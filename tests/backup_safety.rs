//! Backup against a damaged repository, or one a prune changes while the backup runs
//! (issue 10, items 7, 13 and the parent-tree half of 15).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cista::backend::FileType;
use cista::format::BlobType;
use cista::Id;
use cista::Index;
use cista::{BackupOptions, Source};
use cista::{ProblemKind, Repository};
use common::*;

/// The stored file of a pack.
fn pack_file(env: &Env, id: &Id) -> PathBuf {
    let hex = id.to_hex();
    env.repo().join("data").join(&hex[..2]).join(hex)
}

/// A pack holding blobs of type `ty`.
fn a_pack_of(env: &Env, ty: BlobType) -> Id {
    let idx = Index::load(&env.open()).unwrap();
    let (_, _, loc) = idx.iter().find(|(t, _, _)| *t == ty).unwrap();
    loc.pack
}

fn latest_tree(env: &Env) -> String {
    let snaps = env.json(&["snapshots"]);
    let last = snaps.as_array().unwrap().last().unwrap();
    last["tree"].as_str().unwrap().to_string()
}

/// Backs up `src` through the CLI without the local cache (a cached tree would hide the
/// damage from the backup); asserts exit 0 and returns stderr.
fn backup_ok(env: &Env, src: &Path) -> String {
    let _ = fs::remove_dir_all(env.path("cache"));
    let o = env.run(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "backup: {}\n{}", o.status, stderr(&o));
    stderr(&o)
}

fn fixture(env: &Env) -> PathBuf {
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big"), &bytes(3 << 20, 9));
    src
}

/// Item 7: a backup after a pack was truncated stored new blobs pointing into it, so the
/// newest snapshot could not be restored either.
#[test]
fn backup_stores_again_the_blobs_of_a_truncated_pack() {
    let env = Env::new();
    let src = fixture(&env);
    let expected = snapshot_meta(&src);
    env.backup(&[&src]);
    let pack = a_pack_of(&env, BlobType::Data);
    let f = pack_file(&env, &pack);
    let len = fs::metadata(&f).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let err = backup_ok(&env, &src);
    assert!(
        err.contains(&pack.to_hex()),
        "the warning names the pack: {err}"
    );
    restore_latest_matches(&env, "restored", &expected, &src);
    let c = env.run(&["check"]);
    assert!(!c.status.success());
    assert!(
        stderr(&c).contains(&pack.to_hex())
            || String::from_utf8_lossy(&c.stdout).contains(&pack.to_hex())
    );
}

/// Item 7, trees: a parent tree failing authentication was deduplicated against, so the new
/// snapshot pointed at the damaged copy.
#[test]
fn parent_tree_failing_authentication_is_stored_again() {
    let env = Env::new();
    let src = fixture(&env);
    let expected = snapshot_meta(&src);
    env.backup(&[&src]);
    let repo = env.open();
    let idx = Index::load(&repo).unwrap();
    let root: Id = latest_tree(&env).parse().unwrap();
    let deeper = format!("{}/sub/deeper", src.display());
    let node = lib_find_node(&repo, &root, &deeper).unwrap();
    let sub = node.subtree.unwrap();
    let loc = idx.get(BlobType::Tree, &sub).unwrap();
    let f = pack_file(&env, &loc.pack);
    let mut b = fs::read(&f).unwrap();
    b[(loc.offset + loc.length / 2) as usize] ^= 1;
    fs::write(&f, &b).unwrap();

    let err = backup_ok(&env, &src);
    assert!(
        err.contains(&sub.to_hex()),
        "the warning names the tree: {err}"
    );
    assert!(!err.contains("could not be read"), "{err}");
    restore_latest_matches(&env, "restored", &expected, &src);
}

/// Item 15: a missing parent tree was reported as an unreadable source file, exit 3, on a
/// complete snapshot.
#[test]
fn missing_parent_tree_is_named_and_the_backup_is_complete() {
    let env = Env::new();
    let src = fixture(&env);
    let expected = snapshot_meta(&src);
    env.backup(&[&src]);
    let tree = latest_tree(&env);
    fs::remove_file(pack_file(&env, &a_pack_of(&env, BlobType::Tree))).unwrap();

    let err = backup_ok(&env, &src);
    assert!(
        err.contains(&tree),
        "the warning names the parent tree: {err}"
    );
    assert!(!err.contains("could not be read"), "{err}");
    restore_latest_matches(&env, "restored", &expected, &src);
}

/// Item 13: a prune that took a running backup's lock for stale deleted blobs the backup had
/// deduplicated against, and the backup still saved its snapshot. Here the prune runs (with no
/// lock, as when the backup's lock looks stale) right after the backup stored its index,
/// before its snapshot; the blobs it reused belong to a forgotten snapshot, so prune deletes
/// them.
#[test]
fn prune_beside_a_backup_whose_lock_looks_stale_loses_nothing() {
    let env = Env::new();
    let src = fixture(&env);
    env.backup(&[&src]);
    for f in walk_files(&env.repo().join("snapshots")) {
        fs::remove_file(f).unwrap();
    }
    // Something new, so the backup writes a pack and an index file.
    write(&src.join("new.txt"), b"new");
    let expected = snapshot_meta(&src);

    let inner = cista::backend::open_location(&env.location(), &[]).unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    let mut h = hooked::Hooked::new(inner.clone(), |_, _, _| Ok(()));
    let (a, be) = (armed.clone(), inner.clone());
    h.after_write = Some(Box::new(move |_, t, _| {
        if t == FileType::Index && a.swap(false, Ordering::SeqCst) {
            let other = Repository::open(be.clone(), PASSWORD.as_bytes())?;
            lib_prune(&other, &Default::default())?;
        }
        Ok(())
    }));
    let repo = Repository::open(Arc::new(h), PASSWORD.as_bytes()).unwrap();
    let res = lib_backup(
        &repo,
        Source::Paths(vec![src.clone()]),
        &BackupOptions::default(),
    )
    .unwrap();
    assert!(!armed.load(Ordering::SeqCst), "the prune ran");
    assert!(res.snapshot_id.is_some());
    assert!(
        res.notices
            .iter()
            .any(|n| n.kind == ProblemKind::DeletedDuringBackup
                && n.message.contains("deleted while it ran")
                && n.object.is_some()),
        "{:?}",
        res.notices
    );
    env.ok(&["check", "--read-data"]);
    restore_latest_matches(&env, "restored", &expected, &src);
}
