//! `--receipt` and `--metrics-file`: every receipt validates against docs/receipt.schema.json,
//! says what ran and how it ended (success and failure), names the snapshot and its root
//! tree, digests stored streams, and never holds a secret; the metrics file is Prometheus
//! text format and keeps its counters across runs.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::evidence::*;
use common::*;
use sha2::Digest;

#[test]
fn backup_receipts_name_the_snapshot_and_tree_and_metrics_count_runs() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let (r, m) = (env.path("r.json"), env.path("cista.prom"));
    let (rs, ms) = (r.to_str().unwrap(), m.to_str().unwrap());
    for _ in 0..2 {
        env.ok(&[
            "--receipt",
            rs,
            "--metrics-file",
            ms,
            "backup",
            src.to_str().unwrap(),
        ]);
    }
    let v = receipt(&r);
    assert_eq!(v["command"], "backup");
    assert_eq!(v["status"], "success");
    assert_eq!(v["exit_code"], 0);
    let snaps = env.json(&["snapshots"]);
    let latest = snaps.as_array().unwrap().last().unwrap();
    assert_eq!(v["snapshot_id"], latest["id"]);
    assert_eq!(v["tree_id"], latest["tree"]);
    assert_eq!(v["parent_id"], snaps[0]["id"]);
    let config = env.json(&["config"]);
    assert_eq!(v["repository"]["id"], config["id"]);
    assert!(v["counts"]["total_files_processed"].as_u64().unwrap() > 0);

    // A backup of a path that does not exist fails, and its receipt says so.
    let o = env.run(&[
        "--receipt",
        rs,
        "--metrics-file",
        ms,
        "backup",
        "/nonexistent/x",
    ]);
    assert!(!o.status.success());
    let v = receipt(&r);
    assert_eq!(v["status"], "failure");
    assert_eq!(v["exit_code"], 1);
    assert!(
        v["error"].as_str().unwrap().contains("/nonexistent/x"),
        "{v}"
    );
    assert!(v["snapshot_id"].is_null());

    let s = samples(&m);
    assert_eq!(
        sample(&s, "cista_backup_success_total", "backup"),
        Some(2.0)
    );
    assert_eq!(
        sample(&s, "cista_backup_failure_total", "backup"),
        Some(1.0)
    );
    assert_eq!(sample(&s, "cista_last_exit_code", "backup"), Some(1.0));
    assert!(sample(&s, "cista_last_success_timestamp_seconds", "backup").unwrap() > 1.7e9);
    assert!(sample(&s, "cista_bytes_processed", "backup").unwrap() > 0.0);

    // check --read-data adds its verification, and keeps the backup's samples.
    env.ok(&[
        "--receipt",
        rs,
        "--metrics-file",
        ms,
        "check",
        "--read-data",
    ]);
    let v = receipt(&r);
    assert_eq!(v["checks"][0]["name"], "read_data");
    assert_eq!(v["checks"][0]["result"], "passed");
    let s = samples(&m);
    assert_eq!(sample(&s, "cista_last_check_success", "check"), Some(1.0));
    assert_eq!(
        sample(&s, "cista_backup_success_total", "backup"),
        Some(2.0)
    );

    // A check that finds damage fails, and says which check failed.
    let pack = walk_files(&env.repo().join("data")).pop().unwrap();
    std::fs::remove_file(pack).unwrap();
    let o = env.run(&["--receipt", rs, "--metrics-file", ms, "check"]);
    assert!(!o.status.success());
    let v = receipt(&r);
    assert_eq!(v["status"], "failure");
    assert_eq!(v["checks"][0]["result"], "failed");
    assert_eq!(
        sample(&samples(&m), "cista_last_check_success", "check"),
        Some(0.0)
    );
}

#[test]
fn a_stdin_backup_receipt_digests_the_stream_and_holds_no_secret() {
    let env = Env::new();
    let r = env.path("r.json");
    let data = text(300_000, 5);
    let mut c = env.cmd(&[
        "--password-command",
        &format!("echo {PASSWORD}"),
        "--receipt",
        r.to_str().unwrap(),
        "backup",
        "--stdin",
        "--stdin-filename",
        "db.sql",
    ]);
    c.env_remove("CISTA_PASSWORD").stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    assert!(child.wait().unwrap().success());
    let v = receipt(&r);
    let a = &v["artifacts"][0];
    assert_eq!(a["name"], "db.sql");
    assert_eq!(a["bytes"], data.len() as u64);
    assert_eq!(a["blake3"], blake3::hash(&data).to_hex().to_string());
    let sha: String = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(a["sha256"], sha);
    let text = std::fs::read_to_string(&r).unwrap();
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("<redacted>"), "{text}");

    // restore --verify records its check.
    env.ok(&[
        "--receipt",
        r.to_str().unwrap(),
        "restore",
        "latest",
        "--verify",
        "--target",
        env.path("t").to_str().unwrap(),
    ]);
    let v = receipt(&r);
    assert_eq!(v["checks"][0]["name"], "restore_verify");
    assert_eq!(v["checks"][0]["result"], "passed");
    assert_eq!(v["counts"]["bytes_restored"], data.len() as u64);
}

#[test]
fn a_receipt_that_cannot_be_written_fails_the_run() {
    let env = Env::new();
    let o = env.run(&["--receipt", "/nonexistent-dir/r.json", "snapshots"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("receipt could not be written"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn named_command_outputs_are_artifacts_under_their_names() {
    let env = Env::new();
    let r = env.path("r.json");
    env.ok(&[
        "--receipt",
        r.to_str().unwrap(),
        "backup",
        "--command",
        "db/a.sql=printf hello",
        "--command",
        "db/b.sql=printf world!",
    ]);
    let v = receipt(&r);
    let a = v["artifacts"].as_array().unwrap();
    let names: Vec<&str> = a.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["db/a.sql", "db/b.sql"]);
    assert_eq!(a[0]["bytes"], 5);
    let sha: String = sha2::Sha256::digest(b"hello")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(a[0]["sha256"], sha);
    assert_eq!(a[1]["blake3"], blake3::hash(b"world!").to_hex().to_string());
}
