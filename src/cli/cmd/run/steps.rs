//! The steps of a profile's run, each a `cista` command line: backup into the first
//! repository, a copy of the new snapshot into each other one, retention on each, then check
//! and drill.

use std::ffi::OsString;
use std::path::Path;

use cista::commands::{Profile, ProfileRepository, Retention};

/// What a step does, for messages, receipts and the order of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Backup,
    Copy,
    Forget,
    Check,
    Drill,
}

impl Kind {
    pub(crate) fn command(self) -> &'static str {
        match self {
            Kind::Backup => "backup",
            Kind::Copy => "copy",
            Kind::Forget => "forget",
            Kind::Check => "check",
            Kind::Drill => "drill",
        }
    }
}

/// One `cista` invocation of the run.
pub(crate) struct Step {
    pub(crate) kind: Kind,
    /// The repository it works on (an index into the profile's).
    pub(crate) repo: usize,
    /// The arguments after the global ones (`backup /etc --tag nightly ...`).
    pub(crate) args: Vec<OsString>,
}

/// The global options that open repository `r`, with `receipt` for the step's receipt.
pub(crate) fn global_args(p: &Profile, r: &ProfileRepository, receipt: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["-r".into(), r.location.clone().into()];
    if let Some(f) = &r.password_file {
        a.extend(["--password-file".into(), f.into()]);
    }
    if let Some(c) = &r.password_command {
        a.extend(["--password-command".into(), c.into()]);
    }
    for (k, v) in &r.options {
        a.extend(["-o".into(), format!("{k}={v}").into()]);
    }
    if let Some(d) = &p.cache_dir {
        a.extend(["--cache-dir".into(), d.into()]);
    }
    if let Some(m) = &p.metrics_file {
        a.extend(["--metrics-file".into(), m.into()]);
    }
    a.extend(["--receipt".into(), receipt.into()]);
    a
}

/// The backup of the profile's paths and command outputs, into the first repository.
pub(crate) fn backup(p: &Profile) -> Step {
    let mut a: Vec<OsString> = vec!["backup".into()];
    a.extend(p.paths.iter().map(OsString::from));
    if let Some(h) = &p.host {
        a.extend(["--host".into(), h.into()]);
    }
    for t in &p.tags {
        a.extend(["--tag".into(), t.into()]);
    }
    for e in &p.exclude {
        a.extend(["--exclude".into(), e.into()]);
    }
    for f in &p.exclude_file {
        a.extend(["--exclude-file".into(), f.into()]);
    }
    for e in &p.iexclude {
        a.extend(["--iexclude".into(), e.into()]);
    }
    if p.exclude_caches {
        a.push("--exclude-caches".into());
    }
    for e in &p.exclude_if_present {
        a.extend(["--exclude-if-present".into(), e.into()]);
    }
    if let Some(s) = &p.exclude_larger_than {
        a.extend(["--exclude-larger-than".into(), s.into()]);
    }
    for f in &p.files_from {
        a.extend(["--files-from".into(), f.into()]);
    }
    if p.one_file_system {
        a.push("--one-file-system".into());
    }
    for c in &p.commands {
        a.extend([
            "--command".into(),
            format!("{}={}", c.name, c.command).into(),
        ]);
    }
    if p.allow_empty {
        a.push("--allow-empty".into());
    }
    Step {
        kind: Kind::Backup,
        repo: 0,
        args: a,
    }
}

/// A copy of snapshot `id` from the first repository into repository `to`.
pub(crate) fn copy(p: &Profile, to: usize, id: &str) -> Step {
    let from = &p.repositories[0];
    let mut a: Vec<OsString> = vec![
        "copy".into(),
        "--from-repo".into(),
        from.location.clone().into(),
    ];
    if let Some(f) = &from.password_file {
        a.extend(["--from-password-file".into(), f.into()]);
    }
    if let Some(c) = &from.password_command {
        a.extend(["--from-password-command".into(), c.into()]);
    }
    for (k, v) in &from.options {
        a.extend(["--from-option".into(), format!("{k}={v}").into()]);
    }
    a.push(id.into());
    Step {
        kind: Kind::Copy,
        repo: to,
        args: a,
    }
}

/// forget by the retention policy (and prune) on repository `repo`, limited to this profile's
/// snapshots: its host and tags, so profiles sharing a repository don't expire each other's.
pub(crate) fn forget(p: &Profile, r: &Retention, repo: usize) -> Step {
    let mut a: Vec<OsString> = vec!["forget".into()];
    // The settings are named as forget's flags.
    for (name, n) in r.counts() {
        if let Some(n) = n {
            a.extend([format!("--{name}").into(), n.to_string().into()]);
        }
    }
    for (name, s) in r.spans() {
        if let Some(s) = s {
            a.extend([format!("--{name}").into(), s.into()]);
        }
    }
    for t in &r.keep_tag {
        a.extend(["--keep-tag".into(), t.into()]);
    }
    if let Some(g) = &r.group_by {
        a.extend(["--group-by".into(), g.into()]);
    }
    let host = p.host.clone().unwrap_or_else(cista::util::hostname);
    a.extend(["--host".into(), host.into()]);
    if !p.tags.is_empty() {
        a.extend(["--tag".into(), p.tags.join(",").into()]);
    }
    if r.prune {
        a.push("--prune".into());
        if let Some(m) = &r.max_unused {
            a.extend(["--max-unused".into(), m.into()]);
        }
    }
    Step {
        kind: Kind::Forget,
        repo,
        args: a,
    }
}

pub(crate) fn check(p: &Profile, repo: usize) -> Step {
    let mut a: Vec<OsString> = vec!["check".into()];
    if let Some(c) = &p.check {
        if c.read_data {
            a.push("--read-data".into());
        } else if let Some(s) = &c.read_data_subset {
            a.extend(["--read-data-subset".into(), s.into()]);
        }
    }
    Step {
        kind: Kind::Check,
        repo,
        args: a,
    }
}

/// A drill of snapshot `id` on the first repository.
pub(crate) fn drill(p: &Profile, id: &str) -> Step {
    let mut a: Vec<OsString> = vec!["drill".into(), id.into()];
    if let Some(e) = p.drill.as_ref().and_then(|d| d.exec.as_ref()) {
        a.extend(["--exec".into(), e.into()]);
    }
    Step {
        kind: Kind::Drill,
        repo: 0,
        args: a,
    }
}

/// Whether this run drills: on `fraction` of the runs, drawn at random.
pub(crate) fn draw(fraction: f64) -> bool {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        return fraction >= 1.0;
    }
    // 53 random bits as a uniform number in [0, 1).
    let x = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    x < fraction
}
