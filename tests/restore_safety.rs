//! Restore never writes outside its target: symlinks (and hard links) already in the target,
//! left by an earlier restore or planted by a local user, are replaced, never followed.
//! Each test compares a listing of an outside "victim" (kinds, modes, owners, content) before
//! and after.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;

/// Kind, mode, owner and (with `content`) size, mtime and content digest or link target of
/// `root` itself and of everything below it, `depth` levels down.
fn listing(root: &Path, depth: usize, content: bool) -> BTreeMap<PathBuf, String> {
    fn rec(p: &Path, depth: usize, content: bool, out: &mut BTreeMap<PathBuf, String>) {
        let m = fs::symlink_metadata(p).unwrap();
        let ft = m.file_type();
        let mut line = format!(
            "{} {:o} {}:{}",
            if ft.is_dir() {
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else {
                "other"
            },
            m.permissions().mode() & 0o7777,
            m.uid(),
            m.gid()
        );
        if content {
            line += &format!(" {} {}.{}", m.size(), m.mtime(), m.mtime_nsec());
            if ft.is_file() {
                line += &format!(" {}", blake3::hash(&fs::read(p).unwrap()));
            } else if ft.is_symlink() {
                line += &format!(" -> {}", fs::read_link(p).unwrap().display());
            }
        }
        out.insert(p.to_path_buf(), line);
        if ft.is_dir() && depth > 0 {
            for e in fs::read_dir(p).unwrap() {
                rec(&e.unwrap().path(), depth - 1, content, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    rec(root, depth, content, &mut out);
    out
}

fn victim_listing(victim: &Path) -> BTreeMap<PathBuf, String> {
    listing(victim, usize::MAX, true)
}

/// A directory outside every restore target, with a file, a subdirectory and an odd mode.
fn make_victim(env: &Env) -> PathBuf {
    let v = env.path("victim");
    write(&v.join("keep.txt"), b"outside the target\n");
    fs::create_dir_all(v.join("sub")).unwrap();
    fs::set_permissions(&v, fs::Permissions::from_mode(0o751)).unwrap();
    v
}

/// A directory with content and metadata that differ from the victim's, for snapshots to put
/// where the victim is reached.
fn make_dir_tree(d: &Path) {
    write(&d.join("f1.txt"), b"restored file\n");
    write(&d.join("sub/f2.bin"), &bytes(70_000, 3));
    write(&d.join("keep.txt"), b"would overwrite the victim's\n");
    fs::set_permissions(d, fs::Permissions::from_mode(0o700)).unwrap();
    if is_root() {
        for p in [d.to_path_buf(), d.join("f1.txt"), d.join("sub")] {
            nix::unistd::chown(&p, Some(1234.into()), Some(5678.into())).unwrap();
        }
    }
}

fn restore(env: &Env, snapshot: &str, target: &Path, verify: bool) {
    let t = target.to_str().unwrap();
    let mut args = vec!["restore", snapshot, "--target", t];
    if verify {
        args.push("--verify");
    }
    env.ok(&args);
}

/// The sequence: snapshot A has `x` as a symlink to a directory outside the target,
/// snapshot B has `x` as a directory with files; B restored over A's restore must replace the
/// link, not write B's files (and B's modes and owners) through it.
#[test]
fn restore_over_a_symlink_left_by_an_earlier_restore_stays_in_the_target() {
    let env = Env::new();
    let victim = make_victim(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    symlink(&victim, src.join("x")).unwrap();
    let a = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::remove_file(src.join("x")).unwrap();
    make_dir_tree(&src.join("x"));
    let expected = snapshot_meta(&src);
    let b = env.backup(&[&src])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let before = victim_listing(&victim);
    let t = env.path("target");
    restore(&env, &a, &t, false);
    let restored = t.join(src.strip_prefix("/").unwrap());
    assert!(fs::symlink_metadata(restored.join("x"))
        .unwrap()
        .file_type()
        .is_symlink());
    restore(&env, &b, &t, true);
    assert_eq!(
        victim_listing(&victim),
        before,
        "the outside directory changed"
    );
    assert!(fs::symlink_metadata(restored.join("x")).unwrap().is_dir());
    assert_same_tree(&expected, &src, &restored);
}

/// A local user replaces a directory deep in an earlier restore with a symlink out of the
/// target; restoring again (with --verify) replaces the link and puts files, a FIFO and a
/// symlink where they belong, with their modes and owners.
#[test]
fn symlink_planted_at_a_deeper_level_is_replaced_not_followed() {
    let env = Env::new();
    let victim = make_victim(&env);
    let src = env.path("src");
    let deep = src.join("a/b/c");
    make_dir_tree(&deep);
    nix::unistd::mkfifo(
        &deep.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    symlink("f1.txt", deep.join("link")).unwrap();
    if is_root() {
        nix::unistd::chown(&deep.join("fifo"), Some(42.into()), Some(43.into())).unwrap();
        // Only root may give a FIFO or a symlink xattrs (the trusted namespace).
        for p in [deep.join("fifo"), deep.join("link")] {
            let _ = xattr::set(&p, "trusted.cista", b"special");
        }
    }
    let expected = snapshot_meta(&src);
    env.backup(&[&src]);

    let t = env.path("target");
    restore(&env, "latest", &t, false);
    let restored = t.join(src.strip_prefix("/").unwrap());
    fs::remove_dir_all(restored.join("a/b")).unwrap();
    symlink(&victim, restored.join("a/b")).unwrap();
    let before = victim_listing(&victim);
    restore(&env, "latest", &t, true);
    assert_eq!(
        victim_listing(&victim),
        before,
        "the outside directory changed"
    );
    assert!(fs::symlink_metadata(restored.join("a/b")).unwrap().is_dir());
    assert_same_tree(&expected, &src, &restored);
}

/// Where the snapshot has a regular file, the target holds a symlink to an outside file or a
/// hard link to one: each is replaced, and the outside file keeps its content, mode and owner.
#[test]
fn link_planted_where_a_regular_file_is_due_is_replaced_not_written_through() {
    let env = Env::new();
    let victim = make_victim(&env);
    let src = env.path("src");
    for f in ["sym.txt", "hard.txt"] {
        let p = src.join("d").join(f);
        write(&p, format!("content of {f}\n").as_bytes());
        if is_root() {
            nix::unistd::chown(&p, Some(77.into()), Some(88.into())).unwrap();
        }
        // After chown, which clears setuid.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
    }
    let expected = snapshot_meta(&src);
    env.backup(&[&src]);

    let t = env.path("target");
    restore(&env, "latest", &t, false);
    let d = t.join(src.strip_prefix("/").unwrap()).join("d");
    fs::remove_file(d.join("sym.txt")).unwrap();
    fs::remove_file(d.join("hard.txt")).unwrap();
    symlink(victim.join("keep.txt"), d.join("sym.txt")).unwrap();
    fs::hard_link(victim.join("keep.txt"), d.join("hard.txt")).unwrap();
    let before = victim_listing(&victim);
    restore(&env, "latest", &t, true);
    assert_eq!(victim_listing(&victim), before, "the outside file changed");
    assert_same_tree(&expected, &src, &t.join(src.strip_prefix("/").unwrap()));
    assert_eq!(fs::metadata(victim.join("keep.txt")).unwrap().nlink(), 1);
}

/// Where the snapshot has a file, an empty directory is replaced; a directory with entries is
/// reported, not deleted (as restic does without `--delete`).
#[test]
fn directory_where_a_file_is_due_is_replaced_if_empty_else_kept_and_reported() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"file\n");
    write(&src.join("g"), b"other\n");
    env.backup(&[&src]);
    let t = env.path("target");
    let f = t.join(src.strip_prefix("/").unwrap()).join("f");
    write(&f.join("mine.txt"), b"not from the snapshot\n");
    fs::create_dir(f.with_file_name("g")).unwrap();
    let o = env.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/f: restore:") && err.contains("Directory not empty"),
        "{err}"
    );
    assert!(!err.contains("/g:"), "{err}");
    assert_eq!(
        fs::read(f.join("mine.txt")).unwrap(),
        b"not from the snapshot\n"
    );
    assert_eq!(fs::read(f.with_file_name("g")).unwrap(), b"other\n");
}

/// A symlink to /etc planted as the target's first child: the restore replaces it and /etc
/// (its own mode and owner, and its entries') is unchanged.
#[test]
fn symlink_to_etc_planted_as_the_targets_first_child_is_replaced() {
    let env = Env::new();
    let src = env.path("src");
    write(
        &src.join("cista-restore-safety-probe"),
        b"must not reach /etc\n",
    );
    fs::set_permissions(&src, fs::Permissions::from_mode(0o700)).unwrap();
    env.backup(&[&src]);
    let first = src.strip_prefix("/").unwrap().components().next().unwrap();
    let t = env.path("target");
    fs::create_dir_all(&t).unwrap();
    symlink("/etc", t.join(first)).unwrap();

    let etc = Path::new("/etc");
    let before = listing(etc, 1, false);
    restore(&env, "latest", &t, true);
    assert_eq!(listing(etc, 1, false), before, "/etc changed");
    assert!(fs::symlink_metadata(t.join(first)).unwrap().is_dir());
    let probe = t
        .join(src.strip_prefix("/").unwrap())
        .join("cista-restore-safety-probe");
    assert_eq!(fs::read(probe).unwrap(), b"must not reach /etc\n");
}

/// `dump` looks its path up in the snapshot's trees and never follows a symlink stored there.
#[test]
fn dump_does_not_follow_a_symlink_in_the_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("real/file"), b"data\n");
    symlink("real", src.join("link")).unwrap();
    env.backup(&[&src]);
    let o = env.run(&["dump", "latest", &format!("{}/link/file", src.display())]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a directory"), "{err}");
    assert!(o.stdout.is_empty());
    let o = env.run(&["dump", "latest", &format!("{}/real/file", src.display())]);
    assert_eq!(o.stdout, b"data\n");
}

/// More directories than restore keeps open: evicted ones are opened again from their
/// nearest open ancestor, still without following a symlink planted on the way.
#[test]
fn more_directories_than_stay_open_restore_without_following_links() {
    let env = Env::new();
    let victim = make_victim(&env);
    let src = env.path("src");
    for i in 0..700 {
        write(
            &src.join(format!("d{i:03}/sub/f.txt")),
            format!("file {i}\n").as_bytes(),
        );
    }
    let expected = snapshot_meta(&src);
    env.backup(&[&src]);
    let t = env.path("target");
    restore(&env, "latest", &t, false);
    let restored = t.join(src.strip_prefix("/").unwrap());
    for i in [3, 350, 699] {
        let d = restored.join(format!("d{i:03}/sub"));
        fs::remove_dir_all(&d).unwrap();
        symlink(&victim, &d).unwrap();
    }
    let before = victim_listing(&victim);
    restore(&env, "latest", &t, true);
    assert_eq!(
        victim_listing(&victim),
        before,
        "the outside directory changed"
    );
    assert_same_tree(&expected, &src, &restored);
}
