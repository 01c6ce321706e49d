//! `snapshots`: the snapshots a filter selects, optionally grouped.

use std::collections::HashMap;

use crate::error::Result;
use crate::format::Snapshot;
use crate::id::SnapshotId;
use crate::policy::{group, GroupBy, GroupKey};
use crate::repository::{LastVerified, Repository, SnapshotFilter};

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SnapshotsOptions {
    pub filter: SnapshotFilter,
    /// Group by host, paths and/or tags (restic's `--group-by`); `None`: one list.
    pub group_by: Option<GroupBy>,
    /// Only the latest N of each host and set of paths (restic's `--latest`), after the
    /// filter and before grouping.
    pub latest: Option<usize>,
    /// Read the verification records too, for `SnapshotsReport::verified`.
    pub verified: bool,
}

/// One group of snapshots, oldest first.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SnapshotGroup {
    /// `None` when no grouping was asked for.
    pub key: Option<GroupKey>,
    pub snapshots: Vec<(SnapshotId, Snapshot)>,
}

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SnapshotsReport {
    pub groups: Vec<SnapshotGroup>,
    /// With `SnapshotsOptions::verified`: each listed snapshot's newest verification
    /// record (a snapshot never verified has none).
    pub verified: HashMap<SnapshotId, LastVerified>,
}

/// Every snapshot that opens and matches `opts.filter` (damaged ones are skipped with a
/// warning; `check` reports them).
pub fn snapshots(repo: &Repository, opts: &SnapshotsOptions) -> Result<SnapshotsReport> {
    let snaps: Vec<(SnapshotId, Snapshot)> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| opts.filter.matches(s))
        .collect();
    let snaps = match opts.latest {
        Some(n) => latest_per_host_and_paths(snaps, n),
        None => snaps,
    };
    let groups = match opts.group_by {
        None => vec![SnapshotGroup {
            key: None,
            snapshots: snaps,
        }],
        Some(g) => group(snaps, g)
            .into_iter()
            .map(|(k, v)| SnapshotGroup {
                key: Some(k),
                snapshots: v,
            })
            .collect(),
    };
    let verified = if opts.verified {
        let log = repo.verifications()?;
        let listed = groups.iter().flat_map(|g| &g.snapshots);
        listed
            .filter_map(|(id, s)| Some((*id, log.last(id, s)?)))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(SnapshotsReport { groups, verified })
}

/// The last `n` of each (host, paths) in `snaps` (oldest first, as listed), order kept.
fn latest_per_host_and_paths(
    snaps: Vec<(SnapshotId, Snapshot)>,
    n: usize,
) -> Vec<(SnapshotId, Snapshot)> {
    let mut seen: HashMap<(String, Vec<String>), usize> = HashMap::new();
    let mut kept: Vec<_> = snaps
        .into_iter()
        .rev()
        .filter(|(_, s)| {
            let mut paths = s.paths.clone();
            paths.sort();
            let c = seen.entry((s.hostname.clone(), paths)).or_default();
            *c += 1;
            *c <= n
        })
        .collect();
    kept.reverse();
    kept
}
