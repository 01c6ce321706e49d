//! `check`: structural consistency, and with `read_data` every stored byte.
//!
//! Every problem is collected with the object it concerns; nothing stops at the first one.
//! Leftovers that do no harm (packs no index names, after an interrupted backup) are reported
//! as notes, not errors. `structure` holds the phases every check runs, `read_data` the one
//! that reads the packs, `subset` which packs it reads.

mod read_data;
mod structure;
mod subset;

use std::sync::Mutex;

use crate::error::Result;
use crate::repository::Repository;

pub use subset::{select_packs, Subset};

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    pub read_data: Option<Subset>,
}

#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// Damage: each names the object.
    pub errors: Vec<String>,
    /// Harmless findings.
    pub notes: Vec<String>,
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs_read: usize,
    pub bytes_read: u64,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    let rep = Findings::default();
    structure::keys(repo, &rep)?;
    let index = structure::index(repo, &rep)?;
    let packs = structure::Packs::list(repo, &index)?;
    structure::packs(&index, &packs, &rep);
    let roots = structure::snapshots(repo, &rep)?;
    structure::trees(repo, &index, roots, &rep);
    if let Some(subset) = opts.read_data {
        read_data::read_data(repo, &packs, subset, &rep);
    }
    Ok(rep.into_report())
}

/// The report the phases add to, behind a lock: each phase adds from many threads at once.
#[derive(Default)]
struct Findings(Mutex<CheckReport>);

impl Findings {
    fn error(&self, e: String) {
        self.0.lock().unwrap().errors.push(e);
    }

    fn note(&self, n: String) {
        self.0.lock().unwrap().notes.push(n);
    }

    /// The counts, updated under one lock.
    fn with(&self, f: impl FnOnce(&mut CheckReport)) {
        f(&mut self.0.lock().unwrap())
    }

    fn into_report(self) -> CheckReport {
        self.0.into_inner().unwrap()
    }
}

/// Small repositories to damage, for the phases' tests.
#[cfg(test)]
mod testing {
    use std::io::Cursor;
    use std::sync::Arc;

    use crate::backend::{Backend, FileType, MemBackend};
    use crate::backup::{backup, BackupOptions, Source};
    use crate::index::Index;
    use crate::repository::{InitOptions, Repository};

    /// A repository on `be` with one snapshot of a file `name` holding `data`.
    pub fn repo_on(be: Arc<dyn Backend>, name: &str, data: Vec<u8>) -> Repository {
        let repo = Repository::init(be, b"pw", InitOptions::default()).unwrap();
        let index = Index::load(&repo).unwrap();
        let source = Source::Reader {
            name: name.into(),
            reader: Box::new(Cursor::new(data)),
        };
        backup(&repo, &index, source, &BackupOptions::default(), None).unwrap();
        repo
    }

    pub fn mem_repo(name: &str, data: Vec<u8>) -> Repository {
        repo_on(Arc::new(MemBackend::new()), name, data)
    }

    /// Incompressible bytes, so a few MiB make several blobs.
    pub fn noise(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 32);
        let mut h = blake3::Hasher::new();
        h.update(b"check tests");
        let mut x = h.finalize_xof();
        out.resize(n, 0);
        x.fill(&mut out);
        out
    }

    /// Names of the stored objects of type `t`.
    pub fn names(repo: &Repository, t: FileType) -> Vec<String> {
        repo.backend()
            .list(t)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// Stores `object` again, changed by `f`.
    pub fn damage(repo: &Repository, t: FileType, object: &str, f: impl FnOnce(&mut [u8])) {
        let be = repo.backend();
        let mut b = be.read(t, object).unwrap();
        f(&mut b);
        be.remove(t, object).unwrap();
        be.write(t, object, &b).unwrap();
    }
}
