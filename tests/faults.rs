//! Crash consistency: a backend that fails part way, and a backup killed with SIGKILL, never
//! leave a repository that `check` calls damaged.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cista::backend::{FileType, LocalBackend};
use cista::Index;
use cista::{BackupOptions, Source};
use cista::{CheckOptions, Subset};
use cista::{InitOptions, Repository};
use common::*;

/// Fails every write (and, with `fail_removes`, every delete) after the first `ok_writes`
/// mutations, like a disk that fills, a link that drops, or a process killed at that point.
/// Lock files are exempt.
fn failing_backend(root: &std::path::Path, ok_writes: usize, fail_removes: bool) -> hooked::Hooked {
    let count = AtomicUsize::new(0);
    hooked::Hooked::new(Arc::new(LocalBackend::new(root)), move |op, t, name| {
        let mutation = op == hooked::Op::Write || (fail_removes && op == hooked::Op::Remove);
        if mutation && t != FileType::Lock && count.fetch_add(1, Ordering::SeqCst) >= ok_writes {
            return Err(hooked::injected(
                "write",
                name,
                std::io::ErrorKind::Other,
                "injected failure",
            ));
        }
        Ok(())
    })
}

fn full_check(repo: &Repository) {
    let r = lib_check(repo, &{
        let mut o = CheckOptions::default();
        o.read_data = Some(Subset::All);
        o
    })
    .unwrap();
    assert!(r.errors.is_empty(), "check found damage: {:?}", r.errors);
}

#[test]
fn failing_backend_never_leaves_damage() {
    let env = Env::empty();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big1"), &bytes(3 << 20, 1));
    write(&src.join("big2"), &text(4 << 20, 2));
    let opts = {
        let mut o = InitOptions::default();
        o.pack_size = 1 << 20;
        o
    };
    let local = Arc::new(LocalBackend::new(env.repo()));
    let repo = Repository::init(local.clone(), PASSWORD.as_bytes(), opts).unwrap();
    // Fail at the first write, then the second, and so on, until a backup gets through.
    let mut failures = 0;
    for ok_writes in 0..100 {
        let be = Arc::new(failing_backend(&env.repo(), ok_writes, false));
        let frepo = Repository::open(be, PASSWORD.as_bytes()).unwrap();
        let opts = {
            let mut o = BackupOptions::default();
            o.force = true;
            o
        };
        match lib_backup(&frepo, Source::Paths(vec![src.clone()]), &opts) {
            Ok(_) => {
                full_check(&repo);
                break;
            }
            Err(e) => {
                failures += 1;
                assert!(e.to_string().contains("injected failure"), "{e}");
            }
        }
        full_check(&repo);
    }
    assert!(failures >= 4, "only {failures} backups failed");
    // The repository still takes a complete backup that restores exactly.
    let expected = snapshot_meta(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    restore_latest_matches(&env, "r", &expected, &src);
}

#[test]
fn killed_backups_leave_a_checkable_repository() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    for i in 0..40 {
        write(&src.join(format!("f{i}")), &bytes(1 << 20, i));
    }
    write(&src.join("dump.sql"), &text(24 << 20, 7));
    let delays = [30u64, 90, 160, 250, 400, 700];
    for (i, ms) in delays.iter().enumerate() {
        let mut child = env
            .cmd(&["backup", "--force", src.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill();
        let _ = child.wait();
        // A killed holder leaves its lock; it names a dead process on this host, so it is stale.
        let o = env.run(&["check", "--read-data"]);
        assert!(
            o.status.success(),
            "iteration {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let expected = snapshot_meta(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    restore_latest_matches(&env, "r", &expected, &src);
    env.ok(&["check", "--read-data"]);
}

/// A repository (1 MiB packs) after three nightly backups of `files` files of `size` bytes
/// and `forget --keep-last 1`: the first night writes every file, later nights a third each,
/// so the first night's packs end up partly used. Returns the source and its last state.
fn three_nights_forgotten(
    files: u64,
    size: usize,
) -> (
    Env,
    std::path::PathBuf,
    std::collections::BTreeMap<Vec<u8>, Meta>,
) {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    for night in 0..3u64 {
        for i in 0..files {
            if night == 0 || i % 3 == night - 1 {
                write(&src.join(format!("f{i}")), &bytes(size, night * 100 + i));
            }
        }
        env.ok(&["backup", src.to_str().unwrap()]);
    }
    let expected = snapshot_meta(&src);
    env.ok(&["forget", "--keep-last", "1"]);
    (env, src, expected)
}

/// Prune stopped at every one of its writes and deletes in turn (as a kill would stop it):
/// each time the repository checks clean and every snapshot restores.
#[test]
fn prune_stopped_at_every_step_never_damages() {
    let (env, src, expected) = three_nights_forgotten(60, 30_000);
    let pristine = env.path("pristine");
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(env.repo())
        .arg(&pristine)
        .status()
        .unwrap()
        .success());
    let opts = {
        let mut o = cista::PruneOptions::default();
        o.max_unused = cista::MaxUnused::Bytes(0);
        o
    };
    let mut steps = 0;
    for ok in 0..10_000 {
        let _ = std::fs::remove_dir_all(env.repo());
        assert!(std::process::Command::new("cp")
            .arg("-a")
            .arg(&pristine)
            .arg(env.repo())
            .status()
            .unwrap()
            .success());
        let repo = Repository::open(
            Arc::new(failing_backend(&env.repo(), ok, true)),
            PASSWORD.as_bytes(),
        )
        .unwrap();
        let done = lib_prune(&repo, &opts);
        let clean =
            Repository::open(Arc::new(LocalBackend::new(env.repo())), PASSWORD.as_bytes()).unwrap();
        full_check(&clean);
        // A failed delete no longer stops prune: it reports the object and goes on.
        if let Ok(r) = done {
            assert!(r.packs_repacked > 0 && r.packs_deleted > 0, "{r:?}");
            if r.delete_failed.is_empty() {
                steps = ok;
                break;
            }
        }
    }
    assert!(steps > 5, "prune finished after {steps} steps");
    restore_latest_matches(&env, "r", &expected, &src);
}

/// A store that refuses every delete (a put-only credential, Object Lock on another store):
/// prune still finishes, names what it could not delete, and leaves a repository that checks
/// clean; the old index files it could not delete are superseded, not back in force. A later
/// prune with delete rights removes the leftovers.
#[test]
fn prune_reports_objects_it_cannot_delete_and_a_later_prune_removes_them() {
    let (env, src, expected) = three_nights_forgotten(30, 40_000);
    let refusing = hooked::Hooked::new(Arc::new(LocalBackend::new(env.repo())), |op, t, name| {
        if op == hooked::Op::Remove && t != FileType::Lock {
            return Err(hooked::injected(
                "delete",
                name,
                std::io::ErrorKind::PermissionDenied,
                "AccessDenied",
            ));
        }
        Ok(())
    });
    let repo = Repository::open(Arc::new(refusing), PASSWORD.as_bytes()).unwrap();
    let opts = {
        let mut o = cista::PruneOptions::default();
        o.max_unused = cista::MaxUnused::Bytes(0);
        o
    };
    let r = lib_prune(&repo, &opts).unwrap();
    assert!(r.packs_written > 0 && r.packs_repacked > 0, "{r:?}");
    let old_index_files = 3;
    assert!(
        r.delete_failed.len() >= old_index_files + r.packs_repacked + r.packs_deleted,
        "{r:?}"
    );
    assert!(
        r.delete_failed
            .iter()
            .all(|e| e.message.contains("AccessDenied")
                && e.kind == cista::ProblemKind::DeleteFailed
                && e.object.is_some()),
        "{r:?}"
    );
    assert_eq!((r.packs_removed, r.index_files_deleted), (0, 0));
    let clean =
        Repository::open(Arc::new(LocalBackend::new(env.repo())), PASSWORD.as_bytes()).unwrap();
    full_check(&clean);
    let index = Index::load(&clean).unwrap();
    assert_eq!(index.superseded_files().len(), old_index_files);
    assert_eq!(index.index_files().len(), r.index_files_written);
    restore_latest_matches(&env, "r", &expected, &src);

    // A prune with delete rights removes the leftovers, superseded index files included.
    let o = env.run(&["prune"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = Index::load(&clean).unwrap();
    assert!(index.superseded_files().is_empty());
    let notes = env.ok(&["check", "--read-data"]);
    assert!(
        !notes.contains("superseded") && !notes.contains("not in any index"),
        "{notes}"
    );
    restore_latest_matches(&env, "r2", &expected, &src);
}
