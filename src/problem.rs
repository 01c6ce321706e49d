//! Problems that check, restore and backup report without stopping: each one typed, so a
//! library user can match on its kind and read the object and path it concerns without
//! parsing text, and carrying the message the CLI prints.
//!
//! In JSON (the CLI's `--json` summaries) a problem is
//! `{"kind": "damaged", "object": {"kind": "pack", "id": "<64 hex>"}, "path": null,
//! "message": "pack … is damaged: …"}`; `object` and `path` are `null` when it names none.

use std::fmt;

use serde::Serialize;

use crate::error::Error;
use crate::format::BlobType;

/// One problem found: what kind it is, the stored object and the path it concerns, and the
/// full message (what `Display` prints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Problem {
    pub kind: ProblemKind,
    /// The stored object the problem concerns: the damaged or missing one, or the one that
    /// could not be read.
    pub object: Option<ObjectRef>,
    /// The path it concerns. Check: the snapshot and the path inside it
    /// (`snapshot 1a2b3c4d/home/f.txt`); restore: the path inside the snapshot; backup: the
    /// source path on this host.
    pub path: Option<String>,
    /// The whole message, naming the object and the path as the CLI prints it.
    pub message: String,
}

/// What is wrong. Problems are about stored objects (`object` names which) or about paths
/// (`path`); the kind says what happened to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// A stored object failed verification: its bytes do not hash to its name, it does not
    /// authenticate or decode, or a blob's keyed id or length is wrong.
    Damaged,
    /// A stored object could not be read: the storage failed (this is not a verification
    /// failure).
    Unreadable,
    /// An object that another one names is not there: a pack the index names, a blob a tree
    /// names that the index lacks, a tree the index lacks.
    Missing,
    /// A stored object of a format version this build does not read.
    UnsupportedVersion,
    /// Sizes disagree: a pack shorter than its index entries need, or a file whose blobs do
    /// not add up to the size its tree gives.
    SizeMismatch,
    /// An index entry that the pack's header does not have at the same offset and length
    /// (check `--read-data`).
    HeaderMismatch,
    /// Note from check: a stored pack that no index names (left by an interrupted backup;
    /// prune removes it).
    UnindexedPack,
    /// Note from check: index files superseded by a newer one are still stored.
    SupersededIndex,
    /// Note from check: the `--read-data-subset` group holds no pack, so no data was read.
    EmptyGroup,
    /// Backup: a source file or directory (or an attribute of one) could not be read; the
    /// snapshot lacks it.
    SourceUnreadable,
    /// Backup: a source file changed while it was read, and again while it was read a second
    /// time; the second read is stored, which may mix the file's old and new contents (borg's
    /// "file changed while we backed it up").
    SourceChanged,
    /// Backup notice: a path listed by `--files-from-verbatim`/`--files-from-raw` does not
    /// exist, or a `--files-from` line matches nothing; it was skipped, as restic does.
    SourceSkipped,
    /// Backup notice: an exclusion tag file (`--exclude-if-present`, `--exclude-caches`) could
    /// not be read or lacks the header given, so its directory was backed up whole.
    TagFileInvalid,
    /// Backup notice: blobs the backup reused were deleted while it ran (a prune took its
    /// lock for stale); it ran again and stored them anew.
    DeletedDuringBackup,
    /// Restore: a path could not be created or written on the target (or its data could not
    /// be had, when no kind above fits); a new file that fails is removed, an existing file it
    /// was to replace is left as it was.
    RestoreFailed,
    /// Restore: a directory was restored but its metadata (owner, mode, times, xattrs) could
    /// not be set.
    MetadataFailed,
    /// Restore `--verify`: a restored file's content differs from the snapshot's digest.
    DigestMismatch,
    /// Restore `--verify`: a restored file could not be read back.
    VerifyFailed,
    /// An object prune meant to delete could not be deleted (a put-only credential, say);
    /// the repository is consistent without the delete and the next prune retries. Restore
    /// `--delete`: a path in the target the snapshot lacks could not be removed.
    DeleteFailed,
    /// Drill: a restored entry, a recomputed tree id or a count differs from the snapshot.
    Mismatch,
    /// Drill: the `--exec` command failed on the restored tree.
    ExecFailed,
    /// Check, drill: the verification record of the run could not be written (a warning:
    /// the run's own result stands).
    RecordNotWritten,
}

/// A stored object, by kind and id (64 hex digits; `config` for the config).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub id: String,
}

/// The kinds of stored objects a problem can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ObjectKind {
    /// A pack file under `data/`.
    Pack,
    /// An index file under `index/`.
    Index,
    /// A snapshot file under `snapshots/`.
    Snapshot,
    /// A key file under `keys/`.
    Key,
    /// A lock file under `locks/`.
    Lock,
    /// The repository's `config`.
    Config,
    /// A verification record under `verifications/`.
    Verification,
    /// A tree blob.
    Tree,
    /// A data blob (a chunk of file content).
    Blob,
}

impl ObjectKind {
    /// The name JSON gives it: `pack`, `index`, `snapshot`, `key`, `lock`, `config`,
    /// `verification`, `tree`, `blob`.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Pack => "pack",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Key => "key",
            ObjectKind::Lock => "lock",
            ObjectKind::Config => "config",
            ObjectKind::Verification => "verification",
            ObjectKind::Tree => "tree",
            ObjectKind::Blob => "blob",
        }
    }

    /// The kind of a blob of type `ty`.
    pub fn of_blob(ty: BlobType) -> ObjectKind {
        match ty {
            BlobType::Data => ObjectKind::Blob,
            BlobType::Tree => ObjectKind::Tree,
        }
    }

    /// The kind an error's `what` names ("pack", "key file", "tree blob", …), if a stored one.
    fn of_what(what: &str) -> Option<ObjectKind> {
        Some(match what {
            "pack" => ObjectKind::Pack,
            "index" | "index file" => ObjectKind::Index,
            "snapshot" => ObjectKind::Snapshot,
            "key" | "key file" => ObjectKind::Key,
            "lock" => ObjectKind::Lock,
            "config" => ObjectKind::Config,
            "verification record" => ObjectKind::Verification,
            "tree blob" => ObjectKind::Tree,
            "data blob" => ObjectKind::Blob,
            _ => return None,
        })
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ObjectRef {
    pub fn new(kind: ObjectKind, id: impl ToString) -> ObjectRef {
        ObjectRef {
            kind,
            id: id.to_string(),
        }
    }

    /// The stored object `e` names, if any.
    fn of_error(e: &Error) -> Option<ObjectRef> {
        let (what, id) = match e {
            Error::Corrupt { what, id, .. }
            | Error::Unreadable { what, id, .. }
            | Error::NotFound { what, id } => (*what, id),
            _ => return None,
        };
        // A size check names the object by its path (`data/ab/ab…`): the name is its last part.
        let id = id.rsplit('/').next().unwrap_or(id);
        Some(ObjectRef::new(ObjectKind::of_what(what)?, id))
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.id)
    }
}

impl Problem {
    /// A problem of `kind` with its whole message, naming no object or path yet.
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            object: None,
            path: None,
            message: message.into(),
        }
    }

    /// The same problem, about the stored object `kind` `id`.
    pub fn with_object(mut self, kind: ObjectKind, id: impl ToString) -> Problem {
        self.object = Some(ObjectRef::new(kind, id));
        self
    }

    /// The same problem, about `path`.
    pub fn with_path(mut self, path: impl Into<String>) -> Problem {
        self.path = Some(path.into());
        self
    }

    /// The same problem with the message `message`.
    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Problem {
        self.message = message.into();
        self
    }

    /// The same problem, about the stored object `kind` `id` unless it names one already.
    pub(crate) fn or_object(self, kind: ObjectKind, id: impl ToString) -> Problem {
        match self.object {
            Some(_) => self,
            None => self.with_object(kind, id),
        }
    }

    /// `e` as a problem, its message `e`'s text: a verification failure is `Damaged`, an
    /// object that is not there `Missing`, a storage failure `Unreadable`, each about the
    /// object `e` names; any other error is `other`.
    pub(crate) fn from_error(e: &Error, other: ProblemKind) -> Problem {
        let kind = match e {
            Error::Corrupt { .. } | Error::Unreadable { .. } => ProblemKind::Damaged,
            Error::UnsupportedVersion { .. } => ProblemKind::UnsupportedVersion,
            e if e.is_not_found() => ProblemKind::Missing,
            Error::Backend { .. } => ProblemKind::Unreadable,
            _ => other,
        };
        Problem {
            kind,
            object: ObjectRef::of_error(e),
            path: None,
            message: e.to_string(),
        }
    }
}

/// The message, exactly as check, restore and backup have always worded it.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    #[test]
    fn display_is_the_message_alone() {
        let p = Problem::new(
            ProblemKind::Missing,
            "pack ab is named by the index but missing",
        )
        .with_object(ObjectKind::Pack, "ab")
        .with_path("snapshot 1234abcd/x");
        assert_eq!(p.to_string(), "pack ab is named by the index but missing");
        assert_eq!(format!("error: {p}"), format!("error: {}", p.message));
    }

    #[test]
    fn serializes_kind_object_path_and_message() {
        let id = Id([7; 32]);
        let p = Problem::new(ProblemKind::SizeMismatch, "pack short")
            .with_object(ObjectKind::Pack, id)
            .with_path("/a/b");
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({
                "kind": "size_mismatch",
                "object": {"kind": "pack", "id": id.to_hex()},
                "path": "/a/b",
                "message": "pack short",
            })
        );
        let bare = Problem::new(ProblemKind::SupersededIndex, "2 index file(s) superseded");
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::json!({
                "kind": "superseded_index",
                "object": null,
                "path": null,
                "message": "2 index file(s) superseded",
            })
        );
    }

    #[test]
    fn every_kind_serializes_as_snake_case() {
        for (k, s) in [
            (ProblemKind::Damaged, "damaged"),
            (ProblemKind::UnsupportedVersion, "unsupported_version"),
            (ProblemKind::HeaderMismatch, "header_mismatch"),
            (ProblemKind::UnindexedPack, "unindexed_pack"),
            (ProblemKind::DeletedDuringBackup, "deleted_during_backup"),
            (ProblemKind::SourceUnreadable, "source_unreadable"),
            (ProblemKind::SourceChanged, "source_changed"),
            (ProblemKind::SourceSkipped, "source_skipped"),
            (ProblemKind::TagFileInvalid, "tag_file_invalid"),
            (ProblemKind::MetadataFailed, "metadata_failed"),
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), s);
        }
        for k in [
            ObjectKind::Pack,
            ObjectKind::Index,
            ObjectKind::Snapshot,
            ObjectKind::Key,
            ObjectKind::Lock,
            ObjectKind::Config,
            ObjectKind::Tree,
            ObjectKind::Blob,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }

    #[test]
    fn errors_give_their_kind_and_the_object_they_name() {
        let id = Id([3; 32]);
        let p = Problem::from_error(
            &Error::corrupt("pack", id, "bad"),
            ProblemKind::RestoreFailed,
        );
        assert_eq!(p.kind, ProblemKind::Damaged);
        assert_eq!(p.object, Some(ObjectRef::new(ObjectKind::Pack, id)));
        assert_eq!(p.message, format!("pack {id} is damaged: bad"));

        let p = Problem::from_error(
            &Error::NotFound {
                what: "data blob",
                id: id.to_hex(),
            },
            ProblemKind::RestoreFailed,
        );
        assert_eq!(p.kind, ProblemKind::Missing);
        assert_eq!(p.object, Some(ObjectRef::new(ObjectKind::Blob, id)));

        // A size check names the object by its path; the id is its name.
        let path = crate::backend::object_path(crate::backend::FileType::Pack, &id.to_hex());
        let p = Problem::from_error(
            &Error::corrupt("pack", path, "too big"),
            ProblemKind::Unreadable,
        );
        assert_eq!(p.object, Some(ObjectRef::new(ObjectKind::Pack, id)));

        // What is no stored object names none; other errors take the kind given.
        let io = Error::io("write", "/t/f", std::io::Error::other("disk full"));
        let p = Problem::from_error(&io, ProblemKind::RestoreFailed);
        assert_eq!((p.kind, p.object), (ProblemKind::RestoreFailed, None));
        let p = Problem::from_error(
            &Error::corrupt("file", "/a/b", "short"),
            ProblemKind::RestoreFailed,
        );
        assert_eq!((p.kind, p.object), (ProblemKind::Damaged, None));

        let p = Problem::from_error(&io, ProblemKind::RestoreFailed)
            .or_object(ObjectKind::Pack, "p")
            .or_object(ObjectKind::Tree, "t");
        assert_eq!(p.object, Some(ObjectRef::new(ObjectKind::Pack, "p")));
    }
}
