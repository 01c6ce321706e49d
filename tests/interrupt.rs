//! SIGINT and SIGTERM during backup, copy and prune: the process removes its locks, exits
//! with 130 or 143 and a message, and leaves nothing `check` calls damage (issue 10, item 12).

mod common;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `c` with its stderr in a file (a source command's orphan keeps a pipe open).
fn spawn(env: &Env, mut c: Command) -> Child {
    let err = fs::File::create(env.path("stderr")).unwrap();
    c.stdout(Stdio::null()).stderr(err).spawn().unwrap()
}

/// Sends `sig`; returns the exit code and stderr once the process is gone.
fn interrupt(env: &Env, mut child: Child, sig: Signal) -> (Option<i32>, String) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("cista did not exit within 30 s of {sig}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        fs::read_to_string(env.path("stderr")).unwrap(),
    )
}

/// `check --read-data` passes: notes (unindexed packs) are fine, errors are not.
fn assert_clean(env: &Env) {
    let r = env.json(&["check", "--read-data"]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r}");
}

#[test]
fn sigint_during_backup_removes_the_lock() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    // Enough data for packs to be stored, then a source that does not end.
    let c = env.cmd(&[
        "backup",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        // Chunks end by 8 MiB at the latest, so packs are stored before the source stalls.
        "head -c 24000000 /dev/urandom; exec sleep 20",
    ]);
    let child = spawn(&env, c);
    wait_for("the lock and a pack", || {
        env.count("locks") == 1 && env.count("data") >= 1
    });
    let (code, err) = interrupt(&env, child, Signal::SIGINT);
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert_eq!(env.count("locks"), 0, "the lock was left behind: {err}");
    assert_eq!(env.count("snapshots"), 0);
    assert_clean(&env);
    // The next backup runs at once (no lock to wait out) and reuses nothing it cannot trust.
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    assert_clean(&env);
}

#[test]
fn sigterm_during_copy_removes_both_locks() {
    let src_env = Env::new();
    let src = src_env.path("src");
    write(&src.join("data.bin"), &bytes(2 << 20, 3));
    src_env.backup(&[&src]);
    let dst = Env::new();
    // 64 KiB/s: writing the copied data takes half a minute.
    let mut c = dst.cmd(&["--limit-upload", "64", "copy"]);
    c.env("CISTA_FROM_REPOSITORY", src_env.location())
        .env("CISTA_FROM_PASSWORD", PASSWORD);
    let child = spawn(&dst, c);
    wait_for("both locks", || {
        src_env.count("locks") == 1 && dst.count("locks") == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    let (code, err) = interrupt(&dst, child, Signal::SIGTERM);
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert_eq!(src_env.count("locks"), 0, "source lock left: {err}");
    assert_eq!(dst.count("locks"), 0, "destination lock left: {err}");
    assert_eq!(dst.count("snapshots"), 0);
    assert_clean(&dst);
    assert_clean(&src_env);
}

#[test]
fn sigint_during_prune_removes_the_exclusive_lock() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    for i in 0..16u64 {
        write(&src.join(format!("f{i}")), &bytes(300_000, i));
    }
    env.backup(&[&src]);
    // Every other file replaced: every old pack is half used, so prune repacks them all.
    for i in (0..16u64).step_by(2) {
        write(&src.join(format!("f{i}")), &bytes(300_000, 100 + i));
    }
    env.backup(&[&src]);
    env.ok(&["forget", "--keep-last", "1"]);
    let c = env.cmd(&["--limit-upload", "64", "prune", "--max-unused", "0"]);
    let child = spawn(&env, c);
    wait_for("the exclusive lock", || env.count("locks") == 1);
    std::thread::sleep(Duration::from_millis(1500));
    let (code, err) = interrupt(&env, child, Signal::SIGINT);
    assert_eq!(code, Some(130), "{err}");
    assert_eq!(env.count("locks"), 0, "the lock was left behind: {err}");
    assert_clean(&env);
    restore_latest(&env, "r", &src);
}
