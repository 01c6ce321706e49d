//! What a backup takes in: files that change while read (exit 3), restic's target lists
//! (`--files-from`, `--files-from-verbatim`, `--files-from-raw`) and filters
//! (`--exclude-caches`, `--exclude-if-present`, `--exclude-larger-than`, `--iexclude`,
//! `--iexclude-file`), and `--skip-if-unchanged`; each checked against what the snapshot holds.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// The paths of every entry of the latest snapshot (`ls --json`).
fn stored(env: &Env) -> Vec<String> {
    env.ok(&["--json", "ls", "latest"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["struct_type"] == "node")
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect()
}

fn has(stored: &[String], p: &Path) -> bool {
    stored.iter().any(|s| Path::new(s) == p)
}

/// The JSON lines a run printed on stderr.
fn stderr_json(o: &std::process::Output) -> Vec<serde_json::Value> {
    stderr(o)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The summary line of a `--json` run.
fn summary(o: &std::process::Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

#[test]
fn a_file_appended_to_while_read_is_named_and_exits_3() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let log = src.join("app.log");
    write(&log, &bytes(32 << 20, 5));
    let receipt = env.path("receipt.json");
    let child = env
        .cmd(&[
            "--json",
            "--receipt",
            receipt.to_str().unwrap(),
            "backup",
            src.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The writer appends a line every millisecond until the backup has ended: slower than
    // the backup reads, so each read reaches the end, and often enough that both reads of
    // the file (each of 32 MiB) see it grow.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (done, log) = (done.clone(), log.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            let mut lines = 0u64;
            while !done.load(Ordering::SeqCst) {
                writeln!(f, "line {lines}").unwrap();
                lines += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            lines
        })
    };
    let o = child.wait_with_output().unwrap();
    done.store(true, Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    let warned: Vec<_> = stderr_json(&o)
        .into_iter()
        .filter(|v| v["error"]["kind"] == "source_changed")
        .collect();
    assert_eq!(warned.len(), 1, "{}", stderr(&o));
    assert_eq!(warned[0]["item"], log.to_str().unwrap());
    assert_eq!(warned[0]["level"], "warning");
    let s = summary(&o);
    assert!(s["snapshot_id"].is_string(), "the snapshot is saved: {s}");
    assert_eq!(
        (&s["errors"], &s["files_changed_while_read"]),
        (&1.into(), &1.into())
    );
    let r: serde_json::Value = serde_json::from_slice(&fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(r["status"], "partial");
    assert_eq!(r["counts"]["files_changed_while_read"], 1);
    assert_eq!(r["counts"]["unreadable_files"], 0);
    let ls = stored(&env);
    assert!(has(&ls, &log) && has(&ls, &src.join("a.txt")), "{ls:?}");
    // Stored as read the second time: more than the file held at the start.
    let dumped = env.run(&["dump", "latest", log.to_str().unwrap()]);
    assert!(dumped.status.success(), "{}", stderr(&dumped));
    assert!(dumped.stdout.len() > 32 << 20, "{}", dumped.stdout.len());
}

#[test]
fn files_from_reads_lines_expands_globs_and_skips_what_is_missing() {
    let env = Env::new();
    let src = env.path("src");
    for f in ["a.txt", "b.txt", "c.log", "d/e.txt", "spaced name"] {
        write(&src.join(f), f.as_bytes());
    }
    let list = env.path("list");
    let s = src.display();
    fs::write(
        &list,
        format!("# the texts\n{s}/*.txt  \n\n   {s}/spaced name\n{s}/missing*\n{s}/gone\n"),
    )
    .unwrap();
    let o = env.run(&["--json", "backup", "--files-from", list.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ls = stored(&env);
    for f in ["a.txt", "b.txt", "spaced name"] {
        assert!(has(&ls, &src.join(f)), "{f} in {ls:?}");
    }
    for f in ["c.log", "d/e.txt"] {
        assert!(!has(&ls, &src.join(f)), "{f} not in {ls:?}");
    }
    let skipped: Vec<_> = stderr_json(&o)
        .into_iter()
        .filter(|v| v["error"]["kind"] == "source_skipped")
        .map(|v| v["item"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped, [format!("{s}/missing*"), format!("{s}/gone")]);
    // Beside paths given on the command line, and with nothing that exists: a failure.
    env.ok(&[
        "backup",
        "--files-from",
        list.to_str().unwrap(),
        &format!("{s}/d"),
    ]);
    assert!(has(&stored(&env), &src.join("d/e.txt")));
    fs::write(&list, format!("{s}/gone\n")).unwrap();
    let o = env.run(&["backup", "--files-from", list.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("none of the listed files exists"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn files_from_verbatim_and_raw_take_names_as_they_are() {
    let env = Env::new();
    let src = env.path("src");
    let odd = [" lead", "#hash", "star*", "new\nline"];
    for f in odd {
        write(&src.join(f), b"x");
    }
    write(&src.join("stare"), b"not listed");
    let s = src.display();
    let verbatim = env.path("verbatim");
    fs::write(&verbatim, format!("{s}/ lead\n\n{s}/#hash\r\n{s}/star*\n")).unwrap();
    let raw = env.path("raw");
    fs::write(&raw, format!("{s}/new\nline\0{s}/star*\0")).unwrap();
    env.ok(&[
        "backup",
        "--files-from-verbatim",
        verbatim.to_str().unwrap(),
        "--files-from-raw",
        raw.to_str().unwrap(),
    ]);
    let ls = stored(&env);
    for f in odd {
        assert!(has(&ls, &src.join(f)), "{f:?} in {ls:?}");
    }
    assert!(!has(&ls, &src.join("stare")), "no glob expansion: {ls:?}");
    // A raw list must end with a NUL byte, and a stream takes no list.
    fs::write(&raw, format!("{s}/stare")).unwrap();
    let o = env.run(&["backup", "--files-from-raw", raw.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("trailing zero byte missing"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&[
        "backup",
        "--stdin",
        "--files-from",
        verbatim.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn exclude_caches_keeps_a_tagged_directory_and_its_tag_only() {
    let env = Env::new();
    let src = env.path("src");
    let sig = b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n";
    write(&src.join("cache/CACHEDIR.TAG"), sig);
    write(&src.join("cache/blob"), b"cached");
    write(&src.join("cache/sub/deep"), b"cached");
    write(&src.join("fake/CACHEDIR.TAG"), b"Signature: something else");
    write(&src.join("fake/data"), b"kept");
    write(&src.join("plain"), b"kept");
    let o = env.run(&[
        "--json",
        "backup",
        "--exclude-caches",
        src.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ls = stored(&env);
    for f in [
        "cache",
        "cache/CACHEDIR.TAG",
        "fake/CACHEDIR.TAG",
        "fake/data",
        "plain",
    ] {
        assert!(has(&ls, &src.join(f)), "{f} in {ls:?}");
    }
    for f in ["cache/blob", "cache/sub", "cache/sub/deep"] {
        assert!(!has(&ls, &src.join(f)), "{f} not in {ls:?}");
    }
    // The tag without the signature is named, and excludes nothing.
    let invalid: Vec<_> = stderr_json(&o)
        .into_iter()
        .filter(|v| v["error"]["kind"] == "tag_file_invalid")
        .collect();
    assert_eq!(invalid.len(), 1, "{}", stderr(&o));
    assert_eq!(
        invalid[0]["item"],
        src.join("fake/CACHEDIR.TAG").to_str().unwrap()
    );
}

#[test]
fn exclude_if_present_with_and_without_a_header() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a/.nobackup"), b"");
    write(&src.join("a/file"), b"x");
    write(&src.join("b/.skip"), b"SKIP ME please");
    write(&src.join("b/file"), b"x");
    write(&src.join("c/.skip"), b"keep me");
    write(&src.join("c/file"), b"x");
    // A target whose own directory is tagged is left out too.
    let tagged = env.path("tagged");
    write(&tagged.join(".nobackup"), b"");
    write(&tagged.join("target/file"), b"x");
    env.ok(&[
        "backup",
        "--exclude-if-present",
        ".nobackup",
        "--exclude-if-present",
        ".skip:SKIP ME",
        src.to_str().unwrap(),
        tagged.join("target").to_str().unwrap(),
    ]);
    let ls = stored(&env);
    for f in ["a/.nobackup", "b/.skip", "c/.skip", "c/file"] {
        assert!(has(&ls, &src.join(f)), "{f} in {ls:?}");
    }
    for f in ["a/file", "b/file"] {
        assert!(!has(&ls, &src.join(f)), "{f} not in {ls:?}");
    }
    assert!(
        has(&ls, &tagged) && !has(&ls, &tagged.join("target")),
        "{ls:?}"
    );
    let o = env.run(&[
        "backup",
        "--exclude-if-present",
        ":HEADER",
        src.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "a spec without a file name");
}

#[test]
fn exclude_larger_than_leaves_out_big_files_only() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("small"), &[1; 1024]);
    write(&src.join("big"), &[2; 1025]);
    write(&src.join("dir/big"), &[3; 5000]);
    write(&src.join("dir/small"), b"x");
    std::os::unix::fs::symlink("big", src.join("link")).unwrap();
    // A target too large is left out as well.
    let lone = env.path("lone");
    write(&lone, &[4; 2048]);
    env.ok(&[
        "backup",
        "--exclude-larger-than",
        "1K",
        src.to_str().unwrap(),
        lone.to_str().unwrap(),
    ]);
    let ls = stored(&env);
    for f in ["small", "dir", "dir/small", "link"] {
        assert!(has(&ls, &src.join(f)), "{f} in {ls:?}");
    }
    for f in ["big", "dir/big"] {
        assert!(!has(&ls, &src.join(f)), "{f} not in {ls:?}");
    }
    assert!(!has(&ls, &lone), "{ls:?}");
    let o = env.run(&[
        "backup",
        "--exclude-larger-than",
        "lots",
        src.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a malformed size is a usage error"
    );
}

#[test]
fn iexclude_and_iexclude_file_ignore_case() {
    let env = Env::new();
    let src = env.path("src");
    for f in [
        "a.jpg",
        "B.JPG",
        "c.Jpg",
        "d.png",
        "Sub/Tmp/x",
        "sub2/tmp/y",
        "keep.txt",
    ] {
        write(&src.join(f), b"x");
    }
    let ex = env.path("iexcludes");
    fs::write(
        &ex,
        "# paths below a directory called tmp, any case\nsub*/TMP\n",
    )
    .unwrap();
    env.ok(&[
        "backup",
        "--iexclude",
        "*.JPG",
        "--exclude",
        "*.PNG",
        "--iexclude-file",
        ex.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    let ls = stored(&env);
    for f in ["d.png", "keep.txt", "Sub", "sub2"] {
        assert!(has(&ls, &src.join(f)), "{f} in {ls:?}");
    }
    for f in ["a.jpg", "B.JPG", "c.Jpg", "Sub/Tmp", "sub2/tmp"] {
        assert!(!has(&ls, &src.join(f)), "{f} not in {ls:?}");
    }
}

/// The directories above the source are in the snapshot's tree too, so they must not change
/// between the two backups: the source lives below the build's own temporary directory
/// rather than /tmp, whose mtime other tests move.
#[test]
fn skip_if_unchanged_saves_no_snapshot_when_nothing_changed() {
    let env = Env::new();
    let dir = tempfile::Builder::new()
        .prefix("skip-if-unchanged")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let src = dir.path().join("src");
    small_tree(&src);
    let s = src.to_str().unwrap();
    let first = env.json(&["backup", "--skip-if-unchanged", s]);
    assert!(first["snapshot_id"].is_string(), "no parent: saved");
    assert_eq!(first["skipped"], false);
    let second = env.json(&["backup", "--skip-if-unchanged", s]);
    assert_eq!(second["snapshot_id"], serde_json::Value::Null, "{second}");
    assert_eq!(second["skipped"], true);
    assert_eq!(env.count("snapshots"), 1);
    let text = env.ok(&["backup", "--skip-if-unchanged", s]);
    assert!(text.contains("skipped creating snapshot"), "{text}");
    assert_eq!(env.count("snapshots"), 1);
    // Without the flag, or after a change, a snapshot is saved.
    env.ok(&["backup", s]);
    assert_eq!(env.count("snapshots"), 2);
    write(&src.join("new"), b"new");
    let third = env.json(&["backup", "--skip-if-unchanged", s]);
    assert!(third["snapshot_id"].is_string(), "{third}");
    assert_eq!(env.count("snapshots"), 3);
}
