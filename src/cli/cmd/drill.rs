//! `cista drill [SNAPSHOT] [--newer-than D] [--target DIR] [--keep] [--exec CMD] [--no-record]`.

use anyhow::{bail, Result};

use cista::commands::{self, CheckRun, DrillOptions, DrillReport};
use cista::{ObjectKind, ProblemKind};

use crate::cli::*;

pub(crate) struct Args<'a> {
    pub(crate) snapshot: &'a str,
    pub(crate) newer_than: Option<std::time::Duration>,
    pub(crate) target: Option<&'a std::path::Path>,
    pub(crate) keep: bool,
    pub(crate) exec: Option<&'a str>,
    pub(crate) no_record: bool,
    pub(crate) filter: &'a Filter,
}

pub(crate) fn run(cli: &Cli, a: Args) -> Result<u8> {
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let (id, snap) = repo.resolve_snapshot(a.snapshot, &a.filter.to_lib())?;
    outcome::note(|r| {
        r.snapshot_id = Some(id.to_hex());
        r.tree_id = Some(snap.tree.to_hex());
    });
    if let Some(max) = a.newer_than {
        let t: jiff::Timestamp = snap.time.parse()?;
        let age = jiff::Timestamp::now().duration_since(t);
        if age > jiff::SignedDuration::try_from(max)? {
            bail!(
                "snapshot {} of {} is older than {}: the newest backup is stale",
                id.short(),
                short_time(&snap.time),
                humantime::format_duration(max)
            );
        }
    }
    let ix = l.indexed()?;
    let mut o = DrillOptions::default();
    o.target = a.target.map(|p| p.to_path_buf());
    o.keep = a.keep;
    o.exec = a.exec.map(String::from);
    o.no_record = a.no_record;
    let progress = std::sync::Arc::new(cista::Progress::default());
    o.progress = Some(progress.clone());
    if !cli.quiet && !cli.json {
        eprintln!(
            "drilling snapshot {} of {}",
            id.short(),
            short_time(&snap.time)
        );
    }
    let shown = show_progress(cli, "drill", &progress);
    let r = commands::drill(&ix, id, &snap, &o);
    drop(shown);
    let r = r?;
    note(&r);
    note_verification(cli, "drill", &r.recorded, r.freshness.as_ref());
    for e in r.restore.errors.iter().chain(&r.problems) {
        report_problem(cli, "error", "drill", e);
    }
    render(cli, &r)?;
    if !r.ok() {
        bail!(
            "drill of snapshot {} failed: {} problems (first: {})",
            id.short(),
            r.problems.len() + r.restore.errors.len(),
            r.restore
                .errors
                .iter()
                .chain(&r.problems)
                .next()
                .expect("a problem")
        );
    }
    Ok(0)
}

fn render(cli: &Cli, r: &DrillReport) -> Result<()> {
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "summary",
            "ok": r.ok(),
            "snapshot_id": r.snapshot_id,
            "tree_id": r.tree_id,
            "trees_verified": r.trees_verified,
            "files": r.files,
            "bytes": r.bytes,
            "files_restored": r.restore.files,
            "bytes_restored": r.restore.bytes,
            "files_verified": r.restore.verified_files,
            "entries_compared": r.entries_compared,
            "exec_status": r.exec_status,
            "target": r.kept.then(|| r.target.display().to_string()),
            "verification_record": record_id(&r.recorded),
            "errors": r.restore.errors.iter().chain(&r.problems).collect::<Vec<_>>(),
        }))?;
    } else if !cli.quiet {
        println!(
            "{} trees recomputed up to the root {}; restored {} files ({}), {} read back; {} entries compared{}",
            r.trees_verified,
            r.tree_id.map(|t| t.short()).unwrap_or_default(),
            r.restore.files,
            bytes(r.restore.bytes),
            r.restore.verified_files,
            r.entries_compared,
            match r.exec_status {
                Some(c) => format!("; drill command exited {c}"),
                None => String::new(),
            }
        );
        if r.kept {
            println!("restored tree kept in {}", r.target.display());
        }
        if r.ok() {
            println!("drill passed");
        }
    }
    Ok(())
}

/// The drill's checks, one per kind of evidence, for the receipt and the metrics.
fn note(r: &DrillReport) {
    let failed = |f: &dyn Fn(&cista::Problem) -> bool| r.problems.iter().any(f);
    let tree = |p: &cista::Problem| {
        p.object
            .as_ref()
            .is_some_and(|o| o.kind == ObjectKind::Tree)
    };
    let mut checks = vec![
        CheckRun::new(
            "tree_ids",
            !failed(&tree),
            Some(format!(
                "{} trees recomputed bottom-up to the root",
                r.trees_verified
            )),
        ),
        CheckRun::new(
            "restore_verify",
            r.restore.errors.is_empty(),
            Some(format!(
                "{} files read back against their digests",
                r.restore.verified_files
            )),
        ),
        CheckRun::new(
            "metadata",
            !failed(&|p| p.path.is_some()),
            Some(format!("{} entries compared", r.entries_compared)),
        ),
        CheckRun::new(
            "counts",
            !failed(&|p| p.kind == ProblemKind::Mismatch && p.path.is_none() && p.object.is_none()),
            Some(format!("{} files, {} bytes", r.files, r.bytes)),
        ),
    ];
    if let Some(code) = r.exec_status.or(r
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::ExecFailed)
        .then_some(-1))
    {
        checks.push(CheckRun::new(
            "exec",
            code == 0,
            Some(format!("exit status {code}")),
        ));
    }
    outcome::note(|rec| rec.checks.extend(checks));
    outcome::note_counts([
        ("trees_verified", r.trees_verified),
        ("files", r.files),
        ("bytes", r.bytes),
        ("files_restored", r.restore.files),
        ("bytes_restored", r.restore.bytes),
        ("files_verified", r.restore.verified_files),
        ("entries_compared", r.entries_compared),
        ("errors", (r.problems.len() + r.restore.errors.len()) as u64),
    ]);
}
