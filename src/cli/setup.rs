//! Opening what a command works on: the store, the password, the repository, its locks.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

use cista::commands::{
    self, Exclusive, Indexed, LockOptions, Locked, RepositoryOptions, Store, StoreOptions,
};
use cista::{Repository, RequestStats};

use super::*;

/// The store `cli` names, its requests counted for `-v` and `--json`.
pub(crate) fn store(cli: &Cli) -> Result<Store> {
    let loc = cli
        .repo
        .as_deref()
        .ok_or_else(|| anyhow!("no repository given: use -r/--repo or set CISTA_REPOSITORY"))?;
    outcome::note_repository(None, loc);
    let mut o = StoreOptions::new(loc);
    o.options = key_values(&cli.option)?;
    o.limit_upload = cli.limit_upload;
    o.limit_download = cli.limit_download;
    o.append_only = cli.append_only;
    open_counted(&o)
}

pub(crate) fn open_counted(o: &StoreOptions) -> Result<Store> {
    let store = commands::open_store(o)?;
    REQUESTS
        .lock()
        .unwrap()
        .push((store.location.clone(), store.requests.clone()));
    Ok(store)
}

/// `-o key=value` options as pairs.
pub(crate) fn key_values(opts: &[String]) -> Result<Vec<(String, String)>> {
    opts.iter()
        .map(|o| {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| anyhow!("option {o:?} is not key=value"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// What each store this process opened was asked, for `-v`.
pub(crate) static REQUESTS: std::sync::Mutex<Vec<(String, Arc<RequestStats>)>> =
    std::sync::Mutex::new(Vec::new());

/// What the repository's store (the first one opened) was asked so far, for `--json`
/// summaries: the numbers `-v` prints.
pub(crate) fn store_requests() -> serde_json::Value {
    REQUESTS
        .lock()
        .unwrap()
        .first()
        .map_or(serde_json::Value::Null, |(_, s)| {
            serde_json::to_value(s.counts()).unwrap_or_default()
        })
}

pub(crate) fn print_requests() {
    for (loc, stats) in REQUESTS.lock().unwrap().iter() {
        eprintln!("requests to {loc}: {}", stats.counts());
    }
}

pub(crate) fn password(cli: &Cli, confirm: bool) -> Result<Vec<u8>> {
    let src = PasswordSource {
        file: cli.password_file.clone(),
        command: cli.password_command.clone(),
        insecure_no_password: cli.insecure_no_password,
        var: "CISTA_PASSWORD",
        flag_prefix: "",
        has_command: true,
        prompt: "enter password for repository: ",
    };
    src.read(confirm)
}

/// Where a repository's password comes from: the copy source has flags of its own
/// (`--from-password-file`, `CISTA_FROM_PASSWORD`, ...).
pub(crate) struct PasswordSource {
    pub(crate) file: Option<PathBuf>,
    pub(crate) command: Option<String>,
    pub(crate) insecure_no_password: bool,
    /// The environment variable holding the password itself.
    pub(crate) var: &'static str,
    /// `from-` for the copy source's flags, `new-` for a new key's, for messages.
    pub(crate) flag_prefix: &'static str,
    /// A `--…password-command` flag exists for this password (not for a new key's).
    pub(crate) has_command: bool,
    /// What the prompt asks, when no password is given and standard input is a terminal.
    pub(crate) prompt: &'static str,
}

impl PasswordSource {
    /// The password: from the password file or command if one is given (restic's
    /// precedence), else from the environment variable, else a prompt. Empty passwords are
    /// refused unless `--insecure-no-password` asks for one.
    pub(crate) fn read(&self, confirm: bool) -> Result<Vec<u8>> {
        let (var, from) = (self.var, self.flag_prefix);
        let given = match (&self.file, &self.command) {
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
        if self.insecure_no_password {
            if let Some((_, source)) = given.filter(|(p, _)| !p.is_empty()) {
                bail!("--{from}insecure-no-password uses an empty password, but {source} gives one: drop one of them");
            }
            return Ok(Vec::new());
        }
        let (pw, source) = match given {
            Some(g) => g,
            None if std::io::stdin().is_terminal() => {
                (prompt_password(self.prompt, confirm)?, "the prompt".into())
            }
            None if self.has_command => {
                bail!("no password given: set {var}, a password file or a password command")
            }
            None => bail!("no password given: set {var} or give --{from}password-file"),
        };
        if pw.is_empty() {
            bail!(
                "the password from {source} is empty: empty passwords are refused; \
                 pass --{from}insecure-no-password to use a repository without a password"
            );
        }
        Ok(pw)
    }
}

/// A password file's first line.
pub(crate) fn read_password_file(f: &std::path::Path) -> Result<Vec<u8>> {
    let b = std::fs::read(f).with_context(|| format!("reading password file {}", f.display()))?;
    Ok(first_line(b))
}

/// The first line the command prints. Neither the command's text nor its output goes into a
/// message: either may hold the secret (`echo hunter2`).
pub(crate) fn run_password_command(c: &str) -> Result<Vec<u8>> {
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

pub(crate) fn first_line(mut s: Vec<u8>) -> Vec<u8> {
    if let Some(i) = s.iter().position(|&b| b == b'\n') {
        s.truncate(i);
    }
    if s.last() == Some(&b'\r') {
        s.pop();
    }
    s
}

pub(crate) fn prompt_password(prompt: &str, confirm: bool) -> Result<Vec<u8>> {
    let p = rpassword::prompt_password(prompt)?;
    if confirm {
        let q = rpassword::prompt_password("enter password again: ")?;
        if p != q {
            bail!("passwords do not match");
        }
    }
    Ok(p.into_bytes())
}

pub(crate) fn open(cli: &Cli) -> Result<Repository> {
    let store = store(cli)?;
    let pw = password(cli, false)?;
    open_in(cli, &store, &pw)
}

pub(crate) fn open_in(cli: &Cli, store: &Store, pw: &[u8]) -> Result<Repository> {
    let mut o = RepositoryOptions::default();
    o.key_hint = cli.key_hint.clone();
    o.cache_dir = if cli.no_cache { None } else { cache_base(cli) };
    let repo = commands::open_repository(store, pw, &o)?;
    outcome::note_repository(Some(repo.config().id.to_hex()), &store.location);
    Ok(repo)
}

pub(crate) fn lock_options(cli: &Cli) -> LockOptions {
    let mut o = LockOptions::wait(cli.retry_lock.unwrap_or_default());
    o.no_lock = cli.no_lock;
    o
}

/// A shared lock (none with `--no-lock`).
pub(crate) fn lock<'r>(cli: &Cli, repo: &'r Repository) -> Result<Locked<'r>> {
    release_locks_on_signal()?;
    Ok(repo.lock(&lock_options(cli))?)
}

/// A shared lock and the index loaded under it.
pub(crate) fn indexed<'r>(cli: &Cli, repo: &'r Repository) -> Result<Indexed<'r>> {
    Ok(lock(cli, repo)?.indexed()?)
}

/// From the first lock on, SIGINT and SIGTERM remove this process's locks and exit 130 or
/// 143, instead of leaving a lock that blocks other hosts for thirty minutes. What an
/// interrupted command already wrote is safe to leave: packs no index names yet are reused by
/// the next backup or removed by prune, and check reports them as notes, not damage. A second
/// signal while the locks are being removed (a hung store) exits at once.
///
/// Installed at the first lock, not at start: a signal during a password prompt must keep its
/// default action, which lets the terminal restore echo.
pub(crate) fn release_locks_on_signal() -> Result<()> {
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
                let n = cista::release_all_locks();
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

pub(crate) fn exclusive_lock<'r>(cli: &Cli, repo: &'r Repository) -> Result<Exclusive<'r>> {
    if cli.append_only {
        bail!("append-only mode: this command deletes or rewrites snapshots, data or keys; run it from a host with delete rights");
    }
    release_locks_on_signal()?;
    Ok(repo.lock_exclusive(&lock_options(cli))?)
}

/// The directory holding every repository's cache: `--cache-dir`, else the default.
pub(crate) fn cache_base(cli: &Cli) -> Option<PathBuf> {
    cli.cache_dir.clone().or_else(cista::default_cache_dir)
}
