//! `forget`: snapshots removed by id, or by a retention policy applied per group, with the
//! safety rule that a policy never empties a group unless told to.

use crate::error::{Error, Result};
use crate::format::Snapshot;
use crate::id::SnapshotId;
use crate::policy::{apply, group, GroupBy, GroupDecision, KeepPolicy};
use crate::repository::{Repository, SnapshotFilter};

use super::Exclusive;

/// What to forget: `ids`, or else the snapshots `filter` selects, grouped by `group_by`,
/// minus what `policy` keeps.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ForgetOptions {
    /// Snapshot ids or prefixes (or `latest`); exclusive with a policy.
    pub ids: Vec<String>,
    pub policy: KeepPolicy,
    pub group_by: GroupBy,
    pub filter: SnapshotFilter,
    /// Allow a policy to remove every snapshot of a group, and no policy with a filter to
    /// remove every snapshot it selects (restic's `--unsafe-allow-remove-all`).
    pub unsafe_allow_remove_all: bool,
    /// Decide and report, remove nothing.
    pub dry_run: bool,
}

/// One group's decision and the snapshots it was made over (newest first).
#[derive(Debug)]
#[non_exhaustive]
pub struct ForgetGroup {
    pub decision: GroupDecision,
    pub snapshots: Vec<(SnapshotId, Snapshot)>,
}

/// What `forget` decided and did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ForgetReport {
    /// Per group, for a policy run (empty when ids were given).
    pub groups: Vec<ForgetGroup>,
    /// The snapshots removed (or, in a dry run, to remove).
    pub remove: Vec<SnapshotId>,
    /// Snapshots named by id that fail verification: removed all the same, with the reason.
    pub damaged: Vec<(SnapshotId, Error)>,
    /// Neither ids nor a policy: nothing was removed (restic exits 0 then too).
    pub no_policy: bool,
    pub dry_run: bool,
}

/// Decides and (unless a dry run) removes, checking the lock before each delete.
pub fn forget(ex: &Exclusive, opts: &ForgetOptions) -> Result<ForgetReport> {
    let repo = ex.repo();
    repo.refuse_if_append_only()?;
    let mut report = ForgetReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if !opts.ids.is_empty() {
        if !opts.policy.is_empty() {
            return Err(Error::Invalid(
                "give snapshot ids or a --keep policy, not both".into(),
            ));
        }
        (report.remove, report.damaged) = resolve_ids(repo, &opts.ids, &opts.filter)?;
    } else if opts.policy.is_empty() && !opts.unsafe_allow_remove_all {
        report.no_policy = true;
        return Ok(report);
    } else {
        if opts.policy.is_empty() && opts.filter.is_empty() {
            return Err(Error::Invalid(
                "--unsafe-allow-remove-all needs a snapshot filter (--host, --tag or --path)"
                    .into(),
            ));
        }
        report.groups = decide(repo, opts)?;
        report.remove = report
            .groups
            .iter()
            .flat_map(|g| g.decision.remove.iter().copied())
            .collect();
    }
    if !opts.dry_run {
        repo.remove_snapshots(&report.remove, || ex.check())?;
    }
    Ok(report)
}

/// The policy applied to each group of the filtered snapshots; refuses (before anything is
/// removed) a group the policy would empty, unless allowed.
fn decide(repo: &Repository, opts: &ForgetOptions) -> Result<Vec<ForgetGroup>> {
    let filtered = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| opts.filter.matches(s))
        .collect();
    let now = jiff::Timestamp::now();
    let tz = jiff::tz::TimeZone::system();
    let mut out = Vec::new();
    for (key, snapshots) in group(filtered, opts.group_by) {
        let decision = apply(key, &snapshots, &opts.policy, now, &tz)?;
        if decision.keep.is_empty() && !decision.remove.is_empty() && !opts.unsafe_allow_remove_all
        {
            return Err(Error::RemovesAll {
                count: decision.remove.len(),
                group: decision.group.to_string(),
            });
        }
        out.push(ForgetGroup {
            decision,
            snapshots,
        });
    }
    Ok(out)
}

/// The snapshots `ids` name, each once. A snapshot that fails verification is still removed
/// by its id (that is how a planted or damaged one goes), and reported.
#[allow(clippy::type_complexity)]
fn resolve_ids(
    repo: &Repository,
    ids: &[String],
    filter: &SnapshotFilter,
) -> Result<(Vec<SnapshotId>, Vec<(SnapshotId, Error)>)> {
    let (mut out, mut damaged) = (Vec::new(), Vec::new());
    for i in ids {
        let id = match repo.resolve_snapshot(i, filter) {
            Ok((id, _)) => id,
            Err(e) if e.is_integrity() && i != "latest" => {
                let id = repo.find_id(crate::backend::FileType::Snapshot, i)?;
                damaged.push((id, e));
                id
            }
            Err(e) => return Err(e),
        };
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok((out, damaged))
}
