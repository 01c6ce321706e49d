//! Verification records (format §19): check and drill leave one, passed or failed;
//! `snapshots --json` shows each snapshot's newest; the metrics say when the newest snapshot
//! was last verified; check reports a junk record by name; prune drops the records that say
//! nothing any more; `--no-record` and `--no-lock` store none.

mod common;

use std::sync::Arc;

use cista::backend::{Backend, FileType, LocalBackend};
use cista::commands::{self, LockOptions};
use cista::{CheckOptions, Recorded, Repository};
use common::*;

fn setup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), &bytes(2 << 20, 3));
    env.ok(&["backup", src.to_str().unwrap()]);
    (env, src)
}

/// The stored records' names.
fn records(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = walk_files(&env.repo().join("verifications"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `snapshots --json`, by id.
fn verified(env: &Env) -> Vec<(String, serde_json::Value)> {
    let j = env.json(&["snapshots"]);
    j.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["verified"].clone()))
        .collect()
}

fn unix(t: &str) -> f64 {
    t.parse::<jiff::Timestamp>().unwrap().as_second() as f64
}

#[test]
fn a_drill_marks_its_snapshot_verified_and_the_metrics_say_when() {
    let (env, src) = setup();
    assert_eq!(verified(&env)[0].1, serde_json::Value::Null);
    let m = env.path("cista.prom");
    let r = env.path("r.json");
    let before = jiff::Timestamp::now().as_second() as f64;
    env.ok(&[
        "--metrics-file",
        m.to_str().unwrap(),
        "--receipt",
        r.to_str().unwrap(),
        "drill",
    ]);
    let after = jiff::Timestamp::now().as_second() as f64 + 1.0;
    let stored = records(&env);
    assert_eq!(stored.len(), 1, "one record per drill");
    let receipt = evidence::receipt(&r);
    assert_eq!(receipt["verification"]["record"], stored[0].as_str());
    let (id, v) = verified(&env).pop().unwrap();
    assert_eq!(v["method"], "drill");
    assert_eq!(v["result"], "passed");
    assert_eq!(v["id"], stored[0].as_str());
    let rec = env.json(&["cat", "verification", &stored[0][..8]]);
    assert_eq!(rec["snapshots"], serde_json::json!([id]));
    let snap = env.json(&["cat", "snapshot", &id]);
    assert_eq!(
        rec["tree"], snap["tree"],
        "the recomputed root is the snapshot's"
    );
    assert!(rec["bytes_read"].as_u64().unwrap() >= 2 << 20, "{rec}");

    let s = evidence::samples(&m);
    let latest = evidence::sample(&s, "cista_latest_snapshot_timestamp_seconds", "drill").unwrap();
    let checked = evidence::sample(
        &s,
        "cista_latest_snapshot_verified_timestamp_seconds",
        "drill",
    )
    .unwrap();
    assert!(
        (latest - unix(snap["time"].as_str().unwrap())).abs() < 1.0,
        "{latest}"
    );
    assert!(checked >= before - 1.0 && checked <= after, "{checked}");

    // A newer snapshot is not verified yet: the gauge of a check that does not record (it
    // is asked not to) stays at the drill's time while the newest snapshot moves on.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(&src.join("new.txt"), b"new");
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&[
        "--metrics-file",
        m.to_str().unwrap(),
        "check",
        "--no-record",
    ]);
    let s = evidence::samples(&m);
    let newest = evidence::sample(&s, "cista_latest_snapshot_timestamp_seconds", "check").unwrap();
    assert!(newest > latest, "{newest} vs {latest}");
    assert_eq!(
        evidence::sample(
            &s,
            "cista_latest_snapshot_verified_timestamp_seconds",
            "check"
        ),
        Some(0.0),
        "the newest snapshot was never verified"
    );
    assert_eq!(records(&env).len(), 1, "--no-record stores none");

    // Tagging rewrites the snapshot; the drill of the one it replaced still counts.
    env.ok(&["tag", "--add", "kept", &id]);
    let tagged = env.json(&["snapshots", "--tag", "kept"]);
    assert_eq!(tagged[0]["verified"]["id"], stored[0].as_str());
}

#[test]
fn check_read_data_marks_every_snapshot_and_a_subset_records_its_share() {
    let (env, src) = setup();
    write(&src.join("more.bin"), &bytes(1 << 20, 4));
    env.ok(&["backup", src.to_str().unwrap()]);
    let j = env.json(&["check", "--read-data"]);
    let id = j["verification_record"].as_str().unwrap().to_string();
    let all = verified(&env);
    assert_eq!(all.len(), 2);
    for (_, v) in &all {
        assert_eq!(v["method"], "check_read_data");
        assert_eq!(v["result"], "passed");
        assert_eq!(v["id"], id.as_str());
    }
    let rec = env.json(&["cat", "verification", &id]);
    assert_eq!(rec["snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(rec["bytes_read"], j["bytes_read"]);
    assert!(rec["bytes_read"].as_u64().unwrap() > 0);

    let j = env.json(&["check", "--read-data-subset", "1/1"]);
    let rec = env.json(&[
        "cat",
        "verification",
        j["verification_record"].as_str().unwrap(),
    ]);
    assert_eq!(rec["method"], "check_read_data_subset");
    assert_eq!(rec["subset"], "1/1");
    assert_eq!(rec["fraction"], 1.0, "group 1 of 1 reads every pack");
    assert_eq!(verified(&env)[0].1["method"], "check_read_data_subset");

    // Unlocked (read-only storage) nothing is stored.
    let n = records(&env).len();
    env.ok(&["--no-lock", "check"]);
    assert_eq!(records(&env).len(), n);
}

#[test]
fn a_failed_drill_is_recorded_and_the_snapshot_shows_it() {
    let (env, src) = setup();
    env.ok(&["check"]);
    damage_middle_blob(&env, &format!("{}/big.bin", src.display()));
    let m = env.path("cista.prom");
    let o = env.run(&["--metrics-file", m.to_str().unwrap(), "drill"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let (_, v) = verified(&env).pop().unwrap();
    assert_eq!(v["method"], "drill");
    assert_eq!(v["result"], "failed");
    let rec = env.json(&["cat", "verification", v["id"].as_str().unwrap()]);
    assert!(
        rec["detail"].as_str().unwrap().contains("big.bin"),
        "the detail names the damage: {rec}"
    );
    // The newest snapshot's last *passed* verification is still the check's.
    let s = evidence::samples(&m);
    let at = evidence::sample(
        &s,
        "cista_latest_snapshot_verified_timestamp_seconds",
        "drill",
    );
    assert!(at.is_some_and(|t| t > 0.0), "{s:?}");
}

#[test]
fn a_junk_record_fails_check_by_name_but_not_snapshots() {
    let (env, _) = setup();
    let junk = b"planted by someone with put rights".to_vec();
    let name = blake3::hash(&junk).to_hex().to_string();
    write(&env.repo().join("verifications").join(&name), &junk);
    let o = env.run(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("verification record {name} is damaged")),
        "{err}"
    );
    let v = env.json(&["snapshots"]);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(
        v[0]["verified"]["method"], "check",
        "the check's own record"
    );
    assert_eq!(v[0]["verified"]["result"], "failed");
    let o = env.run(&["--json", "check"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &j["errors"][0];
    assert_eq!(
        (&e["kind"], &e["object"]["kind"], &e["object"]["id"]),
        (
            &"damaged".into(),
            &"verification".into(),
            &serde_json::Value::from(name)
        )
    );
}

#[test]
fn prune_removes_records_of_forgotten_and_superseded_verifications() {
    let (env, src) = setup();
    let first = env.json(&["snapshots"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let drill_first = env.json(&["drill"])["verification_record"].clone();
    write(&src.join("new.txt"), b"new");
    env.ok(&["backup", src.to_str().unwrap()]);
    let check_both = env.json(&["check"])["verification_record"].clone();
    let drill_second = env.json(&["drill"])["verification_record"].clone();
    env.ok(&["forget", &first]);
    let dry = env.json(&["prune", "--dry-run"]);
    assert_eq!(dry["verifications_deleted"], 1, "{dry}");
    assert_eq!(records(&env).len(), 3, "a dry run deletes nothing");
    // The first drill covers only the forgotten snapshot; the check still covers the second.
    let p = env.json(&["prune"]);
    assert_eq!(p["verifications_removed"], 1, "{p}");
    let left: Vec<serde_json::Value> = records(&env).into_iter().map(Into::into).collect();
    let mut want = vec![check_both.clone(), drill_second.clone()];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(left, want);
    assert!(!left.contains(&drill_first));
    // A newer check supersedes the older one for every snapshot it covered.
    let check_again = env.json(&["check"])["verification_record"].clone();
    env.ok(&["prune"]);
    let left: Vec<serde_json::Value> = records(&env).into_iter().map(Into::into).collect();
    let mut want = vec![check_again, drill_second];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(left, want);
    env.ok(&["check"]);
}

#[test]
fn append_only_repositories_take_records_and_a_failed_write_is_only_a_warning() {
    let (env, _) = setup();
    env.ok(&["config", "append-only", "on"]);
    env.ok(&["check"]);
    env.ok(&["--append-only", "drill"]);
    assert_eq!(records(&env).len(), 2);

    // A store refusing the record's write: the check passes, the report says why.
    let refusing = hooked::Hooked::new(Arc::new(LocalBackend::new(env.repo())), |op, t, name| {
        if op == hooked::Op::Write && t == FileType::Verification {
            return Err(hooked::injected(
                "write",
                name,
                std::io::ErrorKind::PermissionDenied,
                "AccessDenied",
            ));
        }
        Ok(())
    });
    let be: Arc<dyn Backend> = Arc::new(refusing);
    let repo = Repository::open(be, PASSWORD.as_bytes()).unwrap();
    let l = repo.lock(&LockOptions::default()).unwrap();
    let rep = commands::check(&l, &CheckOptions::default()).unwrap();
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(
        matches!(&rep.recorded, Recorded::Failed(p) if p.message.contains("AccessDenied")),
        "{:?}",
        rep.recorded
    );
    let f = rep.freshness.expect("read");
    assert!(
        f.latest_snapshot.is_some() && f.verified_at.is_some(),
        "{f:?}"
    );
    assert_eq!(records(&env).len(), 2);
}

#[test]
fn records_work_on_an_object_store_and_are_cached() {
    let env = Env::s3("verify");
    let src = env.path("src");
    small_tree(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let id = env.json(&["check"])["verification_record"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(verified(&env)[0].1["id"], id.as_str());
    let repo_id = env.json(&["config"])["id"].as_str().unwrap().to_string();
    let cached = env
        .path("cache")
        .join(repo_id)
        .join("verifications")
        .join(&id);
    assert!(cached.is_file(), "{}", cached.display());
}
