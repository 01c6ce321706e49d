//! `key`: the repository's key files listed, added and removed, and the password changed (a
//! key file added for the new password, then the one in use removed), as restic's `key`.
//!
//! Every key file wraps the same master key, so adding or removing one changes who can open
//! the repository, never what is stored. Two rules keep the repository openable: the last
//! usable key file is never removed, and the key file in use is removed only when asked
//! (`force`), and then only while another remains.

use rayon::prelude::*;

use crate::backend::FileType;
use crate::crypto::{KdfParams, KeyFile};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repository::{load_key_file, Repository};
use crate::util::{hostname, username};

use super::{Exclusive, Locked};

/// One key file, as it records itself (everything but the salt and the wrapped key). Key
/// files are not sealed: anyone who can write `keys/` can write anything here, so the
/// creation time, host and user are informational.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    pub id: Id,
    /// The key file that opened this repository.
    pub current: bool,
    /// When it was created (RFC 3339, as stored).
    pub created: String,
    /// The host and user that created it.
    pub hostname: String,
    pub username: String,
    /// The key file's version and key derivation (`argon2id`) with its cost.
    pub version: u32,
    pub kdf: String,
    pub params: KdfParams,
    /// When this host last opened the repository with it (RFC 3339), as its local cache
    /// remembers; `None` for keys this host did not use last, or without a cache. The
    /// repository itself records no use: opening it writes nothing.
    pub last_used: Option<String>,
}

/// The key files of a repository.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct KeyListReport {
    /// Oldest first (by creation time, then id).
    pub keys: Vec<KeyInfo>,
    /// Key files that cannot be read as one (bytes that do not hash to the name, not a key
    /// file's JSON), by name, with why.
    pub damaged: Vec<(String, Error)>,
}

/// Lists the key files. The one that opened `repo` is marked `current`.
pub fn key_list(repo: &Repository) -> Result<KeyListReport> {
    let be = repo.backend();
    let names: Vec<String> = be.list(FileType::Key)?.into_iter().map(|n| n.0).collect();
    let got: Vec<(String, Result<KeyFile>)> = repo.in_flight(|| {
        names
            .into_par_iter()
            .map(|n| {
                let kf = load_key_file(&**be, &n);
                (n, kf)
            })
            .collect()
    });
    let current = repo.current_key();
    let used = repo.key_last_used_here().and_then(|(id, t)| {
        let t = jiff::Timestamp::try_from(t).ok()?;
        Some((id, t.to_string()))
    });
    let mut report = KeyListReport::default();
    for (name, kf) in got {
        match kf.and_then(|kf| Ok((key_id(&name)?, kf))) {
            Ok((id, kf)) => report.keys.push(KeyInfo {
                id,
                current: current == Some(id),
                created: kf.created,
                hostname: kf.hostname,
                username: kf.username,
                version: kf.version,
                kdf: kf.kdf,
                params: kf.params,
                last_used: used.as_ref().filter(|(u, _)| *u == id).map(|x| x.1.clone()),
            }),
            // Removed since the listing (by a concurrent `key remove`).
            Err(e) if e.is_not_found() => {}
            Err(e) if e.is_integrity() => report.damaged.push((name, e)),
            Err(e) => return Err(e),
        }
    }
    report
        .keys
        .sort_by_key(|k| (k.created.parse::<jiff::Timestamp>().ok(), k.id));
    report.damaged.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(report)
}

/// What a new key file records.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct KeyAddOptions {
    /// The host recorded as its creator (default: this host's name).
    pub hostname: Option<String>,
    /// The user recorded as its creator (default: the current user).
    pub username: Option<String>,
    /// Argon2id's cost for the new password (default: the format's floor; see
    /// `KdfParams::check` for the bounds).
    pub kdf: KdfParams,
}

/// Adds a key file that opens the repository with `new_password`; returns its id. Adding
/// only adds, so a shared lock suffices and an append-only repository allows it.
pub fn key_add(locked: &Locked, new_password: &[u8], opts: &KeyAddOptions) -> Result<Id> {
    locked.check()?;
    add(locked.repo(), new_password, opts)
}

fn add(repo: &Repository, password: &[u8], opts: &KeyAddOptions) -> Result<Id> {
    let host = opts.hostname.clone().unwrap_or_else(hostname);
    let user = opts.username.clone().unwrap_or_else(username);
    repo.add_key_as(password, opts.kdf, &host, &user)
}

/// How `key_remove` treats the key in use.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct KeyRemoveOptions {
    /// Remove the key file that opened this repository too (still refused when it is the
    /// last usable one). restic refuses that outright.
    pub force: bool,
}

/// The key file `key_remove` removed.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct KeyRemoveReport {
    pub removed: Id,
    /// It was the key file that opened this repository (removed with `force`).
    pub was_current: bool,
}

/// Removes the key file `id_or_prefix` names (a full id or a unique prefix). Refused
/// (`Error::LastKey`) when no other usable key file would remain, and for the key file in use
/// unless `opts.force` (`Error::KeyInUse`); on an append-only repository
/// (`Error::AppendOnly`), as every command that deletes.
pub fn key_remove(
    ex: &Exclusive,
    id_or_prefix: &str,
    opts: &KeyRemoveOptions,
) -> Result<KeyRemoveReport> {
    let repo = ex.repo();
    repo.refuse_if_append_only()?;
    let ids = repo.list_ids(FileType::Key)?;
    let id = resolve(&ids, id_or_prefix)?;
    let current = repo.current_key();
    if !another_usable_key(repo, &ids, id, current) {
        return Err(Error::LastKey { id: id.to_hex() });
    }
    if current == Some(id) && !opts.force {
        return Err(Error::KeyInUse { id: id.to_hex() });
    }
    ex.check()?;
    repo.backend().remove(FileType::Key, &id.to_hex())?;
    let was_current = current == Some(id);
    if was_current {
        repo.set_current_key(None);
    }
    Ok(KeyRemoveReport {
        removed: id,
        was_current,
    })
}

/// Changes the password: adds a key file for `new_password` (recording what `opts` say),
/// then removes the key file that opened the repository; returns the new key file's id,
/// which is the current key from then on. Refused on an append-only repository.
pub fn key_passwd(ex: &Exclusive, new_password: &[u8], opts: &KeyAddOptions) -> Result<Id> {
    let repo = ex.repo();
    repo.refuse_if_append_only()?;
    let old = repo.current_key().ok_or_else(|| {
        Error::Invalid(
            "the key file that opened this repository was removed: there is no password to \
             change (add a key with `key add`)"
                .into(),
        )
    })?;
    ex.check()?;
    let new = add(repo, new_password, opts)?;
    repo.set_current_key(Some(new));
    ex.check()?;
    match repo.backend().remove(FileType::Key, &old.to_hex()) {
        Ok(()) => Ok(new),
        // Removed meanwhile (by another host's `key remove --force`): the change is done.
        Err(e) if e.is_not_found() => Ok(new),
        Err(e) => {
            tracing::warn!(
                "the new key {} was saved, but the old key {} could not be removed: both \
                 passwords open the repository until it is",
                new.short(),
                old.short()
            );
            Err(e)
        }
    }
}

/// The key file name spelled by a key file that loaded (its bytes hash to it).
fn key_id(name: &str) -> Result<Id> {
    name.parse()
        .map_err(|_| Error::corrupt("key file", name, "its name is not a key file id"))
}

/// The one key file whose id starts with `prefix`.
fn resolve(ids: &[Id], prefix: &str) -> Result<Id> {
    let p = prefix.trim().to_ascii_lowercase();
    if p.is_empty() {
        return Err(Error::Invalid("no key id given".into()));
    }
    let matches: Vec<Id> = ids
        .iter()
        .copied()
        .filter(|id| id.to_hex().starts_with(&p))
        .collect();
    match matches.len() {
        1 => Ok(matches[0]),
        0 => Err(Error::NotFound {
            what: "key",
            id: prefix.to_string(),
        }),
        n => Err(Error::Invalid(format!(
            "key id prefix {prefix:?} is ambiguous: {n} key files match (give more digits)"
        ))),
    }
}

/// Whether a key file other than `id` would remain that could open the repository: the
/// current key (it opened it), else any that reads as a key file this build accepts. Whose
/// password opens the others cannot be known here; a damaged one does not count.
fn another_usable_key(repo: &Repository, ids: &[Id], id: Id, current: Option<Id>) -> bool {
    if current.is_some_and(|c| c != id && ids.contains(&c)) {
        return true;
    }
    ids.iter().filter(|k| **k != id).any(|k| {
        load_key_file(&**repo.backend(), &k.to_hex())
            .is_ok_and(|kf| kf.version == 1 && kf.kdf == "argon2id" && kf.params.check().is_ok())
    })
}
