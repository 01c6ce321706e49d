//! Steps 2–6 of prune: repack, write the new index, delete the old index files, then the
//! packs nothing names, then the verification records that say nothing any more.

use std::collections::HashMap;

use rayon::prelude::*;

use super::plan::{PackPlan, PrunePlan};
use super::repack::repack;
use super::{PruneReport, RetainedObject};
use crate::backend::FileType;
use crate::error::Result;
use crate::format::{FileKind, IndexFile, IndexPack};
use crate::id::Id;
use crate::lock::LockGuard;
use crate::problem::{ObjectKind, Problem, ProblemKind};
use crate::repository::Repository;

/// How one delete went.
enum DeleteOutcome {
    Deleted(FileType, u64),
    Retained(RetainedObject),
    Failed(Problem),
}

impl PrunePlan {
    /// Carries the plan out. `lock`, when given, is checked before the first write and before
    /// every delete.
    pub fn execute(mut self, repo: &Repository, lock: Option<&LockGuard>) -> Result<PruneReport> {
        let mut rep = self.report.clone();
        if self.nothing_to_do() {
            return Ok(rep);
        }
        let check_lock = || lock.map_or(Ok(()), |l| l.check());
        check_lock()?;
        let records: Vec<(FileType, Id, u64)> = std::mem::take(&mut self.records)
            .into_iter()
            .map(|id| (FileType::Verification, id, 0))
            .collect();
        if !self.packs_untouched() {
            self.rewrite(repo, &check_lock, &mut rep)?;
        }
        // 6. Records last: they describe snapshots, not data, and nothing else needs them.
        delete_all(repo, &check_lock, &records, &mut rep)?;
        rep.retained.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(rep)
    }

    /// Steps 2–5: repack, write the new index, delete the old index files and the packs.
    fn rewrite(
        self,
        repo: &Repository,
        check_lock: &(impl Fn() -> Result<()> + Sync),
        rep: &mut PruneReport,
    ) -> Result<()> {
        // 2. Repack.
        let progress = self.progress.as_deref();
        let repacked = repack(repo, &self.repack, self.repack_uncompressed, progress)?;
        rep.packs_written = repacked.packs_written as usize;
        rep.bytes_written = repacked.bytes_written;

        // 3. New index: kept packs with their used entries, plus the new packs.
        let PrunePlan {
            keep,
            repack,
            delete,
            unindexed,
            old_index,
            ..
        } = self;
        let mut all: Vec<IndexPack> = keep
            .into_iter()
            .map(|p| IndexPack {
                id: p.id,
                blobs: p.keep,
            })
            .collect();
        all.extend(repacked.packs);
        all.sort_by_key(|p| p.id);
        rep.index_files_written = write_index(repo, &all, &old_index)?;

        // 4. Old index files, then 5. packs nothing names. Neither is needed any more, so an
        // object the store will not delete yet is reported and left for a later prune instead
        // of stopping half way.
        check_lock()?;
        let index_sizes: HashMap<String, u64> =
            repo.backend().list(FileType::Index)?.into_iter().collect();
        let doomed_index: Vec<(FileType, Id, u64)> = old_index
            .iter()
            .map(|id| {
                let size = index_sizes.get(&id.to_hex()).copied().unwrap_or(0);
                (FileType::Index, *id, size)
            })
            .collect();
        let sized = |p: &PackPlan| (p.id, p.size);
        let doomed_packs: Vec<(FileType, Id, u64)> = delete
            .iter()
            .map(sized)
            .chain(repack.iter().map(sized))
            .chain(unindexed.iter().copied())
            .map(|(id, size)| (FileType::Pack, id, size))
            .collect();
        // Index files before packs; every delete first checks the lock is still held.
        for doomed in [doomed_index, doomed_packs] {
            delete_all(repo, check_lock, &doomed, rep)?;
        }
        Ok(())
    }
}

/// Writes `all` as index files of 256 packs each and returns how many. Only the last file
/// names the old ones (`supersedes`): it is written after the others are durable, so the old
/// files drop out of force only once the whole new index is stored.
fn write_index(repo: &Repository, all: &[IndexPack], old_index: &[Id]) -> Result<usize> {
    let mut chunks: Vec<&[IndexPack]> = all.chunks(256).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.iter().enumerate() {
        let f = IndexFile {
            supersedes: if i == last {
                old_index.to_vec()
            } else {
                vec![]
            },
            packs: chunk.to_vec(),
        };
        repo.save_file(FileKind::Index, FileType::Index, &f.encode())?;
    }
    Ok(chunks.len())
}

/// Deletes `doomed` in parallel, counting what went into `rep`. An object under retention is
/// left and reported, a failed delete is reported; only a lost lock stops it.
fn delete_all(
    repo: &Repository,
    check_lock: &(impl Fn() -> Result<()> + Sync),
    doomed: &[(FileType, Id, u64)],
    rep: &mut PruneReport,
) -> Result<()> {
    let be = repo.backend();
    let outcome: Vec<Result<DeleteOutcome>> = repo.in_flight(|| {
        doomed
            .par_iter()
            .map(|&(t, id, size)| {
                let name = id.to_hex();
                // A store that cannot say is treated as holding nothing: the delete then
                // either works or is reported as failed.
                if let Ok(Some(r)) = be.retention(t, &name) {
                    return Ok(DeleteOutcome::Retained(RetainedObject {
                        path: crate::backend::object_path(t, &name),
                        size,
                        retention: r,
                    }));
                }
                check_lock()?;
                Ok(match be.remove(t, &name) {
                    Ok(()) => DeleteOutcome::Deleted(t, size),
                    Err(e) => DeleteOutcome::Failed(
                        Problem::new(ProblemKind::DeleteFailed, e.to_string())
                            .with_object(object_kind(t), &name),
                    ),
                })
            })
            .collect()
    });
    for o in outcome {
        match o? {
            DeleteOutcome::Deleted(FileType::Index, _) => rep.index_files_deleted += 1,
            DeleteOutcome::Deleted(FileType::Verification, _) => rep.verifications_removed += 1,
            DeleteOutcome::Deleted(_, size) => {
                rep.packs_removed += 1;
                rep.bytes_removed += size;
            }
            DeleteOutcome::Retained(r) => {
                rep.bytes_retained += r.size;
                rep.retained.push(r);
            }
            DeleteOutcome::Failed(e) => rep.delete_failed.push(e),
        }
    }
    Ok(())
}

/// What prune deletes, as a problem names it.
fn object_kind(t: FileType) -> ObjectKind {
    match t {
        FileType::Index => ObjectKind::Index,
        FileType::Snapshot => ObjectKind::Snapshot,
        FileType::Key => ObjectKind::Key,
        FileType::Lock => ObjectKind::Lock,
        FileType::Config => ObjectKind::Config,
        FileType::Pack => ObjectKind::Pack,
        FileType::Verification => ObjectKind::Verification,
    }
}
