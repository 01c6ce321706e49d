//! A repository that someone else can write to, or a local user can read: planted objects,
//! oversized objects, junk key files, and the file modes of what cista creates.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::*;

/// Stores `bytes` under `dir/<BLAKE3 of bytes>`: a name that passes the storage-hash check,
/// so only authentication can reject it (what anyone with put rights can do).
fn plant(env: &Env, dir: &str, bytes: &[u8]) -> String {
    let name = cista::Id::of_bytes(bytes).to_hex();
    fs::write(env.repo().join(dir).join(&name), bytes).unwrap();
    name
}

/// Junk that looks like a sealed file of `kind` (right magic, kind and version bytes).
fn sealed_junk(kind: u8, seed: u64) -> Vec<u8> {
    let mut b = b"CSTA".to_vec();
    b.extend_from_slice(&[kind, 1]);
    b.extend_from_slice(&bytes(200, seed));
    b
}

fn snapshot_count(env: &Env) -> usize {
    env.json(&["snapshots"]).as_array().unwrap().len()
}

#[test]
fn planted_snapshot_and_index_files_stop_nothing_but_prune() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let meta = snapshot_meta(&src);
    env.backup(&[&src]);
    let junk_snap = plant(&env, "snapshots", &sealed_junk(3, 1));
    let junk_index = plant(&env, "index", &sealed_junk(2, 2));
    // Not even a cista file, under a name that does not match its bytes.
    let stray = "ab".repeat(32);
    fs::write(env.repo().join("snapshots").join(&stray), b"junk").unwrap();

    let o = env.run(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in [&junk_snap, &junk_index, &stray] {
        assert!(stderr(&o).contains(name.as_str()), "{name}: {}", stderr(&o));
    }
    assert_eq!(snapshot_count(&env), 2);
    restore_latest_matches(&env, "restored", &meta, &src);
    env.ok(&["ls", "latest"]);
    env.ok(&["forget", "--keep-last", "1"]);
    assert_eq!(snapshot_count(&env), 1);

    let o = env.run(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    for name in [&junk_snap, &junk_index, &stray] {
        assert!(all.contains(name.as_str()), "check must name {name}: {all}");
    }

    // Prune refuses while any index file or snapshot is unreadable, and says what to do.
    let o = env.run(&["prune"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&junk_index) && stderr(&o).contains("delete it from the store"),
        "{}",
        stderr(&o)
    );
    fs::remove_file(env.repo().join("index").join(&junk_index)).unwrap();
    let o = env.run(&["prune"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cista forget"), "{}", stderr(&o));
    env.ok(&["forget", &junk_snap, &stray[..12]]);
    env.ok(&["prune"]);
    env.ok(&["check", "--read-data"]);
    restore_latest_matches(&env, "restored2", &meta, &src);
}

/// Runs cista with its address space capped, so a read of a multi-gigabyte object into memory
/// fails (the process aborts) instead of quietly succeeding on a large machine.
fn run_capped(env: &Env, cache: &Path, args: &[&str]) -> Output {
    let mut c = std::process::Command::new("prlimit");
    c.arg("--as=1610612736")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_cista"))
        .arg("-r")
        .arg(env.repo())
        .args(args)
        .env("CISTA_PASSWORD", PASSWORD)
        .env("CISTA_CACHE_DIR", cache)
        .env_remove("CISTA_REPOSITORY")
        .stdin(std::process::Stdio::null());
    c.output().unwrap()
}

fn junk_key(m_kib: u32, seed: u64) -> Vec<u8> {
    let kf = cista::crypto::KeyFile {
        version: 1,
        created: "2026-12-01T00:00:00+00:00".into(),
        hostname: "intruder".into(),
        username: "x".into(),
        kdf: "argon2id".into(),
        params: cista::crypto::KdfParams { m_kib, t: 3, p: 4 },
        salt: bytes(32, seed).try_into().unwrap(),
        data: bytes(60, seed + 1),
    };
    kf.encode()
}

#[test]
fn oversized_objects_and_costly_key_files_are_refused_before_the_work() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    // Sparse files: gigabytes to whoever reads them, nothing on disk.
    let big = |dir: &str, len: u64| {
        let name = "cd".repeat(31) + &format!("{:02x}", len >> 30);
        let f = fs::File::create(env.repo().join(dir).join(&name)).unwrap();
        f.set_len(len).unwrap();
        name
    };
    let big_snap = big("snapshots", 3 << 30);
    let big_index = big("index", (1 << 30) + (1 << 29));
    // A key file asking for 4 GiB of Argon2id memory (the old ceiling): never run.
    let costly = junk_key(4 << 20, 7);
    let costly_name = cista::Id::of_bytes(&costly).to_hex();
    fs::write(env.repo().join("keys").join(&costly_name), &costly).unwrap();

    let cache = env.path("fresh-cache");
    let o = run_capped(&env, &cache, &["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&big_snap) && err.contains("67108864"), "{err}");
    assert!(
        err.contains(&big_index) && err.contains("1073741824"),
        "{err}"
    );
    let o = run_capped(&env, &cache, &["snapshots", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_capped(&env, &cache, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(out.contains(&big_snap) && out.contains(&big_index), "{out}");
}

#[test]
fn key_files_tried_are_bounded_and_the_hint_comes_first() {
    let env = Env::new();
    let keys = env.repo().join("keys");
    let real = fs::read_dir(&keys).unwrap().next().unwrap().unwrap();
    let real = real.file_name().into_string().unwrap();
    // Key files at the floor's cost that sort before the real one, so an unhinted search
    // meets them first.
    let mut planted = 0;
    let mut seed = 100;
    while planted < cista::MAX_KEY_TRIES + 1 {
        seed += 2;
        let k = junk_key(64 << 10, seed);
        let name = cista::Id::of_bytes(&k).to_hex();
        if name < real {
            fs::write(keys.join(&name), &k).unwrap();
            planted += 1;
        }
    }
    let run = |cache: &str, extra: &[&str]| {
        let mut c = env.cmd(extra);
        c.env("CISTA_CACHE_DIR", env.path(cache));
        c.arg("snapshots");
        c.output().unwrap()
    };
    let o = run("cache-a", &[]);
    assert_eq!(o.status.code(), Some(12), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("stopped after trying 20"),
        "{}",
        stderr(&o)
    );
    let o = run("cache-a", &["--key-hint", &real[..10]]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Remembered for this host: no hint needed any more, and none of the planted keys tried.
    let o = run("cache-a", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hints: Vec<_> = fs::read_dir(env.path("cache-a/key-hints"))
        .unwrap()
        .collect();
    assert_eq!(hints.len(), 1);
    let o = run("cache-b", &["--no-cache"]);
    assert_eq!(o.status.code(), Some(12), "{}", stderr(&o));
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every directory and file below `root` (root included).
fn all_paths(root: &Path) -> (Vec<std::path::PathBuf>, Vec<std::path::PathBuf>) {
    let (mut dirs, mut files) = (vec![root.to_path_buf()], Vec::new());
    let mut i = 0;
    while i < dirs.len() {
        for e in fs::read_dir(&dirs[i]).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
        i += 1;
    }
    (dirs, files)
}

#[test]
fn repository_objects_and_cache_entries_are_private() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    let (dirs, files) = all_paths(&env.repo());
    assert!(files.len() >= 5, "{files:?}");
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o400, "{}", f.display());
    }
    let (dirs, files) = all_paths(&env.path("cache"));
    assert!(!files.is_empty());
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // An operator who shares the repository with a group: new objects follow the config.
    fs::set_permissions(env.repo().join("config"), fs::Permissions::from_mode(0o440)).unwrap();
    write(&src.join("new.bin"), &bytes(100_000, 9));
    env.backup(&[&src]);
    let (_, files) = all_paths(&env.repo().join("snapshots"));
    let modes: Vec<u32> = files.iter().map(|f| mode(f)).collect();
    assert!(
        modes.contains(&0o440) && modes.contains(&0o400),
        "{modes:?}"
    );
}

#[test]
fn object_store_cache_is_private_and_big_objects_are_refused_by_size() {
    let env = Env::s3("hostile-cache");
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    env.ok(&["snapshots"]);
    let (dirs, files) = all_paths(&env.path("cache"));
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().contains("/snapshots/")));
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    // A snapshot one byte over its cap, planted in the bucket.
    let bucket = env.location()["s3://".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let junk = vec![7u8; (64 << 20) + 1];
    let name = cista::Id::of_bytes(&junk).to_hex();
    let store = s3::store(&bucket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = object_store::path::Path::from(format!("repo/snapshots/{name}"));
    rt.block_on(object_store::ObjectStoreExt::put(
        &store,
        &path,
        junk.into(),
    ))
    .unwrap();
    let o = env.run(&["snapshots"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&name) && stderr(&o).contains("67108864"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_stale_remembered_key_is_passed_over_quietly_a_wrong_given_hint_is_not() {
    let env = Env::new();
    env.ok(&["snapshots"]); // remembers the key that opened it
    fs::remove_dir_all(env.repo()).unwrap();
    env.ok(&["init"]); // the same location, a new key
    let o = env.run(&["snapshots"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("key hint"), "{}", stderr(&o));
    let o = env.run(&["--key-hint", "0123abcd", "snapshots"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no key file matches the key hint 0123abcd"),
        "{}",
        stderr(&o)
    );
}
