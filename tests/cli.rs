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
        let _l = cista::LockGuard::acquire(&repo, true).unwrap();
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
        time: cista::util::now_string(),
        exclusive: true,
        hostname: cista::util::hostname(),
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
    let _a = cista::LockGuard::acquire(&repo, false).unwrap();
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

/// The cista binary with no repository or password from the environment.
fn bare_cmd(env: &Env, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cista"));
    c.args(args)
        .current_dir(env.dir.path())
        .env("CISTA_CACHE_DIR", env.path("cache"))
        .env_remove("CISTA_REPOSITORY")
        .env_remove("CISTA_PASSWORD")
        .env_remove("CISTA_PASSWORD_FILE")
        .env_remove("CISTA_PASSWORD_COMMAND")
        .stdin(std::process::Stdio::null());
    c
}

/// Regression (issue 10, item 2): `CISTA_PASSWORD= cista init` created a repository with an
/// empty password, and a password command printing nothing opened one.
#[test]
fn empty_passwords_are_refused_without_insecure_no_password() {
    let env = Env::empty();
    let o = env
        .cmd(&["init"])
        .env("CISTA_PASSWORD", "")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--insecure-no-password"),
        "{}",
        stderr(&o)
    );
    assert!(!env.repo().join("config").exists());
    let pf = env.path("empty-pw");
    fs::write(&pf, "\n").unwrap();
    let o = bare_cmd(
        &env,
        &[
            "-r",
            "repo",
            "init",
            "--password-file",
            pf.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    for args in [&["init"][..], &["snapshots"][..]] {
        let mut a = vec!["-r", "repo", "--password-command", "true"];
        a.extend_from_slice(args);
        let o = bare_cmd(&env, &a).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("printed no password"), "{}", stderr(&o));
    }
    assert!(!env.repo().join("config").exists());

    // With the flag: created and opened with an empty password; without it, refused.
    let o = bare_cmd(&env, &["-r", "repo", "--insecure-no-password", "init"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bare_cmd(&env, &["-r", "repo", "--insecure-no-password", "snapshots"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bare_cmd(&env, &["-r", "repo", "snapshots"])
        .env("CISTA_PASSWORD", "")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--insecure-no-password"),
        "{}",
        stderr(&o)
    );
    // The flag and a password contradict each other.
    let o = bare_cmd(&env, &["-r", "repo", "--insecure-no-password", "snapshots"])
        .env("CISTA_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// Regression (issue 10, item 3): CISTA_PASSWORD won over an explicit --password-file (the
/// reverse of restic); a file and a command together were accepted; the password command's
/// text appeared in its error; `--help` printed the password variables' values.
#[test]
fn password_sources_precedence_conflicts_and_secrecy() {
    let env = Env::new();
    let pf = env.path("pw");
    fs::write(&pf, format!("{PASSWORD}\n")).unwrap();
    let pf = pf.to_str().unwrap();
    let o = env
        .cmd(&["snapshots", "--password-file", pf])
        .env("CISTA_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let cmd = format!("echo '{PASSWORD}'");
    let o = env
        .cmd(&["snapshots", "--password-command", &cmd])
        .env("CISTA_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let o = env
        .cmd(&[
            "snapshots",
            "--password-file",
            pf,
            "--password-command",
            &cmd,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("both a password file and a password command"),
        "{}",
        stderr(&o)
    );

    let secret = "echo hunter2-secret; exit 3";
    let o = env
        .cmd(&["snapshots", "--password-command", secret])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("password command failed"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));

    for args in [&["--help"][..], &["copy", "--help"][..]] {
        let o = bare_cmd(&env, args)
            .env("CISTA_PASSWORD_COMMAND", "echo hunter2-cmd")
            .env("CISTA_PASSWORD_FILE", "/hunter2-file")
            .env("CISTA_FROM_PASSWORD_COMMAND", "echo hunter2-from")
            .env("CISTA_FROM_PASSWORD_FILE", "/hunter2-from-file")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success());
        assert!(out.contains("CISTA_PASSWORD_COMMAND"), "{out}");
        assert!(!out.contains("hunter2"), "{args:?}: {out}");
    }
}

/// Regression (issue 10, item 5): `init` over a repository whose config was lost wrote a
/// second master key, making every existing snapshot unreadable.
#[test]
fn init_refuses_location_with_objects_but_no_config() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    let config = fs::read(env.repo().join("config")).unwrap();
    fs::remove_file(env.repo().join("config")).unwrap();
    let o = env.run(&["init"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    for dir in ["keys/", "data/", "index/", "snapshots/"] {
        assert!(err.contains(dir), "does not name {dir}: {err}");
    }
    assert!(!env.repo().join("config").exists());
    assert_eq!(env.count("keys"), 1, "no second key was written");
    // With the config back, the snapshot is readable as before.
    fs::write(env.repo().join("config"), config).unwrap();
    env.ok(&["check", "--read-data"]);
    restore_latest(&env, "r", &src);
}

/// Regression (issue 10, item 9): `-r sftp:user@host:/srv/repo init` said "created" and made
/// a local directory named `sftp:user@host:`.
#[test]
fn unsupported_location_schemes_are_refused() {
    let env = Env::empty();
    for loc in [
        "sftp:user@host:/srv/repo",
        "rest:http://host:8000/",
        "rclone:remote:path",
        "b2:bucket:path",
        "swift:container:/path",
        "s3:s3.amazonaws.com/bucket",
        "sftp://host/srv",
    ] {
        let o = bare_cmd(&env, &["-r", loc, "init"])
            .env("CISTA_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{loc}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(!err.contains("created"), "{loc}: {err}");
        for supported in ["local:PATH", "s3://", "gs://", "az://"] {
            assert!(
                err.contains(supported),
                "{loc}: does not list {supported}: {err}"
            );
        }
    }
    let left: Vec<_> = fs::read_dir(env.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "a refused init left {left:?}");
    // local:PATH and paths with a colon after the first component are local directories.
    let o = bare_cmd(&env, &["-r", "local:viaprefix", "init"])
        .env("CISTA_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(env.path("viaprefix").join("config").exists());
    let o = bare_cmd(&env, &["-r", "./a:b", "init"])
        .env("CISTA_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(env.path("a:b").join("config").exists());
}

/// Regression (issue 10, item 15): `forget --keep-daily -1` (unlimited) was taken for an
/// unknown flag `-1` unless written `--keep-daily=-1`.
#[test]
fn forget_keep_counts_take_minus_one_without_equals() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    for day in ["2024-01-01", "2025-01-02"] {
        let t = format!("{day}T10:00:00Z");
        env.ok(&["backup", "--time", &t, src.to_str().unwrap()]);
    }
    for flag in ["--keep-daily", "--keep-last", "-d", "--keep-yearly"] {
        let o = env.run(&["forget", flag, "-1"]);
        assert!(o.status.success(), "{flag} -1: {}", stderr(&o));
        assert_eq!(env.count("snapshots"), 2);
    }
    let o = env.run(&["forget", "--keep-daily", "-2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Regression (issue 10, item 15): sizes took only an integer and one binary letter, so
/// `1GiB`, `1GB` and `1.5G` were refused.
#[test]
fn size_options_accept_iec_si_and_fractional_sizes() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "2MiB"]);
    assert_eq!(env.json(&["config"])["pack_size"], 2 << 20);
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    for size in ["1GiB", "1GB", "1.5G", "512 KiB", "10k"] {
        env.ok(&["prune", "--dry-run", "--max-unused", size]);
        env.ok(&["prune", "--dry-run", "--max-repack-size", size]);
        env.ok(&["--limit-download", size, "snapshots"]);
    }
    let o = env.run(&["prune", "--dry-run", "--max-repack-size", "1.5X"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("1.5X"), "{}", stderr(&o));
    assert_eq!(cista::util::parse_size("1GiB").unwrap(), 1 << 30);
    assert_eq!(cista::util::parse_size("1GB").unwrap(), 1_000_000_000);
    assert_eq!(cista::util::parse_size("1.5G").unwrap(), 3 << 29);
    assert_eq!(cista::util::parse_size("10k").unwrap(), 10 << 10);
    assert_eq!(cista::util::parse_size("4096").unwrap(), 4096);
}

#[test]
fn generate_writes_completions_and_man_pages() {
    let env = Env::empty();
    let (bash, zsh, fish, man) = (
        env.path("cista.bash"),
        env.path("_cista"),
        env.path("cista.fish"),
        env.path("man/man1"),
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cista"))
        .arg("generate")
        .arg("--bash-completion")
        .arg(&bash)
        .arg("--zsh-completion")
        .arg(&zsh)
        .arg("--fish-completion")
        .arg(&fish)
        .arg("--man")
        .arg(&man)
        .env_remove("CISTA_REPOSITORY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let script = fs::read_to_string(&bash).unwrap();
    assert!(script.contains("backup"), "{script}");
    let n = std::process::Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .output()
        .unwrap();
    assert!(n.status.success(), "bash -n: {}", stderr(&n));
    for f in [&zsh, &fish] {
        assert!(fs::read_to_string(f).unwrap().contains("backup"), "{f:?}");
    }
    for page in [
        "cista.1",
        "cista-backup.1",
        "cista-key.1",
        "cista-key-passwd.1",
    ] {
        let text = fs::read_to_string(man.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}: {text}");
    }
    // Rendered by man(1) where it is installed (not required).
    let rendered = std::process::Command::new("man")
        .arg("-l")
        .arg(man.join("cista-backup.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output();
    if let Some(r) = rendered.ok().filter(|r| r.status.success()) {
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(text.contains("NAME") && text.contains("backup"), "{text}");
    }
    // Without options it prints its usage and fails.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cista"))
        .arg("generate")
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn a_usage_error_exits_2_and_runs_nothing() {
    let env = Env::empty();
    for args in [
        &["--bogus", "snapshots"][..],
        &["backup", "--keep-last", "x"][..],
        &["frobnicate"][..],
    ] {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    // Nothing ran: no repository was created or opened.
    assert!(!env.repo().exists());
}
