//! `check` finds damage and names the damaged object; restore fails closed on damaged data.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn repo_with_data() -> (Env, PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), &bytes(3 << 20, 4));
    env.backup(&[&src]);
    (env, src)
}

/// Runs `cista --json args`, which fails, and returns its JSON summary.
fn failing_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = env.run(&a);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad json {last:?}: {e}"))
}

fn check_fails_naming(env: &Env, object: &Path, args: &[&str]) {
    let o = env.run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "check passed despite damage to {}",
        object.display()
    );
    let name = object.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "error does not name {name}: {err}");
}

#[test]
fn flipped_byte_in_each_object_kind_is_found() {
    for (dir, needs_read_data) in [
        ("data", true),
        ("index", false),
        ("snapshots", false),
        ("keys", false),
    ] {
        for pos in [0usize, 40, 1000, usize::MAX] {
            let (env, _) = repo_with_data();
            env.ok(&["check", "--read-data"]);
            let files = walk_files(&env.repo().join(dir));
            let victim = files.last().unwrap().clone();
            flip(&victim, pos);
            check_fails_naming(&env, &victim, &["check", "--read-data"]);
            if !needs_read_data {
                check_fails_naming(&env, &victim, &["check"]);
            }
        }
    }
}

#[test]
fn flipped_byte_in_config_is_refused() {
    let (env, _) = repo_with_data();
    flip(&env.repo().join("config"), 30);
    let o = env.run(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("config"));
}

#[test]
fn every_pack_byte_position_class_is_detected() {
    // Bytes in a blob, in the sealed header and in the trailer of one pack.
    let (env, _) = repo_with_data();
    let packs = walk_files(&env.repo().join("data"));
    let pack = packs
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();
    let len = fs::metadata(&pack).unwrap().len() as usize;
    let original = fs::read(&pack).unwrap();
    for pos in [10, len / 2, len - 40, len - 2] {
        fs::write(&pack, &original).unwrap();
        flip(&pack, pos);
        check_fails_naming(&env, &pack, &["check", "--read-data"]);
    }
    fs::write(&pack, &original).unwrap();
    env.ok(&["check", "--read-data"]);
}

#[test]
fn restore_of_damaged_blob_fails_without_writing_wrong_data() {
    let (env, src) = repo_with_data();
    let (blob, pack) = damage_middle_blob(&env, &format!("{}/big.bin", src.display()));

    let t = env.path("r");
    let o = env.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("big.bin") && err.contains(&blob.to_hex()),
        "{err}"
    );
    let restored = t.join(src.strip_prefix("/").unwrap());
    assert!(
        !restored.join("big.bin").exists(),
        "a damaged file was left behind"
    );
    // Undamaged files are still restored.
    assert_eq!(fs::read(restored.join("a.txt")).unwrap(), b"hello world\n");

    // The JSON summary gives each error as kind, object, path and the same message.
    let t2 = env.path("r2");
    let sum = failing_json(
        &env,
        &["restore", "latest", "--target", t2.to_str().unwrap()],
    );
    let errors = sum["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{sum}");
    let e = &errors[0];
    assert_eq!(e["kind"], "damaged", "{e}");
    assert_eq!(e["object"]["kind"], "blob", "{e}");
    assert_eq!(e["object"]["id"], blob.to_hex(), "{e}");
    let path = format!("{}/big.bin", src.display());
    assert_eq!(e["path"].as_str(), Some(path.as_str()), "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("big.bin") && message.contains(&blob.to_hex()),
        "{e}"
    );
    assert!(err.contains(&format!("error: {message}")), "{err}");

    let o = env.run(&["dump", "latest", &format!("{}/big.bin", src.display())]);
    assert!(!o.status.success());
    check_fails_naming(&env, &pack, &["check", "--read-data"]);
}

#[test]
fn missing_pack_is_reported() {
    let (env, _) = repo_with_data();
    let packs = walk_files(&env.repo().join("data"));
    fs::remove_file(&packs[0]).unwrap();
    check_fails_naming(&env, &packs[0], &["check"]);

    // The JSON summary names it by kind and id, with the message stderr prints.
    let name = packs[0].file_name().unwrap().to_str().unwrap();
    let rep = failing_json(&env, &["check"]);
    assert_eq!(rep["ok"], false);
    // A tree pack's loss also fails the trees it held; the pack itself is named once.
    let errors = rep["errors"].as_array().unwrap();
    let pack = serde_json::json!({"kind": "pack", "id": name});
    let named: Vec<_> = errors.iter().filter(|e| e["object"] == pack).collect();
    assert_eq!(named.len(), 1, "{rep}");
    let e = named[0];
    assert_eq!(e["kind"], "missing", "{e}");
    assert_eq!(e["path"], serde_json::Value::Null);
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(name) && message.contains("does not exist"),
        "{e}"
    );
    let o = env.run(&["check"]);
    assert!(
        stderr(&o).contains(&format!("error: {message}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn read_data_subsets() {
    let (env, _) = repo_with_data();
    let all = env.json(&["check", "--read-data"]);
    let total = all["packs"].as_u64().unwrap();
    assert_eq!(all["packs_read"], total);
    let mut sum = 0;
    for n in 1..=3 {
        let p = env.json(&["check", "--read-data-subset", &format!("{n}/3")]);
        sum += p["packs_read"].as_u64().unwrap();
    }
    assert_eq!(sum, total);
    let p = env.json(&["check", "--read-data-subset", "100%"]);
    assert_eq!(p["packs_read"], total);
    let o = env.run(&["check", "--read-data-subset", "4/3"]);
    assert!(!o.status.success());
}

/// Regression (issue 10, item 8): `--read-data-subset 5%` of a 13-pack repository read no
/// pack (each pack was drawn with probability 5%) and still said "no errors were found".
#[test]
fn read_data_subset_reads_at_least_one_pack_and_groups_partition() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    // Files below the smallest chunk, four to a 1 MiB pack: 15 data packs and a tree pack.
    for i in 0..60u64 {
        write(&src.join(format!("f{i}")), &bytes(300_000, i));
    }
    env.backup(&[&src]);
    let total = env.json(&["check"])["packs"].as_u64().unwrap();
    assert!(total >= 13, "{total} packs");
    let read = |subset: &str| -> u64 {
        let r = env.json(&["check", "--read-data-subset", subset]);
        assert_eq!(r["ok"], true, "{r}");
        r["packs_read"].as_u64().unwrap()
    };
    // At 0.01% a per-pack draw reads nothing (p = 0.9999^13); the count is rounded, at least 1.
    assert_eq!(read("0.01%"), 1);
    assert_eq!(read("5%"), 1);
    assert_eq!(read("50%"), (total as f64 / 2.0).round() as u64);
    assert_eq!(read("100%"), total);
    // Sizes: a byte reads one pack; more than the repository reads them all.
    assert_eq!(read("1"), 1);
    let r = env.json(&["check", "--read-data-subset", "3MiB"]);
    assert!(r["packs_read"].as_u64().unwrap() >= 2, "{r}");
    assert!(r["bytes_read"].as_u64().unwrap() <= 3 << 20, "{r}");
    assert_eq!(read("1G"), total);
    // n/m groups are fixed by the pack ids and together read every pack once.
    for m in [1u32, 5, 16] {
        let counts: Vec<u64> = (1..=m).map(|n| read(&format!("{n}/{m}"))).collect();
        assert_eq!(counts.iter().sum::<u64>(), total, "groups of {m}");
        if m == 5 {
            let again: Vec<u64> = (1..=m).map(|n| read(&format!("{n}/{m}"))).collect();
            assert_eq!(counts, again);
        }
    }
    for (bad, says) in [
        ("0/5", "groups are numbered 1 to 5"),
        ("6/5", "no group 6 of 5"),
        ("1/0", "must be 1 to 256"),
        ("1/257", "must be 1 to 256"),
        ("0%", "above 0"),
        ("150%", "at most 100"),
        ("0", "above 0"),
        ("lots", "use n/m"),
    ] {
        let o = env.run(&["check", "--read-data-subset", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("no errors"),
            "{bad}"
        );
    }
}
