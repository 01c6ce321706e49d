//! `manifest`: b3sum lines that check a restored tree, escaped names, subpaths, and no data
//! read.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// `b3sum -c`, as b3sum defines it: `<hex>  <path>` per line, a line starting with `\` has
/// `\\`, `\n` and `\r` escaped in its path. Checks every line against the files under
/// `dir` (with the blake3 crate) and returns the paths checked.
fn b3sum_check(dir: &Path, manifest: &str) -> BTreeSet<String> {
    let mut checked = BTreeSet::new();
    for line in manifest.lines() {
        let (escaped, rest) = match line.strip_prefix('\\') {
            Some(r) => (true, r),
            None => (false, line),
        };
        let (hex, path) = rest
            .split_once("  ")
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        assert_eq!(hex.len(), 64, "{line:?}");
        let path = if escaped {
            unescape(path)
        } else {
            path.to_string()
        };
        let got = blake3::hash(&fs::read(dir.join(&path)).unwrap());
        assert_eq!(got.to_hex().as_str(), hex, "{path:?}");
        assert!(checked.insert(path));
    }
    // The real b3sum too, where one is installed.
    if Command::new("b3sum").arg("--version").output().is_ok() {
        let m = dir.join("..").join("manifest.b3");
        fs::write(&m, manifest).unwrap();
        let o = Command::new("b3sum")
            .arg("-c")
            .arg(&m)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }
    checked
}

fn unescape(p: &str) -> String {
    let mut out = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => panic!("bad escape {other:?} in {p:?}"),
        }
    }
    out
}

/// The regular files below `dir`, relative to it.
fn regular_files(dir: &Path) -> BTreeSet<String> {
    walk_files(dir)
        .into_iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().file_type().is_file())
        .map(|p| p.strip_prefix(dir).unwrap().to_str().unwrap().to_string())
        .collect()
}

fn tree(src: &Path) {
    small_tree(src);
    write(&src.join("back\\slash.txt"), b"a backslash in the name");
    write(&src.join("new\nline"), b"a newline in the name");
    write(&src.join("cr\rname"), b"a carriage return");
    write(&src.join("sub/with space.txt"), b"spaces need no escape");
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
}

#[test]
fn a_manifest_checks_the_restored_tree_with_b3sum_rules() {
    let env = Env::new();
    let src = env.path("src");
    tree(&src);
    env.backup(&[&src]);
    let target = env.path("restored");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let manifest = env.ok(&["manifest", "latest"]);
    assert!(
        manifest.lines().any(|l| l.starts_with('\\')),
        "escaped lines: {manifest}"
    );
    let checked = b3sum_check(&target, &manifest);
    assert_eq!(
        checked,
        regular_files(&target),
        "every regular file, nothing else"
    );
    assert!(checked.iter().any(|p| p.ends_with("new\nline")));

    // Below a path: relative to it, as `restore SNAP:PATH` lays it out.
    let sub = format!("{}/sub", src.display());
    let target2 = env.path("restored-sub");
    let spec = format!("latest:{sub}");
    env.ok(&["restore", &spec, "--target", target2.to_str().unwrap()]);
    for m in [
        env.ok(&["manifest", "latest", &sub]),
        env.ok(&["manifest", &spec]),
    ] {
        let checked = b3sum_check(&target2, &m);
        assert_eq!(checked, regular_files(&target2));
        assert!(checked.contains("deeper/c.txt"), "{checked:?}");
    }
    let o = env.run(&["manifest", &spec, &sub]);
    assert_eq!(o.status.code(), Some(1), "PATH twice");

    // --json: a line per file and a summary.
    let out = env.ok(&["--json", "manifest", "latest", &sub]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (sum, files) = lines.split_last().unwrap();
    assert_eq!(sum["files"].as_u64(), Some(files.len() as u64));
    assert_eq!(sum["digests_computed"], 0);
    let c = files.iter().find(|f| f["path"] == "deeper/c.txt").unwrap();
    let want = blake3::hash(&fs::read(src.join("sub/deeper/c.txt")).unwrap());
    assert_eq!(c["digest"], want.to_hex().as_str());
}

#[test]
fn a_manifest_reads_no_data() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big.bin"), &bytes(3_000_000, 9));
    write(&src.join("small.txt"), b"small");
    env.backup(&[&src]);
    let before = env.ok(&["manifest", "latest"]);
    let big = format!("{}/big.bin", src.display());
    damage_middle_blob(&env, &big);
    let o = env.run(&["dump", "latest", &big]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the damage is real: dump reads the data"
    );
    // The digests come from the trees: the damaged blob is never read.
    assert_eq!(env.ok(&["manifest", "latest"]), before);
}
