//! The jobs every store must pass: the CLI's main job and the backend's conformance, run by
//! tests/backends*.rs on local disk, S3 (moto) and Azure Blob (Azurite).

use std::io::Write;
use std::process::Stdio;

use cista::backend::FileType;

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

/// The backend's contract on a store: reads, ranged reads (short ones refused), create-only
/// writes (a second write of a name is AlreadyExists and leaves the object), listings with
/// sizes, NotFound, multipart uploads, idempotent removes; and a second init is refused.
pub fn backend_conformance(env: &Env) {
    env.set_store_env();
    let be = cista::backend::open_location(&env.location(), &[]).unwrap();
    let name = "ab".repeat(32);
    be.write(FileType::Pack, &name, b"hello world").unwrap();
    assert_eq!(be.read(FileType::Pack, &name).unwrap(), b"hello world");
    assert_eq!(
        be.read_range(FileType::Pack, &name, 6, 5).unwrap(),
        b"world"
    );
    assert!(be.read_range(FileType::Pack, &name, 6, 50).is_err());
    let e = be.write(FileType::Pack, &name, b"other").unwrap_err();
    assert!(
        matches!(e, cista::Error::Backend { ref source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
    assert_eq!(be.read(FileType::Pack, &name).unwrap(), b"hello world");
    assert!(be
        .list(FileType::Pack)
        .unwrap()
        .contains(&(name.clone(), 11)));
    assert!(be.read(FileType::Index, &name).unwrap_err().is_not_found());
    assert!(be
        .read_range(FileType::Index, &name, 0, 1)
        .unwrap_err()
        .is_not_found());
    // A large object goes up in parts, and is refused like any other the second time.
    let big = bytes((cista::backend::MULTIPART_THRESHOLD) + 1234, 9);
    let bname = "cd".repeat(32);
    be.write(FileType::Pack, &bname, &big).unwrap();
    assert_eq!(be.read(FileType::Pack, &bname).unwrap(), big);
    let e = be.write(FileType::Pack, &bname, &big).unwrap_err();
    assert!(
        matches!(e, cista::Error::Backend { ref source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
    be.remove(FileType::Pack, &name).unwrap();
    be.remove(FileType::Pack, &name).unwrap();
    let listed = be.list(FileType::Pack).unwrap();
    assert!(!listed.iter().any(|(n, _)| *n == name), "{listed:?}");
    assert!(listed.contains(&(bname, big.len() as u64)), "{listed:?}");
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
