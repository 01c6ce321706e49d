//! Grouping: snapshots split by host, paths and/or tags (`--group-by`), each group decided
//! on its own.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::Snapshot;
use crate::id::SnapshotId;

/// How snapshots are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                _ => {
                    return Err(Error::Invalid(format!(
                        "--group-by {part:?}: use host, paths and/or tags"
                    )))
                }
            }
        }
        Ok(g)
    }
}

/// The key of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    pub host: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

/// `host [h], paths [a, b], tags [t]`, or `all snapshots` for the one group of `--group-by ''`.
impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host [{h}]"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl GroupBy {
    pub fn key(&self, s: &Snapshot) -> GroupKey {
        let mut paths = s.paths.clone();
        paths.sort();
        let mut tags = s.tags.clone();
        tags.sort();
        GroupKey {
            host: self.host.then(|| s.hostname.clone()),
            paths: self.paths.then_some(paths),
            tags: self.tags.then_some(tags),
        }
    }
}

/// Groups snapshots, each group oldest first.
pub fn group(
    snaps: Vec<(SnapshotId, Snapshot)>,
    by: GroupBy,
) -> BTreeMap<GroupKey, Vec<(SnapshotId, Snapshot)>> {
    let mut out: BTreeMap<GroupKey, Vec<(SnapshotId, Snapshot)>> = BTreeMap::new();
    for (id, s) in snaps {
        out.entry(by.key(&s)).or_default().push((id, s));
    }
    for v in out.values_mut() {
        crate::repository::sort_snapshots(v);
    }
    out
}
