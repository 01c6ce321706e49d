//! The verification record a check or drill leaves (format §19), and how fresh the newest
//! snapshot's verification is once it is stored.

use crate::error::Result;
use crate::format::{clip, Verification, VerificationMethod, VerificationResult};
use crate::id::SnapshotId;
use crate::problem::{Problem, ProblemKind};
use crate::repository::{Freshness, Recorded, Repository, VerificationLog};

use super::{DrillReport, Indexed};

/// A record of a verification ending now, on this host.
pub(super) fn new_record(
    method: VerificationMethod,
    passed: bool,
    snapshots: Vec<SnapshotId>,
    bytes_read: u64,
    detail: &str,
) -> Verification {
    Verification {
        time: crate::util::now_string(),
        method,
        subset: None,
        fraction: None,
        result: VerificationResult::of(passed),
        snapshots,
        tree: None,
        bytes_read,
        hostname: clip(&crate::util::hostname()),
        username: clip(&crate::util::username()),
        program_version: format!("cista {}", env!("CARGO_PKG_VERSION")),
        detail: clip(detail),
    }
}

/// Stores `v` when `wanted` (the repository is locked and no one asked for no record). A
/// failed write is returned as a warning: the verification's own result stands.
pub(super) fn store(repo: &Repository, wanted: bool, v: &Verification) -> Recorded {
    if !wanted {
        return Recorded::Skipped;
    }
    match repo.save_verification(v) {
        Ok(id) => Recorded::Written(id),
        Err(e) => Recorded::Failed(Problem::new(
            ProblemKind::RecordNotWritten,
            format!("the verification record could not be written: {e}"),
        )),
    }
}

/// The newest snapshot and when a passed record last covered it, counting `written` (just
/// stored: a lagging listing may not show it yet). `None`, with a warning, when the
/// snapshots or records cannot be listed; damaged ones are left out (check reports them).
pub(super) fn freshness(
    repo: &Repository,
    written: &Recorded,
    v: &Verification,
) -> Option<Freshness> {
    let read = || -> Result<Freshness> {
        let snaps = repo.all_snapshots()?.ok;
        let mut records = repo.all_verifications()?.ok;
        if let Recorded::Written(id) = written {
            if !records.iter().any(|(r, _)| r == id) {
                records.push((*id, v.clone()));
            }
        }
        Ok(VerificationLog::new(records).freshness(&snaps))
    };
    read()
        .inspect_err(|e| tracing::warn!("cannot tell when the newest snapshot was verified: {e}"))
        .ok()
}

/// The share of the stored pack bytes a check read, to four places (an empty repository
/// was read whole).
pub(super) fn fraction(read: u64, stored: u64) -> f64 {
    if stored == 0 {
        return 1.0;
    }
    ((read as f64 / stored as f64).min(1.0) * 10_000.0).round() / 10_000.0
}

/// Records the drill of snapshot `id` as it ended: its report, or the error that stopped it
/// when that error is damage (a tree or blob that fails verification or is missing); other
/// errors (a target that is not empty, storage down) verified nothing and record nothing.
pub(super) fn after_drill(
    ix: &Indexed,
    id: SnapshotId,
    no_record: bool,
    ended: Result<DrillReport>,
) -> Result<DrillReport> {
    let wanted = ix.guard().is_some() && !no_record;
    match ended {
        Ok(mut r) => {
            let problems = r.problems.len() + r.restore.errors.len();
            let mut detail = format!(
                "{} trees recomputed, {} files restored and read back, {} entries compared; {problems} problems",
                r.trees_verified, r.restore.verified_files, r.entries_compared
            );
            if let Some(first) = r.restore.errors.iter().chain(&r.problems).next() {
                detail.push_str(&format!(" (first: {first})"));
            }
            let mut v = new_record(
                VerificationMethod::Drill,
                r.ok(),
                vec![id],
                r.restore.bytes,
                &detail,
            );
            v.tree = r.recomputed_root;
            r.recorded = store(ix.repo(), wanted, &v);
            r.freshness = freshness(ix.repo(), &r.recorded, &v);
            Ok(r)
        }
        Err(e) if e.is_integrity() || e.is_not_found() => {
            let v = new_record(
                VerificationMethod::Drill,
                false,
                vec![id],
                0,
                &e.to_string(),
            );
            if let Recorded::Failed(p) = store(ix.repo(), wanted, &v) {
                tracing::warn!("{p}");
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}
