//! Retention and space reclamation: forget policies, prune, concurrency and kills.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn repo_bytes(env: &Env) -> u64 {
    walk_files(&env.repo().join("data"))
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    let v = env.json(&["snapshots"]);
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn restore_matches(
    env: &Env,
    id: &str,
    src_meta: &std::collections::BTreeMap<Vec<u8>, Meta>,
    src: &Path,
    copy: &Path,
) {
    let t = env.path(&format!("restore-{}", &id[..8]));
    let _ = fs::remove_dir_all(&t);
    env.ok(&["restore", id, "--target", t.to_str().unwrap(), "--verify"]);
    assert_same_tree(src_meta, copy, &t.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn forget_follows_restic_doc_example() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let days = [
        "2019-09-01",
        "2019-09-08",
        "2019-09-15",
        "2019-09-22",
        "2019-09-29",
        "2019-10-06",
        "2019-10-13",
        "2019-10-20",
        "2019-10-27",
        "2019-11-03",
        "2019-11-10",
        "2019-11-17",
    ];
    for d in days {
        env.ok(&[
            "backup",
            src.to_str().unwrap(),
            "--time",
            &format!("{d}T11:00:00Z"),
        ]);
    }
    let dry = env
        .cmd(&["--json", "forget", "--keep-daily", "4", "--dry-run"])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(dry.status.success());
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(v[0]["keep"].as_array().unwrap().len(), 4);
    assert_eq!(v[0]["remove"].as_array().unwrap().len(), 8);
    assert_eq!(v[0]["reasons"][0]["matches"][0], "daily snapshot");
    assert_eq!(snapshot_ids(&env).len(), 12, "dry run removed nothing");

    let o = env
        .cmd(&["forget", "--keep-daily", "4"])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(o.status.success());
    let left = env.json(&["snapshots"]);
    let times: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["time"].as_str().unwrap()[..10])
        .collect();
    assert_eq!(
        times,
        ["2019-10-27", "2019-11-03", "2019-11-10", "2019-11-17"]
    );

    // Weekly at a year boundary: 2020-12-28 and 2021-01-03 share ISO week 2020-W53.
    for t in [
        "2020-12-27T10:00:00Z",
        "2020-12-28T10:00:00Z",
        "2021-01-03T10:00:00Z",
        "2021-01-04T10:00:00Z",
    ] {
        env.ok(&["backup", src.to_str().unwrap(), "--time", t]);
    }
    let o = env
        .cmd(&["--json", "forget", "--keep-weekly", "3", "--dry-run"])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kept: Vec<String> = v[0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["time"].as_str().unwrap()[..10].to_string())
        .collect();
    assert_eq!(kept, ["2020-12-27", "2021-01-03", "2021-01-04"]);
}

#[test]
fn mistyped_keep_tag_removes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    for t in ["prod", "prod", "test"] {
        env.ok(&["backup", src.to_str().unwrap(), "--tag", t]);
    }
    let o = env.run(&["forget", "--keep-tag", "pord"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing"));
    assert_eq!(snapshot_ids(&env).len(), 3);
    // An empty policy removes nothing either.
    env.ok(&["forget"]);
    assert_eq!(snapshot_ids(&env).len(), 3);
    // The correct tag keeps the two prod snapshots.
    env.ok(&["forget", "--keep-tag", "prod"]);
    assert_eq!(snapshot_ids(&env).len(), 2);
    // Removing everything needs both the flag and a filter.
    assert!(!env
        .run(&["forget", "--unsafe-allow-remove-all"])
        .status
        .success());
    env.ok(&["forget", "--unsafe-allow-remove-all", "--tag", "prod"]);
    assert_eq!(snapshot_ids(&env).len(), 0);
}

#[test]
fn forget_and_prune_reclaim_exactly_the_forgotten_data() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    small_tree(&src);
    // Night 1 and 2 each add a file only they hold; night 3 keeps the shared base.
    write(&src.join("night"), &bytes(6 << 20, 1));
    env.backup(&[&src]);
    let after_one = repo_bytes(&env);
    write(&src.join("night"), &bytes(6 << 20, 2));
    env.backup(&[&src]);
    fs::remove_file(src.join("night")).unwrap();
    write(&src.join("kept"), &text(2 << 20, 3));
    let last = env.backup(&[&src]);
    let expected = snapshot_meta(&src);
    let copy = env.path("copy");
    copy_tree(&src, &copy);
    let before = repo_bytes(&env);

    env.ok(&["forget", "--keep-last", "1"]);
    let dry = env.json(&["prune", "--dry-run"]);
    assert_eq!(repo_bytes(&env), before, "dry run deleted data");
    let r = env.json(&["prune", "--max-unused", "0"]);
    assert_eq!(r["packs_deleted"], dry["packs_deleted"]);
    let after = repo_bytes(&env);
    // Both 6 MiB random files are gone; what stays is the base and the third night.
    let freed = before - after;
    assert!(freed >= 12 << 20, "freed {freed}");
    // What stays is the first night's base (without its 6 MiB file) and the third night's file.
    assert!(
        after < after_one,
        "after {after}, after night one {after_one}"
    );
    env.ok(&["check", "--read-data"]);
    restore_matches(
        &env,
        last["snapshot_id"].as_str().unwrap(),
        &expected,
        &src,
        &copy,
    );
    // A second prune finds nothing to do.
    let again = env.json(&["prune"]);
    assert_eq!(again["packs_deleted"], 0);
    assert_eq!(again["packs_repacked"], 0);
}

fn copy_tree(from: &Path, to: &Path) {
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success());
}

#[test]
fn prune_aborts_before_deleting_when_a_blob_is_missing() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big"), &bytes(4 << 20, 5));
    env.backup(&[&src]);
    write(&src.join("big"), &bytes(4 << 20, 6));
    env.backup(&[&src]);
    env.ok(&["forget", "--keep-last", "1"]);
    // Lose one pack the kept snapshot needs: the one holding the first chunk of its big file.
    let repo = env.open();
    let index = cista::Index::load(&repo).unwrap();
    let (_, snap) = repo
        .resolve_snapshot("latest", &Default::default())
        .unwrap();
    let node = lib_find_node(&repo, &snap.tree, &format!("{}/big", src.display())).unwrap();
    let pack = index
        .get(cista::format::BlobType::Data, &node.content[0])
        .unwrap()
        .pack
        .to_hex();
    fs::remove_file(env.repo().join("data").join(&pack[..2]).join(&pack)).unwrap();
    let before: Vec<_> = walk_files(&env.repo());
    let o = env.run(&["prune"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nothing was deleted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let after: Vec<_> = walk_files(&env.repo());
    assert_eq!(before, after);
}

#[test]
fn tag_and_stats() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let a = env.backup(&[&src]);
    env.ok(&[
        "tag",
        "--add",
        "keep,monthly",
        a["snapshot_id"].as_str().unwrap(),
    ]);
    let s = env.json(&["snapshots"]);
    assert_eq!(s[0]["tags"], serde_json::json!(["keep", "monthly"]));
    assert_eq!(s[0]["original"], a["snapshot_id"]);
    env.ok(&["tag", "--remove", "monthly"]);
    let s = env.json(&["snapshots"]);
    assert_eq!(s[0]["tags"], serde_json::json!(["keep"]));
    env.ok(&["check"]);

    let st = env.json(&["stats"]);
    assert_eq!(st["total_size"], 12 + 300_000 + 50_000);
    assert_eq!(st["total_file_count"], 4);
    let raw = env.json(&["stats", "--mode", "raw-data"]);
    assert!(raw["total_uncompressed_size"].as_u64().unwrap() >= 350_012);
    let g = env.json(&["snapshots", "--group-by", "host"]);
    assert_eq!(g.as_array().unwrap().len(), 1);
}

#[test]
fn concurrent_backups_and_prune_lose_nothing() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let srcs: Vec<_> = (0..2).map(|i| env.path(&format!("src{i}"))).collect();
    for (i, s) in srcs.iter().enumerate() {
        small_tree(s);
        write(&s.join("data"), &bytes(2 << 20, i as u64));
    }
    let deadline = Instant::now() + Duration::from_secs(25);
    let saved = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for (i, s) in srcs.iter().enumerate() {
            let saved = &saved;
            let env = &env;
            sc.spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    write(&s.join("changing"), &bytes(1 << 20, 1000 * i as u64 + n));
                    let o = env
                        .cmd(&[
                            "--json",
                            "--retry-lock",
                            "2m",
                            "backup",
                            s.to_str().unwrap(),
                        ])
                        .output()
                        .unwrap();
                    assert!(
                        o.status.success(),
                        "backup failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                    let v: serde_json::Value =
                        serde_json::from_slice(o.stdout.trim_ascii_end()).unwrap();
                    saved
                        .lock()
                        .unwrap()
                        .push(v["snapshot_id"].as_str().unwrap().to_string());
                }
            });
        }
        let env = &env;
        sc.spawn(move || {
            while Instant::now() < deadline {
                let o = env
                    .cmd(&[
                        "--retry-lock",
                        "2m",
                        "forget",
                        "--keep-last",
                        "2",
                        "--prune",
                        "--max-unused",
                        "0",
                    ])
                    .stdout(Stdio::null())
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "forget --prune failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        });
    });
    let saved = saved.into_inner().unwrap();
    assert!(saved.len() >= 4, "only {} backups ran", saved.len());
    env.ok(&["check", "--read-data"]);
    let existing = snapshot_ids(&env);
    assert!(!existing.is_empty());
    for id in &existing {
        assert!(saved.contains(id), "snapshot {id} was never reported");
        let t = env.path(&format!("r-{}", &id[..8]));
        env.ok(&["restore", id, "--target", t.to_str().unwrap(), "--verify"]);
    }
}

#[test]
fn killed_prune_never_damages_the_repository() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    small_tree(&src);
    let mut seed = 0x5eed_u64;
    let mut killed = 0;
    // How long a prune ran past taking its lock, the last time it was not killed: the kill
    // delays are drawn below it, so the kills land part way however fast the machine is.
    let mut span = Duration::from_millis(120);
    for round in 0..12u64 {
        // Many small files share packs, so forgetting some leaves partly used packs to repack.
        for i in 0..150 {
            if (i + round) % 3 == 0 {
                write(&src.join(format!("f{i}")), &bytes(40_000, round * 1000 + i));
            }
        }
        env.backup(&[&src]);
        env.ok(&["forget", "--keep-last", "1"]);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % (span.as_micros() as u64).max(1));
        let mut child = env
            .cmd(&["prune", "--max-unused", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Prune's work starts once it holds its lock; kill it at a random point after that.
        let start = Instant::now();
        while env.count("locks") == 0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_micros(500));
        }
        let locked = Instant::now();
        let mut ran = None;
        while locked.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                ran = Some(locked.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
            killed += 1;
        } else if let Some(ran) = ran {
            span = ran.min(span);
        }
        let o = env.run(&["check", "--read-data"]);
        assert!(
            o.status.success(),
            "round {round} (killed after {delay:?}): {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(killed >= 1, "no prune was killed part way");
    // Everything kept restores, and a clean prune removes the leftovers.
    env.ok(&["prune", "--max-unused", "0"]);
    env.ok(&["check", "--read-data"]);
    for id in snapshot_ids(&env) {
        let t = env.path(&format!("r-{}", &id[..8]));
        env.ok(&["restore", &id, "--target", t.to_str().unwrap(), "--verify"]);
    }
    let o = env.run(&["check"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("not in any index"));
}

#[test]
fn prune_limits_choose_what_to_repack() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    // Small files share packs; rewriting half of them leaves every old pack half used.
    for i in 0..60u64 {
        write(&src.join(format!("f{i}")), &bytes(30_000, i));
    }
    env.backup(&[&src]);
    for i in (0..60u64).step_by(2) {
        write(&src.join(format!("f{i}")), &bytes(30_000, 1000 + i));
    }
    env.backup(&[&src]);
    env.ok(&["forget", "--keep-last", "1"]);
    // unlimited: partly used packs stay; nothing is repacked.
    let r = env.json(&["prune", "--dry-run", "--max-unused", "unlimited"]);
    assert_eq!(r["packs_repacked"], 0);
    assert!(r["unused_after"].as_u64().unwrap() > 0);
    // A repack budget smaller than one pack repacks nothing either.
    let r = env.json(&[
        "prune",
        "--dry-run",
        "--max-unused",
        "0",
        "--max-repack-size",
        "1k",
    ]);
    assert_eq!(r["packs_repacked"], 0);
    // 0 unused allowed: every partly used pack is repacked, and no unused bytes remain.
    let r = env.json(&["prune", "--max-unused", "0"]);
    assert!(r["packs_repacked"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["unused_after"], 0);
    env.ok(&["check", "--read-data"]);
    let r = env.json(&["prune", "--dry-run", "--max-unused", "0"]);
    assert_eq!(r["blobs_unused"], 0, "{r}");
    restore_latest(&env, "r", &src);
}

/// cista stores a blob uncompressed only when zstd would not shrink it, so on its own
/// repositories --repack-uncompressed rewrites such packs without gain; it must still keep the
/// data sound (the option exists for blobs written without compression).
#[test]
fn repack_uncompressed_keeps_data_sound() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("text"), &text(200_000, 1));
    env.backup(&[&src]);
    // Text is stored compressed, so nothing is repacked...
    let r = env.json(&["prune", "--dry-run", "--repack-uncompressed"]);
    let compressible_repacks = r["packs_repacked"].as_u64().unwrap();
    // ...random data is stored raw (zstd would not shrink it), so its pack is rewritten.
    write(&src.join("random"), &bytes(200_000, 2));
    env.backup(&[&src]);
    let r = env.json(&["prune", "--repack-uncompressed"]);
    assert!(
        r["packs_repacked"].as_u64().unwrap() > compressible_repacks,
        "{r}"
    );
    env.ok(&["check", "--read-data"]);
    let restored = restore_latest(&env, "r", &src);
    assert_eq!(
        std::fs::read(restored.join("random")).unwrap(),
        bytes(200_000, 2)
    );
}

/// Issue 10, item 14: prune exited 0 on a repository with a truncated pack (check reported it).
/// It refuses, deletes nothing and names the pack; the way out it gives works.
#[test]
fn prune_refuses_a_truncated_pack_and_names_it() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big"), &bytes(3 << 20, 8));
    env.backup(&[&src]);
    let index = cista::Index::load(&env.open()).unwrap();
    let (_, _, loc) = index
        .iter()
        .find(|(t, _, _)| *t == cista::format::BlobType::Data)
        .unwrap();
    let pack = loc.pack.to_hex();
    let file = env.repo().join("data").join(&pack[..2]).join(&pack);
    let len = fs::metadata(&file).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len - 100).unwrap();
    drop(f);

    let before: Vec<_> = walk_files(&env.repo());
    let o = env.run(&["prune"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "prune must refuse: {err}");
    assert!(err.contains(&pack), "names the pack: {err}");
    assert!(err.contains("nothing was deleted"), "{err}");
    assert_eq!(before, walk_files(&env.repo()));

    // The way out the message gives: back up again, delete the pack, prune.
    env.backup(&[&src]);
    fs::remove_file(&file).unwrap();
    env.ok(&["forget", "--keep-last", "1"]);
    env.ok(&["prune"]);
    env.ok(&["check", "--read-data"]);
}
