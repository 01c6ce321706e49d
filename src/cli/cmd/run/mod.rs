//! `cista run NAME`: a profile's whole nightly job. Hooks before; a backup into the first
//! repository; a copy of the new snapshot into each other one; retention, check and drill;
//! then the after or failure hooks and the finally hooks; one receipt and the metrics for it
//! all.
//!
//! Each step is this same program run as a child (as resticprofile runs restic), in a process
//! group of its own: a timeout or a signal can then stop a step with everything it started,
//! while the step's own SIGTERM handling removes its repository locks, and `cista run` lives
//! on to run the failure hooks and write the receipt and metrics.

mod child;
mod steps;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use cista::commands::{self, Profile, Receipt, StepRecord};

use crate::cli::*;
use child::{Ended, StopFlag};
use steps::{Kind, Step};

pub(crate) struct Args<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) config: Option<&'a Path>,
    pub(crate) list: bool,
    pub(crate) dry_run: bool,
}

pub(crate) fn run(cli: &Cli, a: Args) -> Result<u8> {
    let file = commands::profile_file(a.config)?;
    if a.list {
        for n in commands::list_profiles(&file)? {
            println!("{n}");
        }
        return Ok(0);
    }
    let name = a
        .name
        .ok_or_else(|| anyhow!("give the profile to run (cista run NAME), or --list"))?;
    let p = commands::load_profile(&file, name)?;
    outcome::note(|r| r.profile = Some(p.name.clone()));
    outcome::note_repository(None, &p.repositories[0].location);
    let receipt = cli.receipt.clone().or_else(|| {
        let t = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
        p.receipt_dir
            .as_ref()
            .map(|d| d.join(format!("{}-{t}.json", p.name)))
    });
    if a.dry_run {
        print_plan(&p);
        return Ok(0);
    }
    outcome::default_paths(receipt.clone(), p.metrics_file.clone());
    let _running = one_at_a_time(cli, &p)?;
    let mut job = Job {
        cli,
        stop: child::stop_on_signals()?,
        deadline: p.timeout.map(|t| Instant::now() + t),
        work: tempfile::Builder::new().prefix("cista-run-").tempdir()?,
        receipt,
        started: Instant::now(),
        p,
        records: Vec::new(),
        snapshot: None,
        seen_id: Vec::new(),
    };
    job.execute()
}

/// Holds the profile's run lock: a second run of it while one is going fails at once (exit
/// 11) instead of overlapping (a slow night's backup still running when the next starts).
fn one_at_a_time(cli: &Cli, p: &Profile) -> Result<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::{Read, Seek, Write};
    let dir = p
        .cache_dir
        .clone()
        .or_else(|| cache_base(cli))
        .unwrap_or_else(std::env::temp_dir)
        .join("run");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.lock", p.name));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(mut l) => {
            l.set_len(0)?;
            l.rewind()?;
            write!(l, "{}", std::process::id())?;
            Ok(l)
        }
        Err((mut f, _)) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            Err(cista::Error::Locked(format!(
                "profile {} is already running (pid {}, lock file {})",
                p.name,
                pid.trim(),
                path.display()
            ))
            .into())
        }
    }
}

/// Why the run failed: the exit code to end with and the message.
struct Failed(u8, String);

struct Job<'a> {
    cli: &'a Cli,
    p: Profile,
    stop: StopFlag,
    deadline: Option<Instant>,
    /// The steps' receipts, read back after each step.
    work: tempfile::TempDir,
    receipt: Option<PathBuf>,
    started: Instant,
    records: Vec<StepRecord>,
    snapshot: Option<String>,
    /// Repository ids as the steps' receipts named them, by repository.
    seen_id: Vec<(usize, String)>,
}

impl Job<'_> {
    fn execute(&mut self) -> Result<u8> {
        let mut failed = None;
        for h in self.p.hooks.run_before.clone() {
            if let Err(f) = self.hook("run-before", &h, self.deadline, None) {
                failed = Some(f);
                break;
            }
        }
        let mut partial = false;
        if failed.is_none() {
            failed = self.steps(&mut partial).err();
        }
        if failed.is_none() {
            for h in self.p.hooks.run_after.clone() {
                if let Err(f) = self.hook("run-after", &h, self.deadline, Some((0, None))) {
                    failed = Some(f);
                    break;
                }
            }
        }
        let (code, error) = match &failed {
            Some(Failed(c, e)) => (*c, Some(e.clone())),
            None if partial => (EXIT_PARTIAL, None),
            None => (0, None),
        };
        // The failure and finally hooks run even after a timeout or a signal, each within
        // its own hook-timeout, and are not stopped by the signal that ended the run.
        let hook_timeout = self.p.hook_timeout;
        let late = || Some(Instant::now() + hook_timeout);
        if failed.is_some() {
            for h in self.p.hooks.run_on_failure.clone() {
                let _ = self.hook("run-on-failure", &h, late(), Some((code, error.clone())));
            }
        }
        let mut finally_failed = None;
        for h in self.p.hooks.run_finally.clone() {
            if let Err(f) = self.hook("run-finally", &h, late(), Some((code, error.clone()))) {
                finally_failed.get_or_insert(f);
            }
        }
        self.note_steps();
        match (failed, finally_failed) {
            (Some(Failed(c, e)), _) | (None, Some(Failed(c, e))) => Err(StepExit(c, e).into()),
            (None, None) => Ok(code),
        }
    }

    /// The steps after the before hooks; the first failing one ends the run.
    fn steps(&mut self, partial: &mut bool) -> Result<(), Failed> {
        let p = self.p.clone();
        let rec = self.step(steps::backup(&p), partial)?;
        self.snapshot = rec
            .as_ref()
            .and_then(|r| r.get("snapshot_id"))
            .and_then(|v| v.as_str())
            .map(String::from);
        let Some(id) = self.snapshot.clone() else {
            return Ok(());
        };
        for i in 1..p.repositories.len() {
            self.step(steps::copy(&p, i, &id), partial)?;
        }
        if let Some(r) = &p.retention {
            for i in 0..p.repositories.len() {
                self.step(steps::forget(&p, r, i), partial)?;
            }
        }
        if p.check.is_some() {
            for i in 0..p.repositories.len() {
                self.step(steps::check(&p, i), partial)?;
            }
        }
        if p.drill.as_ref().is_some_and(|d| steps::draw(d.fraction)) {
            self.step(steps::drill(&p, &id), partial)?;
        }
        Ok(())
    }

    /// Runs one step to its end; returns its receipt. Exit 3 marks the run partial.
    fn step(&mut self, s: Step, partial: &mut bool) -> Result<Option<serde_json::Value>, Failed> {
        let n = self.records.len();
        let receipt = self
            .work
            .path()
            .join(format!("{n:02}-{}.json", s.kind.command()));
        let r = &self.p.repositories[s.repo];
        let location = commands::redact_location(&r.location);
        let mut cmd = Command::new(std::env::current_exe().map_err(|e| Failed(1, e.to_string()))?);
        cmd.args(steps::global_args(&self.p, r, &receipt));
        cmd.args(self.verbosity());
        cmd.args(&s.args);
        cmd.env(outcome::PROFILE_VAR, &self.p.name);
        cmd.stdin(Stdio::null());
        if !self.cli.quiet {
            eprintln!(
                "cista run {}: {} on {location}",
                self.p.name,
                s.kind.command()
            );
        }
        let t0 = Instant::now();
        let ended =
            child::run(cmd, self.deadline, &self.stop).map_err(|e| Failed(1, format!("{e:#}")))?;
        let secs = t0.elapsed().as_secs_f64();
        let error = self.why(&ended, s.kind.command(), &location);
        let code = ended.code();
        let doc = std::fs::read(&receipt)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let doc = doc.or_else(|| self.receipt_for_stopped(&s, code, error.clone(), secs));
        if let Some(id) = doc.as_ref().and_then(|d| d["repository"]["id"].as_str()) {
            self.seen_id.push((s.repo, id.to_string()));
            if s.repo == 0 {
                outcome::note(|x| {
                    if let Some(r) = &mut x.repository {
                        r.id = Some(id.to_string());
                    }
                });
            }
        }
        if s.kind == Kind::Backup {
            if let Some(d) = &doc {
                note_backup(d);
            }
        }
        let mut rec = StepRecord::new(s.kind.command(), code, error.clone(), secs);
        rec.repository = Some(location);
        rec.receipt = doc.clone();
        self.records.push(rec);
        match (code, error) {
            (0, None) => Ok(doc),
            (3, None) => {
                *partial = true;
                Ok(doc)
            }
            (c, e) => Err(Failed(
                c,
                e.unwrap_or_else(|| format!("{} failed", s.kind.command())),
            )),
        }
    }

    /// The error of a step that did not succeed, from its receipt when it wrote one.
    fn why(&self, ended: &Ended, what: &str, location: &str) -> Option<String> {
        match ended {
            Ended::Exited(s) if s.success() || s.code() == Some(3) => None,
            Ended::Exited(s) => Some(format!("{what} on {location} failed ({s})")),
            Ended::TimedOut => Some(format!(
                "timed out after {} (profile timeout) during {what} on {location}; it was stopped",
                humantime::format_duration(self.p.timeout.unwrap_or_default())
            )),
            Ended::Interrupted(sig) => Some(format!(
                "stopped by signal {sig} during {what} on {location}"
            )),
        }
    }

    /// A step stopped by a timeout or signal wrote no receipt: one is made for it here, and
    /// its metrics written, so a killed backup still counts as a failed one.
    fn receipt_for_stopped(
        &self,
        s: &Step,
        code: u8,
        error: Option<String>,
        secs: f64,
    ) -> Option<serde_json::Value> {
        let args: Vec<String> = s
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut r = Receipt::start(s.kind.command(), commands::redact_arguments(&args));
        r.profile = Some(self.p.name.clone());
        let loc = &self.p.repositories[s.repo].location;
        let id = self
            .seen_id
            .iter()
            .find(|(i, _)| *i == s.repo)
            .map(|x| x.1.clone());
        r.repository = Some(commands::RepositoryRef::new(id.clone(), loc));
        r.finish(code, error.or_else(|| Some("stopped".into())), secs);
        if let Some(m) = &self.p.metrics_file {
            let label = id.unwrap_or_else(|| commands::redact_location(loc));
            let l =
                commands::MetricLabels::new(label, self.p.name.clone(), cista::util::hostname());
            if let Err(e) = commands::write_metrics(m, &r, &l) {
                eprintln!("cista run {}: metrics: {e}", self.p.name);
            }
        }
        serde_json::to_value(&r).ok()
    }

    /// Runs a hook with `sh -c`. The after, failure and finally hooks get the outcome in
    /// CISTA_STATUS, CISTA_EXIT_CODE, CISTA_ERROR and the run's receipt in CISTA_RECEIPT.
    fn hook(
        &mut self,
        which: &str,
        command: &str,
        deadline: Option<Instant>,
        outcome_so_far: Option<(u8, Option<String>)>,
    ) -> Result<(), Failed> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command).stdin(Stdio::null());
        cmd.env(outcome::PROFILE_VAR, &self.p.name);
        cmd.env("CISTA_HOOK", which);
        if let Some(id) = &self.snapshot {
            cmd.env("CISTA_SNAPSHOT_ID", id);
        }
        let late = outcome_so_far.is_some();
        if let Some((code, error)) = outcome_so_far {
            let status = cista::commands::RunStatus::of(code, &error);
            let status = serde_json::to_value(status).unwrap_or_default();
            cmd.env("CISTA_STATUS", status.as_str().unwrap_or_default());
            cmd.env("CISTA_EXIT_CODE", code.to_string());
            cmd.env("CISTA_ERROR", error.as_deref().unwrap_or_default());
            if let Some(p) = self.write_interim(code, error) {
                cmd.env("CISTA_RECEIPT", p);
            }
        }
        // The failure and finally hooks are not stopped by the signal that ended the run.
        let never: StopFlag = Default::default();
        let stop = if late && which != "run-after" {
            &never
        } else {
            &self.stop
        };
        let t0 = Instant::now();
        let ended = child::run(cmd, deadline, stop).map_err(|e| Failed(1, format!("{e:#}")))?;
        let error = match &ended {
            e if e.success() => None,
            Ended::Exited(s) => Some(format!("{which} hook failed ({s}): {command}")),
            Ended::TimedOut => Some(format!("{which} hook timed out: {command}")),
            Ended::Interrupted(sig) => Some(format!("{which} hook stopped by signal {sig}")),
        };
        let code = ended.code();
        self.records.push(StepRecord::new(
            &format!("hook:{which}"),
            code,
            error.clone(),
            t0.elapsed().as_secs_f64(),
        ));
        match error {
            None => Ok(()),
            Some(e) => {
                eprintln!("cista run {}: {e}", self.p.name);
                Err(Failed(if code == 0 { 1 } else { code }, e))
            }
        }
    }

    /// Writes the run's receipt as it stands, for the hooks that follow; its path.
    fn write_interim(&mut self, code: u8, error: Option<String>) -> Option<PathBuf> {
        self.note_steps();
        let path = self
            .receipt
            .clone()
            .unwrap_or_else(|| self.work.path().join("run.json"));
        let r = outcome::interim(code, error, self.started.elapsed().as_secs_f64())?;
        match r.write(&path) {
            Ok(()) => Some(path),
            Err(e) => {
                eprintln!("cista run {}: {e}", self.p.name);
                None
            }
        }
    }

    fn note_steps(&self) {
        let steps = self.records.clone();
        outcome::note(|r| r.steps = steps);
    }

    fn verbosity(&self) -> Vec<OsString> {
        let mut v = Vec::new();
        if self.cli.quiet {
            v.push("-q".into());
        }
        for _ in 0..self.cli.verbose {
            v.push("-v".into());
        }
        v
    }
}

/// The backup step's snapshot, counts and artifacts are the run's.
fn note_backup(d: &serde_json::Value) {
    let s = |k: &str| d[k].as_str().map(String::from);
    outcome::note(|r| {
        r.snapshot_id = s("snapshot_id");
        r.parent_id = s("parent_id");
        r.tree_id = s("tree_id");
        if let Some(c) = d["counts"].as_object() {
            for (k, v) in c {
                if let Some(n) = v.as_u64() {
                    r.counts.insert(k.clone(), n);
                }
            }
        }
        if let Some(a) = d["artifacts"].as_array() {
            for x in a {
                let (Some(name), Some(bytes), Some(b3), Some(sha)) = (
                    x["name"].as_str(),
                    x["bytes"].as_u64(),
                    x["blake3"].as_str(),
                    x["sha256"].as_str(),
                ) else {
                    continue;
                };
                r.artifacts
                    .push(commands::Artifact::new(name, bytes, b3.into(), sha.into()));
            }
        }
    });
}

/// `--dry-run`: the steps and hooks the run would go through.
fn print_plan(p: &Profile) {
    let receipt = Path::new("RECEIPT");
    let show = |args: Vec<OsString>| {
        let v: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        commands::redact_arguments(&v).join(" ")
    };
    let hooks = |which: &str, list: &[String]| {
        for h in list {
            println!("hook {which}: {h}");
        }
    };
    hooks("run-before", &p.hooks.run_before);
    let mut plan = vec![steps::backup(p)];
    plan.extend((1..p.repositories.len()).map(|i| steps::copy(p, i, "SNAPSHOT")));
    if let Some(r) = &p.retention {
        plan.extend((0..p.repositories.len()).map(|i| steps::forget(p, r, i)));
    }
    if p.check.is_some() {
        plan.extend((0..p.repositories.len()).map(|i| steps::check(p, i)));
    }
    if let Some(d) = &p.drill {
        println!("(drill on {:.0}% of runs)", d.fraction * 100.0);
        plan.push(steps::drill(p, "SNAPSHOT"));
    }
    for s in plan {
        let mut a = steps::global_args(p, &p.repositories[s.repo], receipt);
        a.extend(s.args);
        println!("cista {}", show(a));
    }
    hooks("run-after", &p.hooks.run_after);
    hooks("run-on-failure", &p.hooks.run_on_failure);
    hooks("run-finally", &p.hooks.run_finally);
    if let Some(t) = p.timeout {
        println!("timeout: {}", humantime::format_duration(t));
    }
}

/// A failed run's exit code (the failing step's) and message, for `main`.
#[derive(Debug)]
pub(crate) struct StepExit(pub(crate) u8, pub(crate) String);

impl std::fmt::Display for StepExit {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for StepExit {}
