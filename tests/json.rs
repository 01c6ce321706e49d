//! The `--json` shapes docs/json.md documents: every stdout document is one newline-ended
//! line of JSON; restic's fields where restic has the command; problems and the error that
//! ends a run are JSON lines on stderr.

mod common;

use common::*;

/// Runs with `--json`; every stdout line must parse; returns them and the exit status.
fn lines(env: &Env, args: &[&str]) -> (Vec<serde_json::Value>, std::process::Output) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = env.run(&a);
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(
        out.is_empty() || out.ends_with('\n'),
        "no final newline: {out:?}"
    );
    let v = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (v, o)
}

fn stderr_json(o: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stderr {l:?}: {e}")))
        .collect()
}

#[test]
fn backup_restore_forget_unlock_and_config_print_restic_shapes() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    for _ in 0..3 {
        let (v, o) = lines(&env, &["backup", src.to_str().unwrap()]);
        assert!(o.status.success());
        let s = v.last().unwrap();
        assert_eq!(s["message_type"], "summary");
        for k in [
            "backup_start",
            "backup_end",
            "snapshot_id",
            "total_files_processed",
        ] {
            assert!(!s[k].is_null(), "{k} missing: {s}");
        }
    }
    let t = env.path("t");
    let (v, _) = lines(
        &env,
        &["restore", "latest", "--target", t.to_str().unwrap()],
    );
    let s = &v[0];
    assert_eq!(s["total_files"], s["files_restored"]);
    assert_eq!(s["files_skipped"], 0);
    assert_eq!(s["total_bytes"], s["bytes_restored"]);
    assert!(s["seconds_elapsed"].as_f64().unwrap() >= 0.0);

    let (v, _) = lines(&env, &["forget", "--keep-last", "1", "--dry-run"]);
    let g = &v[0][0];
    assert_eq!(g["keep"][0]["id"].as_str().unwrap().len(), 64, "{g}");
    assert!(g["keep"][0]["tree"].is_string(), "{g}");
    assert_eq!(g["remove"].as_array().unwrap().len(), 2);
    assert_eq!(g["reasons"][0]["snapshot"]["id"], g["keep"][0]["id"]);
    assert_eq!(g["reasons"][0]["matches"][0], "last snapshot");
    assert!(g["host"].is_string() && g["paths"].is_array(), "{g}");

    let (v, _) = lines(&env, &["unlock"]);
    assert_eq!(v[0]["removed_locks"], 0);
    let (v, _) = lines(&env, &["config"]);
    assert_eq!(v[0]["append_only"], false);
}

#[test]
fn errors_are_json_lines_on_stderr() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let pack = walk_files(&env.repo().join("data")).pop().unwrap();
    std::fs::remove_file(&pack).unwrap();
    let (v, o) = lines(&env, &["check"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v[0]["ok"], false);
    let errs = stderr_json(&o);
    let item = errs
        .iter()
        .find(|e| e["message_type"] == "error")
        .expect("an error line");
    assert_eq!(item["during"], "check");
    assert_eq!(item["error"]["kind"], "missing");
    assert_eq!(item["error"]["object"]["kind"], "pack");
    let exit = errs.last().unwrap();
    assert_eq!(exit["message_type"], "exit_error");
    assert_eq!(exit["code"], 1);
    assert!(
        exit["message"].as_str().unwrap().contains("errors"),
        "{exit}"
    );

    // The exit code of a missing repository, in the exit_error too.
    let none = Env::empty();
    let (_, o) = lines(&none, &["snapshots"]);
    assert_eq!(o.status.code(), Some(10));
    assert_eq!(stderr_json(&o).last().unwrap()["code"], 10);
}

#[test]
fn find_diff_and_manifest_print_restic_shapes() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    write(&src.join("a.txt"), b"changed");
    env.backup(&[&src]);
    let has = |v: &serde_json::Value, keys: &[&str]| {
        for k in keys {
            assert!(v.get(k).is_some(), "{k} missing: {v}");
        }
    };

    let (v, _) = lines(&env, &["find", "*.txt"]);
    assert_eq!(v.len(), 1, "one document");
    let g = &v[0][0];
    has(g, &["matches", "hits", "snapshot"]);
    let m = &g["matches"][0];
    has(
        m,
        &[
            "path",
            "permissions",
            "type",
            "mode",
            "mtime",
            "uid",
            "gid",
            "user",
            "size",
        ],
    );

    let (v, _) = lines(&env, &["diff", "latest", "latest"]);
    let s = v.last().unwrap();
    assert_eq!(s["message_type"], "statistics");
    has(
        s,
        &[
            "source_snapshot",
            "target_snapshot",
            "changed_files",
            "added",
            "removed",
        ],
    );
    has(
        &s["added"],
        &[
            "files",
            "dirs",
            "others",
            "data_blobs",
            "tree_blobs",
            "bytes",
        ],
    );

    let (v, _) = lines(&env, &["manifest", "latest"]);
    has(&v[0], &["path", "digest", "size"]);
    assert_eq!(v.last().unwrap()["message_type"], "summary");
}
