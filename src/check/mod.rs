//! `check`: structural consistency, and with `read_data` every stored byte.
//!
//! Every problem is collected with the object it concerns; nothing stops at the first one.
//! Leftovers that do no harm (packs no index names, after an interrupted backup) are reported
//! as notes, not errors. `structure` holds the phases every check runs, `read_data` the one
//! that reads the packs, `subset` which packs it reads, `records` the verification records.

mod read_data;
mod records;
mod structure;
mod subset;

use std::sync::Mutex;

use crate::error::Result;
use crate::id::SnapshotId;
use crate::problem::Problem;
use crate::repository::{Freshness, Recorded, Repository};

pub use subset::{select_packs, Subset};

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    pub read_data: Option<Subset>,
    /// Store no verification record of this check (`--no-record`). None is stored either
    /// when the repository is not locked (`--no-lock`).
    pub no_record: bool,
    /// Counted as packs are read (`files` are packs here), for a progress display.
    pub progress: Option<std::sync::Arc<crate::util::Progress>>,
}

#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// Damage: each names the object (and, in a tree, the path).
    pub errors: Vec<Problem>,
    /// Harmless findings.
    pub notes: Vec<Problem>,
    pub snapshots: usize,
    /// The snapshots that loaded and were walked: those a record of this check covers.
    pub checked: Vec<SnapshotId>,
    pub trees: usize,
    pub packs: usize,
    /// Bytes of every stored pack.
    pub pack_bytes: u64,
    pub packs_read: usize,
    pub blobs_read: usize,
    pub bytes_read: u64,
    /// Verification records that opened.
    pub verifications: usize,
    /// The record of this check (`commands::check` stores it).
    pub recorded: Recorded,
    /// The newest snapshot and when it was last verified, after this check's record; `None`
    /// when that could not be read (`commands::check` fills it).
    pub freshness: Option<Freshness>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// What was checked and found, in one line (a receipt's check detail, a record's).
    pub fn counts_line(&self) -> String {
        format!(
            "{} snapshots, {} trees, {} packs; {} packs read; {} errors",
            self.snapshots,
            self.trees,
            self.packs,
            self.packs_read,
            self.errors.len()
        )
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
        read_data::read_data(repo, &packs, subset, opts.progress.as_deref(), &rep);
    }
    records::records(repo, &rep)?;
    Ok(rep.into_report())
}

/// The report the phases add to, behind a lock: each phase adds from many threads at once.
#[derive(Default)]
struct Findings(Mutex<CheckReport>);

impl Findings {
    fn error(&self, e: Problem) {
        self.0.lock().unwrap().errors.push(e);
    }

    fn note(&self, n: Problem) {
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

#[cfg(test)]
mod tests {
    use super::testing::{damage, mem_repo, names, noise};
    use super::*;
    use crate::backend::FileType;
    use crate::problem::{ObjectKind, ProblemKind};

    #[test]
    fn a_check_reports_a_damaged_pack_by_kind_and_id() {
        let repo = mem_repo("f", noise(3 << 20));
        let opts = CheckOptions {
            read_data: Some(Subset::All),
            ..Default::default()
        };
        let rep = check(&repo, &opts).unwrap();
        assert!(rep.ok(), "{:?}", rep.errors);
        // The largest pack holds the data; a flipped byte in a blob fails its storage hash.
        let victim = names(&repo, FileType::Pack)
            .into_iter()
            .max_by_key(|p| repo.backend().read(FileType::Pack, p).unwrap().len())
            .unwrap();
        damage(&repo, FileType::Pack, &victim, |b| b[1000] ^= 1);

        let rep = check(&repo, &opts).unwrap();
        assert!(!rep.ok());
        assert_eq!(rep.errors.len(), 1, "{:?}", rep.errors);
        let e = &rep.errors[0];
        assert_eq!(e.kind, ProblemKind::Damaged);
        let object = e.object.as_ref().expect("names the pack");
        assert_eq!(
            (object.kind, object.id.as_str()),
            (ObjectKind::Pack, &*victim)
        );
        assert_eq!(e.path, None);
        assert_eq!(e.to_string(), e.message);
        assert!(
            e.message.starts_with(&format!("pack {victim} is damaged")),
            "{e}"
        );
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["kind"], "damaged");
        assert_eq!(json["object"]["kind"], "pack");
        assert_eq!(json["object"]["id"], victim);
        assert_eq!(json["message"], e.message);
    }
}
