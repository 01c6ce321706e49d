//! Keys: `cista key list|add|remove|passwd` and the library's key commands. The last usable
//! key is never removed, the key in use only with --force, and an append-only repository
//! only gains keys.

mod common;

use std::sync::Arc;

use cista::backend::{Backend, FileType, LocalBackend};
use cista::commands::{self, KeyAddOptions, KeyRemoveOptions, LockOptions};
use cista::{Error, Id, InitOptions, Repository};
use common::*;

const NEW: &str = "a new password, longer than the old";

/// `key list --json`: (id, current) per key.
fn keys(env: &Env, password: &str) -> Vec<(String, bool)> {
    let o = env
        .cmd(&["--json", "key", "list"])
        .env("CISTA_PASSWORD", password)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            for f in ["userName", "hostName", "created"] {
                assert!(k[f].is_string(), "{f} missing in {k}");
            }
            (
                k["id"].as_str().unwrap().to_string(),
                k["current"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn current(keys: &[(String, bool)]) -> String {
    let cur: Vec<_> = keys.iter().filter(|k| k.1).collect();
    assert_eq!(cur.len(), 1, "exactly one current key: {keys:?}");
    cur[0].0.clone()
}

/// Runs `args` with `password`; returns the output.
fn run_with(env: &Env, password: &str, args: &[&str]) -> std::process::Output {
    env.cmd(args)
        .env("CISTA_PASSWORD", password)
        .output()
        .unwrap()
}

#[test]
fn a_key_added_opens_the_repository_and_the_other_one_can_be_removed() {
    let env = Env::new();
    let old = current(&keys(&env, PASSWORD));
    let pwfile = env.path("new-password");
    std::fs::write(&pwfile, format!("{NEW}\n")).unwrap();
    let out = env.ok(&[
        "key",
        "add",
        "--new-password-file",
        pwfile.to_str().unwrap(),
        "--user",
        "alice",
        "--host",
        "laptop",
    ]);
    assert!(out.contains("saved new key"), "{out}");

    // Both passwords open it; each marks its own key current.
    let with_old = keys(&env, PASSWORD);
    assert_eq!(with_old.len(), 2);
    assert_eq!(current(&with_old), old);
    let with_new = keys(&env, NEW);
    let new = current(&with_new);
    assert_ne!(new, old);
    let v = env.json(&["key", "list"]);
    let added = v
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == new.as_str());
    let added = added.unwrap();
    assert_eq!(added["userName"], "alice");
    assert_eq!(added["hostName"], "laptop");
    let table = env.ok(&["key", "list"]);
    assert!(table.contains(&format!("*{}", &old[..8])), "{table}");
    assert!(table.contains(&format!(" {}", &new[..8])), "{table}");

    // Opened with the new password, the old key is "the other one": removed by prefix.
    let o = run_with(&env, NEW, &["key", "remove", &old[..8]]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(keys(&env, NEW), vec![(new.clone(), true)]);
    assert_eq!(
        run_with(&env, PASSWORD, &["snapshots"]).status.code(),
        Some(12)
    );

    // The last key stays, --force or not.
    for force in [false, true] {
        let mut args = vec!["key", "remove", &new[..8]];
        if force {
            args.push("--force");
        }
        let o = run_with(&env, NEW, &args);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("last usable key"), "{}", stderr(&o));
    }
    assert_eq!(keys(&env, NEW).len(), 1);

    // Unknown and ambiguous ids are named.
    let o = run_with(&env, NEW, &["key", "remove", "ffffffffff"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("key ffffffffff not found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_key_in_use_is_removed_only_with_force() {
    let env = Env::new();
    let old = current(&keys(&env, PASSWORD));
    let o = env
        .cmd(&["key", "add"])
        .env("CISTA_NEW_PASSWORD", NEW)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let o = env.run(&["key", "remove", &old]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("key in use"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(keys(&env, PASSWORD).len(), 2);

    let v = env.json(&["key", "remove", &old, "--force"]);
    assert_eq!(v["id"], old.as_str());
    assert_eq!(v["current"], true);
    assert_eq!(
        run_with(&env, PASSWORD, &["snapshots"]).status.code(),
        Some(12)
    );
    let left = keys(&env, NEW);
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].0, old);
}

#[test]
fn passwd_replaces_the_key_in_use() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    env.backup(&[&src]);
    let old = current(&keys(&env, PASSWORD));
    // No new password and no terminal: refused before anything changes.
    let o = env.run(&["key", "passwd"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("CISTA_NEW_PASSWORD"), "{}", stderr(&o));

    let o = env
        .cmd(&["key", "passwd"])
        .env("CISTA_NEW_PASSWORD", NEW)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("removed key {old}")), "{out}");

    let o = run_with(&env, PASSWORD, &["snapshots"]);
    assert_eq!(o.status.code(), Some(12), "{}", stderr(&o));
    let o = run_with(&env, NEW, &["--json", "snapshots"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let left = keys(&env, NEW);
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].0, old);
    // This host's key hint names the new key (the old one is gone).
    let hints: Vec<_> = std::fs::read_dir(env.path("cache/key-hints"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(hints, vec![left[0].0.clone()]);
}

#[test]
fn append_only_repositories_gain_keys_but_lose_none() {
    let env = Env::empty();
    env.ok(&["--append-only", "init"]);
    let old = current(&keys(&env, PASSWORD));
    let o = env
        .cmd(&["key", "add"])
        .env("CISTA_NEW_PASSWORD", NEW)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let new = current(&keys(&env, NEW));
    for args in [
        vec!["key", "remove", &new[..]],
        vec!["key", "remove", &old[..], "--force"],
        vec!["key", "passwd"],
    ] {
        let o = env
            .cmd(&args)
            .env("CISTA_NEW_PASSWORD", "a third one")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&o).contains("append-only"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert_eq!(keys(&env, PASSWORD).len(), 2);

    // A client run with --append-only on an ordinary repository refuses too.
    let env = Env::new();
    let o = env
        .cmd(&["key", "add"])
        .env("CISTA_NEW_PASSWORD", NEW)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let other = keys(&env, NEW);
    let o = env.run(&["--append-only", "key", "remove", &current(&other)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("append-only"), "{}", stderr(&o));
    assert_eq!(keys(&env, PASSWORD).len(), 2);
}

fn backend(env: &Env) -> Arc<dyn Backend> {
    Arc::new(LocalBackend::new(env.repo()))
}

#[test]
fn library_key_commands() {
    let env = Env::empty();
    let be = backend(&env);
    let repo = commands::init(be.clone(), PASSWORD.as_bytes(), &Default::default())
        .unwrap()
        .repository;
    let first = repo.current_key().unwrap();
    let l = commands::key_list(&repo).unwrap();
    assert_eq!(l.keys.len(), 1);
    assert!(l.keys[0].current);
    assert_eq!(l.keys[0].id, first);

    // Added under a shared lock, recording what the options say.
    let locked = repo.lock(&LockOptions::default()).unwrap();
    let mut o = KeyAddOptions::default();
    o.username = Some("bob".into());
    let second = commands::key_add(&locked, NEW.as_bytes(), &o).unwrap();
    drop(locked);
    let l = commands::key_list(&repo).unwrap();
    assert_eq!(l.keys.len(), 2);
    let k = l.keys.iter().find(|k| k.id == second).unwrap();
    assert!(!k.current);
    assert_eq!(k.username, "bob");
    assert_eq!(k.kdf, "argon2id");

    // The new password opens it with the new key.
    let repo2 = Repository::open(be.clone(), NEW.as_bytes()).unwrap();
    assert_eq!(repo2.current_key(), Some(second));

    // The key in use needs force; the last usable key is never removed.
    let ex = repo.lock_exclusive(&LockOptions::default()).unwrap();
    let e = commands::key_remove(&ex, &first.short(), &Default::default()).unwrap_err();
    assert!(matches!(e, Error::KeyInUse { .. }), "{e}");
    let r = commands::key_remove(&ex, &second.to_hex()[..12], &Default::default()).unwrap();
    assert_eq!(r.removed, second);
    assert!(!r.was_current);
    let mut force = KeyRemoveOptions::default();
    force.force = true;
    let e = commands::key_remove(&ex, &first.to_hex(), &force).unwrap_err();
    assert!(matches!(e, Error::LastKey { .. }), "{e}");
    assert!(e.to_string().contains(&first.to_hex()), "{e}");

    // A damaged key file is listed as damaged and does not count as a key that remains.
    let junk = b"not a key file";
    let junk_name = Id::of_bytes(junk).to_hex();
    be.write(FileType::Key, &junk_name, junk).unwrap();
    let l = commands::key_list(&repo).unwrap();
    assert_eq!(l.keys.len(), 1);
    assert_eq!(l.damaged.len(), 1);
    assert_eq!(l.damaged[0].0, junk_name);
    let e = commands::key_remove(&ex, &first.to_hex(), &force).unwrap_err();
    assert!(matches!(e, Error::LastKey { .. }), "{e}");
    let e = commands::key_remove(&ex, "", &force).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    // It can be removed like any other.
    let r = commands::key_remove(&ex, &junk_name[..10], &Default::default()).unwrap();
    assert_eq!(r.removed.to_hex(), junk_name);
    assert!(commands::key_list(&repo).unwrap().damaged.is_empty());

    // passwd: a key for the new password, the old one gone.
    let third = commands::key_passwd(&ex, NEW.as_bytes(), &Default::default()).unwrap();
    assert_eq!(repo.current_key(), Some(third));
    drop(ex);
    assert!(matches!(
        Repository::open(be.clone(), PASSWORD.as_bytes()),
        Err(Error::WrongPassword)
    ));
    let repo3 = Repository::open(be.clone(), NEW.as_bytes()).unwrap();
    assert_eq!(repo3.current_key(), Some(third));
    let l = commands::key_list(&repo3).unwrap();
    let ids: Vec<Id> = l.keys.iter().map(|k| k.id).collect();
    assert_eq!(ids, vec![third]);
}

#[test]
fn library_append_only_allows_key_add_only() {
    let env = Env::empty();
    let be = backend(&env);
    let mut init = InitOptions::default();
    init.append_only = true;
    let repo = commands::init(be.clone(), PASSWORD.as_bytes(), &init)
        .unwrap()
        .repository;
    let locked = repo.lock(&LockOptions::default()).unwrap();
    let added = commands::key_add(&locked, NEW.as_bytes(), &Default::default()).unwrap();
    drop(locked);
    assert_eq!(commands::key_list(&repo).unwrap().keys.len(), 2);
    // Removing needs the exclusive lock, which an append-only repository never grants.
    let e = repo.lock_exclusive(&LockOptions::default()).err().unwrap();
    assert!(matches!(e, Error::AppendOnly), "{e}");
    assert_eq!(
        Repository::open(be, NEW.as_bytes()).unwrap().current_key(),
        Some(added)
    );
}

#[test]
fn key_list_says_when_this_host_last_used_each_key() {
    let env = Env::new();
    let pwfile = env.path("new-password");
    std::fs::write(&pwfile, format!("{NEW}\n")).unwrap();
    env.ok(&[
        "key",
        "add",
        "--new-password-file",
        pwfile.to_str().unwrap(),
    ]);
    let listed = |password: &str| -> Vec<serde_json::Value> {
        let o = run_with(&env, password, &["--json", "key", "list"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
    };
    let used = |v: &[serde_json::Value]| -> Vec<(bool, Option<jiff::Timestamp>)> {
        v.iter()
            .map(|k| {
                let t = k
                    .get("lastUsed")
                    .and_then(|t| t.as_str())
                    .map(|t| t.parse().unwrap());
                (k["current"].as_bool().unwrap(), t)
            })
            .collect()
    };
    let before = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(2);
    // Only the key this host opened with last has a last use, and it is now.
    let with_old = used(&listed(PASSWORD));
    assert_eq!(
        with_old.iter().filter(|k| k.1.is_some()).count(),
        1,
        "{with_old:?}"
    );
    assert!(with_old.iter().all(|(current, t)| *current == t.is_some()));
    assert!(with_old.iter().any(|(_, t)| t.is_some_and(|t| t >= before)));
    // Opening with the other password moves it.
    let with_new = used(&listed(NEW));
    assert!(
        with_new.iter().all(|(current, t)| *current == t.is_some()),
        "{with_new:?}"
    );
    // Without a cache nothing is known.
    let o = run_with(&env, PASSWORD, &["--json", "--no-cache", "key", "list"]);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.iter().all(|k| k.get("lastUsed").is_none()), "{v:?}");
}
