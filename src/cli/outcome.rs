//! What this run did, for `--receipt` and `--metrics-file`: subcommands note their results
//! here as they go, and `main` writes the receipt and the metrics at the end, for success and
//! failure alike.

use std::path::PathBuf;
use std::sync::Mutex;

use cista::commands::{MetricLabels, Receipt, RepositoryRef};

static RECEIPT: Mutex<Option<Receipt>> = Mutex::new(None);

/// Where the receipt and the metrics go when no `--receipt`/`--metrics-file` says (a
/// profile's `receipt-dir` and `metrics-file`).
static PATHS: Mutex<(Option<PathBuf>, Option<PathBuf>)> = Mutex::new((None, None));

/// The environment variable naming the profile a step of `cista run` belongs to.
pub(crate) const PROFILE_VAR: &str = "CISTA_PROFILE";

/// Sets the receipt and metrics paths used when the command line gives none.
pub(crate) fn default_paths(receipt: Option<PathBuf>, metrics: Option<PathBuf>) {
    *PATHS.lock().unwrap() = (receipt, metrics);
}

/// A copy of the record so far, finished as if the run ended now with `code` and `error`.
pub(crate) fn interim(code: u8, error: Option<String>, secs: f64) -> Option<Receipt> {
    let mut r = RECEIPT.lock().unwrap().clone()?;
    r.finish(code, error, secs);
    Some(r)
}

/// Starts the record of this run.
pub(crate) fn start(command: &str) {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut r = Receipt::start(command, cista::commands::redact_arguments(&argv));
    // `cista run` sets it for its steps, so their receipts and metrics name the profile.
    r.profile = std::env::var(PROFILE_VAR).ok().filter(|p| !p.is_empty());
    *RECEIPT.lock().unwrap() = Some(r);
}

/// Adds to the record (nothing when no run was started: unit tests).
pub(crate) fn note(f: impl FnOnce(&mut Receipt)) {
    if let Some(r) = RECEIPT.lock().unwrap().as_mut() {
        f(r);
    }
}

/// The repository the run works on, as far as it is known.
pub(crate) fn note_repository(id: Option<String>, location: &str) {
    note(|r| r.repository = Some(RepositoryRef::new(id, location)));
}

/// Counts by name.
pub(crate) fn note_counts<'a>(counts: impl IntoIterator<Item = (&'a str, u64)>) {
    note(|r| {
        for (k, v) in counts {
            r.counts.insert(k.to_string(), v);
        }
    });
}

/// Finishes the record and writes what was asked for. Returns an error message per output
/// that could not be written.
pub(crate) fn finish(
    code: u8,
    error: Option<String>,
    secs: f64,
    receipt: Option<&std::path::Path>,
    metrics: Option<&std::path::Path>,
) -> Vec<String> {
    let Some(mut r) = RECEIPT.lock().unwrap().take() else {
        return Vec::new();
    };
    let defaults = PATHS.lock().unwrap().clone();
    let receipt = receipt.or(defaults.0.as_deref());
    let metrics = metrics.or(defaults.1.as_deref());
    r.finish(code, error, secs);
    let mut failed = Vec::new();
    if let Some(p) = receipt {
        if let Err(e) = r.write(p) {
            failed.push(format!("the receipt could not be written: {e}"));
        }
    }
    if let Some(p) = metrics {
        let repo = r
            .repository
            .as_ref()
            .map(|x| x.id.clone().unwrap_or_else(|| x.location.clone()))
            .unwrap_or_default();
        let profile = r.profile.clone().unwrap_or_default();
        let l = MetricLabels::new(repo, profile, cista::util::hostname());
        if let Err(e) = cista::commands::write_metrics(p, &r, &l) {
            failed.push(format!("the metrics file could not be written: {e}"));
        }
    }
    failed
}
