//! Progress on a real pseudo-terminal (Python's `pty`, as a terminal user sees it): backup and
//! restore draw a bar with files and bytes and clear it before the summary; `-q` draws
//! nothing; `--json` prints whole JSON lines only, restic's `status` messages among them.

mod common;

use std::process::Command;

use common::*;

/// Runs cista on a pseudo-terminal; returns everything the terminal received.
fn on_pty(env: &Env, args: &[&str]) -> String {
    let mut c = Command::new("python3");
    c.arg("-c")
        .arg("import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))")
        .arg(env!("CARGO_BIN_EXE_cista"))
        .arg("-r")
        .arg(env.location())
        .args(args)
        .env("CISTA_PASSWORD", PASSWORD)
        // copy's source: without it copy would prompt on the terminal and wait forever.
        .env("CISTA_FROM_PASSWORD", PASSWORD)
        .env("CISTA_CACHE_DIR", env.path("cache"))
        .env("TERM", "xterm");
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A source large enough that a backup runs for several progress ticks.
fn big_source(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    for i in 0..12 {
        write(&src.join(format!("f{i:02}")), &bytes(16 << 20, i));
    }
    src
}

#[test]
fn a_terminal_sees_a_bar_that_is_cleared_before_the_summary() {
    let env = Env::new();
    let src = big_source(&env);
    let out = on_pty(&env, &["backup", src.to_str().unwrap()]);
    assert!(out.contains("backup") && out.contains("/s)"), "{out:?}");
    assert!(
        out.contains('\r') || out.contains("\x1b["),
        "no redraw: {out:?}"
    );
    // The summary follows a cleared line, not a half-drawn bar.
    let summary = out.find("Files:").expect("summary");
    let after = &out[summary..];
    assert!(
        !after.contains("/s)"),
        "bar drawn after the summary: {after:?}"
    );

    let t = env.path("t");
    let out = on_pty(
        &env,
        &["restore", "latest", "--target", t.to_str().unwrap()],
    );
    assert!(out.contains("restore") && out.contains('%'), "{out:?}");

    // -q: nothing drawn at all.
    let q = on_pty(&env, &["-q", "backup", "--force", src.to_str().unwrap()]);
    assert!(!q.contains("/s)") && !q.contains("\x1b["), "{q:?}");
}

#[test]
fn json_on_a_terminal_is_whole_lines_with_status_messages() {
    let env = Env::new();
    let src = big_source(&env);
    let out = on_pty(
        &env,
        &["--json", "backup", "--force", src.to_str().unwrap()],
    );
    let mut kinds = Vec::new();
    for line in out
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("partial line {line:?}: {e}"));
        kinds.push(v["message_type"].as_str().unwrap_or_default().to_string());
        if v["message_type"] == "status" {
            assert!(
                v["bytes_done"].as_u64().is_some() && v["seconds_elapsed"].is_u64(),
                "{v}"
            );
        }
    }
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("summary"),
        "{kinds:?}"
    );
}

/// Asserts the pty output shows a drawn bar for `what`, counting `unit`.
fn drew(out: &str, what: &str, unit: &str) {
    assert!(
        out.contains(&format!("{what} [")) || out.contains(&format!(" {what} ")),
        "no {what} bar: {out:?}"
    );
    assert!(out.contains(unit) && out.contains("/s)"), "{out:?}");
}

#[test]
fn check_prune_copy_and_drill_draw_on_a_terminal_too() {
    let env = Env::new();
    let src = big_source(&env);
    env.ok(&["-q", "backup", src.to_str().unwrap()]);
    let out = on_pty(&env, &["check", "--read-data"]);
    drew(&out, "check", "packs");
    assert!(out.contains("no errors were found"), "{out:?}");

    let t = env.path("drill");
    let out = on_pty(&env, &["drill", "--target", t.to_str().unwrap()]);
    drew(&out, "drill", "files");
    assert!(out.contains("drill passed"), "{out:?}");

    let other = Env::new();
    let from = env.location();
    let out = on_pty(&other, &["copy", "--from-repo", &from, "latest"]);
    drew(&out, "copy", "files");
    // The per-snapshot line is printed whole, with the bar out of the way.
    assert!(out.contains("copied as "), "{out:?}");

    // Half the files go; forgetting the snapshot that had them leaves packs half used.
    let first = env.json(&["snapshots"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..6 {
        std::fs::remove_file(src.join(format!("f{i:02}"))).unwrap();
    }
    env.ok(&["-q", "backup", src.to_str().unwrap()]);
    env.ok(&["-q", "forget", &first]);
    let out = on_pty(&env, &["prune", "--max-unused", "0"]);
    drew(&out, "prune", "packs");
    let after = &out[out.find("snapshots:").expect("summary")..];
    assert!(
        !after.contains("/s)"),
        "bar drawn after the summary: {after:?}"
    );
}
