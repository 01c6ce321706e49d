//! `diff`: restic's modifiers and statistics, `SNAP:PATH`, and identical subtrees skipped
//! unread.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

/// Two snapshots of `src`: a large subtree (`big`) left alone, every kind of change beside it.
fn two_snapshots(env: &Env) -> (String, String) {
    let src = env.path("src");
    for i in 0..30 {
        write(
            &src.join(format!("big/d{i:02}/f.txt")),
            format!("big {i}").as_bytes(),
        );
    }
    write(&src.join("keep.txt"), b"kept as it is");
    write(&src.join("mod.txt"), b"before");
    write(&src.join("gone.txt"), b"removed later");
    write(&src.join("olddir/y.txt"), b"in a removed directory");
    write(&src.join("t"), b"a file, then a symlink");
    write(&src.join("perm.txt"), b"mode changes");
    let a = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    write(&src.join("mod.txt"), b"after, and longer");
    fs::remove_file(src.join("gone.txt")).unwrap();
    fs::remove_dir_all(src.join("olddir")).unwrap();
    write(&src.join("newdir/x.txt"), b"in an added directory");
    fs::remove_file(src.join("t")).unwrap();
    std::os::unix::fs::symlink("keep.txt", src.join("t")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("perm.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let b = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    (a, b)
}

/// The `change` lines and the `statistics` line of `diff --json`.
fn diff_json(env: &Env, args: &[&str]) -> (BTreeSet<(String, String)>, Value) {
    let mut a = vec!["--json", "diff"];
    a.extend_from_slice(args);
    let out = env.ok(&a);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (stats, changes) = lines.split_last().unwrap();
    assert_eq!(stats["message_type"], "statistics");
    let changes = changes
        .iter()
        .map(|c| {
            assert_eq!(c["message_type"], "change");
            let path = c["path"].as_str().unwrap().to_string();
            (c["modifier"].as_str().unwrap().to_string(), path)
        })
        .collect();
    (changes, stats.clone())
}

fn set(items: &[(&str, String)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(m, p)| (m.to_string(), p.clone()))
        .collect()
}

/// The number of directories from `/` down to `p`, `p` included.
fn depth(p: &Path) -> u64 {
    p.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count() as u64
}

#[test]
fn diff_reports_each_kind_of_change_and_reads_only_what_differs() {
    let env = Env::new();
    let (a, b) = two_snapshots(&env);
    let src = env.path("src");
    let p = |rel: &str| format!("{}/{rel}", src.display());
    let (changes, stats) = diff_json(&env, &[&a, &b]);
    assert_eq!(
        changes,
        set(&[
            ("M", p("mod.txt")),
            ("-", p("gone.txt")),
            ("-", p("olddir/")),
            ("-", p("olddir/y.txt")),
            ("+", p("newdir/")),
            ("+", p("newdir/x.txt")),
            ("T", p("t")),
        ])
    );
    assert_eq!(stats["source_snapshot"], a.as_str());
    assert_eq!(stats["changed_files"], 1);
    let (added, removed) = (&stats["added"], &stats["removed"]);
    assert_eq!(
        (added["files"].as_u64(), added["dirs"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (removed["files"].as_u64(), removed["dirs"].as_u64()),
        (Some(2), Some(1))
    );
    // New: x.txt and mod.txt's new content; gone: mod.txt's old, gone.txt, y.txt, t's.
    assert_eq!(
        (added["data_blobs"].as_u64(), removed["data_blobs"].as_u64()),
        (Some(2), Some(4))
    );
    // The trees from / down to src on each side, plus newdir and olddir.
    let d = depth(&src);
    assert_eq!(
        (added["tree_blobs"].as_u64(), removed["tree_blobs"].as_u64()),
        (Some(d + 2), Some(d + 2))
    );
    assert!(added["bytes"].as_u64().unwrap() > 0);
    // Read: both sides' trees from / to src, newdir and olddir; none of big's 31.
    assert_eq!(
        stats["trees_loaded"].as_u64(),
        Some(2 * (d + 1) + 2),
        "{stats}"
    );

    // --metadata adds U for a change of mode alone; an unchanged file never shows.
    let (changes, _) = diff_json(&env, &["--metadata", &a, &b]);
    assert!(
        changes.contains(&("U".to_string(), p("perm.txt"))),
        "{changes:?}"
    );
    assert!(!changes
        .iter()
        .any(|(_, path)| path.contains("keep.txt") || path.contains("big")));

    // The same snapshot twice: nothing read, nothing changed.
    let (changes, stats) = diff_json(&env, &[&b, &b]);
    assert!(changes.is_empty());
    assert_eq!(stats["trees_loaded"], 0);

    let out = env.ok(&["diff", &a, &b]);
    assert!(out.starts_with(&format!("comparing snapshot {} to {}:", &a[..8], &b[..8])));
    assert!(out.contains(&format!("\n+    {}\n", p("newdir/"))), "{out}");
    assert!(out.contains(&format!("\nM    {}\n", p("mod.txt"))), "{out}");
    assert!(out.contains("Files:"), "{out}");
    assert!(out.contains("1 new,     2 removed,     1 changed"), "{out}");
}

#[test]
fn diff_compares_directories_given_as_snapshot_paths() {
    let env = Env::new();
    let (a, b) = two_snapshots(&env);
    let src = env.path("src");
    let sub = |s: &str| format!("{s}:{}", src.display());
    let (changes, _) = diff_json(&env, &[&sub(&a), &sub(&b)]);
    assert!(
        changes.contains(&("M".to_string(), "/mod.txt".to_string())),
        "{changes:?}"
    );
    assert!(changes.contains(&("+".to_string(), "/newdir/x.txt".to_string())));
    let file = format!("{a}:{}/keep.txt", src.display());
    let o = env.run(&["diff", &file, &b]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));
}

#[test]
fn diff_never_reads_a_subtree_both_snapshots_share() {
    let env = Env::new();
    let (a, b) = two_snapshots(&env);
    // Damage the tree of `big`, which both snapshots share: diff must not need it.
    let repo = env.open();
    let index = cista::Index::load(&repo).unwrap();
    let (_, snap) = repo.resolve_snapshot(&b, &Default::default()).unwrap();
    let big = format!("{}/big", env.path("src").display());
    let tree = lib_find_node(&repo, &snap.tree, &big)
        .unwrap()
        .subtree
        .unwrap();
    let loc = index.get(cista::format::BlobType::Tree, &tree).unwrap();
    let hex = loc.pack.to_hex();
    flip(
        &env.repo().join("data").join(&hex[..2]).join(&hex),
        loc.offset as usize + 40,
    );
    let o = env.run(&["ls", &b, &big]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the damage is real: ls reads the tree"
    );

    let (changes, _) = diff_json(&env, &[&a, &b]);
    assert_eq!(changes.len(), 7, "{changes:?}");
}
