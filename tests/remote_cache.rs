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

/// `ls latest` with `-v` and the cache `cache`: its output and the requests it made.
fn ls(env: &Env, cache: &str) -> (String, std::collections::HashMap<String, u64>) {
    let o = env.run(&[
        "-v",
        "--cache-dir",
        env.path(cache).to_str().unwrap(),
        "ls",
        "latest",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    (String::from_utf8(o.stdout).unwrap(), requests(&err))
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
    let (out, cold) = ls(&env, "fresh-cache");
    assert!(out.contains("d199/f1"), "{out}");
    assert_eq!(cold["range GET"], 0, "{cold:?}");
    // config + key files + index files + snapshots + the tree packs (at most every pack).
    assert!(
        cold["GET"] <= 1 + keys + index + snapshots + packs,
        "{cold:?}: {index} index files, {snapshots} snapshots, {packs} packs"
    );
    // Warm: only the config and the key file that opens it (read before the repository id,
    // which names the cache directory, is known), and the listings of index/ and snapshots/:
    // the key that opened it last is fetched beside the config, keys/ is not listed.
    let (_, warm) = ls(&env, "fresh-cache");
    assert_eq!((warm["GET"], warm["range GET"]), (2, 0), "{warm:?}");
    assert_eq!(warm["LIST"], 2, "{warm:?}");
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
    // The same numbers in the JSON summary.
    write(&src.join("d8/f"), b"changed too");
    let sum = env.backup(&[&src]);
    assert_eq!(sum["requests"]["get"], 2, "{sum}");
    assert_eq!(sum["requests"]["range_get"], 0, "{sum}");
    assert!(sum["requests"]["put"].as_u64().unwrap() >= 3, "{sum}");
}

/// The repository's directory in a cache (named by the repository id).
fn repo_cache(env: &Env, cache: &str) -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(env.path(cache))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "key-hints")
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

#[test]
fn a_wiped_or_damaged_cache_is_refilled_and_never_trusted() {
    let env = Env::s3("damaged-cache");
    let src = env.path("src");
    small_tree(&src);
    let meta = snapshot_meta(&src);
    env.backup(&[&src]);
    // Wiped between runs.
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    restore_latest_matches(&env, "r1", &meta, &src);
    // Every cached entry damaged (its middle byte flipped): each is noticed, dropped and
    // fetched again.
    let dir = repo_cache(&env, "cache");
    let mut damaged = 0;
    for sub in ["snapshots", "index", "packs"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            let mut b = std::fs::read(&p).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 1;
            std::fs::write(&p, &b).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged >= 3, "{damaged}");
    restore_latest_matches(&env, "r2", &meta, &src);
    env.ok(&["check"]);
    // The entries were replaced by good copies: a warm ls reads no tree remotely.
    let (_, warm) = ls(&env, "cache");
    assert_eq!(warm["range GET"], 0, "{warm:?}");
}

#[test]
fn one_cache_serves_two_repositories_apart() {
    let a = Env::s3("shared-cache-a");
    let b = Env::s3("shared-cache-b");
    // Both use a's cache directory.
    let shared = a.path("cache");
    let run = |env: &Env, args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("CISTA_CACHE_DIR", &shared);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let (sa, sb) = (a.path("src"), b.path("src"));
    write(&sa.join("only-in-a"), b"a");
    write(&sb.join("only-in-b"), b"b");
    run(&a, &["backup", sa.to_str().unwrap()]);
    run(&b, &["backup", sb.to_str().unwrap()]);
    let (la, lb) = (run(&a, &["ls", "latest"]), run(&b, &["ls", "latest"]));
    assert!(
        la.contains("only-in-a") && !la.contains("only-in-b"),
        "{la}"
    );
    assert!(
        lb.contains("only-in-b") && !lb.contains("only-in-a"),
        "{lb}"
    );
    let repos = std::fs::read_dir(&shared)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "key-hints")
        .count();
    assert_eq!(repos, 2);
}

#[test]
fn a_cache_that_cannot_be_written_is_warned_about_and_left_out() {
    let env = Env::s3("unwritable-cache");
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    // A path below a regular file cannot become a directory, whoever runs the test (root
    // writes through a read-only mode, not through this).
    write(&env.path("not-a-dir"), b"x");
    let bad = env.path("not-a-dir/cache");
    for args in [&["ls", "latest"][..], &["backup", src.to_str().unwrap()]] {
        let o = env.cmd(args).env("CISTA_CACHE_DIR", &bad).output().unwrap();
        let err = stderr(&o);
        assert!(o.status.success(), "{args:?}: {err}");
        assert!(err.contains("going on without a cache"), "{args:?}: {err}");
    }
}

#[test]
fn cached_tree_packs_no_index_names_are_removed() {
    let env = Env::s3("cache-cleanup");
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    let packs = repo_cache(&env, "cache").join("packs");
    let stray = packs.join("ab".repeat(32));
    std::fs::write(&stray, b"a pack pruned long ago").unwrap();
    let kept = std::fs::read_dir(&packs).unwrap().count() - 1;
    assert!(kept >= 1);
    env.ok(&["ls", "latest"]);
    assert!(!stray.exists());
    assert_eq!(std::fs::read_dir(&packs).unwrap().count(), kept);
}

#[test]
fn cache_lists_caches_and_cleanup_removes_old_ones() {
    let env = Env::s3("cache-command");
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    let current = repo_cache(&env, "cache");
    let old = env.path("cache").join("ef".repeat(32));
    write(&old.join("index").join("12".repeat(32)), b"stale");
    let forty_days = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    filetime::set_file_mtime(&old, filetime::FileTime::from_system_time(forty_days)).unwrap();

    let v = env.json(&["cache"]);
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    // Oldest use first, each with its size; key-hints/ is not a repository's cache.
    assert_eq!(
        ids,
        [
            "ef".repeat(32),
            current.file_name().unwrap().to_str().unwrap().to_string()
        ]
    );
    assert!(v[0]["size"].as_u64().unwrap() >= 5 && v[1]["size"].as_u64().unwrap() > 100);

    let out = env.ok(&["cache", "--cleanup"]);
    assert!(out.contains("removed 1 old cache"), "{out}");
    assert!(!old.exists() && current.exists());
    env.ok(&["ls", "latest"]);
}

#[test]
fn a_cold_walk_fetches_every_tree_pack_the_cache_lacks_at_once() {
    let env = Env::s3("prefetch");
    let src = env.path("src");
    let mut ids = Vec::new();
    // Three backups of different trees: each writes its own tree pack.
    for round in 0..3 {
        for d in 0..20 {
            write(
                &src.join(format!("d{d}/f{round}")),
                format!("{round}/{d}").as_bytes(),
            );
        }
        ids.push(
            env.backup(&[&src])["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // A cold `ls` of the oldest snapshot needs one tree pack, and brings all three (the
    // snapshots listed first, so that they are cached too).
    let cold = env.path("cold");
    env.ok(&["--cache-dir", cold.to_str().unwrap(), "snapshots"]);
    let o = env.run(&[
        "-v",
        "--cache-dir",
        env.path("cold").to_str().unwrap(),
        "ls",
        &ids[0],
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let packs = repo_cache(&env, "cold").join("packs");
    assert_eq!(std::fs::read_dir(&packs).unwrap().count(), 3);
    // So the newer snapshots are walked without a request for a tree.
    for id in &ids[1..] {
        let o = env.run(&[
            "-v",
            "--cache-dir",
            env.path("cold").to_str().unwrap(),
            "ls",
            id,
        ]);
        let r = requests(&stderr(&o));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!((r["GET"], r["range GET"]), (2, 0), "{id}: {r:?}");
    }
}
