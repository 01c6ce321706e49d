//! What a backup takes in: files that change while read (exit 3) and `--skip-if-unchanged`,
//! checked against what the snapshot holds.

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
