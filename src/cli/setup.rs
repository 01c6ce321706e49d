//! Opening what a command works on: the store, the password, the repository, its locks.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

use cista::backend::Backend;
use cista::lock::{self, LockGuard};
use cista::Repository;

use super::*;

pub(crate) fn backend(cli: &Cli) -> Result<Arc<dyn Backend>> {
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
pub(crate) static REQUESTS: std::sync::Mutex<Vec<(String, Arc<cista::backend::RequestStats>)>> =
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
    password_with(cli, confirm, "CISTA_PASSWORD")
}

/// The password: from the password file or command if one is given (restic's precedence),
/// else from the environment variable `var`, else a prompt. Empty passwords are refused
/// unless `--insecure-no-password` asks for one.
pub(crate) fn password_with(cli: &Cli, confirm: bool, var: &str) -> Result<Vec<u8>> {
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

pub(crate) fn prompt_password(confirm: bool) -> Result<Vec<u8>> {
    let p = rpassword::prompt_password("enter password for repository: ")?;
    if confirm {
        let q = rpassword::prompt_password("enter password again: ")?;
        if p != q {
            bail!("passwords do not match");
        }
    }
    Ok(p.into_bytes())
}

pub(crate) fn open(cli: &Cli) -> Result<Repository> {
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

pub(crate) fn lock(cli: &Cli, repo: &Repository, exclusive: bool) -> Result<Option<LockGuard>> {
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

pub(crate) fn exclusive_lock(cli: &Cli, repo: &Repository) -> Result<LockGuard> {
    if cli.append_only {
        bail!("append-only mode: this command deletes or rewrites snapshots and data; run it from a host with delete rights");
    }
    repo.refuse_if_append_only()?;
    if cli.no_lock {
        bail!("this command deletes data and always locks the repository");
    }
    Ok(lock(cli, repo, true)?.expect("locked"))
}

/// The directory holding every repository's cache: `--cache-dir`, else the default.
pub(crate) fn cache_base(cli: &Cli) -> Option<PathBuf> {
    cli.cache_dir
        .clone()
        .or_else(cista::backend::default_cache_dir)
}
