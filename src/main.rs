//! The `cista` command-line tool: a thin layer over the library. Parses arguments, gets the
//! password, prints results, and maps errors to exit codes:
//! 0 ok; 1 fatal; 3 snapshot saved but some source files could not be read;
//! 10 repository does not exist; 11 repository locked; 12 wrong password;
//! 130 interrupted by SIGINT, 143 by SIGTERM (after removing this process's locks).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};

use cista::backend::{Backend, FileType};
use cista::backup::{self, BackupOptions, Source};
use cista::check::{self, CheckOptions, Subset};
use cista::forget::{self, GroupKey, KeepPolicy};
use cista::format::{BlobType, FileKind, IndexFile, Node, NodeKind, Snapshot, Tree};
use cista::index::Index;
use cista::lock::{self, LockGuard};
use cista::prune::{self, PruneOptions};
use cista::restore::{self, RestoreOptions};
use cista::tree::{find_node, load_tree};
use cista::{Error, Id, InitOptions, Repository, SnapshotFilter};

const EXIT_PARTIAL: u8 = 3;
const EXIT_NO_REPO: u8 = 10;
const EXIT_LOCKED: u8 = 11;
const EXIT_WRONG_PASSWORD: u8 = 12;
/// 128 + the signal number, the shell's convention (restic exits 130 on SIGINT too).
const EXIT_SIGINT: i32 = 130;
const EXIT_SIGTERM: i32 = 143;

#[derive(Parser)]
#[command(
    name = "cista",
    version,
    about = "Deduplicating, encrypted backups",
    max_term_width = 100
)]
struct Cli {
    /// Repository location: a path, local:PATH, file:///PATH, s3://bucket/prefix,
    /// gs://bucket/prefix or az://container/prefix.
    #[arg(short = 'r', long = "repo", env = "CISTA_REPOSITORY", global = true)]
    repo: Option<String>,
    /// Object store setting as key=value (object_store's key names, e.g.
    /// aws_endpoint=http://127.0.0.1:9000); repeatable.
    #[arg(short = 'o', long = "option", global = true)]
    option: Vec<String>,
    /// Read the password from this file's first line (takes precedence over CISTA_PASSWORD).
    #[arg(
        long,
        env = "CISTA_PASSWORD_FILE",
        global = true,
        hide_env_values = true
    )]
    password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password (takes precedence over
    /// CISTA_PASSWORD).
    #[arg(
        long,
        env = "CISTA_PASSWORD_COMMAND",
        global = true,
        hide_env_values = true
    )]
    password_command: Option<String>,
    /// Key file id (or unique prefix) to try first (default: the one that opened this
    /// repository last on this host).
    #[arg(long, env = "CISTA_KEY_HINT", global = true)]
    key_hint: Option<String>,
    /// Use an empty password: create or open a repository without one (insecure; needed by
    /// every command on such a repository).
    #[arg(long, global = true)]
    insecure_no_password: bool,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Print less.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print more (repeat for even more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Do not lock the repository (for read-only media; unsafe beside a prune).
    #[arg(long, global = true)]
    no_lock: bool,
    /// Local cache directory for index, snapshots and trees of remote repositories
    /// (default $XDG_CACHE_HOME/cista or ~/.cache/cista).
    #[arg(long, env = "CISTA_CACHE_DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Do not use the local cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Limit uploads to this rate per second: KiB by default, or a size (e.g. 5M, 1.5MiB).
    #[arg(long, global = true, value_name = "KiB/s", value_parser = parse_rate)]
    limit_upload: Option<u64>,
    /// Limit downloads to this rate per second: KiB by default, or a size (e.g. 5M).
    #[arg(long, global = true, value_name = "KiB/s", value_parser = parse_rate)]
    limit_download: Option<u64>,
    /// Delete nothing but our own locks; forget, prune and tag refuse to run.
    #[arg(long, env = "CISTA_APPEND_ONLY", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    append_only: bool,
    /// Wait up to this long for a locked repository (e.g. 30s, 5m).
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    retry_lock: Option<std::time::Duration>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone, Default)]
struct Filter {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// Only snapshots with these tags (`a,b` needs both; repeat for either).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path")]
    paths: Vec<String>,
}

impl Filter {
    fn to_lib(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new repository.
    Init {
        /// Target pack size: MiB by default, or a size (e.g. 64MiB, 1G).
        #[arg(long, default_value = "16", value_parser = parse_pack_size)]
        pack_size: u32,
    },
    /// Back up files, standard input, or a command's output.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots {
        #[command(flatten)]
        filter: Filter,
        /// Group the list by host, paths and/or tags.
        #[arg(long, short = 'g')]
        group_by: Option<String>,
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
        filter: Filter,
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
        filter: Filter,
    },
    /// Show repository statistics.
    Stats {
        /// Snapshots to count (default: all matching the filters).
        ids: Vec<String>,
        /// restore-size (files as restored) or raw-data (unique stored blobs).
        #[arg(long, default_value = "restore-size")]
        mode: String,
        #[command(flatten)]
        filter: Filter,
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
        #[command(flatten)]
        filter: Filter,
    },
    /// Write one file of a snapshot to standard output.
    Dump {
        snapshot: String,
        path: String,
        #[command(flatten)]
        filter: Filter,
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
        filter: Filter,
    },
    /// Print a repository object, for debugging.
    Cat {
        /// config, key, snapshot, index, tree, blob or pack.
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
}

fn parse_count(s: &str) -> Result<i64, String> {
    if s == "unlimited" {
        return Ok(-1);
    }
    s.parse::<i64>()
        .ok()
        .filter(|&n| n >= -1)
        .ok_or_else(|| format!("{s:?} is not a count (a number, or unlimited)"))
}

fn parse_pack_size(s: &str) -> Result<u32, String> {
    let b = prune::parse_size_in(s, 1 << 20).map_err(|e| e.to_string())?;
    u32::try_from(b).map_err(|_| format!("pack size {s:?} is too large"))
}

/// A rate in KiB/s: bare numbers are KiB, sizes are converted.
fn parse_rate(s: &str) -> Result<u64, String> {
    match prune::parse_size_in(s, 1 << 10).map_err(|e| e.to_string())? {
        b if b < 1 << 10 => Err(format!("rate {s:?} is below 1 KiB/s")),
        b => Ok(b >> 10),
    }
}

fn parse_within(s: &str) -> Result<cista::forget::Within, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

#[derive(clap::Args, Clone, Default)]
struct PruneArgs {
    /// Don't change anything; report what would be done.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Unused space to tolerate in partly used packs: a percentage, a size, or unlimited.
    #[arg(long, default_value = "5%")]
    max_unused: String,
    /// Repack at most this much (e.g. 1G).
    #[arg(long)]
    max_repack_size: Option<String>,
    /// Repack packs holding uncompressed blobs, compressing them.
    #[arg(long)]
    repack_uncompressed: bool,
}

#[derive(clap::Args)]
struct ForgetArgs {
    /// Snapshots to remove (instead of a policy).
    ids: Vec<String>,
    /// Keep the last N snapshots.
    #[arg(long, short = 'l', value_parser = parse_count, allow_negative_numbers = true)]
    keep_last: Option<i64>,
    /// Keep the last N hourly snapshots.
    #[arg(long, short = 'H', value_parser = parse_count, allow_negative_numbers = true)]
    keep_hourly: Option<i64>,
    /// Keep the last N daily snapshots.
    #[arg(long, short = 'd', value_parser = parse_count, allow_negative_numbers = true)]
    keep_daily: Option<i64>,
    /// Keep the last N weekly (ISO week) snapshots.
    #[arg(long, short = 'w', value_parser = parse_count, allow_negative_numbers = true)]
    keep_weekly: Option<i64>,
    /// Keep the last N monthly snapshots.
    #[arg(long, short = 'm', value_parser = parse_count, allow_negative_numbers = true)]
    keep_monthly: Option<i64>,
    /// Keep the last N yearly snapshots.
    #[arg(long, short = 'y', value_parser = parse_count, allow_negative_numbers = true)]
    keep_yearly: Option<i64>,
    /// Keep snapshots within this span (e.g. 2y5m7d3h) of the latest one.
    #[arg(long, value_parser = parse_within)]
    keep_within: Option<cista::forget::Within>,
    #[arg(long, value_parser = parse_within)]
    keep_within_hourly: Option<cista::forget::Within>,
    #[arg(long, value_parser = parse_within)]
    keep_within_daily: Option<cista::forget::Within>,
    #[arg(long, value_parser = parse_within)]
    keep_within_weekly: Option<cista::forget::Within>,
    #[arg(long, value_parser = parse_within)]
    keep_within_monthly: Option<cista::forget::Within>,
    #[arg(long, value_parser = parse_within)]
    keep_within_yearly: Option<cista::forget::Within>,
    /// Keep snapshots with all of these tags (repeatable; '' keeps untagged ones).
    #[arg(long)]
    keep_tag: Vec<String>,
    /// Group snapshots by host, paths and/or tags ('' for one group).
    #[arg(long, short = 'g', default_value = "host,paths")]
    group_by: String,
    #[command(flatten)]
    filter: Filter,
    /// Allow a policy to remove every snapshot of a group.
    #[arg(long)]
    unsafe_allow_remove_all: bool,
    /// Run prune afterwards if snapshots were removed.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_args: PruneArgs,
}

#[derive(clap::Args)]
struct BackupArgs {
    /// Files and directories to back up (with --stdin-from-command: the command and its
    /// arguments, after `--`).
    paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable; `a,b` adds both).
    #[arg(long)]
    tag: Vec<String>,
    /// Host name to record instead of this machine's.
    #[arg(long, short = 'H')]
    host: Option<String>,
    /// Exclude paths matching this glob (repeatable).
    #[arg(long, short = 'e')]
    exclude: Vec<String>,
    /// Read exclude patterns from this file (repeatable).
    #[arg(long)]
    exclude_file: Vec<PathBuf>,
    /// Do not cross filesystem boundaries.
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Snapshot time (RFC 3339) instead of now.
    #[arg(long)]
    time: Option<String>,
    /// Back up standard input.
    #[arg(long)]
    stdin: bool,
    /// Back up a command's standard output.
    #[arg(long)]
    stdin_from_command: bool,
    /// File name for --stdin / --stdin-from-command.
    #[arg(long, default_value = "stdin")]
    stdin_filename: String,
    /// Parent snapshot to compare against (default: latest of the same host and paths).
    #[arg(long)]
    parent: Option<String>,
    /// Read every file, ignoring the parent snapshot.
    #[arg(long)]
    force: bool,
    /// Ignore inode numbers when comparing with the parent.
    #[arg(long)]
    ignore_inode: bool,
    /// Ignore ctime when comparing with the parent.
    #[arg(long)]
    ignore_ctime: bool,
    /// Store access times (not stored by default; restore then sets them to the mtime).
    #[arg(long)]
    with_atime: bool,
    /// Do not write anything; show what would be stored.
    #[arg(long, short = 'n')]
    dry_run: bool,
}

/// glibc raises its mmap threshold each time a large block is freed, after which buffers of a
/// few MiB (file segments, packs, compressed chunks) come from per-thread heaps that are not
/// returned to the system: on a 1 GB backup that cost 40-50 MiB of peak RSS
/// (docs/performance.md). A fixed threshold keeps those buffers mapped and unmapped whole.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    let threshold: i32 = std::env::var("CISTA_MMAP_THRESHOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    // SAFETY: mallopt only sets an allocator parameter; it is called first thing in main,
    // before any other thread exists, and an unaccepted value is ignored by glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, threshold);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    // With -v, storage retries (logged by object_store) and other notices go to stderr.
    let level = match cli.verbose {
        0 => tracing_subscriber::filter::LevelFilter::WARN,
        1 => tracing_subscriber::filter::LevelFilter::INFO,
        _ => tracing_subscriber::filter::LevelFilter::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .init();
    let result = run(&cli);
    if cli.verbose > 0 {
        print_requests();
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = match e.downcast_ref::<Error>() {
                Some(Error::RepoNotFound(_) | Error::ContainerNotFound { .. }) => EXIT_NO_REPO,
                Some(Error::Locked(_)) => EXIT_LOCKED,
                Some(Error::WrongPassword) => EXIT_WRONG_PASSWORD,
                _ => 1,
            };
            eprintln!("cista: error: {}", error_text(&e));
            ExitCode::from(code)
        }
    }
}

/// The error and its causes, each cause once: the library's messages already name their
/// immediate cause, so printing the whole chain (`{:#}`) would repeat it.
fn error_text(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let t = cause.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
    }
    msg
}

fn backend(cli: &Cli) -> Result<Arc<dyn Backend>> {
    let loc = cli
        .repo
        .as_deref()
        .ok_or_else(|| anyhow!("no repository given: use -r/--repo or set CISTA_REPOSITORY"))?;
    let mut opts = Vec::new();
    for o in &cli.option {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("option {o:?} is not key=value"))?;
        opts.push((k.trim().to_string(), v.trim().to_string()));
    }
    let counting = cista::backend::Counting::new(cista::backend::open_location(loc, &opts)?);
    REQUESTS
        .lock()
        .unwrap()
        .push((counting.location(), counting.stats()));
    let mut be: Arc<dyn Backend> = Arc::new(counting);
    if cli.limit_upload.is_some() || cli.limit_download.is_some() {
        be = Arc::new(cista::backend::Limited::new(
            be,
            cli.limit_upload,
            cli.limit_download,
        ));
    }
    Ok(if cli.append_only {
        Arc::new(cista::backend::AppendOnly(be))
    } else {
        be
    })
}

/// What each store this process opened was asked, for `-v`.
static REQUESTS: std::sync::Mutex<Vec<(String, Arc<cista::backend::RequestStats>)>> =
    std::sync::Mutex::new(Vec::new());

/// What the repository's store (the first one opened) was asked so far, for `--json`
/// summaries: the numbers `-v` prints.
fn store_requests() -> serde_json::Value {
    REQUESTS
        .lock()
        .unwrap()
        .first()
        .map_or(serde_json::Value::Null, |(_, s)| {
            serde_json::to_value(s.counts()).unwrap_or_default()
        })
}

fn print_requests() {
    for (loc, stats) in REQUESTS.lock().unwrap().iter() {
        eprintln!("requests to {loc}: {}", stats.counts());
    }
}

fn password(cli: &Cli, confirm: bool) -> Result<Vec<u8>> {
    password_with(cli, confirm, "CISTA_PASSWORD")
}

/// The password: from the password file or command if one is given (restic's precedence),
/// else from the environment variable `var`, else a prompt. Empty passwords are refused
/// unless `--insecure-no-password` asks for one.
fn password_with(cli: &Cli, confirm: bool, var: &str) -> Result<Vec<u8>> {
    // The source repository of `copy` has its own options: --from-password-file and so on.
    let from = if var == "CISTA_PASSWORD" { "" } else { "from-" };
    let given = match (&cli.password_file, &cli.password_command) {
        (Some(_), Some(_)) => bail!(
            "both a password file and a password command are given (--{from}password-file or \
             {var}_FILE, --{from}password-command or {var}_COMMAND): give one"
        ),
        (Some(f), None) => Some((
            read_password_file(f)?,
            format!("password file {}", f.display()),
        )),
        (None, Some(c)) => Some((run_password_command(c)?, "the password command".to_string())),
        (None, None) => std::env::var_os(var).map(|p| {
            use std::os::unix::ffi::OsStringExt;
            (p.into_vec(), var.to_string())
        }),
    };
    if cli.insecure_no_password {
        if let Some((_, source)) = given.filter(|(p, _)| !p.is_empty()) {
            bail!("--{from}insecure-no-password uses an empty password, but {source} gives one: drop one of them");
        }
        return Ok(Vec::new());
    }
    let (pw, source) = match given {
        Some(g) => g,
        None if std::io::stdin().is_terminal() => (prompt_password(confirm)?, "the prompt".into()),
        None => bail!("no password given: set {var}, a password file or a password command"),
    };
    if pw.is_empty() {
        bail!(
            "the password from {source} is empty: empty passwords are refused; \
             pass --{from}insecure-no-password to use a repository without a password"
        );
    }
    Ok(pw)
}

/// A password file's first line.
fn read_password_file(f: &std::path::Path) -> Result<Vec<u8>> {
    let b = std::fs::read(f).with_context(|| format!("reading password file {}", f.display()))?;
    Ok(first_line(b))
}

/// The first line the command prints. Neither the command's text nor its output goes into a
/// message: either may hold the secret (`echo hunter2`).
fn run_password_command(c: &str) -> Result<Vec<u8>> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(c)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the password command")?;
    if !out.status.success() {
        bail!("the password command failed ({})", out.status);
    }
    let pw = first_line(out.stdout);
    if pw.is_empty() {
        // Even with --insecure-no-password: a command that prints nothing is broken, not a
        // request for an empty password.
        bail!("the password command printed no password (exit status 0, empty output)");
    }
    Ok(pw)
}

fn first_line(mut s: Vec<u8>) -> Vec<u8> {
    if let Some(i) = s.iter().position(|&b| b == b'\n') {
        s.truncate(i);
    }
    if s.last() == Some(&b'\r') {
        s.pop();
    }
    s
}

fn prompt_password(confirm: bool) -> Result<Vec<u8>> {
    let p = rpassword::prompt_password("enter password for repository: ")?;
    if confirm {
        let q = rpassword::prompt_password("enter password again: ")?;
        if p != q {
            bail!("passwords do not match");
        }
    }
    Ok(p.into_bytes())
}

fn open(cli: &Cli) -> Result<Repository> {
    let be = backend(cli)?;
    let pw = password(cli, false)?;
    let cache = if cli.no_cache { None } else { cache_base(cli) };
    let opts = cista::OpenOptions {
        key_hint: cli.key_hint.clone(),
        hint_dir: cache.as_ref().map(|d| d.join("key-hints")),
    };
    let repo = Repository::open_with(be, &pw, &opts)?;
    // Local repositories are as fast to read as a cache would be.
    let remote = cli
        .repo
        .as_deref()
        .is_some_and(|r| r.contains("://") && !r.starts_with("file://"));
    Ok(match cache {
        Some(dir) if remote => repo.with_cache(&dir),
        _ => repo,
    })
}

fn lock(cli: &Cli, repo: &Repository, exclusive: bool) -> Result<Option<LockGuard>> {
    if cli.no_lock {
        return Ok(None);
    }
    let wait = cli.retry_lock.unwrap_or_default();
    release_locks_on_signal()?;
    Ok(Some(LockGuard::acquire_retry(repo, exclusive, wait)?))
}

/// From the first lock on, SIGINT and SIGTERM remove this process's locks and exit 130 or
/// 143, instead of leaving a lock that blocks other hosts for thirty minutes. What an
/// interrupted command already wrote is safe to leave: packs no index names yet are reused by
/// the next backup or removed by prune, and check reports them as notes, not damage. A second
/// signal while the locks are being removed (a hung store) exits at once.
///
/// Installed at the first lock, not at start: a signal during a password prompt must keep its
/// default action, which lets the terminal restore echo.
fn release_locks_on_signal() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let again = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (sig, code) in [(SIGINT, EXIT_SIGINT), (SIGTERM, EXIT_SIGTERM)] {
        // Registered first, so it sees the flag the first signal sets only from the second on.
        signal_hook::flag::register_conditional_shutdown(sig, code, again.clone())?;
        signal_hook::flag::register(sig, again.clone())?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("cista-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let (name, code) = if sig == SIGINT {
                    ("SIGINT", EXIT_SIGINT)
                } else {
                    ("SIGTERM", EXIT_SIGTERM)
                };
                let n = lock::release_all();
                eprintln!(
                    "cista: interrupted by {name}: removed this process's {n} lock(s) and stopped; \
                     data already stored is kept and the next backup reuses it"
                );
                std::process::exit(code);
            }
        })?;
    let _ = INSTALLED.set(());
    Ok(())
}

fn exclusive_lock(cli: &Cli, repo: &Repository) -> Result<LockGuard> {
    if cli.append_only {
        bail!("append-only mode: this command deletes or rewrites snapshots and data; run it from a host with delete rights");
    }
    if repo.config().append_only {
        bail!("the repository is append-only (its setting): this command deletes or rewrites snapshots and data; `cista config append-only off` lifts the setting");
    }
    if cli.no_lock {
        bail!("this command deletes data and always locks the repository");
    }
    Ok(lock(cli, repo, true)?.expect("locked"))
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: &Cli) -> Result<u8> {
    match &cli.cmd {
        Cmd::Init { pack_size } => {
            let be = backend(cli)?;
            let pw = password(cli, true)?;
            let opts = InitOptions {
                // --append-only (or CISTA_APPEND_ONLY) at init makes it the repository's setting.
                append_only: cli.append_only,
                pack_size: *pack_size,
                ..Default::default()
            };
            let repo = Repository::init(be.clone(), &pw, opts)?;
            if cli.json {
                print_json(&serde_json::json!({
                    "message_type": "initialized",
                    "id": repo.config().id,
                    "repository": be.location(),
                }))?;
            } else if !cli.quiet {
                println!(
                    "created cista repository {} at {}",
                    repo.config().id.short(),
                    be.location()
                );
                println!("Keep the password safe: without it the data cannot be recovered.");
            }
            Ok(0)
        }
        Cmd::Backup(a) => backup(cli, a),
        Cmd::Snapshots { filter, group_by } => {
            let repo = open(cli)?;
            let f = filter.to_lib();
            let snaps: Vec<(Id, Snapshot)> = repo
                .snapshots()?
                .into_iter()
                .filter(|(_, s)| f.matches(s))
                .collect();
            match group_by {
                None if cli.json => {
                    let v: Vec<_> = snaps.iter().map(|(id, s)| snapshot_json(id, s)).collect();
                    print_json(&v)?;
                }
                None => print_snapshot_table(&snaps, None),
                Some(g) => {
                    let groups = forget::group(snaps, g.parse()?);
                    if cli.json {
                        let v: Vec<_> = groups
                            .iter()
                            .map(|(k, v)| {
                                serde_json::json!({
                                    "group_key": k,
                                    "snapshots": v.iter().map(|(id, s)| snapshot_json(id, s)).collect::<Vec<_>>(),
                                })
                            })
                            .collect();
                        print_json(&v)?;
                    } else {
                        for (k, v) in &groups {
                            println!("snapshots for {}:", group_name(k));
                            print_snapshot_table(v, None);
                            println!();
                        }
                    }
                }
            }
            Ok(0)
        }
        Cmd::Forget(a) => forget_cmd(cli, a),
        Cmd::Config { key, value } => config_cmd(cli, key.as_deref(), value.as_deref()),
        Cmd::Prune(a) => {
            let repo = open(cli)?;
            let l = exclusive_lock(cli, &repo)?;
            run_prune(cli, &repo, a, &l)
        }
        Cmd::Tag {
            ids,
            add,
            remove,
            set,
            filter,
        } => {
            if add.is_empty() && remove.is_empty() && set.is_empty() {
                bail!("nothing to do: give --add, --remove or --set");
            }
            let repo = open(cli)?;
            let l = exclusive_lock(cli, &repo)?;
            let targets = select_snapshots(&repo, ids, filter)?;
            let split = |v: &Vec<String>| -> Vec<String> {
                v.iter()
                    .flat_map(|t| t.split(','))
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            };
            let set_v = split(set);
            let mut changed = 0;
            for (id, _) in targets {
                l.check()?;
                if repo
                    .change_tags(
                        &id,
                        &split(add),
                        &split(remove),
                        (!set.is_empty()).then_some(&set_v[..]),
                    )?
                    .is_some()
                {
                    changed += 1;
                }
            }
            if cli.json {
                print_json(
                    &serde_json::json!({"message_type": "summary", "changed_snapshots": changed}),
                )?;
            } else if !cli.quiet {
                println!("modified {changed} snapshots");
            }
            Ok(0)
        }
        Cmd::Stats { ids, mode, filter } => stats_cmd(cli, ids, mode, filter),
        Cmd::Copy {
            ids,
            from_repo,
            from_password_file,
            from_password_command,
            from_insecure_no_password,
            from_option,
            filter,
        } => {
            let src_cli = Cli {
                repo: Some(from_repo.clone()),
                option: from_option.clone(),
                password_file: from_password_file.clone(),
                password_command: from_password_command.clone(),
                insecure_no_password: *from_insecure_no_password,
                json: cli.json,
                quiet: cli.quiet,
                verbose: cli.verbose,
                no_lock: cli.no_lock,
                cache_dir: cli.cache_dir.clone(),
                key_hint: None,
                no_cache: cli.no_cache,
                append_only: true,
                retry_lock: cli.retry_lock,
                limit_upload: None,
                limit_download: cli.limit_download,
                cmd: Cmd::Unlock { remove_all: false },
            };
            let be = backend(&src_cli)?;
            let pw = password_with(&src_cli, false, "CISTA_FROM_PASSWORD")?;
            let src = Repository::open(be, &pw)?;
            // Both passwords before the first lock: a prompt interrupted by a signal would
            // leave the terminal without echo.
            let dst = open(cli)?;
            let _sl = lock(cli, &src, false)?;
            let dl = lock(cli, &dst, false)?;
            let snaps = select_snapshots(&src, ids, filter)?;
            let src_index = Index::load(&src)?;
            let (mut copied, mut skipped) = (0, 0);
            for (id, s) in &snaps {
                // Reloaded each time so later snapshots deduplicate against earlier copies.
                let dst_index = Index::load(&dst)?;
                match cista::backup::copy_snapshot(
                    &dst,
                    &dst_index,
                    &src,
                    &src_index,
                    id,
                    s,
                    dl.as_ref(),
                )? {
                    Some(new) => {
                        copied += 1;
                        if !cli.quiet && !cli.json {
                            println!(
                                "snapshot {} of {} copied as {}",
                                id.short(),
                                short_time(&s.time),
                                new.short()
                            );
                        }
                    }
                    None => {
                        skipped += 1;
                        if cli.verbose > 0 {
                            println!("snapshot {} is already in the destination", id.short());
                        }
                    }
                }
            }
            if cli.json {
                print_json(
                    &serde_json::json!({"message_type": "summary", "copied": copied, "skipped": skipped}),
                )?;
            } else if !cli.quiet {
                println!("copied {copied} snapshots, {skipped} already present");
            }
            Ok(0)
        }
        Cmd::Restore {
            snapshot,
            target,
            include,
            exclude,
            sparse,
            verify,
            filter,
        } => {
            let repo = open(cli)?;
            let _l = lock(cli, &repo, false)?;
            let (spec, sub) = snapshot.split_once(':').unwrap_or((snapshot, ""));
            let (id, snap) = repo.resolve_snapshot(spec, &filter.to_lib())?;
            let index = Index::load(&repo)?;
            let opts = RestoreOptions {
                target: target.clone(),
                includes: include.clone(),
                excludes: exclude.clone(),
                sparse: *sparse,
                verify: *verify,
                owner: None,
            };
            if !cli.quiet && !cli.json {
                eprintln!(
                    "restoring snapshot {} of {} to {}",
                    id.short(),
                    short_time(&snap.time),
                    target.display()
                );
            }
            let sum = restore::restore(&repo, &index, &snap, sub, &opts)?;
            for e in &sum.errors {
                eprintln!("error: {e}");
            }
            if cli.json {
                print_json(&serde_json::json!({
                    "message_type": "summary",
                    "requests": store_requests(),
                    "snapshot_id": id,
                    "files_restored": sum.files,
                    "dirs_restored": sum.dirs,
                    "special_restored": sum.others,
                    "bytes_restored": sum.bytes,
                    "files_verified": sum.verified_files,
                    "errors": sum.errors,
                }))?;
            } else if !cli.quiet {
                println!(
                    "restored {} files, {} directories, {} other entries, {}{}",
                    sum.files,
                    sum.dirs,
                    sum.others,
                    bytes(sum.bytes),
                    if *verify {
                        format!("; verified {} files", sum.verified_files)
                    } else {
                        String::new()
                    }
                );
            }
            if !sum.errors.is_empty() {
                bail!("{} paths could not be restored", sum.errors.len());
            }
            Ok(0)
        }
        Cmd::Dump {
            snapshot,
            path,
            filter,
        } => {
            let repo = open(cli)?;
            let _l = lock(cli, &repo, false)?;
            let (_, snap) = repo.resolve_snapshot(snapshot, &filter.to_lib())?;
            let index = Index::load(&repo)?;
            let node = find_node(&repo, &index, &snap.tree, path)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            restore::dump(&repo, &index, &node, &mut out)?;
            Ok(0)
        }
        Cmd::Ls {
            snapshot,
            path,
            long,
            filter,
        } => {
            let repo = open(cli)?;
            let (id, snap) = repo.resolve_snapshot(snapshot, &filter.to_lib())?;
            let index = Index::load(&repo)?;
            let base = path.clone().unwrap_or_default();
            let node = find_node(&repo, &index, &snap.tree, &base)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if cli.json {
                serde_json::to_writer(&mut out, &snapshot_json(&id, &snap))?;
                writeln!(out)?;
            }
            let base = format!("/{}", base.trim_matches('/'));
            let base = if base == "/" { String::new() } else { base };
            let mut lister = Lister {
                repo: &repo,
                index: &index,
                json: cli.json,
                long: *long,
                out: &mut out,
            };
            if node.kind == NodeKind::Dir && node.name != b"/" {
                lister.print(&base, &node)?;
            }
            match node.kind {
                NodeKind::Dir => lister.walk(&node.subtree.expect("dir"), &base)?,
                _ => lister.print(&base, &node)?,
            }
            out.flush()?;
            Ok(0)
        }
        Cmd::Cat { kind, id } => cat(cli, kind, id.as_deref()),
        Cmd::Check {
            read_data,
            read_data_subset,
        } => {
            let repo = open(cli)?;
            let _l = lock(cli, &repo, false)?;
            let subset = match (read_data, read_data_subset) {
                (_, Some(s)) => Some(s.parse::<Subset>()?),
                (true, None) => Some(Subset::All),
                (false, None) => None,
            };
            let rep = check::check(&repo, &CheckOptions { read_data: subset })?;
            for n in &rep.notes {
                if cli.verbose > 0 || !cli.quiet {
                    eprintln!("note: {n}");
                }
            }
            for e in &rep.errors {
                eprintln!("error: {e}");
            }
            if cli.json {
                print_json(&serde_json::json!({
                    "message_type": "summary",
                    "requests": store_requests(),
                    "ok": rep.ok(),
                    "errors": rep.errors,
                    "notes": rep.notes,
                    "snapshots": rep.snapshots,
                    "trees": rep.trees,
                    "packs": rep.packs,
                    "packs_read": rep.packs_read,
                    "blobs_read": rep.blobs_read,
                    "bytes_read": rep.bytes_read,
                }))?;
            } else if !cli.quiet {
                println!(
                    "checked {} snapshots, {} trees, {} packs{}",
                    rep.snapshots,
                    rep.trees,
                    rep.packs,
                    if subset.is_some() {
                        format!(
                            "; read {} packs, {} blobs, {}",
                            rep.packs_read,
                            rep.blobs_read,
                            bytes(rep.bytes_read)
                        )
                    } else {
                        String::new()
                    }
                );
            }
            if !rep.ok() {
                bail!("repository has {} errors", rep.errors.len());
            }
            if !cli.quiet && !cli.json {
                println!("no errors were found");
            }
            Ok(0)
        }
        Cmd::Cache {
            cleanup,
            max_age,
            no_size,
        } => cache_cmd(cli, *cleanup, *max_age, *no_size),
        Cmd::Unlock { remove_all } => {
            let repo = open(cli)?;
            let n = lock::unlock(&repo, *remove_all)?;
            if !cli.quiet {
                println!("removed {n} locks");
            }
            Ok(0)
        }
    }
}

fn backup(cli: &Cli, a: &BackupArgs) -> Result<u8> {
    let source = if a.stdin_from_command {
        if a.paths.is_empty() {
            bail!("--stdin-from-command needs a command after --");
        }
        Source::Command {
            name: a.stdin_filename.clone(),
            argv: a
                .paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        }
    } else if a.stdin {
        if !a.paths.is_empty() {
            bail!("--stdin takes no paths");
        }
        Source::Reader {
            name: a.stdin_filename.clone(),
            reader: Box::new(std::io::stdin()),
        }
    } else {
        if a.paths.is_empty() {
            bail!("nothing to back up: give paths, --stdin or --stdin-from-command");
        }
        Source::Paths(a.paths.clone())
    };
    let repo = open(cli)?;
    let l = lock(cli, &repo, false)?;
    let index = Index::load(&repo)?;
    let tags = a
        .tag
        .iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let opts = BackupOptions {
        tags,
        host: a.host.clone(),
        excludes: a.exclude.clone(),
        exclude_files: a.exclude_file.clone(),
        one_file_system: a.one_file_system,
        time: a.time.clone(),
        parent: a.parent.clone(),
        force: a.force,
        ignore_inode: a.ignore_inode,
        ignore_ctime: a.ignore_ctime,
        with_atime: a.with_atime,
        dry_run: a.dry_run,
    };
    let res = backup::backup(&repo, &index, source, &opts, l.as_ref())?;
    for w in &res.warnings {
        eprintln!("error: {w}");
    }
    // Repository damage the backup worked around: the snapshot is complete, so no exit 3.
    for n in &res.notices {
        eprintln!("warning: {n}");
    }
    let s = &res.summary;
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "summary",
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unmodified": s.files_unmodified,
            "dirs_new": s.dirs_new,
            "dirs_changed": s.dirs_changed,
            "dirs_unmodified": s.dirs_unmodified,
            "data_blobs": s.data_blobs,
            "tree_blobs": s.tree_blobs,
            "data_added": s.data_added,
            "data_added_packed": s.data_added_packed,
            "total_files_processed": s.total_files_processed,
            "total_bytes_processed": s.total_bytes_processed,
            "total_duration": s.duration_secs,
            "snapshot_id": res.snapshot_id,
            "parent": res.snapshot.parent,
            "errors": res.warnings.len(),
            "dry_run": a.dry_run,
            "requests": store_requests(),
        }))?;
    } else if !cli.quiet {
        println!(
            "Files: {} new, {} changed, {} unmodified",
            s.files_new, s.files_changed, s.files_unmodified
        );
        println!(
            "Dirs:  {} new, {} changed, {} unmodified",
            s.dirs_new, s.dirs_changed, s.dirs_unmodified
        );
        println!(
            "Added to the repository: {} ({} stored)",
            bytes(s.data_added),
            bytes(s.data_added_packed)
        );
        println!(
            "processed {} files, {} in {:.2}s",
            s.total_files_processed,
            bytes(s.total_bytes_processed),
            s.duration_secs
        );
        match res.snapshot_id {
            Some(id) => println!("snapshot {} saved", id.short()),
            None => println!("dry run: no snapshot saved"),
        }
    }
    if !res.warnings.is_empty() {
        eprintln!(
            "warning: {} source files could not be read; the snapshot is incomplete",
            res.warnings.len()
        );
        return Ok(EXIT_PARTIAL);
    }
    Ok(0)
}

fn snapshot_json(id: &Id, s: &Snapshot) -> serde_json::Value {
    let mut v = serde_json::to_value(s).expect("snapshot serializes");
    let o = v.as_object_mut().expect("object");
    o.insert("id".into(), id.to_hex().into());
    o.insert("short_id".into(), id.short().into());
    v
}

fn short_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|ts| {
            ts.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = n as f64;
    let mut i = 0;
    while f >= 1024.0 && i < U.len() - 1 {
        f /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{f:.3} {}", U[i])
    }
}

struct Lister<'a, W: Write> {
    repo: &'a Repository,
    index: &'a Index,
    json: bool,
    long: bool,
    out: &'a mut W,
}

impl<W: Write> Lister<'_, W> {
    fn walk(&mut self, tree: &Id, dir: &str) -> Result<()> {
        let t = load_tree(self.repo, self.index, tree)?;
        for n in &t.nodes {
            let p = format!("{dir}/{}", n.name_lossy());
            self.print(&p, n)?;
            if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                self.walk(&sub, &p)?;
            }
        }
        Ok(())
    }

    fn print(&mut self, path: &str, n: &Node) -> Result<()> {
        if self.json {
            let v = serde_json::json!({
                "struct_type": "node",
                "name": n.name_lossy(),
                "type": n.kind.name(),
                "path": path,
                "uid": n.uid,
                "gid": n.gid,
                "user": n.user,
                "group": n.group,
                "size": n.size,
                "mode": n.mode,
                "mtime": ns_time(n.mtime_ns),
                "inode": n.inode,
                "links": n.links,
                "link_target": String::from_utf8_lossy(&n.link_target),
                "digest": n.digest,
            });
            serde_json::to_writer(&mut *self.out, &v)?;
            writeln!(self.out)?;
        } else if self.long {
            let k = match n.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                NodeKind::Fifo => 'p',
                NodeKind::Socket => 's',
                NodeKind::CharDevice => 'c',
                NodeKind::BlockDevice => 'b',
                NodeKind::File => '-',
            };
            let mut mode = String::new();
            for (i, c) in "rwxrwxrwx".chars().enumerate() {
                mode.push(if n.mode & (0o400 >> i) != 0 { c } else { '-' });
            }
            let target = if n.kind == NodeKind::Symlink {
                format!(" -> {}", String::from_utf8_lossy(&n.link_target))
            } else {
                String::new()
            };
            writeln!(
                self.out,
                "{k}{mode} {:>8} {:>8} {:>12} {} {path}{target}",
                if n.user.is_empty() {
                    n.uid.to_string()
                } else {
                    n.user.clone()
                },
                if n.group.is_empty() {
                    n.gid.to_string()
                } else {
                    n.group.clone()
                },
                n.size,
                short_time(&ns_time(n.mtime_ns)),
            )?;
        } else {
            writeln!(self.out, "{path}")?;
        }
        Ok(())
    }
}

fn ns_time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn cat(cli: &Cli, kind: &str, id: Option<&str>) -> Result<u8> {
    let repo = open(cli)?;
    let need = || id.ok_or_else(|| anyhow!("cat {kind} needs an id"));
    let mut out = std::io::stdout().lock();
    match kind {
        "config" => {
            serde_json::to_writer_pretty(&mut out, repo.config())?;
        }
        "key" => {
            let id = repo.find_id(FileType::Key, need()?)?;
            out.write_all(&repo.backend().read(FileType::Key, &id.to_hex())?)?;
            return Ok(0);
        }
        "snapshot" => {
            let (id, s) = repo.resolve_snapshot(need()?, &SnapshotFilter::default())?;
            serde_json::to_writer_pretty(&mut out, &snapshot_json(&id, &s))?;
        }
        "index" => {
            let id = repo.find_id(FileType::Index, need()?)?;
            let raw = repo.load_file(FileKind::Index, FileType::Index, &id)?;
            let f = IndexFile::decode(&raw).map_err(|e| anyhow!("index {id}: {e}"))?;
            let v = serde_json::json!({
                "supersedes": f.supersedes,
                "packs": f.packs.iter().map(|p| serde_json::json!({
                    "id": p.id,
                    "blobs": p.blobs.iter().map(|b| serde_json::json!({
                        "type": b.ty.name(), "id": b.id, "offset": b.offset,
                        "length": b.length, "uncompressed_length": b.raw_len,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            serde_json::to_writer_pretty(&mut out, &v)?;
        }
        "tree" => {
            let id: Id = need()?.parse()?;
            let index = Index::load(&repo)?;
            let t: Tree = load_tree(&repo, &index, &id)?;
            serde_json::to_writer_pretty(&mut out, &t)?;
        }
        "blob" => {
            let id: Id = need()?.parse()?;
            let index = Index::load(&repo)?;
            let ty = if index.contains(BlobType::Data, &id) {
                BlobType::Data
            } else {
                BlobType::Tree
            };
            out.write_all(&cista::pack::read_blob(&repo, &index, ty, &id)?)?;
            return Ok(0);
        }
        "pack" => {
            let id = repo.find_id(FileType::Pack, need()?)?;
            let bytes = repo.backend().read(FileType::Pack, &id.to_hex())?;
            let entries = cista::pack::parse_pack(&repo, &id, &bytes)?;
            let v: Vec<_> = entries
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "type": b.ty.name(), "id": b.id, "offset": b.offset,
                        "length": b.length, "uncompressed_length": b.raw_len,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &v)?;
        }
        other => {
            bail!("cannot cat {other:?}: use config, key, snapshot, index, tree, blob or pack")
        }
    }
    writeln!(out)?;
    Ok(0)
}

fn group_name(k: &GroupKey) -> String {
    let mut parts = Vec::new();
    if let Some(h) = &k.host {
        parts.push(format!("host [{h}]"));
    }
    if let Some(p) = &k.paths {
        parts.push(format!("paths [{}]", p.join(", ")));
    }
    if let Some(t) = &k.tags {
        parts.push(format!("tags [{}]", t.join(", ")));
    }
    if parts.is_empty() {
        "all snapshots".into()
    } else {
        parts.join(", ")
    }
}

fn print_snapshot_table(snaps: &[(Id, Snapshot)], reasons: Option<&HashMap<Id, Vec<String>>>) {
    let r = reasons.is_some();
    println!(
        "{:<10} {:<20} {:<14} {:<14}{} Paths",
        "ID",
        "Time",
        "Host",
        "Tags",
        if r {
            format!(" {:<28}", "Reasons")
        } else {
            String::new()
        }
    );
    println!("{}", "-".repeat(if r { 110 } else { 80 }));
    for (id, s) in snaps {
        let why = reasons
            .and_then(|m| m.get(id))
            .map(|v| format!(" {:<28}", v.join(", ")))
            .unwrap_or_default();
        println!(
            "{:<10} {:<20} {:<14} {:<14}{} {}",
            id.short(),
            short_time(&s.time),
            s.hostname,
            s.tags.join(","),
            why,
            s.paths.join(" ")
        );
    }
    println!("{}", "-".repeat(if r { 110 } else { 80 }));
    println!("{} snapshots", snaps.len());
}

/// The snapshots named by `ids` (ids, prefixes or `latest`), or all matching `filter`.
fn select_snapshots(
    repo: &Repository,
    ids: &[String],
    filter: &Filter,
) -> Result<Vec<(Id, Snapshot)>> {
    let f = filter.to_lib();
    if ids.is_empty() {
        return Ok(repo
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect());
    }
    let mut out = Vec::new();
    for i in ids {
        let r = repo.resolve_snapshot(i, &f)?;
        if !out.iter().any(|(id, _): &(Id, Snapshot)| *id == r.0) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The directory holding every repository's cache: `--cache-dir`, else the default.
fn cache_base(cli: &Cli) -> Option<PathBuf> {
    cli.cache_dir
        .clone()
        .or_else(cista::backend::default_cache_dir)
}

/// `cista cache`: restic's command of the same name. Needs no repository.
fn cache_cmd(cli: &Cli, cleanup: bool, max_age_days: u64, no_size: bool) -> Result<u8> {
    let base = cache_base(cli)
        .ok_or_else(|| anyhow!("no cache directory: set CISTA_CACHE_DIR or --cache-dir"))?;
    let max_age = std::time::Duration::from_secs(max_age_days.saturating_mul(86_400));
    if cleanup {
        let removed = cista::backend::remove_old_caches(&base, max_age)?;
        if cli.json {
            print_json(&serde_json::json!({"message_type": "cache_cleanup", "removed": removed}))?;
        } else if !cli.quiet {
            for c in &removed {
                println!(
                    "removed {} (last used {} days ago)",
                    c.path.display(),
                    c.age().as_secs() / 86_400
                );
            }
            println!(
                "removed {} old cache(s) from {}",
                removed.len(),
                base.display()
            );
        }
        return Ok(0);
    }
    let caches = cista::backend::list_caches(&base, !no_size)?;
    if cli.json {
        return print_json(&caches).map(|_| 0);
    }
    println!(
        "{:<12} {:>10} {:>4} {:>12}",
        "repo id", "last used", "old", "size"
    );
    for c in &caches {
        let days = c.age().as_secs() / 86_400;
        let size = c.size.map_or(String::new(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        });
        println!(
            "{:<12} {:>8} d {:>4} {:>12}",
            &c.id[..8],
            days,
            if c.age() > max_age { "yes" } else { "" },
            size
        );
    }
    println!("{} cache(s) in {}", caches.len(), base.display());
    Ok(0)
}

/// The snapshots `forget ID...` removes. A snapshot file that fails verification is removed
/// too when named by id: it cannot be restored, and it is what stops prune (planted junk, say).
fn forget_targets(
    cli: &Cli,
    repo: &Repository,
    ids: &[String],
    filter: &Filter,
) -> Result<Vec<Id>> {
    let f = filter.to_lib();
    let mut out = Vec::new();
    for i in ids {
        let id = match repo.resolve_snapshot(i, &f) {
            Ok((id, _)) => id,
            Err(e) if e.is_integrity() && i != "latest" => {
                let id = repo.find_id(FileType::Snapshot, i)?;
                if !cli.quiet {
                    eprintln!("removing damaged snapshot {id}: {e}");
                }
                id
            }
            Err(e) => return Err(e.into()),
        };
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn forget_cmd(cli: &Cli, a: &ForgetArgs) -> Result<u8> {
    let policy = KeepPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within,
        within_hourly: a.keep_within_hourly,
        within_daily: a.keep_within_daily,
        within_weekly: a.keep_within_weekly,
        within_monthly: a.keep_within_monthly,
        within_yearly: a.keep_within_yearly,
        tags: a.keep_tag.clone(),
    };
    let repo = open(cli)?;
    let l = exclusive_lock(cli, &repo)?;
    let mut remove: Vec<Id> = Vec::new();
    let mut report = Vec::new();
    if !a.ids.is_empty() {
        if !policy.is_empty() {
            bail!("give snapshot ids or a --keep policy, not both");
        }
        remove = forget_targets(cli, &repo, &a.ids, &a.filter)?;
    } else {
        let filtered = select_snapshots(&repo, &[], &a.filter)?;
        if policy.is_empty() {
            let has_filter = !a.filter.hosts.is_empty()
                || !a.filter.tags.is_empty()
                || !a.filter.paths.is_empty();
            if !a.unsafe_allow_remove_all {
                if !cli.quiet {
                    eprintln!("no policy was given: no snapshots will be removed");
                }
                return Ok(0);
            }
            if !has_filter {
                bail!(
                    "--unsafe-allow-remove-all needs a snapshot filter (--host, --tag or --path)"
                );
            }
        }
        let groups = forget::group(filtered, a.group_by.parse()?);
        let now = jiff::Timestamp::now();
        let tz = jiff::tz::TimeZone::system();
        for (key, snaps) in groups {
            let d = forget::apply(key, &snaps, &policy, now, &tz)?;
            if d.keep.is_empty() && !d.remove.is_empty() && !a.unsafe_allow_remove_all {
                bail!(
                    "refusing to remove all {} snapshots of {}: no --keep rule matched any of them \
                     (check the options for typos, or pass --unsafe-allow-remove-all); nothing was removed",
                    d.remove.len(),
                    group_name(&d.group)
                );
            }
            remove.extend(d.remove.iter().copied());
            report.push((d, snaps));
        }
    }
    if cli.json {
        let v: Vec<_> = report
            .iter()
            .map(|(d, _)| {
                serde_json::json!({
                    "group_key": d.group,
                    "keep": d.keep.iter().map(|k| k.id).collect::<Vec<_>>(),
                    "remove": d.remove,
                    "reasons": d.keep.iter().map(|k| serde_json::json!({"snapshot": k.id, "time": k.time, "matches": k.reasons})).collect::<Vec<_>>(),
                })
            })
            .collect();
        if a.ids.is_empty() {
            print_json(&v)?;
        } else {
            print_json(&serde_json::json!({"remove": remove}))?;
        }
    } else if !cli.quiet {
        for (d, snaps) in &report {
            println!("snapshots for {}:", group_name(&d.group));
            let reasons: HashMap<Id, Vec<String>> =
                d.keep.iter().map(|k| (k.id, k.reasons.clone())).collect();
            let kept: Vec<(Id, Snapshot)> = snaps
                .iter()
                .filter(|(id, _)| reasons.contains_key(id))
                .cloned()
                .collect();
            let gone: Vec<(Id, Snapshot)> = snaps
                .iter()
                .filter(|(id, _)| !reasons.contains_key(id))
                .cloned()
                .collect();
            println!("keep {} snapshots:", kept.len());
            print_snapshot_table(&kept, Some(&reasons));
            if !gone.is_empty() {
                println!("remove {} snapshots:", gone.len());
                print_snapshot_table(&gone, None);
            }
            println!();
        }
    }
    if a.prune_args.dry_run {
        if !cli.quiet && !cli.json {
            println!("dry run: would remove {} snapshots", remove.len());
        }
        return Ok(0);
    }
    repo.remove_snapshots(&remove, || l.check())?;
    if !cli.quiet && !cli.json {
        println!("removed {} snapshots", remove.len());
    }
    if a.prune && !remove.is_empty() {
        return run_prune(cli, &repo, &a.prune_args, &l);
    }
    Ok(0)
}

fn run_prune(cli: &Cli, repo: &Repository, a: &PruneArgs, l: &LockGuard) -> Result<u8> {
    let opts = PruneOptions {
        dry_run: a.dry_run,
        max_unused: a.max_unused.parse()?,
        max_repack_size: a
            .max_repack_size
            .as_deref()
            .map(prune::parse_size)
            .transpose()?,
        repack_uncompressed: a.repack_uncompressed,
    };
    let r = prune::prune(repo, &opts, Some(l))?;
    if cli.json {
        let mut v = serde_json::to_value(&r)?;
        v["message_type"] = "summary".into();
        print_json(&v)?;
    } else if !cli.quiet {
        println!(
            "{}snapshots: {}",
            if r.dry_run { "dry run; " } else { "" },
            r.snapshots
        );
        println!("used:   {} blobs, {}", r.blobs_used, bytes(r.bytes_used));
        println!(
            "unused: {} blobs, {}",
            r.blobs_unused,
            bytes(r.bytes_unused)
        );
        println!(
            "packs kept:     {:>6}, {}",
            r.packs_kept,
            bytes(r.bytes_kept)
        );
        println!(
            "packs repacked: {:>6}, {}",
            r.packs_repacked,
            bytes(r.bytes_repacked)
        );
        println!(
            "packs to delete:{:>6}, {} ({} not in any index)",
            r.packs_deleted + r.packs_unindexed_deleted,
            bytes(r.bytes_deleted),
            r.packs_unindexed_deleted
        );
        println!("unused space left: {}", bytes(r.unused_after));
        if !r.dry_run {
            println!(
                "wrote {} packs ({}) and {} index files; deleted {} packs ({}) and {} index files",
                r.packs_written,
                bytes(r.bytes_written),
                r.index_files_written,
                r.packs_removed,
                bytes(r.bytes_removed),
                r.index_files_deleted
            );
        }
        if !r.retained.is_empty() {
            let modes: std::collections::BTreeSet<&str> = r
                .retained
                .iter()
                .map(|o| o.retention.mode.as_str())
                .collect();
            let latest = r.retained.iter().filter_map(|o| o.retention.until).max();
            println!(
                "retained by the store ({}): {} objects, {}, held until {}; left in place \
                 (no longer needed), a prune after that date deletes them",
                modes.into_iter().collect::<Vec<_>>().join(", "),
                r.retained.len(),
                bytes(r.bytes_retained),
                latest.map_or("the hold is lifted".to_string(), |t| t.to_string()),
            );
            for o in r.retained.iter().filter(|_| cli.verbose > 0) {
                println!(
                    "  retained: {} ({}, {})",
                    o.path,
                    o.retention.mode,
                    o.retention
                        .until
                        .map_or("no end".to_string(), |t| t.to_string())
                );
            }
        }
    }
    if !r.delete_failed.is_empty() {
        for e in &r.delete_failed {
            eprintln!("warning: {e}");
        }
        eprintln!(
            "prune finished, but {} objects could not be deleted; the repository is consistent \
             without them and the next prune retries",
            r.delete_failed.len()
        );
        return Ok(1);
    }
    Ok(0)
}

fn config_cmd(cli: &Cli, key: Option<&str>, value: Option<&str>) -> Result<u8> {
    let mut repo = open(cli)?;
    if let Some(key) = key {
        let on = match value {
            Some("on" | "true" | "yes" | "1") => true,
            Some("off" | "false" | "no" | "0") => false,
            Some(v) => bail!("{key}: expected on or off, not {v:?}"),
            None => bail!("{key}: give a value (on or off)"),
        };
        match key {
            "append-only" => {
                if cli.append_only && !on {
                    bail!("append-only mode: a client run with --append-only cannot lift the repository's setting");
                }
                // Settings change under an exclusive lock, so no running command sees two.
                let _l = if repo.config().append_only == on {
                    None
                } else {
                    lock(cli, &repo, true)?
                };
                if repo.config().append_only != on {
                    repo.set_append_only(on)?;
                }
            }
            other => bail!("unknown setting {other:?} (settings: append-only)"),
        }
    }
    let c = repo.config();
    if cli.json {
        print_json(&serde_json::json!({
            "id": c.id,
            "version": c.version,
            "chunker": c.chunker,
            "pack_size": c.pack_size,
            "compression_level": c.compression_level,
            "large_blob_level": c.blob_level(cista::format::LARGE_BLOB),
            "append_only": c.append_only,
        }))?;
    } else if !cli.quiet {
        println!("repository {}", c.id);
        println!("format version     {}", c.version);
        println!(
            "chunk sizes        min {} / avg {} / max {}",
            bytes(c.chunker.min as u64),
            bytes(c.chunker.avg as u64),
            bytes(c.chunker.max as u64)
        );
        println!("pack size          {}", bytes(c.pack_size as u64));
        println!(
            "compression level  {} (blobs from {}: {})",
            c.compression_level,
            bytes(cista::format::LARGE_BLOB as u64),
            c.blob_level(cista::format::LARGE_BLOB)
        );
        println!(
            "append-only        {}",
            if c.append_only { "on" } else { "off" }
        );
    }
    Ok(0)
}

fn stats_cmd(cli: &Cli, ids: &[String], mode: &str, filter: &Filter) -> Result<u8> {
    let repo = open(cli)?;
    let _l = lock(cli, &repo, false)?;
    let snaps = select_snapshots(&repo, ids, filter)?;
    let index = Index::load(&repo)?;
    let v = match mode {
        "restore-size" => {
            let (mut size, mut files) = (0u64, 0u64);
            for (_, s) in &snaps {
                cista::tree::walk(&repo, &index, &s.tree, "", &mut |_, n| {
                    if n.kind != NodeKind::Dir {
                        files += 1;
                        size += n.size;
                    }
                    Ok(())
                })?;
            }
            serde_json::json!({"snapshots_count": snaps.len(), "total_size": size, "total_file_count": files})
        }
        "raw-data" => {
            let mut seen = std::collections::HashSet::new();
            let (mut raw, mut stored) = (0u64, 0u64);
            let mut add = |ty: BlobType, id: &Id| -> Result<()> {
                if seen.insert((ty, *id)) {
                    let loc = index
                        .get(ty, id)
                        .ok_or_else(|| anyhow!("{} blob {id} is not in the index", ty.name()))?;
                    raw += loc.raw_len as u64;
                    stored += loc.length as u64;
                }
                Ok(())
            };
            for (_, s) in &snaps {
                add(BlobType::Tree, &s.tree)?;
                cista::tree::walk(&repo, &index, &s.tree, "", &mut |_, n| {
                    for b in &n.content {
                        add(BlobType::Data, b).map_err(|e| Error::Invalid(e.to_string()))?;
                    }
                    if let Some(t) = n.subtree {
                        add(BlobType::Tree, &t).map_err(|e| Error::Invalid(e.to_string()))?;
                    }
                    Ok(())
                })?;
            }
            serde_json::json!({
                "snapshots_count": snaps.len(),
                "total_blob_count": seen.len(),
                "total_uncompressed_size": raw,
                "total_size": stored,
                "compression_ratio": if stored > 0 { raw as f64 / stored as f64 } else { 0.0 },
            })
        }
        other => bail!("unknown stats mode {other:?}: use restore-size or raw-data"),
    };
    if cli.json {
        print_json(&v)?;
    } else {
        println!("stats in {mode} mode:");
        for (k, val) in v.as_object().expect("object") {
            let shown = match (k.as_str(), val.as_u64()) {
                ("total_size" | "total_uncompressed_size", Some(b)) => bytes(b),
                _ => val.to_string(),
            };
            println!("  {k}: {shown}");
        }
    }
    Ok(0)
}
