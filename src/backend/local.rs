//! Local disk. A write goes to `tmp/`, is fsynced, hard-linked to its final name (which fails if
//! the name exists, so nothing is ever replaced), and the directory is fsynced: after `write`
//! returns, the object survives a power cut, and a crash at any point leaves at most a stray
//! file in `tmp/`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{backend_err, is_object_name, object_path, Backend, FileType};
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    modes: std::sync::Arc<std::sync::OnceLock<Modes>>,
}

/// Permissions of what the backend creates. Objects are private and read-only (a key file
/// copied by another local user could be attacked offline; an object is never rewritten), as
/// restic does; a repository whose `config` an operator made group-readable gets
/// group-readable objects and directories too, so a backup-reader group keeps working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Modes {
    /// Mode a new object is written with, before it is made read-only.
    file: u32,
    dir: u32,
}

impl Modes {
    const PRIVATE: Modes = Modes {
        file: 0o600,
        dir: 0o700,
    };
    const GROUP: Modes = Modes {
        file: 0o640,
        dir: 0o750,
    };
    fn read_only(self) -> u32 {
        self.file & !0o222
    }
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend {
            root: root.into(),
            modes: Default::default(),
        }
    }

    fn modes(&self) -> Modes {
        use std::os::unix::fs::PermissionsExt;
        *self
            .modes
            .get_or_init(|| match fs::metadata(self.root.join("config")) {
                Ok(m) if m.permissions().mode() & 0o040 != 0 => Modes::GROUP,
                _ => Modes::PRIVATE,
            })
    }

    fn mkdir_all(&self, p: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(self.modes().dir)
            .create(p)
    }

    /// Creates `path` (which must not exist) with the object mode and writes `data` durably.
    fn write_new_file(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = self.modes();
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.file)
            .open(path)?;
        f.write_all(data)?;
        f.sync_all()?;
        // On the descriptor: the name is linked into place with its final mode.
        f.set_permissions(fs::Permissions::from_mode(mode.read_only()))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, t: FileType, name: &str) -> PathBuf {
        self.root.join(object_path(t, name))
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        let mk = |p: PathBuf| {
            self.mkdir_all(&p)
                .map_err(|e| crate::Error::io("create directory", p, e))
        };
        mk(self.root.clone())?;
        for t in FileType::ALL {
            if t != FileType::Config {
                mk(self.root.join(t.dir()))?;
            }
        }
        // `data/<xx>/` directories are made by the first write that needs one: a small
        // repository would otherwise carry 256 empty directories (1 MiB on ext4).
        mk(self.root.join("tmp"))?;
        sync_dir(&self.root).map_err(|e| crate::Error::io("sync directory", &self.root, e))
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        super::read_local_object(&self.path(t, name), t, name)
    }

    #[allow(unsafe_code)]
    fn map(&self, t: FileType, name: &str) -> Result<Option<memmap2::Mmap>> {
        let f = File::open(self.path(t, name)).map_err(|e| backend_err("open", t, name, e))?;
        // SAFETY: repository objects are written once (to tmp/, then linked into place) and
        // never modified in place; deleting one unlinks it and leaves the mapping valid. A file
        // truncated behind cista's back would raise SIGBUS (the process dies, nothing is
        // misreported); bytes rewritten in place by another program are caught by the pack's
        // hash and each blob's authentication, as for any damaged file.
        let m = unsafe { memmap2::MmapOptions::new().populate().map(&f) }
            .map_err(|e| backend_err("map", t, name, e))?;
        Ok(Some(m))
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let f = File::open(self.path(t, name)).map_err(|e| backend_err("open", t, name, e))?;
        let mut buf = vec![0u8; length as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| backend_err("read range", t, name, e))?;
        Ok(buf)
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let fin = self.path(t, name);
        let err = |op, e| backend_err(op, t, name, e);
        let tmpdir = self.root.join("tmp");
        let tmp = tmpdir.join(format!(
            "{}-{}",
            name,
            hex::encode(crate::crypto::random_bytes::<8>())
        ));
        if let Err(e) = self.write_new_file(&tmp, data) {
            let _ = fs::remove_file(&tmp);
            return Err(err("write", e));
        }
        let parent = fin
            .parent()
            .expect("object paths have a parent")
            .to_path_buf();
        let link = |tmp: &Path| match fs::hard_link(tmp, &fin) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.mkdir_all(&parent)?;
                fs::hard_link(tmp, &fin)
            }
            r => r,
        };
        let r = match link(&tmp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(e),
            // Filesystems without hard links: rename after an existence check. The window
            // between them is harmless for content-named objects.
            Err(_) if !fin.exists() => fs::rename(&tmp, &fin),
            Err(_) => Err(std::io::Error::new(
                ErrorKind::AlreadyExists,
                "object exists",
            )),
        };
        let _ = fs::remove_file(&tmp);
        r.map_err(|e| err("write", e))?;
        sync_dir(&parent).map_err(|e| err("sync directory", e))?;
        if t == FileType::Pack {
            // The `data/<xx>/` entry may be new (made here or by a concurrent writer that has
            // not synced it yet); the pack is durable only once that entry is. Syncing an
            // unchanged directory costs next to nothing.
            let data = parent.parent().expect("pack directories sit under data/");
            sync_dir(data).map_err(|e| err("sync directory", e))?;
        }
        Ok(())
    }

    fn replace_config(&self, data: &[u8]) -> Result<()> {
        let t = FileType::Config;
        let fin = self.path(t, "config");
        let tmp = self.root.join("tmp").join(format!(
            "config-{}",
            hex::encode(crate::crypto::random_bytes::<8>())
        ));
        let r = (|| -> std::io::Result<()> {
            self.write_new_file(&tmp, data)?;
            // rename replaces atomically: a reader sees the old config or the new one.
            fs::rename(&tmp, &fin)?;
            sync_dir(&self.root)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r.map_err(|e| backend_err("replace", t, "config", e))
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut scan = |dir: &Path| -> std::io::Result<()> {
            let rd = match fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for e in rd {
                let e = e?;
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if is_object_name(name) {
                    match e.metadata() {
                        Ok(m) => out.push((name.to_string(), m.len())),
                        // Deleted between readdir and stat (a lock released meanwhile): a
                        // listing may lag behind deletes, and this one just did.
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(())
        };
        let r = match t {
            FileType::Config => {
                return Ok(match fs::metadata(self.path(t, "config")) {
                    Ok(m) => vec![("config".into(), m.len())],
                    Err(_) => vec![],
                })
            }
            FileType::Pack => (|| {
                let data = self.root.join("data");
                let rd = match fs::read_dir(&data) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                };
                let mut dirs = Vec::new();
                for e in rd {
                    let e = e?;
                    let name = e.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if e.file_type()?.is_dir()
                        && name.len() == 2
                        && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    {
                        dirs.push(data.join(name));
                    }
                }
                dirs.iter().try_for_each(|d| scan(d))
            })(),
            _ => scan(&self.root.join(t.dir())),
        };
        r.map_err(|e| backend_err("list", t, "", e))?;
        out.sort();
        Ok(out)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        match fs::remove_file(self.path(t, name)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(backend_err("delete", t, name, e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        let d = tempfile::tempdir().unwrap();
        crate::backend::conformance::run(&super::LocalBackend::new(d.path().join("repo")));
    }

    #[test]
    fn pack_directories_are_made_on_first_use_and_strays_are_ignored() {
        use super::super::{Backend, FileType};
        let d = tempfile::tempdir().unwrap();
        let b = super::LocalBackend::new(d.path().join("repo"));
        b.create().unwrap();
        let data = d.path().join("repo/data");
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        let a = "ab".repeat(32);
        let c = "cd".repeat(32);
        b.write(FileType::Pack, &a, b"one").unwrap();
        b.write(FileType::Pack, &c, b"two").unwrap();
        assert!(data.join("ab").join(&a).is_file());
        // Not pack directories: wrong length, upper case, a plain file.
        std::fs::create_dir(data.join("abc")).unwrap();
        std::fs::write(data.join("abc").join("ef".repeat(32)), b"x").unwrap();
        std::fs::create_dir(data.join("AB")).unwrap();
        std::fs::write(data.join("AB").join("ef".repeat(32)), b"x").unwrap();
        std::fs::write(data.join("ee"), b"x").unwrap();
        let listed: Vec<String> = b
            .list(FileType::Pack)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(listed, vec![a.clone(), c]);
        assert_eq!(b.read(FileType::Pack, &a).unwrap(), b"one");
        assert_eq!(&b.map(FileType::Pack, &a).unwrap().unwrap()[..], b"one");
        let empty = "00".repeat(32);
        b.write(FileType::Pack, &empty, b"").unwrap();
        assert!(b.map(FileType::Pack, &empty).unwrap().unwrap().is_empty());
        b.remove(FileType::Pack, &empty).unwrap();
        let err = b
            .map(FileType::Pack, &"11".repeat(32))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&"11".repeat(32)), "{err}");
        b.remove(FileType::Pack, &a).unwrap();
        assert_eq!(b.list(FileType::Pack).unwrap().len(), 1);
    }
}
