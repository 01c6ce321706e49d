//! Verification records (format §19): stored, loaded, and looked up by the snapshot they
//! cover; which ones still say something (prune removes the rest).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::backend::FileType;
use crate::error::Result;
use crate::format::{FileKind, Snapshot, Verification, VerificationMethod, VerificationResult};
use crate::id::{Id, SnapshotId};
use crate::problem::Problem;

use super::{decode_err, warn_skipped, Loaded, Repository};

impl Repository {
    /// Seals and stores a record; returns its id. Append-only repositories take it too: it
    /// only adds.
    pub fn save_verification(&self, v: &Verification) -> Result<Id> {
        self.save_file(FileKind::Verification, FileType::Verification, &v.encode())
    }

    pub fn load_verification(&self, id: &Id) -> Result<Verification> {
        let raw = self.load_file(FileKind::Verification, FileType::Verification, id)?;
        Verification::decode(&raw).map_err(|e| decode_err("verification record", id, e))
    }

    /// Every record, and apart from them those that failed verification (`check` reports
    /// them). A record deleted since the listing is left out; another read error fails.
    pub fn all_verifications(&self) -> Result<Loaded<Verification>> {
        let ids = self.list_ids(FileType::Verification)?;
        let got: Vec<(Id, Result<Verification>)> = self.in_flight(|| {
            ids.par_iter()
                .map(|id| (*id, self.load_verification(id)))
                .collect()
        });
        Loaded::sort_out(got)
    }

    /// Every record that opens; a damaged one is left out with a warning naming it, so junk
    /// under `verifications/` stops no listing.
    pub fn verifications(&self) -> Result<VerificationLog> {
        let loaded = self.all_verifications()?;
        for (id, e) in &loaded.damaged {
            warn_skipped("verification record", id, e);
        }
        Ok(VerificationLog::new(loaded.ok))
    }
}

/// The newest verification covering a snapshot, as `snapshots` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LastVerified {
    /// The record (`verifications/<id>`).
    pub id: Id,
    pub time: String,
    pub method: VerificationMethod,
    pub result: VerificationResult,
}

/// What a check or drill recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recorded {
    /// Stored as `verifications/<id>`.
    Written(Id),
    /// Nothing stored: the repository was not locked (`--no-lock`: read-only storage), or
    /// the caller asked for no record.
    #[default]
    Skipped,
    /// Storing it failed; a warning, the run's own result stands.
    Failed(Problem),
}

/// How fresh the verification of the repository's newest snapshot is (for metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Freshness {
    /// The newest snapshot of any host, and its time.
    pub latest_snapshot: Option<(SnapshotId, String)>,
    /// The time of the newest passed record covering it; `None` when none did.
    pub verified_at: Option<String>,
}

/// Records by the snapshots they cover, newest first. A snapshot rewritten by `tag` is
/// covered by the records of the snapshot it replaced (its `original`): same tree, same data.
#[derive(Debug, Default)]
pub struct VerificationLog {
    /// Newest first (by time, then id).
    records: Vec<(Id, Verification)>,
    /// Snapshot id → indices into `records`, ascending (so newest first).
    by_snapshot: HashMap<SnapshotId, Vec<usize>>,
}

impl VerificationLog {
    pub fn new(mut records: Vec<(Id, Verification)>) -> VerificationLog {
        records.sort_by_cached_key(|(id, v)| {
            std::cmp::Reverse((v.timestamp().unwrap_or_default(), *id))
        });
        let mut by_snapshot: HashMap<SnapshotId, Vec<usize>> = HashMap::new();
        for (i, (_, v)) in records.iter().enumerate() {
            for s in &v.snapshots {
                by_snapshot.entry(*s).or_default().push(i);
            }
        }
        for v in by_snapshot.values_mut() {
            v.dedup();
        }
        VerificationLog {
            records,
            by_snapshot,
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records covering snapshot `id`, newest first.
    pub fn covering<'a>(
        &'a self,
        id: &SnapshotId,
        s: &Snapshot,
    ) -> impl Iterator<Item = &'a (Id, Verification)> + 'a {
        self.positions(id, s).into_iter().map(|i| &self.records[i])
    }

    /// Where in `records` the records covering snapshot `id` are, ascending (newest first).
    fn positions(&self, id: &SnapshotId, s: &Snapshot) -> Vec<usize> {
        let mut at: Vec<usize> = [Some(id), s.original.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_snapshot.get(k))
            .flatten()
            .copied()
            .collect();
        at.sort_unstable();
        at.dedup();
        at
    }

    /// The newest record covering snapshot `id`.
    pub fn last(&self, id: &SnapshotId, s: &Snapshot) -> Option<LastVerified> {
        self.covering(id, s).next().map(|(rid, v)| LastVerified {
            id: *rid,
            time: v.time.clone(),
            method: v.method,
            result: v.result,
        })
    }

    /// The newest of `snapshots` and the newest passed record covering it.
    pub fn freshness(&self, snapshots: &[(SnapshotId, Snapshot)]) -> Freshness {
        let newest = snapshots
            .iter()
            .max_by_key(|(id, s)| (s.timestamp().unwrap_or_default(), *id));
        let Some((id, s)) = newest else {
            return Freshness::default();
        };
        Freshness {
            latest_snapshot: Some((*id, s.time.clone())),
            verified_at: self
                .covering(id, s)
                .find(|(_, v)| v.passed())
                .map(|(_, v)| v.time.clone()),
        }
    }

    /// The records that no longer say anything about `snapshots` (those left): each kept
    /// record is, for some snapshot left and some method, the newest record or the newest
    /// passed one. A record whose snapshots are all gone is therefore dropped, as is one
    /// superseded by a newer verification of the same kind for every snapshot it covers.
    pub fn superseded(&self, snapshots: &[(SnapshotId, Snapshot)]) -> Vec<Id> {
        let mut keep: HashSet<usize> = HashSet::new();
        for (id, s) in snapshots {
            let mut newest: HashSet<VerificationMethod> = HashSet::new();
            let mut passed: HashSet<VerificationMethod> = HashSet::new();
            for i in self.positions(id, s) {
                let v = &self.records[i].1;
                let first = newest.insert(v.method);
                if (v.passed() && passed.insert(v.method)) || first {
                    keep.insert(i);
                }
            }
        }
        (0..self.records.len())
            .filter(|i| !keep.contains(i))
            .map(|i| self.records[i].0)
            .collect()
    }
}

#[cfg(test)]
mod tests;
