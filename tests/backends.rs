//! The same jobs on local disk and on a real S3-compatible server (moto on loopback), and what
//! is particular to S3. tests/backends_azure.rs runs the same jobs on Azurite.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cista::backend::{Backend, FileType};
use common::*;

#[test]
fn main_job_on_local_disk() {
    jobs::main_job(&Env::new());
}

#[test]
fn main_job_on_s3() {
    jobs::main_job(&Env::s3("mainjob"));
}

#[test]
fn s3_backend_conformance() {
    jobs::backend_conformance(&Env::s3("conformance"));
}

#[test]
fn missing_bucket_and_wrong_password_on_s3() {
    jobs::exit_codes(&Env::s3("codes"), &s3::bucket("empty"), "s3");
}

/// Fails reads and writes now and then (a flaky link: timeouts), slows listings, and truncates
/// some ranged reads.
fn flaky(inner: Arc<dyn Backend>, every: u64) -> hooked::Hooked {
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let mut h = hooked::Hooked::new(inner, move |op, t, name| {
        match op {
            hooked::Op::List => std::thread::sleep(std::time::Duration::from_millis(20)),
            hooked::Op::Remove => {}
            hooked::Op::Write if t == FileType::Lock => {}
            _ => {
                if calls.fetch_add(1, Ordering::SeqCst) % every == every - 1 {
                    return Err(hooked::injected(
                        "transfer",
                        name,
                        std::io::ErrorKind::TimedOut,
                        "injected timeout",
                    ));
                }
            }
        }
        Ok(())
    });
    h.after_range = Some(Box::new(move |v: &mut Vec<u8>| {
        if seen.load(Ordering::SeqCst) % 7 == 3 {
            let half = v.len() / 2;
            v.truncate(half);
        }
    }));
    h
}

#[test]
fn flaky_store_fails_cleanly_and_check_passes() {
    let env = Env::s3("flaky");
    let src = env.path("src");
    small_tree(&src);
    for i in 0..8 {
        write(&src.join(format!("f{i}")), &bytes(700_000, i));
    }
    for (k, v) in s3::env_vars() {
        std::env::set_var(k, v);
    }
    let real = cista::backend::open_location(&env.location(), &[]).unwrap();
    let mut ok = 0;
    for every in [3u64, 5, 8, 13, 40, 1000] {
        let be = Arc::new(flaky(real.clone(), every));
        let Ok(repo) = cista::Repository::open(be, PASSWORD.as_bytes()) else {
            continue;
        };
        let opts = {
            let mut o = cista::BackupOptions::default();
            o.force = true;
            o
        };
        if lib_backup(&repo, cista::Source::Paths(vec![src.clone()]), &opts).is_ok() {
            ok += 1;
        }
        env.ok(&["check", "--read-data"]);
    }
    assert!(ok >= 1, "no backup got through");
    let expected = snapshot_meta(&src);
    restore_latest_matches(&env, "r", &expected, &src);
}

#[test]
fn object_lock_bucket_backs_up_and_restores() {
    let mut env = Env::empty();
    env.location = Some(format!("s3://{}/repo", s3::locked_bucket("locked", 1)));
    env.ok(&["init"]);
    let src = env.path("src");
    small_tree(&src);
    let expected = snapshot_meta(&src);
    env.backup(&[&src]);
    env.ok(&["check", "--read-data"]);
    restore_latest_matches(&env, "r", &expected, &src);

    // Forget the first snapshot and prune: everything prune would delete is still under the
    // bucket's one-day retention, so it is reported and left, and prune succeeds.
    write(&src.join("big.bin"), &bytes(3 << 20, 8));
    env.backup(&[&src]);
    let expected = snapshot_meta(&src);
    env.ok(&["forget", "--keep-last", "1"]);
    let r = env.json(&["prune", "--max-unused", "0"]);
    let retained = r["retained"].as_array().unwrap();
    assert!(
        retained
            .iter()
            .any(|o| o["path"].as_str().unwrap().starts_with("data/"))
            && retained
                .iter()
                .any(|o| o["path"].as_str().unwrap().starts_with("index/")),
        "{r}"
    );
    let tomorrow = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(20);
    for o in retained {
        assert_eq!(o["mode"], "COMPLIANCE", "{o}");
        let until: jiff::Timestamp = o["until"].as_str().unwrap().parse().unwrap();
        assert!(until > tomorrow, "{o}");
    }
    assert_eq!(r["packs_removed"], 0, "{r}");
    assert!(r["delete_failed"].as_array().unwrap().is_empty(), "{r}");
    let text = env.ok(&["prune", "--max-unused", "0"]);
    assert!(
        text.contains("retained by the store (COMPLIANCE)"),
        "{text}"
    );
    env.ok(&["check", "--read-data"]);
    restore_latest_matches(&env, "r2", &expected, &src);
}

/// Counts reads that reach the store (key and config reads aside).
fn counting(inner: Arc<dyn Backend>, reads: Arc<AtomicU64>) -> hooked::Hooked {
    hooked::Hooked::new(inner, move |op, t, _| {
        let counted = match op {
            hooked::Op::Read => t != FileType::Config && t != FileType::Key,
            hooked::Op::ReadRange => true,
            _ => false,
        };
        if counted {
            reads.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    })
}

#[test]
fn cache_serves_index_snapshots_and_trees() {
    let env = Env::s3("cache");
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    for (k, v) in s3::env_vars() {
        std::env::set_var(k, v);
    }
    // Not the CLI's cache, which the backup filled as it wrote.
    let cache = env.path("library-cache");
    let walk = |repo: &cista::Repository| {
        let ix = repo
            .lock(&cista::commands::LockOptions::none())
            .unwrap()
            .indexed()
            .unwrap();
        let (_, snap) = repo
            .resolve_snapshot("latest", &Default::default())
            .unwrap();
        let mut n = 0;
        cista::commands::ls(&ix, &snap, "", &mut |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        n
    };
    let open = || {
        let reads = Arc::new(AtomicU64::new(0));
        let inner = cista::backend::open_location(&env.location(), &[]).unwrap();
        let c = Arc::new(counting(inner, reads.clone()));
        let repo = cista::Repository::open(c, PASSWORD.as_bytes())
            .unwrap()
            .with_cache(&cache);
        (reads, repo)
    };
    let (cold, repo) = open();
    let entries = walk(&repo);
    assert!(entries >= 7);
    // One index file, one snapshot and one tree pack, fetched whole: one request for all the
    // trees, not one per directory.
    assert_eq!(cold.load(Ordering::SeqCst), 3);
    let (warm, repo) = open();
    assert_eq!(walk(&repo), entries);
    assert_eq!(
        warm.load(Ordering::SeqCst),
        0,
        "a warm cache reads nothing remote"
    );
    // A damaged cache entry is detected and fetched again.
    for f in walk_files(&cache) {
        let mut b = std::fs::read(&f).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        std::fs::write(&f, b).unwrap();
    }
    let (again, repo) = open();
    assert_eq!(walk(&repo), entries);
    assert!(again.load(Ordering::SeqCst) > 0);
    // The CLI uses the cache for remote repositories and works without it too.
    let o = env
        .cmd(&["ls", "latest"])
        .env("CISTA_CACHE_DIR", env.path("cli-cache"))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(!walk_files(&env.path("cli-cache")).is_empty());
    let o2 = env.cmd(&["--no-cache", "ls", "latest"]).output().unwrap();
    assert_eq!(o.stdout, o2.stdout);
}

#[test]
fn copy_local_to_s3_and_back() {
    let local = Env::new();
    let src = local.path("src");
    small_tree(&src);
    write(&src.join("big"), &bytes(3 << 20, 8));
    let expected = snapshot_meta(&src);
    local.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--tag",
        "nightly",
        "--time",
        "2026-01-01T00:00:00Z",
    ]);
    write(&src.join("later"), b"second night");
    let expected2 = snapshot_meta(&src);
    local.ok(&["backup", src.to_str().unwrap()]);

    let remote = Env::s3("copy");
    let copy = |to: &Env, from: &Env, extra: &[&str]| {
        let mut args = vec!["--json", "copy", "--from-repo"];
        let loc = from.location();
        args.push(&loc);
        args.extend_from_slice(extra);
        let mut c = to.cmd(&args);
        c.env("CISTA_FROM_PASSWORD", PASSWORD).envs(s3::env_vars());
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(o.stdout.trim_ascii_end()).unwrap()
    };
    let v = copy(&remote, &local, &[]);
    assert_eq!(v["copied"], 2);
    // A second run finds both copies and copies nothing.
    let v = copy(&remote, &local, &[]);
    assert_eq!(
        (v["copied"].as_u64(), v["skipped"].as_u64()),
        (Some(0), Some(2))
    );
    remote.ok(&["check", "--read-data"]);
    let snaps = remote.json(&["snapshots"]);
    assert_eq!(snaps[0]["tags"], serde_json::json!(["nightly"]));
    assert_eq!(snaps[0]["time"], "2026-01-01T00:00:00.000000000+00:00");

    // And back, into a fresh local repository, filtered by tag.
    let back = Env::new();
    let v = copy(&back, &remote, &["--tag", "nightly"]);
    assert_eq!(v["copied"], 1);
    // Copying the original into the same place is recognised as the same snapshot line.
    let v = copy(&back, &local, &["--tag", "nightly"]);
    assert_eq!(v["copied"], 0);
    let restored = restore_latest(&back, "r", &src);
    let _ = std::fs::remove_file(src.join("later"));
    assert_same_tree(&expected, &src, &restored);
    let restored2 = restore_latest(&remote, "r2", &src);
    write(&src.join("later"), b"second night");
    let _ = expected2;
    assert!(restored2.join("later").exists());
    back.ok(&["check", "--read-data"]);
}

#[test]
fn retries_are_reported_with_verbose() {
    // Nothing listens on port 9 of loopback: every request fails and is retried with backoff.
    let env = Env::empty();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cista"))
        .args(["-v", "-r", "s3://nobucket/p", "snapshots"])
        .env("CISTA_PASSWORD", PASSWORD)
        .env("CISTA_CACHE_DIR", env.path("cache"))
        .envs(s3::env_vars())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retry 1 of 100"), "{err}");
}

/// How the fault-injecting store answers the completion of a multipart upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Completion {
    /// Passed through.
    Works,
    /// Fails before reaching the store: the upload stays pending unless aborted.
    Refused,
    /// Reaches the store, which assembles the object, but the answer is lost.
    AnswerLost,
}

/// An object store that passes everything through to `inner` but fails multipart completions
/// as `mode` says, counting completions and aborts.
#[derive(Debug)]
struct FaultStore {
    inner: Arc<dyn object_store::ObjectStore>,
    mode: Completion,
    completions: Arc<AtomicU64>,
    aborts: Arc<AtomicU64>,
    /// Puts still to cut off after sending, as a store restarting mid-request does: an even
    /// count lands the object first (only the answer is lost), an odd one does not.
    cut_puts: Arc<AtomicU64>,
}

impl std::fmt::Display for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[derive(Debug)]
struct FaultUpload {
    inner: Box<dyn object_store::MultipartUpload>,
    mode: Completion,
    completions: Arc<AtomicU64>,
    aborts: Arc<AtomicU64>,
}

fn injected_store_error() -> object_store::Error {
    object_store::Error::Generic {
        store: "fault",
        source: "injected: connection reset during CompleteMultipartUpload".into(),
    }
}

#[async_trait::async_trait]
impl object_store::MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: object_store::PutPayload) -> object_store::UploadPart {
        self.inner.put_part(data)
    }
    async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
        self.completions.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            Completion::Works => self.inner.complete().await,
            Completion::Refused => Err(injected_store_error()),
            Completion::AnswerLost => {
                self.inner.complete().await?;
                Err(injected_store_error())
            }
        }
    }
    async fn abort(&mut self) -> object_store::Result<()> {
        self.aborts.fetch_add(1, Ordering::SeqCst);
        self.inner.abort().await
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let n = self.cut_puts.load(Ordering::SeqCst);
        if n > 0
            && self
                .cut_puts
                .compare_exchange(n, n - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            if n % 2 == 0 {
                self.inner.put_opts(location, payload, opts).await?;
            }
            let reset = std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected: connection reset after the request was sent",
            );
            return Err(object_store::Error::Generic {
                store: "fault",
                source: Box::new(object_store::client::HttpError::new(
                    object_store::client::HttpErrorKind::Interrupted,
                    reset,
                )),
            });
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultUpload {
            inner,
            mode: self.mode,
            completions: self.completions.clone(),
            aborts: self.aborts.clone(),
        }))
    }
    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Packs above the multipart threshold whose completion fails: a refused completion fails the
/// backup cleanly and the upload is aborted (nothing pending, nothing listed); a completion
/// whose answer is lost is recognised as stored. Either way check passes afterwards.
#[test]
fn failed_multipart_completion_fails_cleanly_or_is_recognised() {
    use cista::{BackupOptions, Source};
    let mut env = Env::empty();
    let bucket = s3::bucket("multipart");
    env.location = Some(format!("s3://{bucket}/repo"));
    let src = env.path("src");
    // 2½ packs of 20 MiB, each uploaded in two parts (16 MiB + 4 MiB).
    write(&src.join("a.bin"), &bytes(50 << 20, 11));
    let open = |mode: Completion| {
        let (completions, aborts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let store = FaultStore {
            inner: Arc::new(s3::store(&bucket)),
            mode,
            completions: completions.clone(),
            aborts: aborts.clone(),
            cut_puts: Default::default(),
        };
        let be = cista::backend::ObjectStoreBackend::from_store(
            Arc::new(store),
            "repo",
            &format!("s3://{bucket}/repo"),
        )
        .unwrap()
        .with_multipart_threshold(8 << 20)
        .with_connections(2);
        (Arc::new(be) as Arc<dyn Backend>, completions, aborts)
    };
    let (be, _, _) = open(Completion::Works);
    let opts = {
        let mut o = cista::InitOptions::default();
        o.pack_size = 20 << 20;
        o
    };
    cista::Repository::init(be, PASSWORD.as_bytes(), opts).unwrap();
    let run = |mode: Completion| {
        let (be, completions, aborts) = open(mode);
        let repo = cista::Repository::open(be, PASSWORD.as_bytes()).unwrap();
        let r = lib_backup(&repo, Source::Paths(vec![src.clone()]), &{
            let mut o = BackupOptions::default();
            o.force = true;
            o
        });
        (
            r,
            completions.load(Ordering::SeqCst),
            aborts.load(Ordering::SeqCst),
        )
    };

    let (r, completions, aborts) = run(Completion::Refused);
    let e = r.unwrap_err().to_string();
    assert!(e.contains("CompleteMultipartUpload"), "{e}");
    assert!(
        completions >= 1 && aborts == completions,
        "{completions} completions, {aborts} aborts"
    );
    assert_eq!(s3::pending_uploads(&bucket), 0);
    env.ok(&["check", "--read-data"]);
    assert!(env.json(&["snapshots"]).as_array().unwrap().is_empty());

    let (r, completions, aborts) = run(Completion::AnswerLost);
    r.unwrap();
    assert!(
        completions >= 2 && aborts == 0,
        "{completions} completions, {aborts} aborts"
    );
    assert_eq!(s3::pending_uploads(&bucket), 0);
    env.ok(&["check", "--read-data"]);
    let expected = snapshot_meta(&src);
    restore_latest_matches(&env, "r", &expected, &src);
}

/// A put cut off after it was sent (the store restarting mid-request) is tried again, whether
/// it had landed or not: object_store does not retry a create-only put then, and a 10-second
/// outage failed a backup that way (tests/outage.rs, about one run in five).
#[test]
fn a_put_cut_off_midway_is_tried_again() {
    use cista::{BackupOptions, Source};
    let mut env = Env::empty();
    let bucket = s3::bucket("cut-puts");
    env.location = Some(format!("s3://{bucket}/repo"));
    env.ok(&["init"]);
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), &bytes(3 << 20, 12));
    let cut = Arc::new(AtomicU64::new(6));
    let store = FaultStore {
        inner: Arc::new(s3::store(&bucket)),
        mode: Completion::Works,
        completions: Default::default(),
        aborts: Default::default(),
        cut_puts: cut.clone(),
    };
    let be = cista::backend::ObjectStoreBackend::from_store(
        Arc::new(store),
        "repo",
        &format!("s3://{bucket}/repo"),
    )
    .unwrap();
    let repo = cista::Repository::open(Arc::new(be), PASSWORD.as_bytes()).unwrap();
    let opts = BackupOptions::default();
    lib_backup(&repo, Source::Paths(vec![src.clone()]), &opts).unwrap();
    assert_eq!(cut.load(Ordering::SeqCst), 0, "every cut was made");
    env.ok(&["check", "--read-data"]);
    restore_latest_matches(&env, "r", &snapshot_meta(&src), &src);
}

/// `-o connections=N` sets the uploads in flight; a bad value is refused by name.
#[test]
fn connections_option() {
    let mut env = Env::empty();
    env.location = Some(format!("s3://{}/repo", s3::bucket("conns")));
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), &bytes(5 << 20, 21));
    let o = env.run(&["-o", "connections=0", "snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("connections=0"));
    env.ok(&["-o", "connections=1", "init", "--pack-size", "1"]);
    let r = env.json(&["-o", "connections=1", "backup", src.to_str().unwrap()]);
    assert!(r["data_blobs"].as_u64().unwrap() > 0, "{r}");
    env.ok(&[
        "-o",
        "connections=8",
        "backup",
        "--force",
        src.to_str().unwrap(),
    ]);
    env.ok(&["check", "--read-data"]);
    restore_latest_matches(&env, "r", &snapshot_meta(&src), &src);
}

/// The append-only setting on an object store: the config is replaced by a single PUT, which
/// every later client reads whole.
#[test]
fn append_only_setting_on_s3() {
    let mut env = Env::empty();
    env.location = Some(format!("s3://{}/repo", s3::bucket("aosetting")));
    env.ok(&["init"]);
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    env.backup(&[&src]);
    env.ok(&["config", "append-only", "on"]);
    assert_eq!(env.json(&["config"])["append_only"], true);
    let o = env.run(&["forget", "--keep-last", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("append-only"));
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 2);
    env.ok(&["config", "append-only", "off"]);
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    env.ok(&["check", "--read-data"]);
}
