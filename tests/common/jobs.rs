//! The jobs every store must pass: the CLI's main job and the backend's conformance, run by
//! tests/backends*.rs on local disk, S3 (moto) and Azure Blob (Azurite).

use std::io::Write;
use std::process::Stdio;

use super::*;

/// init → backup → incremental → check --read-data → restore --verify → dump → forget --prune →
/// check → stdin backup → copy into a fresh local repository, checked and restored.
pub fn main_job(env: &Env) {
    let src = env.path("src");
    small_tree(&src);
    write(&src.join("big.bin"), &bytes(9 << 20, 3));
    let first = env.backup(&[&src]);
    write(&src.join("sub/new.txt"), &text(100_000, 4));
    let second = env.backup(&[&src]);
    assert_eq!(second["parent"], first["snapshot_id"]);
    assert_eq!(second["files_new"], 1);
    env.ok(&["check", "--read-data"]);
    let expected = snapshot_meta(&src);
    restore_latest_matches(env, "restore", &expected, &src);
    let o = env
        .cmd(&["dump", "latest", &format!("{}/big.bin", src.display())])
        .output()
        .unwrap();
    assert_eq!(o.stdout, bytes(9 << 20, 3));
    env.ok(&["forget", "--keep-last", "1", "--prune", "--max-unused", "0"]);
    env.ok(&["check", "--read-data"]);
    restore_latest_matches(env, "restore2", &expected, &src);
    // Stdin backups too.
    let mut c = env.cmd(&["backup", "--stdin", "--stdin-filename", "db.sql"]);
    c.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&text(2 << 20, 5))
        .unwrap();
    assert!(child.wait().unwrap().success());
    let o = env.cmd(&["dump", "latest", "db.sql"]).output().unwrap();
    assert_eq!(o.stdout, text(2 << 20, 5));

    // Copy both snapshots out of the store into a fresh local repository.
    let local = Env::new();
    let o = local
        .cmd(&["--json", "copy", "--from-repo", &env.location()])
        .env("CISTA_FROM_PASSWORD", PASSWORD)
        .envs(env.store_env())
        .output()
        .unwrap();
    assert!(o.status.success(), "copy: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii_end()).unwrap();
    assert_eq!(v["copied"], 2, "{v}");
    local.ok(&["check", "--read-data"]);
    let t = local.path("copied");
    local.ok(&[
        "restore",
        "latest",
        "--path",
        src.to_str().unwrap(),
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&expected, &src, &t.join(src.strip_prefix("/").unwrap()));
    let o = local.cmd(&["dump", "latest", "db.sql"]).output().unwrap();
    assert_eq!(o.stdout, text(2 << 20, 5));
}

/// The backend's contract on a store (`cista::backend::conformance::run`, the one every backend
/// passes), run on an empty prefix beside `env`'s repository in the same bucket or container;
/// and a second init of `env`'s repository is refused.
pub fn backend_conformance(env: &Env) {
    env.set_store_env();
    let location = env.location();
    let (bucket, _) = location
        .rsplit_once('/')
        .expect("an object-store location has a prefix");
    let be = cista::backend::open_location(&format!("{bucket}/conformance"), &[]).unwrap();
    cista::backend::conformance::run(&*be);
    // The config is a key of its own; a second init is refused.
    let o = env.run(&["init"]);
    assert_eq!(o.status.code(), Some(1));
}

/// A wrong password exits 12; a location whose bucket or container exists but holds no
/// repository exits 10, as does one whose bucket or container does not exist, named as such.
pub fn exit_codes(env: &Env, empty_container: &str, scheme: &str) {
    let o = env
        .cmd(&["snapshots"])
        .env("CISTA_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", stderr(&o));
    let mut other = Env::empty();
    other.location = Some(format!("{scheme}://{empty_container}/nothing-here"));
    let o = other.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("repository does not exist"),
        "{}",
        stderr(&o)
    );
    other.location = Some(format!(
        "{scheme}://no-such-container-{}/r",
        std::process::id()
    ));
    let o = other.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
    let err = stderr(&o);
    let missing = format!(
        "bucket no-such-container-{} does not exist",
        std::process::id()
    );
    assert!(err.contains(&missing), "{err}");
}
