//! Opening a repository: the config, the key files tried in order, the key hint.

use std::sync::Arc;

use crate::backend::{Backend, FileType};
use crate::crypto::{KeyFile, Keys};
use crate::error::{Error, Result};
use crate::format::{self, Config, FileKind, FORMAT_VERSION};
use crate::id::Id;

use super::{decode_err, OpenOptions, Repository, MAX_KEY_TRIES};

impl Repository {
    /// Opens a repository with a password.
    pub fn open(be: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        Self::open_with(be, password, &OpenOptions::default())
    }

    /// Opens a repository, trying first the key file `opts.key_hint` names, else the one that
    /// opened it last on this host (recorded under `opts.hint_dir`, one small file per
    /// repository location, written after a successful open). A hint is only an order: a wrong
    /// or stale one costs nothing but the usual search, so planted key files cannot slow a
    /// host that has opened the repository before.
    pub fn open_with(
        be: Arc<dyn Backend>,
        password: &[u8],
        opts: &OpenOptions,
    ) -> Result<Repository> {
        let hint_file = opts
            .hint_dir
            .as_ref()
            .map(|d| d.join(Id::of_bytes(be.location().as_bytes()).to_hex()));
        let remembered = hint_file
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string());
        let hint = opts.key_hint.clone().or_else(|| remembered.clone());
        // A full key file name (the usual remembered hint) is fetched beside the config, and
        // keys/ is listed only if it does not open: a warm open costs one round trip, not three.
        let first = hint
            .as_deref()
            .filter(|h| crate::backend::is_object_name(h));
        let (raw, prefetched) = std::thread::scope(|s| {
            let key = first.map(|h| s.spawn(|| (h.to_string(), load_key_file(&*be, h))));
            let raw = be.read(FileType::Config, "config");
            (raw, key.map(|k| k.join().expect("key file fetch panicked")))
        });
        let raw = match raw {
            Ok(r) => r,
            Err(e) if e.is_not_found() => {
                be.probe()?;
                return Err(Error::RepoNotFound(be.location()));
            }
            Err(e) => return Err(e),
        };
        match format::peek_version(FileKind::Config, &raw) {
            Ok(FORMAT_VERSION) => {}
            Ok(v) => {
                return Err(Error::UnsupportedVersion {
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Err(e) => return Err(decode_err("config", "config", e)),
        }
        let given = opts.key_hint.is_some();
        let (mut repo, key) = Self::unlock(be, password, &raw, hint.as_deref(), given, prefetched)?;
        if let Some(p) = &hint_file {
            if remembered.as_deref() != Some(key.to_hex().as_str()) {
                crate::backend::cache_put_file(p, key.to_hex().as_bytes());
            } else {
                // Its mtime is when this host last opened the repository with the key
                // (`key list`'s last use).
                let _ = filetime::set_file_mtime(p, filetime::FileTime::now());
            }
        }
        repo.key_hint_file = hint_file;
        Ok(repo)
    }

    /// Tries the key files, the hinted one first, running Argon2id for at most
    /// `MAX_KEY_TRIES` of them (each may cost up to the KDF ceiling, so junk key files must
    /// not multiply it without bound). A key file that opens with the password but whose
    /// master key does not open the config (left by an interrupted `init`, say) is passed
    /// over, as is one that cannot be read or has out-of-range parameters; when no key works,
    /// a damaged key file is reported rather than a wrong password, since the right key may be
    /// the damaged one. Returns the repository and the id (name) of the key file that opened it.
    /// `prefetched` is the hinted key file read beside the config; when it opens the
    /// repository, keys/ is not listed. A hint the user gave (`hint_given`) that matches no
    /// key file is warned about; a remembered one that went stale is not.
    fn unlock(
        be: Arc<dyn Backend>,
        password: &[u8],
        config_raw: &[u8],
        hint: Option<&str>,
        hint_given: bool,
        prefetched: Option<(String, Result<KeyFile>)>,
    ) -> Result<(Repository, Id)> {
        let mut failed = Failures::default();
        let mut tries = 0;
        let mut tried = None;
        if let Some((name, Ok(kf))) = prefetched {
            if kf.params.check().is_ok() {
                tries += 1;
                if let Some((keys, config)) = try_key(&kf, password, config_raw).opened(&mut failed)
                {
                    let id = key_name(&name)?;
                    return Ok((Repository::assemble(be, keys, config, id), id));
                }
                tried = Some(name);
            }
        }
        let mut names: Vec<String> = be.list(FileType::Key)?.into_iter().map(|n| n.0).collect();
        if names.is_empty() {
            return Err(Error::corrupt(
                "repository",
                be.location(),
                "it has no key files",
            ));
        }
        if let Some(h) = hint {
            let h = h.to_ascii_lowercase();
            match names.iter().position(|n| n.starts_with(&h)) {
                Some(i) => {
                    let n = names.remove(i);
                    names.insert(0, n);
                }
                // A remembered hint goes stale when the repository is made anew.
                None if hint_given => tracing::warn!("no key file matches the key hint {h}"),
                None => tracing::debug!("no key file matches the remembered key {h}"),
            }
        }
        for name in &names {
            if tried.as_ref() == Some(name) {
                continue; // opened above with the same password: no second Argon2id run
            }
            let checked = load_key_file(&*be, name).and_then(|kf| {
                kf.params
                    .check()
                    .map_err(|e| Error::corrupt("key file", name, e))?;
                Ok(kf)
            });
            let kf = match checked {
                Ok(kf) => kf,
                Err(e) => {
                    failed.damaged.get_or_insert(e);
                    continue;
                }
            };
            if tries == MAX_KEY_TRIES {
                tracing::warn!(
                    "stopped after trying {MAX_KEY_TRIES} of {} key files",
                    names.len()
                );
                break;
            }
            tries += 1;
            if let Some((keys, config)) = try_key(&kf, password, config_raw).opened(&mut failed) {
                let id = key_name(name)?;
                return Ok((Repository::assemble(be, keys, config, id), id));
            }
        }
        Err(failed.into_error())
    }
}

/// The id a key file's name spells: the BLAKE3 of its bytes, which `load_key_file` checked.
fn key_name(name: &str) -> Result<Id> {
    name.parse()
        .map_err(|_| Error::corrupt("key file", name, "its name is not a key file id"))
}

/// Opens key file `kf` with `password`, then the config with its master key.
fn try_key(kf: &KeyFile, password: &[u8], config_raw: &[u8]) -> KeyTry {
    let keys = match kf.open(password) {
        Ok(Some(k)) => k,
        Ok(None) => return KeyTry::NotThisKey,
        Err(e) => return KeyTry::Damaged(e),
    };
    match format::open_file(&keys, FileKind::Config, config_raw)
        .and_then(|plain| Config::decode(&plain))
    {
        Ok(config) => KeyTry::Opened(Box::new((keys, config))),
        Err(e) => KeyTry::ConfigFailed(decode_err("config", "config", e)),
    }
}

enum KeyTry {
    Opened(Box<(Keys, Config)>),
    NotThisKey,
    Damaged(Error),
    ConfigFailed(Error),
}

/// Why no key file opened the repository so far: the first key file that could not be read
/// and the first key whose master key did not open the config.
#[derive(Default)]
struct Failures {
    damaged: Option<Error>,
    config: Option<Error>,
}

impl Failures {
    /// A config that no key opens says more than a damaged key file, which says more than a
    /// wrong password (the right key may be the damaged one).
    fn into_error(self) -> Error {
        self.config.or(self.damaged).unwrap_or(Error::WrongPassword)
    }
}

impl KeyTry {
    /// The keys and config when the key opened the repository; otherwise records why not.
    fn opened(self, failed: &mut Failures) -> Option<(Keys, Config)> {
        match self {
            KeyTry::Opened(k) => return Some(*k),
            KeyTry::NotThisKey => {}
            KeyTry::Damaged(e) => {
                failed.damaged.get_or_insert(e);
            }
            KeyTry::ConfigFailed(e) => {
                failed.config.get_or_insert(e);
            }
        }
        None
    }
}

/// Reads a key file and checks its storage hash.
pub fn load_key_file(be: &dyn Backend, name: &str) -> Result<KeyFile> {
    let bytes = be.read(FileType::Key, name)?;
    if Id::of_bytes(&bytes).to_hex() != name {
        return Err(Error::corrupt(
            "key file",
            name,
            "stored bytes do not hash to the file name",
        ));
    }
    KeyFile::decode(&bytes).map_err(|e| Error::corrupt("key file", name, e))
}
