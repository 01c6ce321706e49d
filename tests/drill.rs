//! `cista drill`: passes on a healthy repository (with its receipt saying which checks ran),
//! fails naming the file when a pack is damaged, runs `--exec` on the restored tree, and
//! refuses a stale snapshot with `--newer-than`.

mod common;

use std::fs;

use common::*;

fn setup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), &bytes(3 << 20, 9));
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    (env, src)
}

#[test]
fn a_healthy_snapshot_drills_clean_and_the_receipt_lists_each_check() {
    let (env, src) = setup();
    let r = env.path("r.json");
    let target = env.path("scratch");
    let probe = format!("test -L \"$CISTA_DRILL_DIR{}/link\"", src.display());
    let out = env.ok(&[
        "--receipt",
        r.to_str().unwrap(),
        "drill",
        "--target",
        target.to_str().unwrap(),
        "--exec",
        &probe,
    ]);
    assert!(out.contains("drill passed"), "{out}");
    // The scratch tree is gone afterwards (kept only with --keep or on failure).
    assert!(!target.exists());
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&r).unwrap()).unwrap();
    assert_eq!(v["status"], "success");
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["tree_ids", "restore_verify", "metadata", "counts", "exec"]
    );
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["result"] == "passed"));
    let j = env.json(&["drill"]);
    assert_eq!(j["ok"], true);
    assert!(j["trees_verified"].as_u64().unwrap() >= 3, "{j}");
    assert_eq!(j["files"], j["files_restored"].as_u64().unwrap() + 1, "{j}"); // + the symlink
    assert_eq!(j["files_verified"], j["files_restored"]);
}

#[test]
fn a_failing_drill_command_fails_the_drill_and_keeps_the_tree() {
    let (env, _) = setup();
    let target = env.path("scratch");
    let o = env.run(&[
        "drill",
        "--target",
        target.to_str().unwrap(),
        "--exec",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("drill command failed"),
        "{}",
        stderr(&o)
    );
    assert!(target.exists(), "a failed drill leaves its evidence");
}

#[test]
fn a_damaged_pack_fails_the_drill_naming_the_file() {
    let (env, src) = setup();
    damage_middle_blob(&env, &format!("{}/big.bin", src.display()));
    let r = env.path("r.json");
    let o = env.run(&["--receipt", r.to_str().unwrap(), "drill"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("big.bin"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&r).unwrap()).unwrap();
    assert_eq!(v["status"], "failure");
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "restore_verify" && c["result"] == "failed"));
}

#[test]
fn newer_than_refuses_a_stale_snapshot() {
    let (env, _) = setup();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = env.run(&["drill", "--newer-than", "1s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("stale"), "{}", stderr(&o));
    env.ok(&["drill", "--newer-than", "1h"]);
}
