//! `restore --overwrite always|if-changed|if-newer|never`, `--delete` and `--dry-run` on a
//! target that already holds files: the same, changed with the same size and mtime, older,
//! newer, partly changed, missing, extra, and a directory where a file goes (and the reverse).
//! Each mode is run first as a dry run, which must change nothing (a listing with inodes,
//! ctimes and content digests before and after) and report what the real run then does.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use filetime::FileTime;

const BIG: usize = 24 << 20;

/// Everything below `root` that a restore could change: kind, mode, inode, size, mtime and
/// ctime (any metadata change moves it), content digest or link target.
fn state(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let mut line = format!(
            "{:o} {} {} {}.{} {}.{}",
            m.mode(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        );
        if ft.is_file() {
            line += &format!(" {}", blake3::hash(&fs::read(&p).unwrap()));
        } else if ft.is_symlink() {
            line += &format!(" -> {}", fs::read_link(&p).unwrap().display());
        } else if ft.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
        out.insert(p, line);
    }
    out
}

fn mtime(p: &Path) -> FileTime {
    FileTime::from_last_modification_time(&fs::symlink_metadata(p).unwrap())
}

fn shifted(t: FileTime, secs: i64) -> FileTime {
    FileTime::from_unix_time(t.unix_seconds() + secs, t.nanoseconds())
}

/// The source tree, backed up; returns it.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    for (name, data) in [
        ("same.txt", &b"same content\n"[..]),
        ("samesize.bin", b"snapshot bytes\n"),
        ("older.txt", b"snapshot version of older\n"),
        ("newer.txt", b"snapshot version of newer\n"),
        ("missing.txt", b"deleted from the target\n"),
        ("filedir", b"a file where the target has a directory\n"),
        (
            "dirfile/in.txt",
            b"a directory where the target has a file\n",
        ),
    ] {
        write(&src.join(name), data);
    }
    write(&src.join("big.bin"), &bytes(BIG, 9));
    symlink("same.txt", src.join("link")).unwrap();
    env.backup(&[&src]);
    src
}

/// A fresh restore of the latest snapshot into `dir`, then changed as the module says;
/// returns where `src` is in it.
fn prepared(env: &Env, src: &Path, dir: &str) -> PathBuf {
    let r = restore_latest(env, dir, src);
    let at = |n: &str| r.join(n);
    let snap = |n: &str| mtime(&src.join(n));
    fs::write(at("samesize.bin"), b"target's bytes\n").unwrap();
    filetime::set_file_mtime(at("samesize.bin"), snap("samesize.bin")).unwrap();
    fs::write(at("older.txt"), b"target's older\n").unwrap();
    filetime::set_file_mtime(at("older.txt"), shifted(snap("older.txt"), -1000)).unwrap();
    fs::write(at("newer.txt"), b"target's newer\n").unwrap();
    filetime::set_file_mtime(at("newer.txt"), shifted(snap("newer.txt"), 1000)).unwrap();
    let mut big = fs::read(at("big.bin")).unwrap();
    big[BIG / 2] ^= 1;
    fs::write(at("big.bin"), &big).unwrap();
    filetime::set_file_mtime(at("big.bin"), shifted(snap("big.bin"), 1000)).unwrap();
    fs::remove_file(at("missing.txt")).unwrap();
    fs::remove_file(at("filedir")).unwrap();
    write(&at("filedir/x"), b"in the way\n");
    filetime::set_file_mtime(at("filedir"), shifted(snap("filedir"), -1000)).unwrap();
    fs::remove_dir_all(at("dirfile")).unwrap();
    fs::write(at("dirfile"), b"in the way\n").unwrap();
    write(&at("extra.txt"), b"not in the snapshot\n");
    write(&at("extradir/inner.txt"), b"not in the snapshot\n");
    r
}

/// Runs `restore --json -vv` and returns the `verbose_status` lines (path below `src` →
/// action and size) and the summary.
fn run(
    env: &Env,
    src: &Path,
    target: &Path,
    extra: &[&str],
) -> (BTreeMap<String, (String, u64)>, serde_json::Value) {
    let t = target.to_str().unwrap();
    let mut args = vec!["--json", "-vv", "restore", "latest", "--target", t];
    args.extend_from_slice(extra);
    let out = env.ok(&args);
    let mut items = BTreeMap::new();
    let mut summary = None;
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        match v["message_type"].as_str().unwrap() {
            "verbose_status" => {
                let item = v["item"].as_str().unwrap();
                let Some(rel) = item.strip_prefix(&format!("{}/", src.display())) else {
                    continue;
                };
                let entry = (
                    v["action"].as_str().unwrap().to_string(),
                    v["size"].as_u64().unwrap(),
                );
                assert!(
                    items.insert(rel.to_string(), entry).is_none(),
                    "{rel} twice"
                );
            }
            "summary" => summary = Some(v),
            _ => {}
        }
    }
    (items, summary.expect("a summary"))
}

/// What each mode does with each path (`-`: reported unchanged, as restic does for a file
/// its policy skips).
const TABLE: &[(&str, [&str; 4])] = &[
    // path            always      if-changed   if-newer     never
    (
        "same.txt",
        ["unchanged", "unchanged", "unchanged", "unchanged"],
    ),
    (
        "samesize.bin",
        ["updated", "unchanged", "unchanged", "unchanged"],
    ),
    ("older.txt", ["updated", "updated", "updated", "unchanged"]),
    (
        "newer.txt",
        ["updated", "updated", "unchanged", "unchanged"],
    ),
    ("big.bin", ["updated", "updated", "unchanged", "unchanged"]),
    (
        "missing.txt",
        ["restored", "restored", "restored", "restored"],
    ),
    ("filedir", ["restored", "restored", "restored", "unchanged"]),
    ("dirfile", ["restored", "restored", "restored", "restored"]),
    (
        "dirfile/in.txt",
        ["restored", "restored", "restored", "restored"],
    ),
    ("link", ["restored", "restored", "unchanged", "unchanged"]),
    ("extra.txt", ["deleted", "deleted", "deleted", "deleted"]),
    ("extradir", ["deleted", "deleted", "deleted", "deleted"]),
    (
        "extradir/inner.txt",
        ["deleted", "deleted", "deleted", "deleted"],
    ),
];
const MODES: [&str; 4] = ["always", "if-changed", "if-newer", "never"];

#[test]
fn each_overwrite_mode_dry_run_changes_nothing_and_foretells_the_restore() {
    let env = Env::new();
    let src = source(&env);
    for (m, mode) in MODES.iter().enumerate() {
        let r = prepared(&env, &src, &format!("t-{mode}"));
        let target = env.path(&format!("t-{mode}"));
        let flags = ["--overwrite", mode, "--delete"];
        let before = state(&target);
        let dry_flags = [&flags[..], &["--dry-run"]].concat();
        let (dry, dry_sum) = run(&env, &src, &target, &dry_flags);
        assert_eq!(
            state(&target),
            before,
            "{mode}: the dry run changed the target"
        );
        assert_eq!(dry_sum["dry_run"], true);

        let (done, sum) = run(&env, &src, &target, &flags);
        for (path, actions) in TABLE {
            let want = actions[m];
            assert_eq!(
                done.get(*path).map(|a| a.0.as_str()),
                Some(want),
                "{mode}: {path}"
            );
        }
        assert_eq!(dry, done, "{mode}: the dry run reported otherwise");
        for k in [
            "files_restored",
            "files_skipped",
            "files_deleted",
            "dirs_restored",
            "special_restored",
            "total_files",
            "total_bytes",
            "bytes_restored",
            "bytes_skipped",
        ] {
            assert_eq!(dry_sum[k], sum[k], "{mode}: {k}: {dry_sum} vs {sum}");
        }
        let unchanged = TABLE.iter().filter(|(_, a)| a[m] == "unchanged").count();
        assert_eq!(sum["files_skipped"], unchanged as u64, "{mode}: {sum}");
        assert_eq!(sum["files_deleted"], 3, "{mode}: {sum}");
        assert_eq!(done["same.txt"].1, 13, "{mode}: an unchanged file's size");
        check_contents(mode, &src, &r);
    }
}

/// The target after the real run of `mode` over `prepared`.
fn check_contents(mode: &str, src: &Path, r: &Path) {
    let snap = |n: &str| fs::read(src.join(n)).unwrap();
    let got = |n: &str| fs::read(r.join(n)).unwrap();
    let from_snapshot = |n: &str, yes: bool| {
        assert_eq!(got(n) == snap(n), yes, "{mode}: content of {n}");
    };
    let (always, changed, newer) = (mode == "always", mode == "if-changed", mode == "if-newer");
    from_snapshot("same.txt", true);
    // if-changed trusts size and mtime, so this wrong content stays (as in restic).
    from_snapshot("samesize.bin", always);
    from_snapshot("older.txt", mode != "never");
    from_snapshot("newer.txt", always || changed);
    from_snapshot("big.bin", always || changed);
    from_snapshot("missing.txt", true);
    from_snapshot("dirfile/in.txt", true);
    if mode == "never" {
        assert_eq!(got("filedir/x"), b"in the way\n");
    } else {
        from_snapshot("filedir", true);
    }
    assert!(!r.join("extra.txt").exists() && !r.join("extradir").exists());
    let left: Vec<_> = fs::read_dir(r)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cista"))
        .collect();
    assert!(left.is_empty(), "{mode}: temporary files left: {left:?}");
    if always || changed || newer {
        // Replaced files are new files with the snapshot's metadata.
        let m = fs::metadata(r.join("older.txt")).unwrap();
        assert_eq!(
            m.mtime(),
            fs::metadata(src.join("older.txt")).unwrap().mtime()
        );
    }
}

/// A file that differs in one byte is rebuilt from its own matching chunks and the one chunk
/// that differs (at most 8 MiB of a 24 MiB file); a target that already matches costs no
/// data reads at all, only the trees a dry run reads too.
#[test]
fn matching_chunks_and_unchanged_files_are_not_downloaded() {
    let env = Env::new();
    let src = source(&env);
    let r = restore_latest(&env, "t", &src);
    let target = env.path("t");
    let mut big = fs::read(r.join("big.bin")).unwrap();
    big[BIG / 3] ^= 1;
    fs::write(r.join("big.bin"), &big).unwrap();
    let (items, sum) = run(&env, &src, &target, &[]);
    assert_eq!(items["big.bin"].0, "updated");
    assert_eq!(
        fs::read(r.join("big.bin")).unwrap(),
        fs::read(src.join("big.bin")).unwrap()
    );
    let down = sum["requests"]["bytes_down"].as_u64().unwrap();
    assert!(
        down < (BIG / 2) as u64,
        "downloaded {down} bytes for one changed byte"
    );

    let (_, dry) = run(&env, &src, &target, &["--dry-run"]);
    for mode in MODES {
        let (items, sum) = run(&env, &src, &target, &["--overwrite", mode]);
        assert_eq!(items["big.bin"].0, "unchanged", "{mode}");
        assert_eq!(sum["files_restored"], 0, "{mode}: {sum}");
        assert_eq!(
            sum["requests"]["range_get"], dry["requests"]["range_get"],
            "{mode}"
        );
        assert_eq!(
            sum["requests"]["bytes_down"], dry["requests"]["bytes_down"],
            "{mode}"
        );
    }
}

/// An existing file to be replaced is replaced only once its new content is complete: when a
/// blob it needs is damaged, it keeps its old content (and no temporary file is left), while
/// a new file with that blob is not left behind at all.
#[test]
fn a_failed_update_leaves_the_existing_file_whole() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big.bin"), &bytes(BIG, 5));
    write(&src.join("ok.txt"), b"fine\n");
    env.backup(&[&src]);
    let r = restore_latest(&env, "t", &src);
    let old = vec![7u8; BIG];
    fs::write(r.join("big.bin"), &old).unwrap();
    fs::write(r.join("ok.txt"), b"stale\n").unwrap();
    let before = fs::metadata(r.join("big.bin")).unwrap();
    let (blob, _) = damage_middle_blob(&env, &format!("{}/big.bin", src.display()));

    let t = env.path("t");
    let o = env.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("big.bin") && err.contains(&blob.to_hex()),
        "{err}"
    );
    assert!(
        fs::read(r.join("big.bin")).unwrap() == old,
        "the old file was changed"
    );
    let after = fs::metadata(r.join("big.bin")).unwrap();
    assert_eq!((after.ino(), after.mtime()), (before.ino(), before.mtime()));
    assert_eq!(fs::read(r.join("ok.txt")).unwrap(), b"fine\n");
    let names: Vec<_> = fs::read_dir(&r)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    fs::remove_file(r.join("big.bin")).unwrap();
    assert!(!env
        .run(&["restore", "latest", "--target", t.to_str().unwrap()])
        .status
        .success());
    assert!(
        !r.join("big.bin").exists(),
        "a damaged new file was left behind"
    );
}

/// A file in the target that is a hard link to one outside it, with the snapshot's content:
/// not "unchanged" (its metadata would be set through the link), but replaced by a new file.
#[test]
fn a_hard_link_out_of_the_target_is_replaced_even_when_its_content_matches() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f.txt"), b"shared content\n");
    fs::set_permissions(src.join("f.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    env.backup(&[&src]);
    let r = restore_latest(&env, "t", &src);
    let outside = env.path("outside.txt");
    fs::write(&outside, b"shared content\n").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o604)).unwrap();
    fs::remove_file(r.join("f.txt")).unwrap();
    fs::hard_link(&outside, r.join("f.txt")).unwrap();
    // Its ctime moves when the target's name for it goes; nothing else may change.
    let seen = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (
            m.mode(),
            m.uid(),
            m.mtime(),
            m.mtime_nsec(),
            fs::read(p).unwrap(),
        )
    };
    let before = seen(&outside);
    let (items, _) = run(&env, &src, &env.path("t"), &[]);
    assert_eq!(items["f.txt"].0, "updated");
    assert_eq!(seen(&outside), before, "the outside file changed");
    let m = fs::metadata(r.join("f.txt")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.nlink()), (0o640, 1));
}

/// `--delete` removes only where the restore selects: below an include, outside an exclude,
/// never what the snapshot has but the restore left out; without it extras stay.
#[test]
fn delete_stays_within_the_selection() {
    let env = Env::new();
    let src = env.path("src");
    for n in ["d1/a", "d1/b.keep", "d2/c", "top"] {
        write(&src.join(n), n.as_bytes());
    }
    env.backup(&[&src]);
    let r = restore_latest(&env, "t", &src);
    let t = env.path("t");
    for n in ["d1/x", "d1/y.keep", "d2/y", "z", "d1/sub/deep"] {
        write(&r.join(n), b"extra");
    }
    let exists = |n: &str| r.join(n).exists();
    let (items, _) = run(&env, &src, &t, &[]);
    assert!(items.values().all(|a| a.0 != "deleted"));
    assert!(["d1/x", "d2/y", "z"].iter().all(|n| exists(n)));

    let include = format!("{}/d1", src.display());
    let (items, sum) = run(&env, &src, &t, &["--include", &include, "--delete"]);
    let deleted: Vec<&str> = items
        .iter()
        .filter(|(_, a)| a.0 == "deleted")
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(deleted, ["d1/sub", "d1/sub/deep", "d1/x", "d1/y.keep"]);
    assert_eq!(sum["files_deleted"], 4);
    assert!(!exists("d1/x") && !exists("d1/sub") && exists("d2/y") && exists("z"));

    write(&r.join("d1/x"), b"extra");
    write(&r.join("d1/y.keep"), b"extra");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--exclude",
        "*.keep",
        "--delete",
    ]);
    assert!(!exists("d1/x") && !exists("d2/y") && !exists("z"));
    assert!(exists("d1/y.keep") && exists("d1/b.keep") && exists("top"));
}

/// restic's guard: `--delete` into `/` needs an include or exclude (run as a dry run, so a
/// failing guard would still change nothing).
#[test]
fn delete_into_the_root_needs_a_pattern() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"f");
    env.backup(&[&src]);
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        "/",
        "--delete",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--include or --exclude"),
        "{}",
        stderr(&o)
    );
}

/// `-vv` lists each path as restic does; `--dry-run --verify` is refused as usage.
#[test]
fn text_listing_and_flag_conflicts() {
    let env = Env::new();
    let src = source(&env);
    let t = env.path("t");
    let out = env.ok(&[
        "-vv",
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--dry-run",
    ]);
    let line = format!("restored  {}/same.txt with size 13 B", src.display());
    assert!(out.lines().any(|l| l == line), "{out}");
    assert!(
        out.lines()
            .any(|l| l == format!("restored  {}/dirfile", src.display())),
        "{out}"
    );
    assert!(out.contains("would restore"), "{out}");
    assert!(!t.exists(), "a dry run created the target");
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        "x",
        "--dry-run",
        "--verify",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        "x",
        "--overwrite",
        "sometimes",
    ]);
    assert_eq!(o.status.code(), Some(2));
}
