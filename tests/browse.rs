//! Snapshot selection by time (`--before`, `--newer-than`, `snapshots --latest`) and week
//! durations.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn backup_at(env: &Env, src: &Path, time: &str, host: &str) -> String {
    let s = src.to_str().unwrap();
    let v = env.json(&["backup", s, "--time", time, "--host", host]);
    v["snapshot_id"].as_str().unwrap().to_string()
}

#[test]
fn snapshots_are_selected_by_time_and_latest_per_host_and_paths() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    let jan = backup_at(&env, &src, "2020-01-01T12:00:00Z", "a");
    let jun = backup_at(&env, &src, "2020-06-01T12:00:00Z", "a");
    let b = backup_at(&env, &src, "2020-03-01T12:00:00Z", "b");
    let now = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let sel = |args: &[&str]| {
        let mut a = vec!["snapshots"];
        a.extend_from_slice(args);
        ids(&env.json(&a))
    };
    assert_eq!(sel(&["--before", "2020-02-01"]), vec![jan.clone()]);
    // Strictly before: a snapshot at the instant itself is left out.
    let before_jun = sel(&["--before", "2020-06-01T12:00:00Z"]);
    assert_eq!(before_jun, vec![jan.clone(), b.clone()]);
    assert_eq!(sel(&["--newer-than", "8w"]), vec![now.clone()]);
    assert_eq!(
        sel(&[
            "--newer-than",
            "520w",
            "--before",
            "2021-01-01",
            "--host",
            "a"
        ]),
        vec![jan.clone(), jun.clone()]
    );
    assert_eq!(
        sel(&["--latest", "1", "--host", "a", "--host", "b"]),
        vec![b.clone(), jun.clone()]
    );
    assert_eq!(
        sel(&["--latest", "2", "--host", "a"]),
        vec![jan.clone(), jun.clone()]
    );

    // `latest` honours the window, for ls, restore, dump and the others.
    let v = env.ok(&[
        "--json",
        "ls",
        "latest",
        "--before",
        "2020-04-01",
        "--host",
        "a",
    ]);
    let first: Value = serde_json::from_str(v.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], jan.as_str());
    let o = env.run(&["ls", "latest", "--before", "2019-01-01"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        env.run(&["snapshots", "--before", "soon"]).status.code(),
        Some(2)
    );
}

#[test]
fn week_durations_are_taken_by_every_duration_flag() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    backup_at(&env, &src, "2020-01-01T12:00:00Z", "a");
    let recent = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    // --keep-within 8w keeps the snapshots within 56 days of the latest.
    let v = env.json(&[
        "forget",
        "--keep-within",
        "8w",
        "--group-by",
        "",
        "--dry-run",
    ]);
    let keep = ids(&v[0]["keep"]);
    assert_eq!(keep, vec![recent]);
    assert_eq!(v[0]["remove"].as_array().unwrap().len(), 1);
    // humantime flags take weeks too.
    let v = env.json(&["drill", "--newer-than", "8w"]);
    assert_eq!(v["ok"], true, "{v}");
    let o = env.run(&["drill", "--newer-than", "8x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
