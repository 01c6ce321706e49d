//! Backup: source walk → chunker → dedup → packer → backend, building trees bottom-up.
//!
//! Directories are walked depth-first; the entries of a directory are processed in parallel on
//! rayon's pool, and so are the chunks of one file, so both cores stay busy on one large file
//! and on many small ones. A file is read in segments of at most two maximum chunks plus the
//! carried-over tail, so memory stays bounded whatever the file size. Files are read with
//! `read`, not mapped: a mapped file that another process truncates kills the reader with
//! SIGBUS, and nightly backups of live log and dump directories meet that.

mod command;
mod copy;
mod excludes;
mod file;
mod reconcile;
mod source;
mod stream;
mod targets;
mod walk;

pub use command::NamedCommand;
pub(crate) use copy::copy_snapshot;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::{self, BlobType, Snapshot, Summary, Tree};
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::index::Index;
use crate::lock::LockGuard;
use crate::pack::{BlobSaver, INDEX_EVERY_PACKS};
use crate::problem::{ObjectKind, Problem, ProblemKind};
use crate::repository::{Repository, SnapshotFilter};
use crate::util::{format_time, hostname, parse_time, username, DigestReader, StreamDigest};

use excludes::Excludes;
use reconcile::{first_gone, gone_error, reconcile, Attempt};
use stream::{check_stream_name, stream_node};
use walk::{build_trie, normalize};

/// What to back up.
pub enum Source {
    /// Files and directories on this host.
    Paths(Vec<PathBuf>),
    /// One stream, stored as a file named `name` at the snapshot root.
    Reader {
        name: String,
        reader: Box<dyn Read + Send>,
    },
    /// The standard output of a command, stored as a file named `name`. A non-zero exit of the
    /// command fails the backup and no snapshot is saved.
    Command { name: String, argv: Vec<String> },
    /// Files and directories on this host (either may be empty) and the standard outputs of
    /// named commands, in one snapshot. Paths keep their absolute place in the tree; each
    /// command's output is a file at its name below the snapshot root (`db/app.dump`, its
    /// directories created), and no path may share the first component of a command's name.
    /// The commands run one after another before the paths are walked; one that exits
    /// non-zero fails the backup, which saves no snapshot and names the command.
    Mixed {
        paths: Vec<PathBuf>,
        commands: Vec<NamedCommand>,
    },
}

/// Backup settings.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    pub tags: Vec<String>,
    pub host: Option<String>,
    /// Glob patterns; a pattern without `/` matches any file name, one with `/` a whole path.
    pub excludes: Vec<String>,
    pub exclude_files: Vec<PathBuf>,
    /// As `excludes` and `exclude_files`, matched ignoring case (`--iexclude`,
    /// `--iexclude-file`).
    pub iexcludes: Vec<String>,
    pub iexclude_files: Vec<PathBuf>,
    /// `NAME[:HEADER]`: a directory holding a file NAME (that starts with HEADER, when one is
    /// given) is kept with only that file (`--exclude-if-present`, as restic).
    pub exclude_if_present: Vec<String>,
    /// `exclude_if_present` for `CACHEDIR.TAG` with the signature of the Cache Directory
    /// Tagging Specification.
    pub exclude_caches: bool,
    /// Leave out anything but directories larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
    /// Files listing more targets for `Source::Paths` and `Source::Mixed`, as restic's
    /// `--files-from` (a line each; trimmed; blank and `#` lines skipped; globs expanded),
    /// `--files-from-verbatim` (a line each, as it is) and `--files-from-raw` (each name ended
    /// by a NUL byte). A listed path that does not exist, or a pattern matching nothing, is
    /// skipped with a notice (`SourceSkipped`).
    pub files_from: Vec<PathBuf>,
    pub files_from_verbatim: Vec<PathBuf>,
    pub files_from_raw: Vec<PathBuf>,
    /// Save no snapshot when its tree is the parent snapshot's (restic 0.17's
    /// `--skip-if-unchanged`): the result has no `snapshot_id` and `skipped` set.
    pub skip_if_unchanged: bool,
    pub one_file_system: bool,
    /// Snapshot time (RFC 3339); default now.
    pub time: Option<String>,
    /// Parent snapshot (id or prefix); default the latest with the same host and paths.
    pub parent: Option<String>,
    /// Read every file even when the parent says it is unchanged.
    pub force: bool,
    pub ignore_inode: bool,
    pub ignore_ctime: bool,
    /// Record access times. Off by default, as in restic 0.17: reading the source between two
    /// backups would otherwise change nearly every tree of the next one.
    pub with_atime: bool,
    /// Don't write anything; report what would be added.
    pub dry_run: bool,
    /// Store an empty stream or command output as an empty file. Without it a backup of a
    /// stream or command that yields no bytes fails and saves no snapshot: a failed producer
    /// (`pg_dump … | cista backup --stdin`) must not pass for an empty dump.
    pub allow_empty: bool,
    /// Counted as files and bytes are read, for a progress display.
    pub progress: Option<std::sync::Arc<crate::util::Progress>>,
}

/// What a backup produced.
#[derive(Debug)]
#[non_exhaustive]
pub struct BackupResult {
    /// `None` for a dry run, or when skipped.
    pub snapshot_id: Option<SnapshotId>,
    /// The snapshot as saved (or as it would have been).
    pub snapshot: Snapshot,
    /// `skip_if_unchanged` was set and nothing changed since the parent: no snapshot saved.
    pub skipped: bool,
    pub summary: Summary,
    /// Source files that could not be read, each with the reason (`SourceUnreadable`, its
    /// `path` the source path), and files that changed while read twice (`SourceChanged`):
    /// the CLI's exit 3.
    pub warnings: Vec<Problem>,
    /// What the backup worked around, the snapshot being complete: damage in the repository
    /// (packs missing or short, parent trees that could not be loaded, blobs deleted while it
    /// ran), listed targets that do not exist (`SourceSkipped`) and exclusion tag files that
    /// could not be read or lack their header (`TagFileInvalid`).
    pub notices: Vec<Problem>,
    /// The streams stored (standard input, a command's output): file name, bytes, digests.
    pub streams: Vec<(String, StreamDigest)>,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
}

struct Archiver<'a> {
    repo: &'a Repository,
    index: &'a Index,
    seen: Mutex<HashSet<(BlobType, BlobId)>>,
    saver: BlobSaver<'a>,
    c: Counters,
    warnings: Mutex<Vec<Problem>>,
    notices: Mutex<Vec<Problem>>,
    streams: Mutex<Vec<(String, StreamDigest)>>,
    /// Parent trees that failed to load: stored again even though the index names them.
    distrusted: Mutex<HashSet<TreeId>>,
    excludes: Excludes,
    opts: &'a BackupOptions,
    names: Mutex<(HashMap<u32, String>, HashMap<u32, String>)>,
    dry_run: bool,
    /// Files being read in more than one piece right now (see `store_stream`).
    big_streams: AtomicU64,
    #[cfg(test)]
    after_read: Option<file::ReadHook>,
}

impl<'a> Archiver<'a> {
    fn new(
        repo: &'a Repository,
        index: &'a Index,
        opts: &'a BackupOptions,
    ) -> Result<Archiver<'a>> {
        Ok(Archiver {
            repo,
            index,
            seen: Mutex::new(HashSet::new()),
            saver: BlobSaver::new(repo, Some(INDEX_EVERY_PACKS)),
            c: Counters::default(),
            warnings: Mutex::new(Vec::new()),
            notices: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            distrusted: Mutex::new(HashSet::new()),
            excludes: Excludes::new(opts)?,
            opts,
            names: Mutex::new((HashMap::new(), HashMap::new())),
            dry_run: opts.dry_run,
            big_streams: AtomicU64::new(0),
            #[cfg(test)]
            after_read: file::AFTER_READ.get(),
        })
    }

    /// Stores a blob unless the index or this run already has it.
    fn add_blob(&self, ty: BlobType, data: &[u8]) -> Result<BlobId> {
        let id = self.repo.keys().blob_id(data);
        let indexed = self.index.contains(ty, &id)
            && !(ty == BlobType::Tree && self.distrusted.lock().unwrap().contains(&id));
        if indexed || !self.seen.lock().unwrap().insert((ty, id)) {
            return Ok(id);
        }
        let sealed = format::seal_blob(
            self.repo.keys(),
            ty,
            &id,
            data,
            Some(self.repo.config().blob_level(data.len())),
        );
        match ty {
            BlobType::Data => &self.c.data_blobs,
            BlobType::Tree => &self.c.tree_blobs,
        }
        .fetch_add(1, Relaxed);
        self.c.data_added.fetch_add(data.len() as u64, Relaxed);
        self.c
            .data_added_packed
            .fetch_add(sealed.len() as u64, Relaxed);
        if self.dry_run {
            return Ok(id);
        }
        self.saver.add(ty, id, &sealed, data.len() as u32)?;
        Ok(id)
    }

    fn warn(&self, path: &Path, what: &str, e: impl std::fmt::Display) {
        let shown = path.display();
        let p = Problem::new(
            ProblemKind::SourceUnreadable,
            format!("{shown}: {what}: {e}"),
        )
        .with_path(shown.to_string());
        self.warnings.lock().unwrap().push(p);
    }

    fn notice(&self, p: Problem) {
        self.notices.lock().unwrap().push(p);
    }
}

/// Runs a backup and saves its snapshot. The caller holds a shared lock (`lock`), which is
/// checked before the snapshot is written.
///
/// Should a prune that took the lock for stale delete blobs this backup deduplicated against,
/// a backup of paths runs once more against the index as it is now, storing them again; any
/// other backup fails without a snapshot.
pub fn backup(
    repo: &Repository,
    index: &Index,
    source: Source,
    opts: &BackupOptions,
    lock: Option<&LockGuard>,
) -> Result<BackupResult> {
    let again = match &source {
        Source::Paths(p) => Some(p.clone()),
        _ => None,
    };
    let gone = match run_backup(repo, index, source, opts, lock)? {
        Attempt::Saved(r) => return Ok(*r),
        Attempt::Gone(ty, id) => (ty, id),
    };
    let Some(paths) = again else {
        return Err(gone_error(&gone.1));
    };
    let fresh = Index::load(repo)?;
    match run_backup(repo, &fresh, Source::Paths(paths), opts, lock)? {
        Attempt::Saved(r) => {
            let mut r = *r;
            let (ty, gone) = gone;
            let message = format!(
                "blob {gone} and maybe others this backup reused were deleted while it ran \
                 (a prune took its lock for stale); the backup ran again and stored them anew"
            );
            r.notices.insert(
                0,
                Problem::new(ProblemKind::DeletedDuringBackup, message)
                    .with_object(ObjectKind::of_blob(ty), gone),
            );
            Ok(r)
        }
        Attempt::Gone(_, id) => Err(gone_error(&id)),
    }
}

/// A root tree, the snapshot's paths, and the parent it was compared with (its id and tree).
type Rooted = (Tree, Vec<String>, Option<(SnapshotId, TreeId)>);

/// The snapshot's root tree, its paths and the parent it was compared with: the walked
/// targets, one file holding a stream or a command's output, or both targets and named
/// commands' outputs (a command that fails saves nothing).
fn root_tree(a: &Archiver, source: Source, opts: &BackupOptions, host: &str) -> Result<Rooted> {
    let lists = [
        &opts.files_from,
        &opts.files_from_verbatim,
        &opts.files_from_raw,
    ];
    if lists.iter().any(|l| !l.is_empty())
        && matches!(source, Source::Reader { .. } | Source::Command { .. })
    {
        return Err(Error::Invalid(
            "--files-from, --files-from-verbatim and --files-from-raw cannot be used with \
             --stdin or --stdin-from-command"
                .into(),
        ));
    }
    Ok(match source {
        Source::Paths(paths) => {
            let paths = a.with_listed(paths, false)?;
            if paths.is_empty() {
                return Err(Error::Invalid("nothing to back up: no paths given".into()));
            }
            paths_tree(a, &absolute(&paths)?, opts, host, &[])?
        }
        Source::Reader { name, mut reader } => {
            let mut r = DigestReader::new(&mut *reader);
            let n = stream_node(a, &name, &mut r)?;
            a.streams.lock().unwrap().push((name.clone(), r.finish()));
            a.refuse_empty(&n, &format!("standard input (stored as {name})"))?;
            (Tree { nodes: vec![n] }, vec![format!("/{name}")], None)
        }
        Source::Command { name, argv } => {
            if argv.is_empty() {
                return Err(Error::Invalid(
                    "no command given for --stdin-from-command".into(),
                ));
            }
            check_stream_name(&name)?;
            let label = format!("{:?}", argv[0]);
            let n = a.command_node(&name, &name, &label, &argv)?;
            a.refuse_empty(
                &n,
                &format!("the output of command {label} (stored as {name})"),
            )?;
            (Tree { nodes: vec![n] }, vec![format!("/{name}")], None)
        }
        Source::Mixed { paths, commands } => {
            let paths = a.with_listed(paths, !commands.is_empty())?;
            mixed_tree(a, &paths, &commands, opts, host)?
        }
    })
}

/// The targets as sorted, deduplicated absolute paths, each of which must exist.
fn absolute(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut abs = paths
        .iter()
        .map(|p| normalize(p))
        .collect::<Result<Vec<_>>>()?;
    abs.sort();
    abs.dedup();
    for p in &abs {
        fs::symlink_metadata(p).map_err(|e| Error::io("stat", p, e))?;
    }
    Ok(abs)
}

/// The tree holding the targets `abs` at their absolute paths, walked against the parent
/// snapshot of the same host and paths (`abs` and `extra`, the other paths the snapshot will
/// list).
fn paths_tree(
    a: &Archiver,
    abs: &[PathBuf],
    opts: &BackupOptions,
    host: &str,
    extra: &[String],
) -> Result<Rooted> {
    let mut shown: Vec<String> = abs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .chain(extra.iter().cloned())
        .collect();
    shown.sort();
    let parent = find_parent(a.repo, opts, host, &shown)?;
    let parent_tree = parent
        .as_ref()
        .and_then(|(_, s)| a.load_parent_tree(Path::new("/"), &s.tree));
    let trie = build_trie(abs);
    let tree = if abs.iter().any(|p| p.as_os_str() == "/") {
        let m = fs::metadata("/").map_err(|e| Error::io("stat", "/", e))?;
        a.dir(Path::new("/"), parent_tree.as_ref(), m.dev())?
    } else {
        a.virtual_dir(Path::new("/"), &trie, parent_tree.as_ref())?
    };
    Ok((tree, shown, parent.map(|(id, s)| (id, s.tree))))
}

/// `Source::Mixed`: the named commands run first (a failure stops the backup before the
/// walk), then the targets are walked, and the commands' outputs join the root tree.
fn mixed_tree(
    a: &Archiver,
    paths: &[PathBuf],
    commands: &[NamedCommand],
    opts: &BackupOptions,
    host: &str,
) -> Result<Rooted> {
    if paths.is_empty() && commands.is_empty() {
        return Err(Error::Invalid(
            "nothing to back up: no paths or commands given".into(),
        ));
    }
    let abs = absolute(paths)?;
    let whole_root = abs.iter().any(|p| p.as_os_str() == "/");
    let taken = |first: &str| {
        abs.iter().any(|p| {
            p.components()
                .nth(1)
                .is_some_and(|c| c.as_os_str() == first)
        }) || (whole_root && fs::symlink_metadata(Path::new("/").join(first)).is_ok())
    };
    let outputs = a.command_outputs(commands, &taken)?;
    let names: Vec<String> = commands.iter().map(|c| format!("/{}", c.name)).collect();
    let (mut tree, shown, parent) = if abs.is_empty() {
        let mut shown = names;
        shown.sort();
        (Tree::default(), shown, None)
    } else {
        paths_tree(a, &abs, opts, host, &names)?
    };
    for n in outputs {
        if tree.find(&n.name).is_some() {
            return Err(Error::Invalid(format!(
                "command output /{} is also backed up from a path",
                n.name_lossy()
            )));
        }
        tree.nodes.push(n);
    }
    Ok((tree, shown, parent))
}

impl Archiver<'_> {
    /// The counters as the snapshot's summary.
    fn summary(&self, backup_start: String, backup_end: String, t0: Instant) -> Summary {
        let c = &self.c;
        Summary {
            files_new: c.files_new.load(Relaxed),
            files_changed: c.files_changed.load(Relaxed),
            files_unmodified: c.files_unmodified.load(Relaxed),
            dirs_new: c.dirs_new.load(Relaxed),
            dirs_changed: c.dirs_changed.load(Relaxed),
            dirs_unmodified: c.dirs_unmodified.load(Relaxed),
            data_blobs: c.data_blobs.load(Relaxed),
            tree_blobs: c.tree_blobs.load(Relaxed),
            data_added: c.data_added.load(Relaxed),
            data_added_packed: c.data_added_packed.load(Relaxed),
            total_files_processed: c.files.load(Relaxed),
            total_bytes_processed: c.bytes.load(Relaxed),
            backup_start,
            backup_end,
            duration_secs: t0.elapsed().as_secs_f64(),
        }
    }
}

fn run_backup(
    repo: &Repository,
    index: &Index,
    source: Source,
    opts: &BackupOptions,
    lock: Option<&LockGuard>,
) -> Result<Attempt> {
    let start = jiff::Zoned::now();
    let t0 = Instant::now();
    let host = opts.host.clone().unwrap_or_else(hostname);
    let (index, pack_notes) = reconcile(repo, index)?;
    let index = &*index;
    let a = Archiver::new(repo, index, opts)?;
    a.notices.lock().unwrap().extend(pack_notes);

    let (root, paths, parent) = root_tree(&a, source, opts, &host)?;

    let mut root = root;
    let tree_id = a.add_blob(BlobType::Tree, &root.encode())?;
    let skipped = opts.skip_if_unchanged && parent.is_some_and(|(_, t)| t == tree_id);
    if !opts.dry_run {
        a.saver.flush()?;
    }
    let end = jiff::Zoned::now();
    let summary = a.summary(format_time(start.clone()), format_time(end), t0);
    let time = match &opts.time {
        Some(t) => parse_time(t)?,
        None => format_time(start),
    };
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let mut tags = opts.tags.clone();
    tags.sort();
    tags.dedup();
    let snapshot = Snapshot {
        time,
        tree: tree_id,
        paths,
        hostname: host,
        username: username(),
        uid,
        gid,
        tags,
        parent: parent.map(|(id, _)| id),
        program_version: format!("cista {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary.clone()),
        original: None,
    };
    let snapshot_id = if opts.dry_run || skipped {
        None
    } else {
        let ours = a.saver.index_files();
        if let Some((ty, id)) = first_gone(repo, index, &ours, &tree_id)? {
            return Ok(Attempt::Gone(ty, id));
        }
        if let Some(l) = lock {
            l.check()?;
        }
        Some(repo.save_snapshot(&snapshot)?)
    };
    let warnings = std::mem::take(&mut *a.warnings.lock().unwrap());
    let notices = std::mem::take(&mut *a.notices.lock().unwrap());
    let streams = std::mem::take(&mut *a.streams.lock().unwrap());
    Ok(Attempt::Saved(Box::new(BackupResult {
        snapshot_id,
        snapshot,
        skipped,
        summary,
        warnings,
        notices,
        streams,
    })))
}

fn find_parent(
    repo: &Repository,
    opts: &BackupOptions,
    host: &str,
    paths: &[String],
) -> Result<Option<(SnapshotId, Snapshot)>> {
    if let Some(p) = &opts.parent {
        return repo
            .resolve_snapshot(p, &SnapshotFilter::default())
            .map(Some);
    }
    let filter = SnapshotFilter {
        hosts: vec![host.to_string()],
        ..Default::default()
    };
    let mut all = repo.snapshots()?;
    all.retain(|(_, s)| filter.matches(s) && s.paths == paths);
    Ok(all.pop())
}
