//! The command line: clap definitions of the global options and every subcommand.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use cista::{Error, SnapshotFilter};

#[derive(Parser)]
#[command(
    name = "cista",
    version,
    about = "Deduplicating, encrypted backups",
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Repository location: a path, local:PATH, file:///PATH, s3://bucket/prefix,
    /// gs://bucket/prefix or az://container/prefix.
    #[arg(short = 'r', long = "repo", env = "CISTA_REPOSITORY", global = true)]
    pub(crate) repo: Option<String>,
    /// Object store setting as key=value (object_store's key names, e.g.
    /// aws_endpoint=http://127.0.0.1:9000); repeatable.
    #[arg(short = 'o', long = "option", global = true)]
    pub(crate) option: Vec<String>,
    /// Read the password from this file's first line (takes precedence over CISTA_PASSWORD).
    #[arg(
        long,
        env = "CISTA_PASSWORD_FILE",
        global = true,
        hide_env_values = true
    )]
    pub(crate) password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password (takes precedence over
    /// CISTA_PASSWORD).
    #[arg(
        long,
        env = "CISTA_PASSWORD_COMMAND",
        global = true,
        hide_env_values = true
    )]
    pub(crate) password_command: Option<String>,
    /// Key file id (or unique prefix) to try first (default: the one that opened this
    /// repository last on this host).
    #[arg(long, env = "CISTA_KEY_HINT", global = true)]
    pub(crate) key_hint: Option<String>,
    /// Use an empty password: create or open a repository without one (insecure; needed by
    /// every command on such a repository).
    #[arg(long, global = true)]
    pub(crate) insecure_no_password: bool,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Print less.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Print more (repeat for even more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Do not lock the repository (for read-only media; unsafe beside a prune).
    #[arg(long, global = true)]
    pub(crate) no_lock: bool,
    /// Local cache directory for index, snapshots and trees of remote repositories
    /// (default $XDG_CACHE_HOME/cista or ~/.cache/cista).
    #[arg(long, env = "CISTA_CACHE_DIR", global = true)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Do not use the local cache.
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,
    /// Limit uploads to this rate per second: KiB by default, or a size (e.g. 5M, 1.5MiB).
    #[arg(long, global = true, value_name = "KiB/s", value_parser = parse_rate)]
    pub(crate) limit_upload: Option<u64>,
    /// Limit downloads to this rate per second: KiB by default, or a size (e.g. 5M).
    #[arg(long, global = true, value_name = "KiB/s", value_parser = parse_rate)]
    pub(crate) limit_download: Option<u64>,
    /// Delete nothing but our own locks; forget, prune, tag, key remove and key passwd refuse to
    /// run.
    #[arg(long, env = "CISTA_APPEND_ONLY", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) append_only: bool,
    /// Wait up to this long for a locked repository (e.g. 30s, 5m).
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    pub(crate) retry_lock: Option<std::time::Duration>,
    /// Write a receipt of this run (JSON, docs/receipt.schema.json) to this file, for success
    /// and failure alike.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) receipt: Option<PathBuf>,
    /// Update this Prometheus textfile-collector file with the run's metrics.
    #[arg(long, global = true, value_name = "PATH", env = "CISTA_METRICS_FILE")]
    pub(crate) metrics_file: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

impl Cmd {
    /// The subcommand's name, as typed.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Cmd::Init { .. } => "init",
            Cmd::Backup(_) => "backup",
            Cmd::Snapshots { .. } => "snapshots",
            Cmd::Forget(_) => "forget",
            Cmd::Prune(_) => "prune",
            Cmd::Tag { .. } => "tag",
            Cmd::Copy { .. } => "copy",
            Cmd::Stats { .. } => "stats",
            Cmd::Restore { .. } => "restore",
            Cmd::Dump { .. } => "dump",
            Cmd::Drill { .. } => "drill",
            Cmd::Key { .. } => "key",
            Cmd::Generate(_) => "generate",
            Cmd::Ls { .. } => "ls",
            Cmd::Find(_) => "find",
            Cmd::Diff { .. } => "diff",
            Cmd::Manifest { .. } => "manifest",
            Cmd::Cat { .. } => "cat",
            Cmd::Check { .. } => "check",
            Cmd::Config { .. } => "config",
            Cmd::Cache { .. } => "cache",
            Cmd::Unlock { .. } => "unlock",
            Cmd::Run { .. } => "run",
        }
    }
}

#[derive(clap::Args, Clone, Default)]
pub(crate) struct Filter {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host")]
    pub(crate) hosts: Vec<String>,
    /// Only snapshots with these tags (`a,b` needs both; repeat for either).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path")]
    pub(crate) paths: Vec<String>,
}

impl Filter {
    pub(crate) fn to_lib(&self) -> SnapshotFilter {
        let mut f = SnapshotFilter::default();
        f.hosts = self.hosts.clone();
        f.tags = self.tags.clone();
        f.paths = self.paths.clone();
        f
    }
}

/// The host, tag and path filter and a time window, for the commands that select snapshots
/// (not forget, whose policy already speaks of time, nor drill, whose --newer-than is a
/// check that fails rather than a filter).
#[derive(clap::Args, Clone, Default)]
pub(crate) struct Selection {
    #[command(flatten)]
    pub(crate) filter: Filter,
    /// Only snapshots taken before this time (RFC 3339, or a local date or date and time:
    /// 2026-11-30, '2026-11-30 14:00').
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub(crate) before: Option<jiff::Timestamp>,
    /// Only snapshots newer than this (e.g. 36h, 7d, 8w).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) newer_than: Option<std::time::Duration>,
}

impl Selection {
    pub(crate) fn to_lib(&self) -> SnapshotFilter {
        let mut f = self.filter.to_lib();
        f.before = self.before;
        f.after = self.newer_than.map(|d| {
            let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
            jiff::Timestamp::now()
                .checked_sub(d)
                .unwrap_or(jiff::Timestamp::MIN)
        });
        f
    }
}

pub(crate) fn parse_instant(s: &str) -> Result<jiff::Timestamp, String> {
    cista::util::parse_instant(s).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Create a new repository.
    Init {
        /// Target pack size: MiB by default, or a size (e.g. 64MiB, 1G).
        #[arg(long, default_value = "16", value_parser = parse_pack_size)]
        pack_size: u32,
    },
    /// Back up files, standard input, or a command's output.
    Backup(BackupArgs),
    /// Run a profile's whole job: hooks, backup, copies to the other repositories, retention,
    /// check and drill, with one receipt and the metrics (profiles: docs/profiles.md).
    Run {
        /// The profile (a [profiles.NAME] table of the profile file).
        name: Option<String>,
        /// The profile file (default: ~/.config/cista/cista.toml, else /etc/cista/cista.toml).
        #[arg(long, short = 'c', env = "CISTA_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// List the profiles of the file.
        #[arg(long, conflicts_with = "name")]
        list: bool,
        /// Print the commands and hooks the run would go through; run nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// List snapshots.
    Snapshots {
        #[command(flatten)]
        filter: Selection,
        /// Group the list by host, paths and/or tags.
        #[arg(long, short = 'g')]
        group_by: Option<String>,
        /// Only the latest N snapshots of each host and paths (restic's --latest).
        #[arg(long, value_name = "N")]
        latest: Option<usize>,
    },
    /// Remove snapshots by id or by a retention policy.
    Forget(Box<ForgetArgs>),
    /// Remove data no snapshot uses, repacking partly used packs.
    Prune(PruneArgs),
    /// Add, remove or set snapshot tags.
    Tag {
        /// Snapshots to change (default: all matching the filters).
        ids: Vec<String>,
        /// Add this tag (repeatable).
        #[arg(long)]
        add: Vec<String>,
        /// Remove this tag (repeatable).
        #[arg(long)]
        remove: Vec<String>,
        /// Replace all tags with these (repeatable).
        #[arg(long)]
        set: Vec<String>,
        #[command(flatten)]
        filter: Selection,
    },
    /// Copy snapshots from another repository into this one (re-chunked and re-encrypted).
    Copy {
        /// Snapshots to copy (default: all matching the filters).
        ids: Vec<String>,
        /// The repository to copy from.
        #[arg(long, env = "CISTA_FROM_REPOSITORY")]
        from_repo: String,
        /// Password file of the source repository (takes precedence over CISTA_FROM_PASSWORD).
        #[arg(long, env = "CISTA_FROM_PASSWORD_FILE", hide_env_values = true)]
        from_password_file: Option<PathBuf>,
        /// Command printing the source repository's password.
        #[arg(long, env = "CISTA_FROM_PASSWORD_COMMAND", hide_env_values = true)]
        from_password_command: Option<String>,
        /// The source repository has an empty password (see --insecure-no-password).
        #[arg(long)]
        from_insecure_no_password: bool,
        /// Object store setting for the source repository, key=value (repeatable).
        #[arg(long)]
        from_option: Vec<String>,
        #[command(flatten)]
        filter: Selection,
    },
    /// Show repository statistics.
    Stats {
        /// Snapshots to count (default: all matching the filters).
        ids: Vec<String>,
        /// restore-size (files as restored) or raw-data (unique stored blobs).
        #[arg(long, default_value = "restore-size")]
        mode: String,
        #[command(flatten)]
        filter: Selection,
    },
    /// Restore a snapshot (or SNAPSHOT:SUBPATH) under a target directory.
    Restore {
        snapshot: String,
        /// Directory to restore into.
        #[arg(long, short = 't')]
        target: PathBuf,
        /// Restore only paths matching this pattern (repeatable).
        #[arg(long, short = 'i')]
        include: Vec<String>,
        /// Skip paths matching this pattern (repeatable).
        #[arg(long, short = 'e')]
        exclude: Vec<String>,
        /// Leave all-zero chunks as holes.
        #[arg(long)]
        sparse: bool,
        /// Read every restored file back and check it against the snapshot.
        #[arg(long)]
        verify: bool,
        /// Change nothing: report what would be restored, updated, left unchanged and deleted
        /// (-vv: each path). Existing files are still read to compare them.
        #[arg(long, conflicts_with = "verify")]
        dry_run: bool,
        /// When to replace a file that exists: always (unless its content already matches),
        /// if-changed (size or mtime differ, else taken as matching), if-newer (the snapshot's
        /// mtime is newer), never.
        #[arg(long, value_name = "WHEN", default_value = "always",
              value_parser = ["always", "if-changed", "if-newer", "never"])]
        overwrite: String,
        /// Remove what the target holds and the snapshot does not, in the directories restored
        /// and where --include/--exclude select it (see first with --dry-run -vv).
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        filter: Selection,
    },
    /// Prove a snapshot restores: tree ids recomputed up to the root, a restore into a scratch
    /// directory with every file read back, metadata and counts compared, then --exec.
    Drill {
        /// The snapshot (default: the latest matching the filters).
        #[arg(default_value = "latest")]
        snapshot: String,
        /// Fail unless the snapshot is newer than this (e.g. 36h, 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        newer_than: Option<std::time::Duration>,
        /// Restore here (new or empty) instead of a temporary directory.
        #[arg(long)]
        target: Option<PathBuf>,
        /// Keep the restored tree afterwards.
        #[arg(long)]
        keep: bool,
        /// Shell command run on the restored tree (its path in CISTA_DRILL_DIR); a non-zero
        /// exit fails the drill.
        #[arg(long)]
        exec: Option<String>,
        /// Store no verification record of this drill (none is stored with --no-lock).
        #[arg(long)]
        no_record: bool,
        #[command(flatten)]
        filter: Filter,
    },
    /// Write a file of a snapshot to standard output, or a directory as a tar archive.
    ///
    /// Every blob of a file is read and verified, and its digest checked, before the first
    /// byte of it is written: a damaged file writes nothing and exits 1, so `cista dump … |
    /// psql -1 -v ON_ERROR_STOP=1` sees a failed dump, never part of the data. A directory is
    /// written as a tar of the entries below it (paths relative to it), each file verified
    /// before its entry is written; a failure on a later file leaves the entries before it
    /// written, without the archive's end, and exits 1.
    Dump {
        snapshot: String,
        path: String,
        /// Write each file in one pass as it is read (reads it once, not twice). Unsafe for
        /// `| psql` and other readers that act on what they get: a failure mid-file leaves a
        /// partial output (the exit status is still 1).
        #[arg(long)]
        stream: bool,
        /// Archive format for a directory (only tar; a file is written as it is).
        #[arg(long, value_name = "FORMAT", default_value = "tar", value_parser = ["tar"])]
        archive: String,
        #[command(flatten)]
        filter: Selection,
    },
    /// List the files of a snapshot.
    Ls {
        snapshot: String,
        /// Only below this path.
        path: Option<String>,
        /// Long listing: mode, owner, size, time.
        #[arg(short, long)]
        long: bool,
        #[command(flatten)]
        filter: Selection,
    },
    /// Find files and directories by name or path in snapshots (newest first), or with
    /// --blob/--tree the files and directories that hold given ids.
    ///
    /// A pattern without `/` is a glob on entry names (`*.conf`); one with `/` is matched
    /// against whole paths, from the snapshot root when it starts with `/` (`/etc/*.conf`),
    /// else against any tail of the path (`nginx/*.conf`). `**` spans directories.
    Find(FindArgs),
    /// Show what changed from the first snapshot to the second (each ID or ID:PATH).
    ///
    /// Lines start with + (added), - (removed), M (content changed), T (type changed), U
    /// (metadata only, with --metadata) or ? (content changed with all metadata unchanged:
    /// bitrot, or a backup that re-read an unchanged file); a summary of counts and blob
    /// sizes follows. Directories whose trees are identical are skipped without being read.
    Diff {
        /// The snapshot to compare from (ID, ID:PATH or latest).
        from: String,
        /// The snapshot to compare to.
        to: String,
        /// Also show entries whose metadata (mode, owner, times, ...) alone changed.
        #[arg(long)]
        metadata: bool,
        #[command(flatten)]
        filter: Selection,
    },
    /// Print each regular file's BLAKE3 digest and path in b3sum's format, for
    /// `cd RESTORED && b3sum -c MANIFEST`.
    ///
    /// Paths are relative to PATH (the snapshot root by default), as a restore of the same
    /// path lays them out under its target; names b3sum escapes are escaped as b3sum does (a
    /// line starting with \). The digests are those the backup recorded, so only trees are
    /// read; a file whose node records none (the format allows it) is read and hashed.
    Manifest {
        /// The snapshot (ID, ID:PATH or latest).
        snapshot: String,
        /// Only below this path.
        path: Option<String>,
        #[command(flatten)]
        filter: Selection,
    },
    /// Print a repository object, for debugging.
    Cat {
        /// config, key, snapshot, index, tree, blob, pack or verification.
        kind: String,
        id: Option<String>,
    },
    /// Check the repository's consistency (and with --read-data, every stored byte).
    Check {
        /// Read and verify all data.
        #[arg(long)]
        read_data: bool,
        /// Read only a subset of packs: group n/m, a percentage p% or a size (e.g. 500M) of
        /// randomly chosen packs.
        #[arg(long, value_name = "SUBSET")]
        read_data_subset: Option<String>,
        /// Store no verification record of this check (none is stored with --no-lock).
        #[arg(long)]
        no_record: bool,
    },
    /// Show the repository's settings, or change one: `config append-only on|off`.
    ///
    /// An append-only repository refuses forget, prune and tag for every client until the
    /// setting is turned off again (which a client run with --append-only cannot do).
    Config {
        /// The setting to change (append-only).
        key: Option<String>,
        /// Its new value (on/off).
        value: Option<String>,
    },
    /// List the local caches of remote repositories, or remove old ones (--cleanup).
    Cache {
        /// Remove caches not used for --max-age days.
        #[arg(long)]
        cleanup: bool,
        /// Age in days after which a cache counts as old.
        #[arg(long, default_value_t = 30)]
        max_age: u64,
        /// Do not compute the size of each cache.
        #[arg(long)]
        no_size: bool,
    },
    /// Remove stale locks.
    Unlock {
        /// Remove all locks, even live ones.
        #[arg(long)]
        remove_all: bool,
    },
    /// Manage the repository's keys (passwords): list, add, remove, passwd.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Write shell completion scripts and man pages.
    Generate(GenerateArgs),
}

#[derive(Subcommand)]
pub(crate) enum KeyCmd {
    /// List the key files (the one in use marked *).
    List,
    /// Add a key file for a new password (the old ones keep working).
    Add(NewKeyArgs),
    /// Remove a key file by id or unique prefix.
    ///
    /// The last usable key file is never removed, and the one in use (that opened the
    /// repository this time) only with --force, while another remains.
    Remove {
        /// The key file's id, or a unique prefix of it.
        id: String,
        /// Remove the key in use too (only while another key remains).
        #[arg(long)]
        force: bool,
    },
    /// Change the password: add a key file for the new one, then remove the one in use.
    Passwd(NewKeyArgs),
}

/// The new password and what the new key file records.
#[derive(clap::Args)]
pub(crate) struct NewKeyArgs {
    /// Read the new password from this file's first line (else CISTA_NEW_PASSWORD, else a
    /// prompt).
    #[arg(long, env = "CISTA_NEW_PASSWORD_FILE", hide_env_values = true)]
    pub(crate) new_password_file: Option<PathBuf>,
    /// Use an empty new password (insecure).
    #[arg(long)]
    pub(crate) new_insecure_no_password: bool,
    /// Host name to record in the new key file instead of this machine's.
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// User name to record in the new key file instead of the current user's.
    #[arg(long)]
    pub(crate) user: Option<String>,
}

#[derive(clap::Args)]
#[command(arg_required_else_help = true)]
pub(crate) struct GenerateArgs {
    /// Write the bash completion script to FILE ('-' for standard output).
    #[arg(long, value_name = "FILE")]
    pub(crate) bash_completion: Option<PathBuf>,
    /// Write the zsh completion script to FILE ('-' for standard output).
    #[arg(long, value_name = "FILE")]
    pub(crate) zsh_completion: Option<PathBuf>,
    /// Write the fish completion script to FILE ('-' for standard output).
    #[arg(long, value_name = "FILE")]
    pub(crate) fish_completion: Option<PathBuf>,
    /// Write man pages to DIR: cista.1 and one per subcommand (cista-backup.1, ...).
    #[arg(long, value_name = "DIR")]
    pub(crate) man: Option<PathBuf>,
}

pub(crate) fn parse_count(s: &str) -> Result<i64, String> {
    if s == "unlimited" {
        return Ok(-1);
    }
    s.parse::<i64>()
        .ok()
        .filter(|&n| n >= -1)
        .ok_or_else(|| format!("{s:?} is not a count (a number, or unlimited)"))
}

pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    cista::util::parse_size(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_pack_size(s: &str) -> Result<u32, String> {
    let b = cista::util::parse_size_in(s, 1 << 20).map_err(|e| e.to_string())?;
    u32::try_from(b).map_err(|_| format!("pack size {s:?} is too large"))
}

/// A rate in KiB/s: bare numbers are KiB, sizes are converted.
pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    match cista::util::parse_size_in(s, 1 << 10).map_err(|e| e.to_string())? {
        b if b < 1 << 10 => Err(format!("rate {s:?} is below 1 KiB/s")),
        b => Ok(b >> 10),
    }
}

pub(crate) fn parse_within(s: &str) -> Result<cista::Within, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

#[derive(clap::Args, Clone, Default)]
pub(crate) struct PruneArgs {
    /// Don't change anything; report what would be done.
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,
    /// Unused space to tolerate in partly used packs: a percentage, a size, or unlimited.
    #[arg(long, default_value = "5%")]
    pub(crate) max_unused: String,
    /// Repack at most this much (e.g. 1G).
    #[arg(long)]
    pub(crate) max_repack_size: Option<String>,
    /// Repack packs holding uncompressed blobs, compressing them.
    #[arg(long)]
    pub(crate) repack_uncompressed: bool,
}

#[derive(clap::Args)]
pub(crate) struct FindArgs {
    /// Globs to look for (an entry matching any is shown), or ids with --blob/--tree.
    #[arg(required = true, value_name = "PATTERN")]
    pub(crate) patterns: Vec<String>,
    /// Search only this snapshot (repeatable; default: all matching the filters).
    #[arg(long, short = 's', value_name = "ID")]
    pub(crate) snapshot: Vec<String>,
    /// Only entries modified at or after this time (RFC 3339 or a local date and time).
    #[arg(long, short = 'O', value_name = "TIME", value_parser = parse_instant)]
    pub(crate) oldest: Option<jiff::Timestamp>,
    /// Only entries modified at or before this time.
    #[arg(long, short = 'N', value_name = "TIME", value_parser = parse_instant)]
    pub(crate) newest: Option<jiff::Timestamp>,
    /// Ignore case in patterns.
    #[arg(long, short = 'i')]
    pub(crate) ignore_case: bool,
    /// Long listing: mode, owner, size, time.
    #[arg(long, short = 'l')]
    pub(crate) long: bool,
    /// Search the oldest snapshot first.
    #[arg(long, short = 'R')]
    pub(crate) reverse: bool,
    /// The patterns are data blob ids (or prefixes): show the files holding them.
    #[arg(long, conflicts_with = "tree")]
    pub(crate) blob: bool,
    /// The patterns are tree ids (or prefixes): show the directories they are.
    #[arg(long)]
    pub(crate) tree: bool,
    #[command(flatten)]
    pub(crate) filter: Selection,
}

#[derive(clap::Args)]
pub(crate) struct ForgetArgs {
    /// Snapshots to remove (instead of a policy).
    pub(crate) ids: Vec<String>,
    /// Keep the last N snapshots.
    #[arg(long, short = 'l', value_parser = parse_count, allow_negative_numbers = true)]
    pub(crate) keep_last: Option<i64>,
    /// Keep the last N hourly snapshots.
    #[arg(long, short = 'H', value_parser = parse_count, allow_negative_numbers = true)]
    pub(crate) keep_hourly: Option<i64>,
    /// Keep the last N daily snapshots.
    #[arg(long, short = 'd', value_parser = parse_count, allow_negative_numbers = true)]
    pub(crate) keep_daily: Option<i64>,
    /// Keep the last N weekly (ISO week) snapshots.
    #[arg(long, short = 'w', value_parser = parse_count, allow_negative_numbers = true)]
    pub(crate) keep_weekly: Option<i64>,
    /// Keep the last N monthly snapshots.
    #[arg(long, short = 'm', value_parser = parse_count, allow_negative_numbers = true)]
    pub(crate) keep_monthly: Option<i64>,
    /// Keep the last N yearly snapshots.
    #[arg(long, short = 'y', value_parser = parse_count, allow_negative_numbers = true)]
    pub(crate) keep_yearly: Option<i64>,
    /// Keep snapshots within this span (e.g. 2y5m7d3h, 8w) of the latest one.
    #[arg(long, value_parser = parse_within)]
    pub(crate) keep_within: Option<cista::Within>,
    #[arg(long, value_parser = parse_within)]
    pub(crate) keep_within_hourly: Option<cista::Within>,
    #[arg(long, value_parser = parse_within)]
    pub(crate) keep_within_daily: Option<cista::Within>,
    #[arg(long, value_parser = parse_within)]
    pub(crate) keep_within_weekly: Option<cista::Within>,
    #[arg(long, value_parser = parse_within)]
    pub(crate) keep_within_monthly: Option<cista::Within>,
    #[arg(long, value_parser = parse_within)]
    pub(crate) keep_within_yearly: Option<cista::Within>,
    /// Keep snapshots with all of these tags (repeatable; '' keeps untagged ones).
    #[arg(long)]
    pub(crate) keep_tag: Vec<String>,
    /// Group snapshots by host, paths and/or tags ('' for one group).
    #[arg(long, short = 'g', default_value = "host,paths")]
    pub(crate) group_by: String,
    #[command(flatten)]
    pub(crate) filter: Filter,
    /// Allow a policy to remove every snapshot of a group.
    #[arg(long)]
    pub(crate) unsafe_allow_remove_all: bool,
    /// Run prune afterwards if snapshots were removed.
    #[arg(long)]
    pub(crate) prune: bool,
    #[command(flatten)]
    pub(crate) prune_args: PruneArgs,
}

#[derive(clap::Args)]
pub(crate) struct BackupArgs {
    /// Files and directories to back up (with --stdin-from-command: the command and its
    /// arguments, after `--`).
    pub(crate) paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable; `a,b` adds both).
    #[arg(long)]
    pub(crate) tag: Vec<String>,
    /// Host name to record instead of this machine's.
    #[arg(long, short = 'H')]
    pub(crate) host: Option<String>,
    /// Exclude paths matching this glob (repeatable).
    #[arg(long, short = 'e')]
    pub(crate) exclude: Vec<String>,
    /// Read exclude patterns from this file (repeatable).
    #[arg(long)]
    pub(crate) exclude_file: Vec<PathBuf>,
    /// As --exclude, ignoring case (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub(crate) iexclude: Vec<String>,
    /// As --exclude-file, ignoring case (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) iexclude_file: Vec<PathBuf>,
    /// Exclude the contents of directories holding a CACHEDIR.TAG file with the standard
    /// signature (https://bford.info/cachedir/); the tag file itself is kept.
    #[arg(long)]
    pub(crate) exclude_caches: bool,
    /// Exclude the contents of directories holding FILENAME (except FILENAME itself), if it
    /// starts with HEADER when one is given (repeatable).
    #[arg(long, value_name = "FILENAME[:HEADER]")]
    pub(crate) exclude_if_present: Vec<String>,
    /// Exclude files larger than SIZE (500M, 2G; a lone K/M/G/T is binary).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub(crate) exclude_larger_than: Option<u64>,
    /// Read more paths to back up from FILE, one per line: each trimmed and expanded as a
    /// glob; blank lines and lines starting with # skipped (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) files_from: Vec<PathBuf>,
    /// Read more paths to back up from FILE, one per line, each taken as it is (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) files_from_verbatim: Vec<PathBuf>,
    /// Read more paths to back up from FILE, each ended by a NUL byte, as `find -print0`
    /// writes them (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) files_from_raw: Vec<PathBuf>,
    /// Save no snapshot when nothing changed since the parent snapshot.
    #[arg(long)]
    pub(crate) skip_if_unchanged: bool,
    /// Do not cross filesystem boundaries.
    #[arg(long, short = 'x')]
    pub(crate) one_file_system: bool,
    /// Snapshot time (RFC 3339) instead of now.
    #[arg(long)]
    pub(crate) time: Option<String>,
    /// Back up standard input.
    #[arg(long)]
    pub(crate) stdin: bool,
    /// Back up a command's standard output.
    #[arg(long)]
    pub(crate) stdin_from_command: bool,
    /// File name for --stdin / --stdin-from-command.
    #[arg(long, default_value = "stdin")]
    pub(crate) stdin_filename: String,
    /// Also store a shell command's standard output (run with `sh -c`) as the file NAME below
    /// the snapshot root, e.g. `--command 'db/app.dump=pg_dump app'` (repeatable; directories
    /// in NAME are created; beside paths, whose place stays absolute). A command that exits
    /// non-zero fails the backup: no snapshot is saved.
    #[arg(long, value_name = "NAME=COMMAND")]
    pub(crate) command: Vec<String>,
    /// Store an empty standard input or command output as an empty file (by default it fails
    /// the backup: an empty `pg_dump | cista backup --stdin` is a failed dump).
    #[arg(long)]
    pub(crate) allow_empty: bool,
    /// Parent snapshot to compare against (default: latest of the same host and paths).
    #[arg(long)]
    pub(crate) parent: Option<String>,
    /// Read every file, ignoring the parent snapshot.
    #[arg(long)]
    pub(crate) force: bool,
    /// Ignore inode numbers when comparing with the parent.
    #[arg(long)]
    pub(crate) ignore_inode: bool,
    /// Ignore ctime when comparing with the parent.
    #[arg(long)]
    pub(crate) ignore_ctime: bool,
    /// Store access times (not stored by default; restore then sets them to the mtime).
    #[arg(long)]
    pub(crate) with_atime: bool,
    /// Do not write anything; show what would be stored.
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,
}
