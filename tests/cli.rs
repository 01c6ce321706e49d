//! Command-line conventions: exit codes, password sources, locks, ids.

mod common;

use std::fs;

use cista::backend::FileType;
use cista::format::{FileKind, LockInfo};
use common::*;

#[test]
fn missing_repository_exits_10() {
    let env = Env::empty();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
}

#[test]
fn wrong_password_exits_12() {
    let env = Env::new();
    let o = env
        .cmd(&["snapshots"])
        .env("CISTA_PASSWORD", "nope")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong password"));
}

#[test]
fn init_refuses_existing_repository() {
    let env = Env::new();
    let o = env.run(&["init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
}

#[test]
fn password_file_and_command() {
    let env = Env::new();
    let pf = env.path("pw");
    fs::write(&pf, format!("{PASSWORD}\n")).unwrap();
    let o = env
        .cmd(&["snapshots", "--password-file", pf.to_str().unwrap()])
        .env_remove("CISTA_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env
        .cmd(&[
            "snapshots",
            "--password-command",
            &format!("echo '{PASSWORD}'"),
        ])
        .env_remove("CISTA_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = env
        .cmd(&["snapshots"])
        .env_remove("CISTA_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no password"));
}

#[test]
fn locked_repository_exits_11_and_stale_locks_are_removed() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let repo = env.open();
    {
        let _l = cista::lock::LockGuard::acquire(&repo, true).unwrap();
        let o = env.run(&["backup", src.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(11),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("exclusive lock"));
    }
    assert_eq!(env.count("locks"), 0, "a dropped lock is removed");
    // A lock of a dead process on this host is stale: ignored, and removed by unlock.
    let stale = LockInfo {
        time: cista::repository::now_string(),
        exclusive: true,
        hostname: cista::repository::hostname(),
        username: "x".into(),
        pid: 0x3fff_fff0,
    };
    repo.save_file(FileKind::Lock, FileType::Lock, &stale.encode())
        .unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    assert_eq!(env.count("locks"), 1);
    env.ok(&["unlock"]);
    assert_eq!(env.count("locks"), 0);
    // Shared locks do not conflict with each other.
    let _a = cista::lock::LockGuard::acquire(&repo, false).unwrap();
    env.ok(&["check"]);
}

#[test]
fn unsupported_format_version_is_refused() {
    let env = Env::new();
    let cfg = env.repo().join("config");
    let mut b = fs::read(&cfg).unwrap();
    b[5] = 2;
    fs::write(&cfg, b).unwrap();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("format version 2"), "{err}");
}

#[test]
fn snapshot_ids_prefixes_and_latest() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let s = src.to_str().unwrap();
    let a = env.json(&["backup", s, "--time", "2026-01-01T00:00:00Z"]);
    let b = env.json(&[
        "backup",
        s,
        "--time",
        "2026-01-02T00:00:00Z",
        "--host",
        "other",
    ]);
    let a_id = a["snapshot_id"].as_str().unwrap();
    let b_id = b["snapshot_id"].as_str().unwrap();
    let snap = env.json(&["cat", "snapshot", &a_id[..8]]);
    assert_eq!(snap["id"], a_id);
    let snap = env.json(&["cat", "snapshot", "latest"]);
    assert_eq!(snap["id"], b_id);
    let o = env.run(&["ls", "latest", "--host", "nonexistent"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("latest"));
    let o = env.run(&["ls", "ffffffffff"]);
    assert_eq!(o.status.code(), Some(1));
    let cfg = env.json(&["cat", "config"]);
    assert_eq!(cfg["version"], 1);
    assert_eq!(cfg["chunker"]["avg"], 1 << 20);
    // New repositories compress blobs of 256 KiB or more at level 4 (format §7).
    assert_eq!(cfg["compression_level"], 3);
    assert_eq!(cfg["large_blob_level"], 4);
    assert_eq!(env.json(&["config"])["large_blob_level"], 4);
}

#[test]
fn append_only_refuses_deletion_but_backs_up() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let ao = |args: &[&str]| {
        env.cmd(args)
            .env("CISTA_APPEND_ONLY", "1")
            .output()
            .unwrap()
    };
    assert!(ao(&["backup", src.to_str().unwrap()]).status.success());
    assert!(ao(&["backup", src.to_str().unwrap()]).status.success());
    for args in [
        &["forget", "--keep-last", "1"][..],
        &["prune"][..],
        &["tag", "--add", "x"][..],
    ] {
        let o = ao(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("append-only"),
            "{args:?}"
        );
    }
    assert_eq!(env.count("snapshots"), 2);
    assert_eq!(env.count("locks"), 0, "own locks are still removed");
    // The library-level guard refuses deletes of anything but locks.
    let be = cista::backend::AppendOnly(
        cista::backend::open_location(env.repo().to_str().unwrap(), &[]).unwrap(),
    );
    use cista::backend::Backend;
    let snaps = be.list(FileType::Snapshot).unwrap();
    assert!(be.remove(FileType::Snapshot, &snaps[0].0).is_err());
    assert_eq!(env.count("snapshots"), 2);
}

/// The repository setting: set at init with --append-only (or later with `config`), it makes
/// every client refuse forget, prune and tag; a client run with --append-only cannot lift it;
/// `config append-only off` from another host does, and then forget works.
#[test]
fn append_only_repository_setting() {
    let env = Env::empty();
    let o = env
        .cmd(&["init"])
        .env("CISTA_APPEND_ONLY", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.json(&["config"])["append_only"], true);
    let src = env.path("src");
    small_tree(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["backup", src.to_str().unwrap()]);
    for args in [
        &["forget", "--keep-last", "1"][..],
        &["prune"][..],
        &["tag", "--add", "x"][..],
    ] {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("append-only"), "{args:?}: {err}");
    }
    assert_eq!(env.count("snapshots"), 2);
    assert_eq!(env.count("locks"), 0, "own locks are still removed");
    // The library opened on this repository refuses deletes too, whatever the caller.
    let repo = cista::Repository::open(
        cista::backend::open_location(env.repo().to_str().unwrap(), &[]).unwrap(),
        PASSWORD.as_bytes(),
    )
    .unwrap();
    let snaps = repo.backend().list(FileType::Snapshot).unwrap();
    assert!(repo
        .backend()
        .remove(FileType::Snapshot, &snaps[0].0)
        .is_err());
    assert_eq!(env.count("snapshots"), 2);

    let o = env
        .cmd(&["config", "append-only", "off"])
        .env("CISTA_APPEND_ONLY", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(env.json(&["config"])["append_only"], true);
    let o = env.run(&["config", "append-only", "maybe"]);
    assert_eq!(o.status.code(), Some(1));

    env.ok(&["config", "append-only", "off"]);
    assert_eq!(env.json(&["config"])["append_only"], false);
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(env.count("snapshots"), 1);
    env.ok(&["config", "append-only", "on"]);
    assert!(!env.run(&["forget", "--keep-last", "1"]).status.success());
    env.ok(&["check", "--read-data"]);
    let expected = snapshot_meta(&src);
    restore_latest_matches(&env, "r", &expected, &src);
}

/// Regression: a storage error's cause was printed twice ("…: Is a directory: Is a directory").
#[test]
fn error_cause_is_printed_once() {
    let env = Env::new();
    fs::remove_file(env.repo().join("config")).unwrap();
    fs::create_dir(env.repo().join("config")).unwrap();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("config"), "{err}");
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
}
