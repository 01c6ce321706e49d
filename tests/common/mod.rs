//! Helpers shared by the integration tests: a CLI runner, a temporary repository, fixture trees
//! and a tree comparison that checks content and metadata.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod azure;
pub mod evidence;
pub mod gcs;
pub mod hooked;
pub mod jobs;
pub mod lib_calls;
#[allow(unused_imports)]
pub use lib_calls::*;
pub mod outage;
pub mod postgres;
pub mod s3;
pub mod server;

pub const PASSWORD: &str = "correct horse battery staple";

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A finished command's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary directory holding a repository and whatever else a test needs.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Repository location when not the local `repo` directory (an object store URL).
    pub location: Option<String>,
}

impl Env {
    /// A fresh directory with an initialised repository at `repo`.
    pub fn new() -> Env {
        let e = Env::empty();
        e.ok(&["init"]);
        e
    }

    pub fn empty() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("cista-test")
                .tempdir()
                .unwrap(),
            location: None,
        }
    }

    /// A fresh directory and an initialised repository in a new bucket of the test S3 server.
    pub fn s3(name: &str) -> Env {
        let mut e = Env::empty();
        e.location = Some(format!("s3://{}/repo", s3::bucket(name)));
        e.ok(&["init"]);
        e
    }

    /// A fresh directory and an initialised repository in a new container of the test Azure
    /// server (Azurite).
    pub fn azure(name: &str) -> Env {
        let mut e = Env::empty();
        e.location = Some(format!("az://{}/repo", azure::container(name)));
        e.ok(&["init"]);
        e
    }

    /// The environment variables `cmd` and `open` set for this repository's store.
    pub fn store_env(&self) -> Vec<(&'static str, String)> {
        self.location.as_deref().map(store_env).unwrap_or_default()
    }

    pub fn location(&self) -> String {
        self.location
            .clone()
            .unwrap_or_else(|| self.repo().display().to_string())
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cista"));
        c.arg("-r").arg(self.location()).args(args);
        c.envs(self.store_env());
        c.env("CISTA_PASSWORD", PASSWORD);
        c.env("CISTA_CACHE_DIR", self.path("cache"));
        c.env_remove("CISTA_REPOSITORY");
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "cista {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        // Whole output (pretty JSON), else the last line (a summary after progress lines).
        serde_json::from_str(&out).unwrap_or_else(|_| {
            let last = out.lines().last().unwrap_or_default();
            serde_json::from_str(last).unwrap_or_else(|e| panic!("bad json {last:?}: {e}"))
        })
    }

    /// Backs up `paths` and returns the JSON summary.
    pub fn backup(&self, paths: &[&Path]) -> serde_json::Value {
        let mut a: Vec<&str> = vec!["backup"];
        a.extend(paths.iter().map(|p| p.to_str().unwrap()));
        self.json(&a)
    }

    /// Opens the repository through the library.
    pub fn open(&self) -> cista::Repository {
        self.set_store_env();
        let be = cista::backend::open_location(&self.location(), &[]).unwrap();
        cista::Repository::open(be, PASSWORD.as_bytes()).unwrap()
    }

    /// Sets this repository's store variables in this process, for the library.
    pub fn set_store_env(&self) {
        for (k, v) in self.store_env() {
            std::env::set_var(k, v);
        }
    }

    pub fn count(&self, dir: &str) -> usize {
        walk_files(&self.repo().join(dir)).len()
    }
}

/// The environment variables of the test server that serves `location` (by its scheme).
pub fn store_env(location: &str) -> Vec<(&'static str, String)> {
    match location.split_once("://").map(|x| x.0) {
        Some("s3") => s3::env_vars(),
        Some("az") => azure::env_vars(),
        Some("gs") => gcs::env_vars(),
        _ => Vec::new(),
    }
}

pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; n];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Compressible text-like bytes.
pub fn text(n: usize, seed: u64) -> Vec<u8> {
    let words = [
        "alpha ",
        "beta ",
        "gamma ",
        "delta\n",
        "select * from t;\n",
        "0123456789 ",
    ];
    let r = bytes(n / 4 + 1, seed);
    let mut out = Vec::with_capacity(n + 20);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(words[r[i % r.len()] as usize % words.len()].as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

pub fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// A small tree with a few files, for tests that need any data.
pub fn small_tree(root: &Path) {
    write(&root.join("a.txt"), b"hello world\n");
    write(&root.join("sub/b.bin"), &bytes(300_000, 1));
    write(&root.join("sub/deeper/c.txt"), &text(50_000, 2));
    write(&root.join("empty"), b"");
}

/// What a test can expect of one path.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub atime: Option<(i64, i64)>,
    pub target: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Index of the first path with the same inode, for hard links.
    pub link_group: Option<Vec<u8>>,
}

fn kind(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_block_device() {
        "blockdev"
    } else {
        "file"
    }
}

/// Metadata of every path below `root`, keyed by relative raw path.
pub fn snapshot_meta(root: &Path) -> BTreeMap<Vec<u8>, Meta> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    fn rec(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<Vec<u8>, Meta>,
        inodes: &mut HashMap<(u64, u64), Vec<u8>>,
    ) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let k = kind(&m.file_type());
            let mut xattrs = BTreeMap::new();
            if let Ok(list) = xattr::list(&p) {
                for x in list {
                    if let Ok(Some(v)) = xattr::get(&p, &x) {
                        xattrs.insert(x.as_bytes().to_vec(), v);
                    }
                }
            }
            let link_group = if k == "file" && m.nlink() > 1 {
                Some(
                    inodes
                        .entry((m.dev(), m.ino()))
                        .or_insert_with(|| rel.clone())
                        .clone(),
                )
            } else {
                None
            };
            out.insert(
                rel,
                Meta {
                    kind: k,
                    mode: m.permissions().mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    size: if k == "file" { m.size() } else { 0 },
                    mtime: (m.mtime(), m.mtime_nsec()),
                    // Listing a directory or reading a link may update its atime (there is no
                    // O_NOATIME for them); files are read with O_NOATIME.
                    atime: (k != "dir" && k != "symlink").then(|| (m.atime(), m.atime_nsec())),
                    target: (k == "symlink")
                        .then(|| fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()),
                    rdev: if k == "chardev" || k == "blockdev" {
                        m.rdev()
                    } else {
                        0
                    },
                    xattrs,
                    link_group,
                },
            );
            if k == "dir" {
                rec(root, &p, out, inodes);
            }
        }
    }
    rec(root, root, &mut out, &mut inodes);
    out
}

/// Asserts two trees are equal in metadata (`a` recorded earlier) and content.
pub fn assert_same_tree(expected: &BTreeMap<Vec<u8>, Meta>, src: &Path, restored: &Path) {
    let got = snapshot_meta(restored);
    let ek: Vec<_> = expected
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    let gk: Vec<_> = got
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(ek, gk, "restored paths differ");
    for (k, e) in expected {
        let g = &got[k];
        let name = String::from_utf8_lossy(k);
        let mut e = e.clone();
        let mut g = g.clone();
        if !is_root() {
            (e.uid, e.gid, g.uid, g.gid) = (0, 0, 0, 0);
        }
        // Backups record no atime unless --with-atime; restore then sets it to the mtime.
        e.atime = e.atime.map(|_| e.mtime);
        assert_eq!(e, g, "metadata of {name} differs");
        if e.kind == "file" {
            let a = fs::read(src.join(OsStr::from_bytes(k))).unwrap();
            let b = fs::read(restored.join(OsStr::from_bytes(k))).unwrap();
            assert!(a == b, "content of {name} differs");
        }
    }
}

/// Restores the latest snapshot of `env` under `dir` with `--verify`; returns where `src`
/// (an absolute path in the snapshot) was restored.
pub fn restore_latest(env: &Env, dir: &str, src: &Path) -> PathBuf {
    let t = env.path(dir);
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    t.join(src.strip_prefix("/").unwrap())
}

/// `restore_latest`, then checks that `src` came back equal to `expected` (metadata recorded
/// before the backup) and to its current content.
pub fn restore_latest_matches(
    env: &Env,
    dir: &str,
    expected: &BTreeMap<Vec<u8>, Meta>,
    src: &Path,
) {
    assert_same_tree(expected, src, &restore_latest(env, dir, src));
}

/// Flips one bit of the byte at `pos` (or the last byte) of a stored file.
pub fn flip(path: &Path, pos: usize) {
    let mut b = fs::read(path).unwrap();
    let i = pos.min(b.len() - 1);
    b[i] ^= 0x20;
    fs::write(path, b).unwrap();
}

/// Damages one data blob of the file at `path` in the latest snapshot of the local
/// repository, the one `pick` chooses from the file's blob list, by flipping the byte `at`
/// bytes into it; returns the blob's id and the damaged pack file.
pub fn damage_blob(
    env: &Env,
    path: &str,
    pick: fn(&[cista::Id]) -> cista::Id,
    at: usize,
) -> (cista::Id, PathBuf) {
    let repo = env.open();
    let index = cista::Index::load(&repo).unwrap();
    let (_, snap) = repo
        .resolve_snapshot("latest", &Default::default())
        .unwrap();
    let node = lib_find_node(&repo, &snap.tree, path).unwrap();
    let blob = pick(&node.content);
    let loc = index.get(cista::format::BlobType::Data, &blob).unwrap();
    let hex = loc.pack.to_hex();
    let pack = env.repo().join("data").join(&hex[..2]).join(&hex);
    flip(&pack, loc.offset as usize + at);
    (blob, pack)
}

/// Damages the middle data blob of the file at `path` (the chunker's key is random per
/// repository, so a large file may be one chunk or several).
pub fn damage_middle_blob(env: &Env, path: &str) -> (cista::Id, PathBuf) {
    damage_blob(env, path, |c| c[c.len() / 2], 100)
}
