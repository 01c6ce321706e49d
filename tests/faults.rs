//! Crash consistency: a backend that fails part way, and a backup killed with SIGKILL, never
//! leave a repository that `check` calls damaged.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cista::archiver::{backup, BackupOptions, Source};
use cista::backend::{Backend, FileType, LocalBackend};
use cista::checker::{check, CheckOptions, Subset};
use cista::index::Index;
use cista::{InitOptions, Repository};
use common::*;

/// Fails every write after the first `ok_writes`, like a disk that fills or a link that drops.
#[derive(Debug)]
struct FailingBackend {
    inner: LocalBackend,
    ok_writes: usize,
    writes: AtomicUsize,
}

impl Backend for FailingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> cista::Result<()> {
        self.inner.create()
    }
    fn read(&self, t: FileType, name: &str) -> cista::Result<Vec<u8>> {
        self.inner.read(t, name)
    }
    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> cista::Result<Vec<u8>> {
        self.inner.read_range(t, name, offset, length)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> cista::Result<()> {
        if t != FileType::Lock && self.writes.fetch_add(1, Ordering::SeqCst) >= self.ok_writes {
            return Err(cista::Error::Backend {
                op: "write",
                path: name.to_string(),
                source: std::io::Error::other("injected failure"),
            });
        }
        self.inner.write(t, name, data)
    }
    fn list(&self, t: FileType) -> cista::Result<Vec<(String, u64)>> {
        self.inner.list(t)
    }
    fn remove(&self, t: FileType, name: &str) -> cista::Result<()> {
        self.inner.remove(t, name)
    }
}

fn full_check(repo: &Repository) {
    let r = check(
        repo,
        &CheckOptions {
            read_data: Some(Subset::All),
        },
    )
    .unwrap();
    assert!(r.errors.is_empty(), "check found damage: {:?}", r.errors);
}

#[test]
fn failing_backend_never_leaves_damage() {
    let env = Env::empty();
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big1"), &bytes(3 << 20, 1));
    write(&src.join("big2"), &text(4 << 20, 2));
    let opts = InitOptions {
        pack_size: 1 << 20,
        ..Default::default()
    };
    let local = Arc::new(LocalBackend::new(env.repo()));
    let repo = Repository::init(local.clone(), PASSWORD.as_bytes(), opts).unwrap();
    // Fail at the first write, then the second, and so on, until a backup gets through.
    let mut failures = 0;
    for ok_writes in 0..100 {
        let be = Arc::new(FailingBackend {
            inner: LocalBackend::new(env.repo()),
            ok_writes,
            writes: AtomicUsize::new(0),
        });
        let frepo = Repository::open(be, PASSWORD.as_bytes()).unwrap();
        let index = Index::load(&frepo).unwrap();
        let opts = BackupOptions {
            force: true,
            ..Default::default()
        };
        match backup(
            &frepo,
            &index,
            Source::Paths(vec![src.clone()]),
            &opts,
            None,
        ) {
            Ok(_) => {
                full_check(&repo);
                break;
            }
            Err(e) => {
                failures += 1;
                assert!(e.to_string().contains("injected failure"), "{e}");
            }
        }
        full_check(&repo);
    }
    assert!(failures >= 4, "only {failures} backups failed");
    // The repository still takes a complete backup that restores exactly.
    let expected = snapshot_meta(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = env.path("r");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&expected, &src, &t.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn killed_backups_leave_a_checkable_repository() {
    let env = Env::empty();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    for i in 0..40 {
        write(&src.join(format!("f{i}")), &bytes(1 << 20, i));
    }
    write(&src.join("dump.sql"), &text(24 << 20, 7));
    let delays = [30u64, 90, 160, 250, 400, 700];
    for (i, ms) in delays.iter().enumerate() {
        let mut child = env
            .cmd(&["backup", "--force", src.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill();
        let _ = child.wait();
        // A killed holder leaves its lock; it names a dead process on this host, so it is stale.
        let o = env.run(&["check", "--read-data"]);
        assert!(
            o.status.success(),
            "iteration {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let expected = snapshot_meta(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = env.path("r");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&expected, &src, &t.join(src.strip_prefix("/").unwrap()));
    env.ok(&["check", "--read-data"]);
}
