//! Restores equal their source in content and metadata.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;

/// Thousands of files of mixed sizes and every kind of entry the format knows.
fn build_fixture(root: &Path) {
    fs::create_dir_all(root).unwrap();
    for d in 0..40 {
        for f in 0..60 {
            let i = d * 60 + f;
            let size = match i % 10 {
                0..=5 => i % 3000,
                6..=8 => 4000 + (i * 7919) % 60_000,
                _ => 200_000 + (i * 104_729) % 900_000,
            };
            let data = if i % 2 == 0 {
                text(size, i as u64)
            } else {
                bytes(size, i as u64)
            };
            write(
                &root.join(format!("d{d:02}/sub{}/f{f:03}.dat", f % 3)),
                &data,
            );
        }
    }
    write(&root.join("big/large.bin"), &bytes(12 << 20, 99));
    write(&root.join("big/dump.sql"), &text(6 << 20, 98));
    write(&root.join("empty-file"), b"");
    fs::create_dir_all(root.join("empty-dir/nested-empty")).unwrap();
    // Symlinks: relative, absolute, dangling, to a directory, with a non-UTF-8 target.
    symlink("d00/sub0/f000.dat", root.join("link-rel")).unwrap();
    symlink("/etc/hostname", root.join("link-abs")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();
    symlink("d01", root.join("link-dir")).unwrap();
    symlink(
        std::ffi::OsStr::from_bytes(b"target-\xff\xfe"),
        root.join("link-bad-utf8"),
    )
    .unwrap();
    // Hard links, including one across directories.
    write(&root.join("hard/one"), &bytes(70_000, 5));
    fs::hard_link(root.join("hard/one"), root.join("hard/two")).unwrap();
    fs::hard_link(root.join("hard/one"), root.join("d02/three")).unwrap();
    // Non-UTF-8 and odd names.
    let odd = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9-latin1"));
    write(&odd, b"latin-1 name");
    write(
        &root.join(std::ffi::OsStr::from_bytes(
            b"dir-\x80\x81/inner \n newline",
        )),
        b"x",
    );
    write(&root.join("spaces and 'quotes' and \"more\""), b"y");
    write(&root.join("unicode-日本語-ü"), b"z");
    // Long path.
    let mut long = root.join("long");
    for i in 0..20 {
        long = long.join(format!("component-number-{i:02}-with-a-long-name"));
    }
    write(&long.join("leaf"), b"deep");
    // Modes.
    write(&root.join("modes/exec"), b"#!/bin/sh\n");
    fs::set_permissions(root.join("modes/exec"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&root.join("modes/private"), b"secret");
    fs::set_permissions(
        root.join("modes/private"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    write(&root.join("modes/setgid"), b"s");
    fs::set_permissions(
        root.join("modes/setgid"),
        fs::Permissions::from_mode(0o2750),
    )
    .unwrap();
    fs::create_dir_all(root.join("modes/sticky")).unwrap();
    fs::set_permissions(
        root.join("modes/sticky"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    // FIFO and socket.
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    // Extended attributes, where the filesystem has them.
    let _ = xattr::set(root.join("a-xattr"), "user.x", b"v");
    write(&root.join("a-xattr"), b"has xattrs");
    let _ = xattr::set(
        root.join("a-xattr"),
        "user.cista.test",
        b"value \x00 with nul",
    );
    let _ = xattr::set(root.join("a-xattr"), "user.empty", b"");
    if is_root() {
        // Ownership and a device node.
        write(&root.join("owned"), b"owned by someone else");
        nix::unistd::chown(&root.join("owned"), Some(1234.into()), Some(5678.into())).unwrap();
        nix::unistd::fchownat(
            None,
            &root.join("link-rel"),
            Some(4321.into()),
            Some(8765.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        nix::sys::stat::mknod(
            &root.join("null-dev"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
    }
    // Times with nanoseconds, including before 1970.
    let t = filetime::FileTime::from_unix_time(1_234_567_890, 123_456_789);
    filetime::set_file_times(root.join("a-xattr"), t, t).unwrap();
    let old = filetime::FileTime::from_unix_time(-86_400 * 365, 5);
    filetime::set_file_times(root.join("empty-file"), old, old).unwrap();
    filetime::set_symlink_file_times(root.join("link-dangling"), t, t).unwrap();
}

#[test]
fn restored_tree_equals_source() {
    let env = Env::new();
    let src = env.path("src");
    build_fixture(&src);
    let expected = snapshot_meta(&src);
    assert!(
        expected.len() > 2400,
        "fixture has {} entries",
        expected.len()
    );

    let sum = env.backup(&[&src]);
    assert_eq!(sum["errors"], 0);
    let id = sum["snapshot_id"].as_str().unwrap().to_string();
    let target = env.path("restore");
    let out = env.ok(&[
        "restore",
        &id,
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert!(out.contains("verified"), "{out}");
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&expected, &src, &restored);

    // Restoring the same snapshot by SNAPSHOT:SUBPATH puts that directory's content at the target.
    let sub = format!("{}:{}/d03", id, src.display());
    let t2 = env.path("restore-sub");
    env.ok(&["restore", &sub, "--target", t2.to_str().unwrap()]);
    assert_eq!(
        fs::read(t2.join("sub0/f000.dat")).unwrap(),
        fs::read(src.join("d03/sub0/f000.dat")).unwrap()
    );
    assert!(!t2.join("d03").exists());

    env.ok(&["check", "--read-data"]);
}

#[test]
fn include_and_exclude_select_paths() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    let t = env.path("r1");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--include",
        "*.txt",
    ]);
    let base = t.join(src.strip_prefix("/").unwrap());
    assert!(base.join("a.txt").exists());
    assert!(base.join("sub/deeper/c.txt").exists());
    assert!(!base.join("sub/b.bin").exists());
    assert!(!base.join("empty").exists());

    let t = env.path("r2");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--exclude",
        "deeper",
    ]);
    let base = t.join(src.strip_prefix("/").unwrap());
    assert!(base.join("sub/b.bin").exists());
    assert!(!base.join("sub/deeper").exists());
}

#[test]
fn dump_writes_one_file() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    let p = format!("{}/sub/b.bin", src.display());
    let o = env.cmd(&["dump", "latest", &p]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, bytes(300_000, 1));
    let o = env.run(&["dump", "latest", &format!("{}/nope", src.display())]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
}

#[test]
fn sparse_file_over_4gib_restores_sparse() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let big = src.join("sparse.img");
    let size: u64 = (4 << 30) + (3 << 20) + 12345;
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(&big).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(2 << 30)).unwrap();
        f.write_all(&bytes(100_000, 3)).unwrap();
        f.seek(SeekFrom::Start(size - 5)).unwrap();
        f.write_all(b"tail!").unwrap();
        f.set_len(size).unwrap();
    }
    let sum = env.backup(&[&src]);
    assert_eq!(sum["total_bytes_processed"], size);
    // Zeros deduplicate: the repository holds a few MiB, not 4 GiB.
    let repo_bytes: u64 = walk_files(&env.repo().join("data"))
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(repo_bytes < 20 << 20, "repository is {repo_bytes} bytes");

    let t = env.path("r");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--sparse",
        "--verify",
    ]);
    let r = t.join(big.strip_prefix("/").unwrap());
    let m = fs::metadata(&r).unwrap();
    assert_eq!(m.len(), size);
    assert!(
        m.blocks() * 512 < 64 << 20,
        "restored file uses {} bytes on disk",
        m.blocks() * 512
    );
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(&r).unwrap();
    let mut buf = [0u8; 5];
    f.seek(SeekFrom::Start(size - 5)).unwrap();
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"tail!");
    let mut mid = vec![0u8; 100_000];
    f.seek(SeekFrom::Start(2 << 30)).unwrap();
    f.read_exact(&mut mid).unwrap();
    assert_eq!(mid, bytes(100_000, 3));
}

#[test]
fn restore_of_single_file_subpath() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    let t = env.path("r");
    let spec = format!("latest:{}/sub/b.bin", src.display());
    env.ok(&["restore", &spec, "--target", t.to_str().unwrap()]);
    assert_eq!(fs::read(t.join("b.bin")).unwrap(), bytes(300_000, 1));
}

/// Restore reads each blob once and writes it wherever it is needed: the same chunk repeated
/// inside a file, shared by several files, and (with --sparse) all-zero chunks left as holes.
#[test]
fn blobs_repeated_within_and_across_files_restore_everywhere() {
    let env = Env::new();
    let src = env.path("src");
    let r = bytes(3 << 20, 7);
    let rep: Vec<u8> = [&r[..], &r[..], &r[..], &r[..], b"tail"].concat();
    write(&src.join("rep.bin"), &rep);
    write(&src.join("copy-a.bin"), &r);
    write(&src.join("sub/copy-b.bin"), &r);
    let mut holes = vec![0u8; 24 << 20];
    holes.extend_from_slice(&r[..1000]);
    holes.extend(std::iter::repeat_n(0u8, 9 << 20));
    write(&src.join("holes.bin"), &holes);
    env.backup(&[&src]);
    let stats = env.json(&["stats", "--mode", "raw-data"]);
    // Which chunks repeat inside rep.bin depends on the repository's random chunker key, but
    // the second whole copy of `r` always adds nothing.
    let total = (rep.len() + 2 * r.len() + holes.len()) as u64;
    assert!(
        stats["total_uncompressed_size"].as_u64().unwrap() <= total - r.len() as u64,
        "repeated chunks should be stored once: {stats}"
    );

    let t = env.path("r");
    env.ok(&[
        "restore",
        "latest",
        "--sparse",
        "--target",
        t.to_str().unwrap(),
    ]);
    let out = t.join(src.strip_prefix("/").unwrap());
    assert_eq!(fs::read(out.join("rep.bin")).unwrap(), rep);
    assert_eq!(fs::read(out.join("copy-a.bin")).unwrap(), r);
    assert_eq!(fs::read(out.join("sub/copy-b.bin")).unwrap(), r);
    assert_eq!(fs::read(out.join("holes.bin")).unwrap(), holes);
    let m = fs::metadata(out.join("holes.bin")).unwrap();
    assert!(
        m.blocks() * 512 < 16 << 20,
        "zero chunks were written instead of left as holes: {} bytes allocated",
        m.blocks() * 512
    );

    // dump reads the same blobs a window at a time (8 blobs / 8 MiB): several windows here.
    for (name, want) in [("rep.bin", &rep), ("holes.bin", &holes)] {
        let o = env
            .cmd(&["dump", "latest", &format!("{}/{name}", src.display())])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout == *want, "dump of {name} differs");
    }

    // Restoring again over the same target replaces the files with the same content, and a
    // symlink planted where a file goes is replaced, not written through.
    let outside = env.path("outside.txt");
    fs::write(&outside, b"keep me").unwrap();
    fs::remove_file(out.join("copy-a.bin")).unwrap();
    symlink(&outside, out.join("copy-a.bin")).unwrap();
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(fs::read(out.join("rep.bin")).unwrap(), rep);
    assert_eq!(fs::read(out.join("holes.bin")).unwrap(), holes);
    assert_eq!(fs::read(&outside).unwrap(), b"keep me");
    assert!(fs::symlink_metadata(out.join("copy-a.bin"))
        .unwrap()
        .is_file());
    assert_eq!(fs::read(out.join("copy-a.bin")).unwrap(), r);
}

/// The last blob of the file at `path` in the latest snapshot, damaged in its pack; returns
/// the blob's and the pack's ids.
fn damage_last_blob(env: &Env, path: &str) -> (String, String) {
    let last = |c: &[cista::Id]| {
        assert!(c.len() >= 2, "a multi-blob file");
        *c.last().unwrap()
    };
    let (blob, pack) = damage_blob(env, path, last, 10);
    let pack = pack.file_name().unwrap().to_string_lossy().into_owned();
    (blob.to_hex(), pack)
}

/// `dump` verifies a whole file before writing any of it: a damaged blob (here the last one,
/// several windows in) writes nothing and exits 1, so `dump | psql -1` commits nothing;
/// `--stream` fails too, after writing what came before the damage.
#[test]
fn dump_of_a_damaged_file_writes_nothing_unless_streaming() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), b"before\n");
    // 20 MiB of random bytes: about 20 chunks, three windows or more (8 MiB each).
    let data = bytes(20 << 20, 11);
    write(&src.join("big.bin"), &data);
    write(&src.join("z.txt"), b"after\n");
    env.backup(&[&src]);
    let path = format!("{}/big.bin", src.display());
    for args in [
        vec!["dump", "latest", &path],
        vec!["dump", "--stream", "latest", &path],
    ] {
        let o = env.run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(o.stdout == data, "{args:?}: the dump differs");
    }

    let (blob, pack) = damage_last_blob(&env, &path);
    let o = env.run(&["dump", "latest", &path]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "{} bytes written", o.stdout.len());
    let err = stderr(&o);
    for name in [&blob, &pack, &path] {
        assert!(
            err.contains(name.as_str()),
            "the error does not name {name}: {err}"
        );
    }
    assert!(err.contains("nothing of it was written"), "{err}");

    let o = env.run(&["dump", "--stream", "latest", &path]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        !o.stdout.is_empty() && o.stdout.len() < data.len() && data.starts_with(&o.stdout),
        "--stream writes the verified bytes before the damage: {} bytes",
        o.stdout.len()
    );
    assert!(stderr(&o).contains(&blob), "{}", stderr(&o));

    // A directory: the entries before the damaged file are written, the file's is not, and
    // the archive has no end.
    let o = env.run(&["dump", "latest", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&blob), "{}", stderr(&o));
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let names: Vec<Vec<u8>> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect();
    assert_eq!(names, [b"a.txt".to_vec()]);
    assert!(o.stdout.len() < 4096, "{} bytes", o.stdout.len());
}

/// `dump` of a directory writes a tar of everything below it, by paths relative to it: each
/// entry's kind, mode, owner, times, link target and content as backed up.
#[test]
fn dump_of_a_directory_is_a_tar_of_it() {
    let env = Env::new();
    let src = env.path("src");
    build_fixture(&src);
    let expected = snapshot_meta(&src);
    env.backup(&[&src]);
    let o = env.run(&["dump", "latest", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = o.stdout;

    let mut seen = Vec::new();
    let mut ar = tar::Archive::new(&out[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let key = e
            .path_bytes()
            .strip_suffix(b"/")
            .map_or_else(|| e.path_bytes().into_owned(), |p| p.to_vec());
        let name = String::from_utf8_lossy(&key).into_owned();
        let m = expected
            .get(&key)
            .unwrap_or_else(|| panic!("{name}: not in the source"));
        let h = e.header().clone();
        use tar::EntryType as T;
        let ty = h.entry_type();
        let want = match m.kind {
            "file" if m.link_group.as_ref().is_some_and(|g| *g != key) => T::Link,
            "file" => T::Regular,
            "dir" => T::Directory,
            "symlink" => T::Symlink,
            "fifo" => T::Fifo,
            "chardev" => T::Char,
            k => panic!("{name}: a {k} in the archive"),
        };
        assert_eq!(ty, want, "{name}");
        assert_eq!(h.mode().unwrap(), m.mode, "{name}: mode");
        assert_eq!(
            (h.uid().unwrap(), h.gid().unwrap()),
            (m.uid as u64, m.gid as u64)
        );
        if m.mtime.0 >= 0 {
            assert_eq!(h.mtime().unwrap(), m.mtime.0 as u64, "{name}: mtime");
        }
        let mut pax_mtime = None;
        let mut xattrs = std::collections::BTreeMap::new();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for x in pax {
                let x = x.unwrap();
                let k = x.key().unwrap();
                if k == "mtime" {
                    pax_mtime = Some(x.value().unwrap().to_string());
                } else if let Some(n) = k.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(n.as_bytes().to_vec(), x.value_bytes().to_vec());
                }
            }
        }
        if m.mtime.0 >= 0 && m.mtime.1 != 0 {
            let want = format!("{}.{:09}", m.mtime.0, m.mtime.1);
            assert_eq!(pax_mtime.as_deref(), Some(want.as_str()), "{name}: mtime");
        }
        assert_eq!(xattrs, m.xattrs, "{name}: xattrs");
        match ty {
            T::Symlink => assert_eq!(e.link_name_bytes().as_deref(), m.target.as_deref()),
            T::Link => assert_eq!(e.link_name_bytes().as_deref(), m.link_group.as_deref()),
            T::Char => {
                let dev = nix::sys::stat::makedev(
                    h.device_major().unwrap().unwrap().into(),
                    h.device_minor().unwrap().unwrap().into(),
                );
                assert_eq!(dev, m.rdev, "{name}: device");
            }
            T::Regular => {
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut content).unwrap();
                let want = fs::read(src.join(std::ffi::OsStr::from_bytes(&key))).unwrap();
                assert!(content == want, "{name}: content differs");
            }
            _ => {}
        }
        seen.push(key);
    }
    // Every entry once, depth first in name order; the socket left out (tar has no sockets).
    let mut want: Vec<Vec<u8>> = expected.keys().filter(|k| *k != b"sock").cloned().collect();
    want.sort();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, want);
    assert_eq!(seen.len(), want.len(), "an entry repeats");

    // Unpacked, files, directories and symlinks are the source's.
    let t = env.path("unpacked");
    let mut ar = tar::Archive::new(&out[..]);
    ar.set_preserve_permissions(true);
    ar.unpack(&t).unwrap();
    for (k, m) in &expected {
        let p = t.join(std::ffi::OsStr::from_bytes(k));
        let name = String::from_utf8_lossy(k);
        match m.kind {
            "file" => {
                let want = fs::read(src.join(std::ffi::OsStr::from_bytes(k))).unwrap();
                assert!(fs::read(&p).unwrap() == want, "{name}: content differs");
                assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, m.mode, "{name}");
            }
            "dir" => assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, m.mode, "{name}"),
            "symlink" => assert_eq!(
                fs::read_link(&p).unwrap().as_os_str().as_bytes(),
                m.target.as_deref().unwrap(),
                "{name}"
            ),
            _ => {}
        }
    }
    let two = fs::metadata(t.join("hard/two")).unwrap();
    assert_eq!(
        two.ino(),
        fs::metadata(t.join("d02/three")).unwrap().ino(),
        "a hard link"
    );
}
