//! The local cache of a remote repository: what a command with a cold or a warm cache asks of
//! the store (counted by `-v`), and that the cache stays correct.

mod common;

use common::*;

/// The request counts `-v` printed for the repository.
fn requests(stderr: &str) -> std::collections::HashMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("requests to s3://"))
        .unwrap_or_else(|| panic!("no request line in {stderr}"));
    let counts = line.split(": ").nth(1).unwrap();
    counts
        .split(", ")
        .map(|part| {
            let (n, kind) = part.split_once(' ').unwrap();
            let kind = kind.split(" (").next().unwrap().to_string();
            (kind, n.parse().unwrap())
        })
        .collect()
}

/// Objects stored under `repo/<dir>/` in the test bucket.
fn stored(env: &Env, dir: &str) -> u64 {
    use futures::TryStreamExt;
    let loc = env.location();
    let bucket = loc["s3://".len()..].split('/').next().unwrap();
    let store = s3::store(bucket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = object_store::path::Path::from(format!("repo/{dir}"));
    let all: Vec<_> = rt
        .block_on(object_store::ObjectStore::list(&store, Some(&prefix)).try_collect())
        .unwrap();
    all.len() as u64
}

fn ls(env: &Env, cache: &str) -> std::collections::HashMap<String, u64> {
    let o = env.run(&[
        "-v",
        "--cache-dir",
        env.path(cache).to_str().unwrap(),
        "ls",
        "latest",
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("d199/f1"));
    requests(&err)
}

#[test]
fn a_cold_ls_fetches_tree_packs_whole_not_tree_by_tree() {
    let env = Env::s3("cold-ls");
    let src = env.path("src");
    for d in 0..200 {
        for f in 0..2 {
            write(
                &src.join(format!("d{d}/f{f}")),
                format!("{d}/{f}").as_bytes(),
            );
        }
    }
    env.backup(&[&src]);
    env.backup(&[&src]);
    let (index, snapshots, keys, packs) = (
        stored(&env, "index"),
        stored(&env, "snapshots"),
        stored(&env, "keys"),
        stored(&env, "data"),
    );
    let cold = ls(&env, "fresh-cache");
    assert_eq!(cold["range GET"], 0, "{cold:?}");
    // config + key files + index files + snapshots + the tree packs (at most every pack).
    assert!(
        cold["GET"] <= 1 + keys + index + snapshots + packs,
        "{cold:?}: {index} index files, {snapshots} snapshots, {packs} packs"
    );
    // Warm: only the config and the key file that opens it (read before the repository id,
    // which names the cache directory, is known).
    let warm = ls(&env, "fresh-cache");
    assert_eq!((warm["GET"], warm["range GET"]), (2, 0), "{warm:?}");
    eprintln!("cold {cold:?} warm {warm:?}");
}

#[test]
fn a_second_backup_on_the_same_host_reads_nothing_remote_for_its_parent() {
    let env = Env::s3("second-backup");
    let src = env.path("src");
    for d in 0..50 {
        write(&src.join(format!("d{d}/f")), format!("{d}").as_bytes());
    }
    env.backup(&[&src]);
    write(&src.join("d7/f"), b"changed");
    let o = env.run(&["-v", "backup", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let r = requests(&err);
    // The config and the key file; the parent's snapshot, index and trees come from the
    // cache the first backup wrote through.
    assert_eq!((r["GET"], r["range GET"]), (2, 0), "{r:?}");
    let v = env.json(&["snapshots"]);
    assert_eq!(v.as_array().unwrap().len(), 2);
}
