//! On an object store every request waits a round trip, so check --read-data, prune's repack,
//! copy and forget keep several requests in flight, and no more than they may hold in memory.
//! A store "far away" (each read or delete sleeps) counts how many are under way at once; the
//! S3 tests run the same commands against a real (moto) server end to end.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cista::backend::{Backend, FileType, MemBackend};
use cista::commands::{self, LockOptions};
use cista::{BackupOptions, Source};
use cista::{CheckOptions, Subset};
use cista::{InitOptions, ObjectKind, ProblemKind, Repository};
use common::*;

/// What `Far` counts: whole-pack reads, ranged pack reads, snapshot deletes.
const WHOLE: usize = 0;
const RANGE: usize = 1;
const DELETE: usize = 2;

/// An in-memory store that, once armed, takes `DELAY` for each pack read and each delete and
/// records the most of each kind under way at once. It says it is worth 4 connections, as
/// an object store does (`-o connections=4`, the default): commands should then keep 8
/// requests in flight.
#[derive(Debug, Default)]
struct Far {
    inner: MemBackend,
    armed: AtomicBool,
    now: [AtomicUsize; 3],
    peak: [AtomicUsize; 3],
}

const DELAY: Duration = Duration::from_millis(40);
const CONNECTIONS: usize = 4;

impl Far {
    fn wait<R>(&self, kind: usize, f: impl FnOnce() -> R) -> R {
        if !self.armed.load(SeqCst) {
            return f();
        }
        let n = self.now[kind].fetch_add(1, SeqCst) + 1;
        self.peak[kind].fetch_max(n, SeqCst);
        std::thread::sleep(DELAY);
        let r = f();
        self.now[kind].fetch_sub(1, SeqCst);
        r
    }

    fn arm(&self) {
        for p in &self.peak {
            p.store(0, SeqCst);
        }
        self.armed.store(true, SeqCst);
    }

    fn peak(&self, kind: usize) -> usize {
        self.peak[kind].load(SeqCst)
    }
}

impl Backend for Far {
    fn location(&self) -> String {
        "far".into()
    }
    fn create(&self) -> cista::Result<()> {
        self.inner.create()
    }
    fn read(&self, t: FileType, name: &str) -> cista::Result<Vec<u8>> {
        if t == FileType::Pack {
            return self.wait(WHOLE, || self.inner.read(t, name));
        }
        self.inner.read(t, name)
    }
    fn read_range(&self, t: FileType, name: &str, off: u64, len: u64) -> cista::Result<Vec<u8>> {
        if t == FileType::Pack {
            return self.wait(RANGE, || self.inner.read_range(t, name, off, len));
        }
        self.inner.read_range(t, name, off, len)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> cista::Result<()> {
        self.inner.write(t, name, data)
    }
    fn list(&self, t: FileType) -> cista::Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, name: &str) -> cista::Result<()> {
        if t == FileType::Snapshot {
            return self.wait(DELETE, || self.inner.remove(t, name));
        }
        self.inner.remove(t, name)
    }
    fn replace_config(&self, data: &[u8]) -> cista::Result<()> {
        self.inner.replace_config(data)
    }
    fn connections(&self) -> usize {
        CONNECTIONS
    }
}

/// The in-flight pool has 2 x connections threads, or one per core if there are more.
fn pool_width() -> usize {
    (2 * CONNECTIONS).max(rayon::current_num_threads())
}

/// A repository with 1 MiB packs on a `Far` store.
fn far_repo() -> (Arc<Far>, Repository) {
    let far = Arc::new(Far::default());
    let opts = {
        let mut o = InitOptions::default();
        o.pack_size = 1 << 20;
        o
    };
    let repo = Repository::init(far.clone(), PASSWORD.as_bytes(), opts).unwrap();
    (far, repo)
}

/// Backs up `dir` (every file read again) and returns the snapshot id.
fn back_up(repo: &Repository, dir: &std::path::Path) -> cista::Id {
    let opts = {
        let mut o = BackupOptions::default();
        o.force = true;
        o
    };
    lib_backup(repo, Source::Paths(vec![dir.into()]), &opts)
        .unwrap()
        .snapshot_id
        .expect("a new snapshot")
}

/// `n` incompressible files of `size` bytes in `dir`.
fn files(dir: &std::path::Path, n: usize, size: usize) {
    for i in 0..n {
        write(&dir.join(format!("f{i:03}")), &bytes(size, i as u64));
    }
}

fn read_all(repo: &Repository) -> cista::CheckReport {
    lib_check(repo, &{
        let mut o = CheckOptions::default();
        o.read_data = Some(Subset::All);
        o
    })
    .unwrap()
}

#[test]
fn check_read_data_keeps_eight_packs_in_flight_and_no_more() {
    let env = Env::empty();
    let src = env.path("src");
    files(&src, 24, 1 << 20);
    let (far, repo) = far_repo();
    back_up(&repo, &src);
    let packs = repo.backend().list(FileType::Pack).unwrap().len();
    assert!(packs >= 20, "{packs} packs");
    far.arm();
    let r = read_all(&repo);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.packs_read, packs);
    // One per core (2 in CI) before; at most 2 x connections packs may be held at once.
    let peak = far.peak(WHOLE);
    assert!((6..=2 * CONNECTIONS).contains(&peak), "peak {peak}");
}

#[test]
fn check_read_data_in_flight_still_names_a_damaged_pack() {
    let env = Env::empty();
    let src = env.path("src");
    files(&src, 12, 1 << 20);
    let (far, repo) = far_repo();
    back_up(&repo, &src);
    let all = repo.backend().list(FileType::Pack).unwrap();
    // The largest pack holds file data.
    let (victim, _) = all.iter().max_by_key(|(_, s)| *s).unwrap().clone();
    let mut b = far.inner.read(FileType::Pack, &victim).unwrap();
    b[100] ^= 1;
    far.inner.remove(FileType::Pack, &victim).unwrap();
    far.inner.write(FileType::Pack, &victim, &b).unwrap();
    far.arm();
    let r = read_all(&repo);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].message.contains(&victim), "{:?}", r.errors);
    assert_eq!(r.errors[0].kind, ProblemKind::Damaged);
    let object = r.errors[0].object.as_ref().expect("names the pack");
    assert_eq!((object.kind, &object.id), (ObjectKind::Pack, &victim));
    // Every other pack was read and verified.
    assert_eq!(r.packs_read, all.len() - 1);
}

#[test]
fn prune_repacks_with_packs_in_flight_and_loses_nothing() {
    let env = Env::empty();
    let src = env.path("src");
    // 200 KiB files (one blob each), about five to a 1 MiB pack.
    files(&src, 160, 200 << 10);
    let (far, repo) = far_repo();
    let first = back_up(&repo, &src);
    // Half the files go: every pack ends up partly used and is repacked.
    for i in (0..160).step_by(2) {
        std::fs::remove_file(src.join(format!("f{i:03}"))).unwrap();
    }
    let expected = snapshot_meta(&src);
    back_up(&repo, &src);
    repo.remove_snapshots(&[first], || Ok(())).unwrap();
    far.arm();
    let opts = {
        let mut o = cista::PruneOptions::default();
        o.max_unused = cista::MaxUnused::Bytes(0);
        o
    };
    let rep = lib_prune(&repo, &opts).unwrap();
    assert!(rep.packs_repacked >= 16, "{rep:?}");
    let peak = far.peak(WHOLE);
    assert!((6..=2 * CONNECTIONS).contains(&peak), "peak {peak}");

    let r = read_all(&repo);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let (_, snap) = repo.snapshots().unwrap().pop().unwrap();
    let target = env.path("restore");
    let ropts = {
        let mut o = cista::RestoreOptions::default();
        o.target = target.clone();
        o
    };
    let sum = lib_restore(&repo, &snap, "", &ropts).unwrap();
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&expected, &src, &restored);
}

#[test]
fn forget_deletes_snapshots_in_flight() {
    let env = Env::empty();
    let src = env.path("src");
    files(&src, 2, 1000);
    let (far, repo) = far_repo();
    let keep = back_up(&repo, &src);
    let (_, snap) = repo.snapshots().unwrap().pop().unwrap();
    let ids: Vec<cista::Id> = (0..24)
        .map(|i| {
            let mut s = snap.clone();
            s.hostname = format!("host{i}");
            repo.save_snapshot(&s).unwrap()
        })
        .collect();
    far.arm();
    let checks = AtomicUsize::new(0);
    repo.remove_snapshots(&ids, || {
        checks.fetch_add(1, SeqCst);
        Ok(())
    })
    .unwrap();
    // The lock is checked before every delete.
    assert_eq!(checks.load(SeqCst), ids.len());
    let left: Vec<cista::Id> = repo.snapshots().unwrap().into_iter().map(|s| s.0).collect();
    assert_eq!(left, vec![keep]);
    let peak = far.peak(DELETE);
    assert!((6..=pool_width()).contains(&peak), "peak {peak}");
}

#[test]
fn copy_reads_the_source_in_flight() {
    let env = Env::empty();
    let src = env.path("src");
    // Small files (one read each) and a large one of many blobs.
    files(&src, 40, 20 << 10);
    write(&src.join("big"), &bytes(12 << 20, 99));
    let expected = snapshot_meta(&src);
    let (far, from) = far_repo();
    let id = back_up(&from, &src);
    let snap = from.load_snapshot(&id).unwrap();
    let to_dir = env.path("to");
    let to = Repository::init(
        Arc::new(cista::backend::LocalBackend::new(&to_dir)),
        PASSWORD.as_bytes(),
        Default::default(),
    )
    .unwrap();
    let from_ix = from.lock(&LockOptions::none()).unwrap().indexed().unwrap();
    let to_l = to.lock(&LockOptions::none()).unwrap();
    far.arm();
    let copied = commands::copy(
        &to_l,
        &from_ix,
        &[(id, snap)],
        &Default::default(),
        &mut |_, _, _| {},
    )
    .unwrap();
    let new = match copied.snapshots[..] {
        [(_, commands::Copied::As(new))] => new,
        ref other => panic!("not copied: {other:?}"),
    };
    let peak = far.peak(RANGE);
    assert!((6..=pool_width()).contains(&peak), "peak {peak}");

    let target = env.path("restore");
    let ropts = {
        let mut o = cista::RestoreOptions::default();
        o.target = target.clone();
        o
    };
    let copied = to.load_snapshot(&new).unwrap();
    let sum = lib_restore(&to, &copied, "", &ropts).unwrap();
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    assert_same_tree(
        &expected,
        &src,
        &target.join(src.strip_prefix("/").unwrap()),
    );
}

// The same commands end to end against a real S3 server (moto).

#[test]
fn s3_check_read_data_names_a_damaged_pack() {
    let env = Env::s3("inflight-check");
    let src = env.path("src");
    files(&src, 6, 1 << 20);
    env.backup(&[&src]);
    env.ok(&["check", "--read-data"]);
    let loc = env.location();
    let bucket = loc["s3://".len()..].split('/').next().unwrap().to_string();
    let store = s3::store(&bucket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let prefix = object_store::path::Path::from("repo/data");
    let packs: Vec<_> = rt
        .block_on(store.list(Some(&prefix)).try_collect::<Vec<_>>())
        .unwrap();
    let victim = packs
        .iter()
        .max_by_key(|m| m.size)
        .unwrap()
        .location
        .clone();
    let mut b = rt
        .block_on(async { store.get(&victim).await.unwrap().bytes().await })
        .unwrap()
        .to_vec();
    b[100] ^= 1;
    rt.block_on(store.put(&victim, b.into())).unwrap();
    let o = env.run(&["check", "--read-data"]);
    assert!(!o.status.success());
    let name = victim.filename().unwrap().to_string();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(out.contains(&name), "{out}");
}

#[test]
fn s3_forget_of_many_snapshots_removes_them_all() {
    let env = Env::s3("inflight-forget");
    let src = env.path("src");
    files(&src, 2, 1000);
    for i in 0..12 {
        let t = format!("2026-01-{:02}T00:00:00Z", i + 1);
        env.ok(&["backup", src.to_str().unwrap(), "--time", &t]);
    }
    env.ok(&["forget", "--keep-last", "1"]);
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    assert_eq!(snaps[0]["time"], "2026-01-12T00:00:00.000000000+00:00");
    env.ok(&["check"]);
}

#[test]
fn s3_copy_to_local_restores_the_same_tree() {
    let remote = Env::s3("inflight-copy");
    let src = remote.path("src");
    small_tree(&src);
    files(&src.join("many"), 30, 3000);
    write(&src.join("big"), &bytes(10 << 20, 5));
    let expected = snapshot_meta(&src);
    remote.backup(&[&src]);
    let local = Env::new();
    let loc = remote.location();
    let mut c = local.cmd(&["copy", "--from-repo", &loc]);
    c.env("CISTA_FROM_PASSWORD", PASSWORD).envs(s3::env_vars());
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let restored = restore_latest(&local, "r", &src);
    assert_same_tree(&expected, &src, &restored);
    local.ok(&["check", "--read-data"]);
}
