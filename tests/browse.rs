//! Browsing and selection: `find` across snapshots, snapshot selection by time
//! (`--before`, `--newer-than`, `snapshots --latest`) and week durations.

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

/// `(snapshot, [paths])` per object of `find --json`, in output order.
fn found(v: &Value) -> Vec<(String, Vec<String>)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let paths: Vec<String> = g["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["path"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(g["hits"].as_u64().unwrap() as usize, paths.len());
            (g["snapshot"].as_str().unwrap().to_string(), paths)
        })
        .collect()
}

#[test]
fn find_globs_names_or_paths_across_snapshots_newest_first() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("notes.txt"), b"one");
    write(&src.join("sub/Deep.TXT"), b"two");
    write(&src.join("sub/other.bin"), b"three");
    let first = backup_at(&env, &src, "2021-01-01T00:00:00Z", "h");
    write(&src.join("sub/later.txt"), b"four");
    let second = backup_at(&env, &src, "2021-02-01T00:00:00Z", "h");
    let root = src.to_str().unwrap();
    let p = |rel: &str| format!("{root}/{rel}");

    let v = env.json(&["find", "*.txt"]);
    assert_eq!(
        found(&v),
        vec![
            (second.clone(), vec![p("notes.txt"), p("sub/later.txt")]),
            (first.clone(), vec![p("notes.txt")]),
        ]
    );
    let m = &v[0]["matches"][0];
    assert_eq!(m["type"], "file");
    assert_eq!(m["size"], 3);
    assert!(m["permissions"].as_str().unwrap().starts_with("-rw"), "{m}");

    // Oldest first, case folded, only the snapshot asked for.
    let v = env.json(&["find", "-i", "--reverse", "*.txt"]);
    assert_eq!(found(&v)[0].0, first);
    assert_eq!(found(&v)[0].1, vec![p("notes.txt"), p("sub/Deep.TXT")]);
    let v = env.json(&["find", "--snapshot", &first[..8], "*.bin", "*.TXT"]);
    assert_eq!(
        found(&v),
        vec![(first.clone(), vec![p("sub/Deep.TXT"), p("sub/other.bin")])]
    );

    // A pattern with `/`: absolute from the root, or any tail of the path.
    let abs = format!("{root}/sub/*.txt");
    let v = env.json(&["find", "-s", &second, &abs]);
    assert_eq!(found(&v), vec![(second.clone(), vec![p("sub/later.txt")])]);
    let v = env.json(&["find", "-s", &second, "sub/o*"]);
    assert_eq!(found(&v), vec![(second.clone(), vec![p("sub/other.bin")])]);
    let v = env.json(&["find", "nothing-matches"]);
    assert_eq!(v, serde_json::json!([]));

    // The text form: a line naming each snapshot, then the paths; --long adds the mode.
    let out = env.ok(&["find", "-s", &second, "--long", "later.txt"]);
    assert!(out.contains(&format!("snapshot {}", &second[..8])), "{out}");
    assert!(out.contains(&format!(" {}", p("sub/later.txt"))), "{out}");
    assert!(out.contains("-rw"), "{out}");
}

#[test]
fn find_filters_by_modification_time_and_finds_blob_and_tree_ids() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("old.txt"), b"old");
    write(&src.join("new.txt"), b"new");
    let t = |s: &str| filetime::FileTime::from_unix_time(s.parse().unwrap(), 0);
    filetime::set_file_mtime(src.join("old.txt"), t("1000000000")).unwrap();
    filetime::set_file_mtime(src.join("new.txt"), t("1700000000")).unwrap();
    env.backup(&[&src]);
    let names = |v: &Value| -> Vec<String> { found(v).into_iter().flat_map(|(_, p)| p).collect() };
    // 2001-09-09 and 2023-11-14.
    let v = env.json(&["find", "*.txt", "--oldest", "2010-01-01"]);
    assert!(names(&v).iter().all(|p| p.ends_with("/new.txt")) && names(&v).len() == 1);
    let v = env.json(&["find", "*.txt", "--newest", "2010-01-01T00:00:00Z"]);
    assert!(names(&v).iter().all(|p| p.ends_with("/old.txt")) && names(&v).len() == 1);

    let repo = env.open();
    let (_, snap) = repo
        .resolve_snapshot("latest", &Default::default())
        .unwrap();
    let file = format!("{}/new.txt", src.display());
    let node = lib_find_node(&repo, &snap.tree, &file).unwrap();
    let blob = node.content[0].to_hex();
    let v = env.json(&["find", "--blob", &blob[..12]]);
    assert_eq!(v[0]["object_type"], "blob");
    assert_eq!(v[0]["id"], blob.as_str());
    assert_eq!(v[0]["path"], file.as_str());
    let dir = lib_find_node(&repo, &snap.tree, src.to_str().unwrap()).unwrap();
    let tree = dir.subtree.unwrap().to_hex();
    let v = env.json(&["find", "--tree", &tree]);
    assert_eq!(v[0]["object_type"], "tree");
    assert_eq!(v[0]["path"], src.to_str().unwrap());
    assert!(env.run(&["find", "--tree", "not-hex"]).status.code() == Some(1));
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
