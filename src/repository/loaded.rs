//! What a command loaded (opened and damaged objects) and which snapshots it considers.

use crate::error::{Error, Result};
use crate::format::Snapshot;
use crate::id::Id;

/// The objects of one kind that opened, and those that failed verification (with why).
#[derive(Debug, Default)]
pub struct Loaded<T> {
    pub ok: Vec<(Id, T)>,
    pub damaged: Vec<(Id, Error)>,
}

impl<T> Loaded<T> {
    /// Sorts read results into opened and damaged; objects gone since the listing are
    /// dropped, and any other error (storage, I/O) is returned.
    pub(crate) fn sort_out(got: Vec<(Id, Result<T>)>) -> Result<Loaded<T>> {
        let mut out = Loaded {
            ok: Vec::with_capacity(got.len()),
            damaged: Vec::new(),
        };
        for (id, r) in got {
            match r {
                Ok(v) => out.ok.push((id, v)),
                Err(e) if e.is_not_found() => {}
                Err(e) if e.is_integrity() => out.damaged.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Fails on the first damaged object, with what to do about it: for commands that would
    /// delete data on a partial view of the repository.
    pub fn require_all(self, what: &'static str, remedy: &'static str) -> Result<Vec<(Id, T)>> {
        refuse_damaged(self.damaged, what, remedy)?;
        Ok(self.ok)
    }
}

/// `Error::Unreadable` for the first of `damaged`, with `remedy`; `Ok` when there is none.
pub(crate) fn refuse_damaged(
    damaged: Vec<(Id, Error)>,
    what: &'static str,
    remedy: &'static str,
) -> Result<()> {
    match damaged.into_iter().next() {
        None => Ok(()),
        Some((id, e)) => Err(Error::Unreadable {
            what,
            id: id.to_hex(),
            reason: e.to_string(),
            remedy,
        }),
    }
}

/// Warns once per process about an object a command skips.
pub(crate) fn warn_skipped(what: &str, id: &Id, e: &Error) {
    static WARNED: std::sync::Mutex<Vec<Id>> = std::sync::Mutex::new(Vec::new());
    let mut w = WARNED.lock().unwrap();
    if !w.contains(id) {
        w.push(*id);
        tracing::warn!("skipping {what} {id}: {e} (`cista check` reports it)");
    }
}

/// Which snapshots a command considers: restic's `--host`, `--tag`, `--path`, and a time
/// window (`--before`, `--newer-than`).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SnapshotFilter {
    /// Any of these hosts (empty: any host).
    pub hosts: Vec<String>,
    /// Any of these tag lists; a list `a,b` needs both tags.
    pub tags: Vec<String>,
    /// Snapshots whose paths include all of these.
    pub paths: Vec<String>,
    /// Only snapshots taken strictly before this instant.
    pub before: Option<jiff::Timestamp>,
    /// Only snapshots taken strictly after this instant.
    pub after: Option<jiff::Timestamp>,
}

impl SnapshotFilter {
    /// No host, tag, path or time given: every snapshot matches.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.tags.is_empty()
            && self.paths.is_empty()
            && self.before.is_none()
            && self.after.is_none()
    }

    /// Whether the snapshot's time lies in the window (a time that does not parse never
    /// does, when a window is set; `Snapshot::decode` refuses those anyway).
    fn in_window(&self, s: &Snapshot) -> bool {
        if self.before.is_none() && self.after.is_none() {
            return true;
        }
        s.timestamp()
            .is_ok_and(|t| self.before.is_none_or(|b| t < b) && self.after.is_none_or(|a| t > a))
    }

    pub fn matches(&self, s: &Snapshot) -> bool {
        self.in_window(s)
            && (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty()
                || self
                    .tags
                    .iter()
                    .any(|list| crate::util::tag_list(list).all(|t| s.tags.iter().any(|x| x == t))))
            && self.paths.iter().all(|p| s.paths.contains(p))
    }
}
