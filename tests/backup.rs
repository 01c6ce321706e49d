//! Backup behaviour: deduplication, incrementals, excludes, stdin, unreadable files.

mod common;

use std::fs;
use std::io::Write;
use std::process::Stdio;

use cista::format::BlobType;
use cista::Index;
use common::*;

fn blob_counts(env: &Env) -> (usize, usize) {
    let idx = Index::load(&env.open()).unwrap();
    (idx.len(BlobType::Data), idx.len(BlobType::Tree))
}

#[test]
fn unchanged_rebackup_adds_no_data() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big"), &bytes(5 << 20, 7));
    let first = env.backup(&[&src]);
    assert!(first["data_blobs"].as_u64().unwrap() > 3);
    let before = blob_counts(&env);

    let second = env.backup(&[&src]);
    assert_eq!(second["data_blobs"], 0);
    // Only the snapshot root may change: it records /tmp, whose mtime other tests move.
    assert!(second["tree_blobs"].as_u64().unwrap() <= 1, "{second}");
    assert_eq!(second["files_unmodified"], 5);
    assert_eq!(second["parent"], first["snapshot_id"]);
    assert_eq!(blob_counts(&env).0, before.0);

    // --force re-reads every file, and still adds nothing.
    let forced = env.json(&["backup", "--force", src.to_str().unwrap()]);
    assert_eq!(forced["data_blobs"], 0);
    assert_eq!(forced["files_unmodified"], 5);
}

#[test]
fn changing_one_file_adds_only_its_changed_chunks_and_parent_trees() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    // A 40 MiB file of about 40 chunks; change 100 bytes in the middle.
    let mut big = bytes(40 << 20, 11);
    write(&src.join("sub/deeper/big.bin"), &big);
    env.backup(&[&src]);
    let (d0, t0) = blob_counts(&env);
    big[20 << 20..(20 << 20) + 100].copy_from_slice(&[0xAB; 100]);
    write(&src.join("sub/deeper/big.bin"), &big);
    let s = env.backup(&[&src]);
    let (d1, t1) = blob_counts(&env);
    assert_eq!(s["files_changed"], 1);
    assert_eq!(s["files_unmodified"], 4);
    // One chunk changes; a cut point may move, so at most two new chunks.
    let new_data = d1 - d0;
    assert!((1..=2).contains(&new_data), "{new_data} new data blobs");
    assert_eq!(s["data_blobs"].as_u64().unwrap() as usize, new_data);
    // deeper, sub, src, the directories from / to src, and the snapshot root.
    let depth = src.components().count() - 1;
    let expected_trees = 2 + depth + 1;
    assert_eq!(t1 - t0, expected_trees, "new trees");
}

#[test]
fn excludes_and_exclude_file() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("cache/x.tmp"), b"tmp");
    write(&src.join("keep.log"), b"log");
    write(&src.join("sub/skip.log"), b"log");
    let ex = env.path("excludes");
    fs::write(&ex, "# comment\n\n*.log\n").unwrap();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "cache",
        "--exclude",
        "sub/deeper",
        "--exclude-file",
        ex.to_str().unwrap(),
    ]);
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("a.txt"));
    assert!(ls.contains("b.bin"));
    assert!(!ls.contains("cache"), "{ls}");
    assert!(!ls.contains(".log"), "{ls}");
    assert!(!ls.contains("deeper"), "{ls}");
}

#[test]
fn stdin_is_always_read() {
    let env = Env::new();
    for night in 0..3u64 {
        let data = text(3 << 20, night);
        let mut child = env
            .cmd(&["--json", "backup", "--stdin", "--stdin-filename", "db.sql"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii_end()).unwrap();
        assert_eq!(v["total_bytes_processed"], data.len() as u64);
        let dumped = env.cmd(&["dump", "latest", "db.sql"]).output().unwrap();
        assert_eq!(dumped.stdout, data, "night {night}");
    }
}

#[test]
fn stdin_from_command() {
    let env = Env::new();
    let v = env.json(&[
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "out.txt",
        "--",
        "sh",
        "-c",
        "echo hello; echo world",
    ]);
    assert!(v["snapshot_id"].is_string());
    let o = env.cmd(&["dump", "latest", "/out.txt"]).output().unwrap();
    assert_eq!(o.stdout, b"hello\nworld\n");

    // A failing command saves no snapshot.
    let before = env.count("snapshots");
    let o = env.run(&[
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "x",
        "--",
        "sh",
        "-c",
        "echo partial; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("failed"));
    assert_eq!(env.count("snapshots"), before);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn tags_host_time_and_filters() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let s = src.to_str().unwrap();
    env.ok(&[
        "backup",
        s,
        "--tag",
        "nightly",
        "--host",
        "db1",
        "--time",
        "2026-01-04T03:00:00+01:00",
    ]);
    env.ok(&[
        "backup",
        s,
        "--tag",
        "weekly,keep",
        "--host",
        "db2",
        "--time",
        "2026-01-05T03:00:00Z",
    ]);
    let all = env.json(&["snapshots"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["hostname"], "db1");
    assert_eq!(all[0]["time"], "2026-01-04T03:00:00.000000000+01:00");
    assert_eq!(all[1]["tags"], serde_json::json!(["keep", "weekly"]));
    let f = env.json(&["snapshots", "--host", "db1"]);
    assert_eq!(f.as_array().unwrap().len(), 1);
    let f = env.json(&["snapshots", "--tag", "keep"]);
    assert_eq!(f[0]["hostname"], "db2");
    let f = env.json(&["snapshots", "--path", s]);
    assert_eq!(f.as_array().unwrap().len(), 2);
    for k in ["id", "time", "paths", "hostname", "tags"] {
        assert!(!all[0][k].is_null(), "{k} missing");
    }
}

#[test]
fn unreadable_file_is_named_and_exits_3() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("locked"), b"no access");
    fs::set_permissions(
        src.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let mut cmd = env.cmd(&["backup", src.to_str().unwrap()]);
    if is_root() {
        // Root reads everything: run as nobody, with the repository and source theirs.
        let nobody = 65534;
        for p in walk_files(env.dir.path())
            .iter()
            .chain([env.dir.path().to_path_buf()].iter())
        {
            let _ = nix::unistd::chown(p, Some(nobody.into()), Some(nobody.into()));
        }
        for d in [
            env.dir.path().to_path_buf(),
            env.repo(),
            src.clone(),
            src.join("sub"),
            src.join("sub/deeper"),
        ] {
            nix::unistd::chown(&d, Some(nobody.into()), Some(nobody.into())).unwrap();
        }
        chown_tree(&env.repo(), nobody);
        nix::unistd::chown(&src.join("locked"), Some(0.into()), Some(0.into())).unwrap();
        use std::os::unix::process::CommandExt;
        cmd.uid(nobody).gid(nobody);
    }
    let o = cmd.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("locked"), "{err}");
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("a.txt") && !ls.contains("locked"));
}

fn chown_tree(p: &std::path::Path, uid: u32) {
    let _ = nix::unistd::chown(p, Some(uid.into()), Some(uid.into()));
    if p.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

#[test]
fn multiple_paths_and_missing_path() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    small_tree(&a);
    write(&b.join("file"), b"b");
    let v = env.backup(&[&a, &b]);
    assert!(v["snapshot_id"].is_string());
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains(&format!("{}/a.txt", a.display())));
    assert!(ls.contains(&format!("{}/file", b.display())));
    let o = env.run(&["backup", env.path("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing"));
}

/// Issue 10, item 10: reading the source between two backups changed every file's atime and
/// with it nearly every tree of the next backup. Atime is recorded only with --with-atime.
#[test]
fn reading_files_between_backups_adds_no_trees() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("other/d.txt"), b"d");
    // An atime older than the mtime, so that under relatime the reads below update it (setting
    // it after the backup would change the ctime too, which a read does not).
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    for f in walk_files(&src) {
        filetime::set_file_atime(&f, old).unwrap();
    }
    env.backup(&[&src]);
    for f in walk_files(&src) {
        fs::read(&f).unwrap();
    }
    let atime =
        |f: &std::path::Path| filetime::FileTime::from_last_access_time(&fs::metadata(f).unwrap());
    assert_ne!(
        atime(&src.join("a.txt")),
        old,
        "the reads updated the atime"
    );
    let second = env.backup(&[&src]);
    assert_eq!(second["data_blobs"], 0);
    // Only the snapshot root may change: it records /tmp, whose mtime other tests move.
    assert!(second["tree_blobs"].as_u64().unwrap() <= 1, "{second}");
    assert_eq!(second["dirs_changed"].as_u64().unwrap(), 0, "{second}");
}

/// Without --with-atime a restored file's atime is its mtime; with it, the atime read.
#[test]
fn with_atime_records_access_times() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    let (atime, mtime) = (
        filetime::FileTime::from_unix_time(1_900_000_000, 5),
        filetime::FileTime::from_unix_time(1_800_000_000, 7),
    );
    filetime::set_file_times(src.join("f"), atime, mtime).unwrap();
    for (dir, flag, want) in [
        ("plain", None, mtime),
        ("with", Some("--with-atime"), atime),
    ] {
        let mut args = vec!["backup", src.to_str().unwrap()];
        args.extend(flag);
        env.ok(&args);
        let out = restore_latest(&env, dir, &src);
        let m = fs::metadata(out.join("f")).unwrap();
        assert_eq!(
            (m.atime(), m.atime_nsec()),
            (want.unix_seconds(), want.nanoseconds() as i64),
            "{dir}"
        );
    }
}

/// A failed producer (`pg_dump | cista backup --stdin` where pg_dump died) gives an empty
/// stream: that fails the backup and saves nothing, unless `--allow-empty`.
#[test]
fn empty_stdin_or_command_output_fails_unless_allowed() {
    let env = Env::new();
    for args in [
        &["backup", "--stdin", "--stdin-filename", "db.sql"][..],
        &[
            "backup",
            "--stdin-from-command",
            "--stdin-filename",
            "db.sql",
            "--",
            "true",
        ],
        &["backup", "--command", "db.sql=true"],
    ] {
        let o = env.run(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{args:?} succeeded: {}",
            stderr(&o)
        );
        let err = stderr(&o);
        assert!(
            err.contains("is empty") && err.contains("no snapshot saved"),
            "{args:?}: {err}"
        );
        assert_eq!(env.count("snapshots"), 0, "{args:?}");
    }
    let o = env.run(&[
        "backup",
        "--stdin",
        "--stdin-filename",
        "db.sql",
        "--allow-empty",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["backup", "--command", "db/x.sql=true", "--allow-empty"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(env.count("snapshots"), 2);
    let o = env.run(&["dump", "latest", "/db/x.sql"]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", stderr(&o));
}

/// Several named commands beside a directory in one snapshot: the directory at its absolute
/// place, each command's output at its name below the root (directories made for `db/`).
#[test]
fn named_commands_beside_paths_in_one_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let big = env.path("big.bin");
    let data = bytes(3 << 20, 5);
    fs::write(&big, &data).unwrap();
    let v = env.json(&[
        "backup",
        src.to_str().unwrap(),
        "--command",
        "db/a.sql=echo 'create table a;'; echo 'insert into a values (1);'",
        "--command",
        &format!("db/b.sql=cat '{}'", big.display()),
        "--command",
        "top.txt=printf top",
    ]);
    assert!(v["snapshot_id"].is_string(), "{v}");
    let ls = env.ok(&["ls", "latest"]);
    let lines: Vec<&str> = ls.lines().collect();
    for p in ["/db", "/db/a.sql", "/db/b.sql", "/top.txt"] {
        assert!(lines.contains(&p), "{p} not listed: {ls}");
    }
    assert!(
        lines.contains(&format!("{}/sub/b.bin", src.display()).as_str()),
        "{ls}"
    );
    let dump = |p: &str| {
        let o = env.run(&["dump", "latest", p]);
        assert!(o.status.success(), "{p}: {}", stderr(&o));
        o.stdout
    };
    assert_eq!(
        dump("/db/a.sql"),
        b"create table a;\ninsert into a values (1);\n"
    );
    assert!(dump("/db/b.sql") == data);
    assert_eq!(dump("/top.txt"), b"top");
    assert_eq!(dump(&format!("{}/a.txt", src.display())), b"hello world\n");
    let snap = env.json(&["cat", "snapshot", "latest"]);
    let mut want = vec![
        "/db/a.sql".to_string(),
        "/db/b.sql".into(),
        src.display().to_string(),
        "/top.txt".into(),
    ];
    want.sort();
    assert_eq!(snap["paths"], serde_json::json!(want));

    // The same backup again compares the paths with the last one: no file is read.
    let v = env.json(&[
        "backup",
        src.to_str().unwrap(),
        "--command",
        "db/a.sql=echo 'create table a;'; echo 'insert into a values (1);'",
        "--command",
        &format!("db/b.sql=cat '{}'", big.display()),
        "--command",
        "top.txt=printf top",
    ]);
    assert_eq!(v["files_unmodified"], 4, "{v}");
    env.ok(&["check", "--read-data"]);
}

/// Any named command that exits non-zero fails the backup: no snapshot, the command named
/// with its exit status. Bad names are refused before anything runs.
#[test]
fn a_failing_named_command_saves_no_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let o = env.run(&[
        "backup",
        src.to_str().unwrap(),
        "--command",
        "db/a.sql=echo fine",
        "--command",
        "db/b.sql=echo partial; exit 1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("db/b.sql") && err.contains("exit status: 1") && err.contains("failed"),
        "{err}"
    );
    assert_eq!(env.count("snapshots"), 0);

    let first = src
        .components()
        .nth(1)
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap()
        .to_string();
    let ran = env.path("ran");
    for (name, why) in [
        ("../x", "relative path"),
        ("db//x", "relative path"),
        ("/x", "relative path"),
        (&format!("{first}/x")[..], "also backed up from a path"),
        ("db", "both a file and a directory"),
    ] {
        let o = env.run(&[
            "backup",
            src.to_str().unwrap(),
            "--command",
            &format!("db/a.sql=touch '{}'", ran.display()),
            "--command",
            &format!("{name}=echo x"),
        ]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{name}: {}", stderr(&o));
        assert!(!ran.exists(), "{name}: a command ran");
    }
    let o = env.run(&["backup", "--command", "no-equals-sign"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("NAME=COMMAND"), "{}", stderr(&o));
    let o = env.run(&["backup", "--stdin", "--command", "a=echo a"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(env.count("snapshots"), 0);
}
