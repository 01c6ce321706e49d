//! `drill`: proves a snapshot restores. Recomputes every tree id bottom-up and compares the
//! root, restores into a scratch directory with every file's digest read back, compares each
//! restored entry's type, size, mode, times and link target with the snapshot, compares the
//! counts, then runs the operator's own check (`exec`) on the restored tree. The result is
//! stored as a verification record (`verification::after_drill`).

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{NodeKind, Snapshot};
use crate::id::{SnapshotId, TreeId};
use crate::problem::{ObjectKind, Problem, ProblemKind};
use crate::repository::{Freshness, Recorded};
use crate::restore::{RestoreOptions, RestoreSummary};
use crate::tree::{load_tree, walk};

use super::Indexed;

#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DrillOptions {
    /// Where to restore; must not exist or be empty. `None`: a temporary directory.
    pub target: Option<PathBuf>,
    /// Keep the restored tree afterwards (a temporary one is removed by default).
    pub keep: bool,
    /// A shell command run on the restored tree (`CISTA_DRILL_DIR` names it), e.g. a
    /// `pg_restore` into a scratch database and a smoke query; a non-zero exit fails the drill.
    pub exec: Option<String>,
    /// Store no verification record (`--no-record`); none is stored unlocked either.
    pub no_record: bool,
    /// Counted as the scratch restore writes files, for a progress display.
    pub progress: Option<std::sync::Arc<crate::util::Progress>>,
}

/// What the drill checked and found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DrillReport {
    pub snapshot_id: Option<SnapshotId>,
    pub tree_id: Option<TreeId>,
    /// The root tree id recomputed from the decoded trees (`tree_id` when they commit to it).
    pub recomputed_root: Option<TreeId>,
    /// Trees whose ids were recomputed from their decoded content.
    pub trees_verified: u64,
    /// Files (non-directories) and their bytes, as the snapshot's trees say.
    pub files: u64,
    pub bytes: u64,
    /// Entries whose restored metadata was compared.
    pub entries_compared: u64,
    pub restore: RestoreSummary,
    /// Where the tree was restored (gone afterwards unless kept).
    pub target: PathBuf,
    pub kept: bool,
    /// The `exec` command's exit status, when one ran.
    pub exec_status: Option<i32>,
    /// Every mismatch and failure, each naming the object or path.
    pub problems: Vec<Problem>,
    /// The drill's verification record.
    pub recorded: Recorded,
    /// The newest snapshot and when it was last verified, after this drill's record.
    pub freshness: Option<Freshness>,
}

impl DrillReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.restore.errors.is_empty()
    }
}

/// Drills `snapshot` (stored as `id`) and records the result, failed drills too (those
/// stopped by damage as well), unless the repository is not locked or `opts.no_record`.
pub fn drill(
    ix: &Indexed,
    id: SnapshotId,
    snapshot: &Snapshot,
    opts: &DrillOptions,
) -> Result<DrillReport> {
    let ended = drill_only(ix, id, snapshot, opts);
    super::verification::after_drill(ix, id, opts.no_record, ended)
}

fn drill_only(
    ix: &Indexed,
    id: SnapshotId,
    snapshot: &Snapshot,
    opts: &DrillOptions,
) -> Result<DrillReport> {
    let mut r = DrillReport {
        snapshot_id: Some(id),
        tree_id: Some(snapshot.tree),
        ..Default::default()
    };
    let mut seen = HashSet::new();
    let (files, bytes, root) = recompute(ix, &snapshot.tree, &mut seen, &mut r)?;
    (r.files, r.bytes, r.recomputed_root) = (files, bytes, Some(root));
    let scratch = match &opts.target {
        Some(t) => Scratch::given(t)?,
        None => Scratch::temporary()?,
    };
    r.target = scratch.path.clone();
    let ro = RestoreOptions {
        target: scratch.path.clone(),
        verify: true,
        owner: Some(false),
        progress: opts.progress.clone(),
        ..Default::default()
    };
    r.restore = super::restore(ix, snapshot, "", &ro)?;
    compare_restored(ix, snapshot, &scratch.path, &mut r)?;
    if r.restore.files + r.restore.others != files {
        r.problems.push(Problem::new(
            ProblemKind::Mismatch,
            format!(
                "the snapshot holds {files} files, the restore wrote {} files and {} other entries",
                r.restore.files, r.restore.others
            ),
        ));
    }
    if let Some(cmd) = &opts.exec {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("CISTA_DRILL_DIR", &scratch.path)
            .env("CISTA_DRILL_SNAPSHOT", id.to_hex())
            .status()
            .map_err(|e| Error::Command(format!("cannot run the drill command: {e}")))?;
        r.exec_status = status.code();
        if !status.success() {
            r.problems.push(Problem::new(
                ProblemKind::ExecFailed,
                format!(
                    "the drill command failed ({status}) on {}",
                    scratch.path.display()
                ),
            ));
        }
    }
    // A failed drill into a given directory leaves the evidence there.
    r.kept = opts.keep || (opts.target.is_some() && !r.ok());
    scratch.finish(r.kept);
    Ok(r)
}

/// Loads every tree below `id` (children first) and recomputes each one's id from its
/// decoded content: the ids then form a Merkle tree whose root is the snapshot's, so every
/// node the restore uses is the one the snapshot committed to. Returns the files, bytes and
/// the id recomputed for `id`.
fn recompute(
    ix: &Indexed,
    id: &TreeId,
    seen: &mut HashSet<TreeId>,
    r: &mut DrillReport,
) -> Result<(u64, u64, TreeId)> {
    let mut tree = load_tree(ix.repo(), ix.index(), id)?;
    let (mut files, mut bytes) = (0, 0);
    for n in &tree.nodes {
        match (n.kind, n.subtree) {
            (NodeKind::Dir, Some(sub)) => {
                let (f, b, _) = recompute(ix, &sub, seen, r)?;
                if seen.insert(sub) {
                    r.trees_verified += 1;
                }
                files += f;
                bytes += b;
            }
            (NodeKind::Dir, None) => r.problems.push(
                Problem::new(
                    ProblemKind::Mismatch,
                    format!("directory {} has no tree", n.name_lossy()),
                )
                .with_object(ObjectKind::Tree, id),
            ),
            _ => {
                files += 1;
                bytes += n.size;
            }
        }
    }
    let again = ix.repo().keys().blob_id(&tree.encode());
    if again != *id {
        r.problems.push(
            Problem::new(
                ProblemKind::Mismatch,
                format!("tree {id} re-encodes to {again}: its id does not commit to its content"),
            )
            .with_object(ObjectKind::Tree, id),
        );
    }
    if seen.insert(*id) {
        r.trees_verified += 1;
    }
    Ok((files, bytes, again))
}

/// Compares every restored entry with its node: type, size, permission bits, modification
/// time and symlink target.
fn compare_restored(
    ix: &Indexed,
    snapshot: &Snapshot,
    target: &Path,
    r: &mut DrillReport,
) -> Result<()> {
    let mut problems = Vec::new();
    let mut compared = 0;
    walk(ix.repo(), ix.index(), &snapshot.tree, "", &mut |p, n| {
        compared += 1;
        let at = target.join(p.trim_start_matches('/'));
        let why = match std::fs::symlink_metadata(&at) {
            Err(e) => Some(format!("not restored: {e}")),
            Ok(m) => differs(n, &m, &at),
        };
        if let Some(why) = why {
            problems.push(Problem::new(ProblemKind::Mismatch, format!("{p}: {why}")).with_path(p));
        }
        Ok(())
    })?;
    r.entries_compared = compared;
    r.problems.extend(problems);
    Ok(())
}

fn differs(n: &crate::format::Node, m: &std::fs::Metadata, at: &Path) -> Option<String> {
    let ft = m.file_type();
    let kind_ok = match n.kind {
        NodeKind::Dir => ft.is_dir(),
        NodeKind::File => ft.is_file(),
        NodeKind::Symlink => ft.is_symlink(),
        _ => !ft.is_dir() && !ft.is_file() && !ft.is_symlink(),
    };
    if !kind_ok {
        return Some(format!(
            "restored as {ft:?}, the snapshot has a {}",
            n.kind.name()
        ));
    }
    match n.kind {
        NodeKind::File if m.len() != n.size => Some(format!(
            "{} bytes restored, the snapshot has {}",
            m.len(),
            n.size
        )),
        NodeKind::Symlink => {
            let t = std::fs::read_link(at).ok()?;
            (t.as_os_str().as_encoded_bytes() != n.link_target.as_slice())
                .then(|| format!("points to {}", t.display()))
        }
        NodeKind::Dir | NodeKind::File if m.permissions().mode() & 0o7777 != n.mode & 0o7777 => {
            Some(format!(
                "mode {:o}, the snapshot has {:o}",
                m.permissions().mode() & 0o7777,
                n.mode & 0o7777
            ))
        }
        NodeKind::File if m.mtime() * 1_000_000_000 + m.mtime_nsec() != n.mtime_ns => {
            Some("modification time differs from the snapshot's".into())
        }
        _ => None,
    }
}

/// The scratch directory a drill restores into.
struct Scratch {
    path: PathBuf,
    /// Made by the drill (removed whole) rather than given.
    temporary: Option<tempfile::TempDir>,
}

impl Scratch {
    fn temporary() -> Result<Scratch> {
        let d = tempfile::Builder::new()
            .prefix("cista-drill-")
            .tempdir()
            .map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
        Ok(Scratch {
            path: d.path().to_path_buf(),
            temporary: Some(d),
        })
    }

    fn given(t: &Path) -> Result<Scratch> {
        match std::fs::read_dir(t).map(|mut rd| rd.next().is_some()) {
            Ok(true) => Err(Error::Invalid(format!(
                "drill target {} is not empty: give an empty or new directory",
                t.display()
            ))),
            Ok(false) => Ok(Scratch {
                path: t.to_path_buf(),
                temporary: None,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(t).map_err(|e| Error::io("create", t, e))?;
                Ok(Scratch {
                    path: t.to_path_buf(),
                    temporary: None,
                })
            }
            Err(e) => Err(Error::io("read", t, e)),
        }
    }

    fn finish(self, keep: bool) {
        match (self.temporary, keep) {
            (Some(d), true) => {
                let _ = d.keep();
            }
            (Some(d), false) => drop(d),
            (None, true) => {}
            (None, false) => {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }
}
