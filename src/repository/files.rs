//! The repository's typed files: sealed files by content id, snapshots, id prefixes.

use rayon::prelude::*;

use crate::backend::{write_content_addressed, FileType};
use crate::error::{Error, Result};
use crate::format::{self, FileKind, Snapshot};
use crate::id::{Id, SnapshotId};

use super::{decode_err, warn_skipped, Loaded, Repository, SnapshotFilter};

impl Repository {
    /// Seals and stores a file of `kind`; returns its id (the BLAKE3 of the stored bytes).
    pub fn save_file(&self, kind: FileKind, t: FileType, raw: &[u8]) -> Result<Id> {
        let sealed = format::seal_file(&self.keys, kind, raw);
        let id = Id::of_bytes(&sealed);
        write_content_addressed(&*self.be, t, &id.to_hex(), &sealed)?;
        Ok(id)
    }

    /// Reads a stored file, checks its storage hash, and opens it.
    pub fn load_file(&self, kind: FileKind, t: FileType, id: &Id) -> Result<Vec<u8>> {
        let bytes = self.be.read(t, &id.to_hex()).map_err(|e| {
            if e.is_not_found() {
                Error::NotFound {
                    what: kind.name(),
                    id: id.to_hex(),
                }
            } else {
                e
            }
        })?;
        if Id::of_bytes(&bytes) != *id {
            return Err(Error::corrupt(
                kind.name(),
                id,
                "stored bytes do not hash to the file name",
            ));
        }
        format::open_file(&self.keys, kind, &bytes).map_err(|e| decode_err(kind.name(), id, e))
    }

    /// Ids of all stored objects of a type.
    pub fn list_ids(&self, t: FileType) -> Result<Vec<Id>> {
        Ok(self
            .be
            .list(t)?
            .into_iter()
            .filter_map(|(n, _)| n.parse().ok())
            .collect())
    }

    /// Every stored pack with its size.
    pub fn pack_sizes(&self) -> Result<std::collections::HashMap<Id, u64>> {
        Ok(self
            .be
            .list(FileType::Pack)?
            .into_iter()
            .filter_map(|(n, s)| Some((n.parse().ok()?, s)))
            .collect())
    }

    pub fn save_snapshot(&self, s: &Snapshot) -> Result<SnapshotId> {
        self.save_file(FileKind::Snapshot, FileType::Snapshot, &s.encode())
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let raw = self.load_file(FileKind::Snapshot, FileType::Snapshot, id)?;
        Snapshot::decode(&raw).map_err(|e| decode_err("snapshot", id, e))
    }

    /// Every snapshot that opens, oldest first. A snapshot file that fails verification is
    /// left out with a warning naming it: anyone with put rights (an append-only client, say)
    /// can store junk under a valid-looking name, and that must not stop every other host's
    /// backups and restores. Commands that must see every snapshot (prune, forget) use
    /// `all_snapshots`, and `check` reports the damage.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let loaded = self.all_snapshots()?;
        for (id, e) in &loaded.damaged {
            warn_skipped("snapshot", id, e);
        }
        Ok(loaded.ok)
    }

    /// Every snapshot, oldest first, and apart from them those that failed verification. A
    /// snapshot deleted between the listing and the read (by a concurrent forget) is left out;
    /// any other read error fails the call, since a snapshot that is merely unreachable is not
    /// damaged.
    pub fn all_snapshots(&self) -> Result<Loaded<Snapshot>> {
        let ids = self.list_ids(FileType::Snapshot)?;
        let got: Vec<(SnapshotId, Result<Snapshot>)> = self.in_flight(|| {
            ids.par_iter()
                .map(|id| (*id, self.load_snapshot(id)))
                .collect()
        });
        let mut loaded = Loaded::sort_out(got)?;
        sort_snapshots(&mut loaded.ok);
        Ok(loaded)
    }

    /// Resolves a unique id prefix of a stored object.
    pub fn find_id(&self, t: FileType, prefix: &str) -> Result<Id> {
        if let Ok(id) = prefix.parse::<Id>() {
            return Ok(id);
        }
        let p = prefix.to_ascii_lowercase();
        let matches: Vec<Id> = self
            .list_ids(t)?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&p))
            .collect();
        match matches.len() {
            1 => Ok(matches[0]),
            0 => Err(Error::NotFound {
                what: t.name(),
                id: prefix.to_string(),
            }),
            n => Err(Error::Invalid(format!(
                "{} prefix {prefix:?} is ambiguous: {n} match",
                t.name()
            ))),
        }
    }

    /// Resolves `latest`, an id or a unique prefix, honouring `filter` for `latest`.
    pub fn resolve_snapshot(
        &self,
        spec: &str,
        filter: &SnapshotFilter,
    ) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            let all = self.snapshots()?;
            return all
                .into_iter()
                .rev()
                .find(|(_, s)| filter.matches(s))
                .ok_or_else(|| Error::NotFound {
                    what: "snapshot",
                    id: "latest (matching the filters)".into(),
                });
        }
        let id = self.find_id(FileType::Snapshot, spec)?;
        Ok((id, self.load_snapshot(&id)?))
    }

    /// Deletes snapshots (`forget`), `check` called before each delete (the caller's lock
    /// still held). On an object store 2 x `connections` deletes are in flight at once, as
    /// prune's: forgetting a year of daily snapshots one round trip at a time takes long. The
    /// first error is returned; deletes already started complete, and a snapshot left behind
    /// is forgotten again by the next run.
    pub fn remove_snapshots(
        &self,
        ids: &[SnapshotId],
        check: impl Fn() -> Result<()> + Sync,
    ) -> Result<()> {
        self.in_flight(|| {
            ids.par_iter().try_for_each(|id| {
                check()?;
                self.be.remove(FileType::Snapshot, &id.to_hex())
            })
        })
    }

    /// Rewrites a snapshot's tags: the new snapshot is written first (recording the id it
    /// replaces), then the old one deleted. Returns the new id, or `None` when nothing changed.
    pub fn change_tags(
        &self,
        id: &SnapshotId,
        add: &[String],
        remove: &[String],
        set: Option<&[String]>,
    ) -> Result<Option<SnapshotId>> {
        let old = self.load_snapshot(id)?;
        let mut s = old.clone();
        if let Some(set) = set {
            s.tags = set.to_vec();
        }
        s.tags.retain(|t| !remove.contains(t));
        s.tags.extend(add.iter().cloned());
        s.tags.sort();
        s.tags.dedup();
        if s.tags == old.tags {
            return Ok(None);
        }
        s.original = Some(old.original.unwrap_or(*id));
        let new = self.save_snapshot(&s)?;
        self.be.remove(FileType::Snapshot, &id.to_hex())?;
        Ok(Some(new))
    }
}

/// Oldest first; ties broken by id so the order is stable.
pub fn sort_snapshots(v: &mut [(SnapshotId, Snapshot)]) {
    v.sort_by_cached_key(|(id, s)| (s.timestamp().unwrap_or_default(), *id));
}
