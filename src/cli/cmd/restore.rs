//! `cista restore SNAPSHOT[:PATH] --target DIR`.

use anyhow::{bail, Result};

use cista::commands::{self, CheckRun};
use cista::RestoreOptions;

use crate::cli::*;

pub(crate) struct Args<'a> {
    pub(crate) snapshot: &'a str,
    pub(crate) target: &'a std::path::Path,
    pub(crate) include: &'a [String],
    pub(crate) exclude: &'a [String],
    pub(crate) sparse: bool,
    pub(crate) verify: bool,
    pub(crate) filter: &'a Selection,
}

pub(crate) fn run(cli: &Cli, a: Args) -> Result<u8> {
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let sp = commands::resolve_snapshot_path(&repo, a.snapshot, &a.filter.to_lib())?;
    let ix = l.indexed()?;
    let mut opts = RestoreOptions::default();
    opts.target = a.target.to_path_buf();
    opts.includes = a.include.to_vec();
    opts.excludes = a.exclude.to_vec();
    opts.sparse = a.sparse;
    opts.verify = a.verify;
    if !cli.quiet && !cli.json {
        eprintln!(
            "restoring snapshot {} of {} to {}",
            sp.id.short(),
            short_time(&sp.snapshot.time),
            a.target.display()
        );
    }
    outcome::note(|r| {
        r.snapshot_id = Some(sp.id.to_hex());
        r.tree_id = Some(sp.snapshot.tree.to_hex());
    });
    let t0 = std::time::Instant::now();
    let progress = std::sync::Arc::new(cista::Progress::default());
    opts.progress = Some(progress.clone());
    let shown = show_progress(cli, "restore", &progress);
    let sum = commands::restore(&ix, &sp.snapshot, &sp.path, &opts);
    drop(shown);
    let sum = sum?;
    outcome::note_counts([
        ("files_restored", sum.files),
        ("dirs_restored", sum.dirs),
        ("special_restored", sum.others),
        ("bytes_restored", sum.bytes),
        ("files_verified", sum.verified_files),
        ("errors", sum.errors.len() as u64),
    ]);
    if a.verify {
        let detail = format!(
            "{} files read back against their digests",
            sum.verified_files
        );
        let passed = sum.errors.is_empty();
        outcome::note(|r| {
            r.checks
                .push(CheckRun::new("restore_verify", passed, Some(detail)))
        });
    }
    for e in &sum.errors {
        report_problem(cli, "error", "restore", e);
    }
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "summary",
            "requests": store_requests(),
            "snapshot_id": sp.id,
            "files_restored": sum.files,
            "dirs_restored": sum.dirs,
            "special_restored": sum.others,
            "bytes_restored": sum.bytes,
            "files_verified": sum.verified_files,
            "total_files": sum.files + sum.others,
            "files_skipped": 0,
            "total_bytes": sum.bytes,
            "seconds_elapsed": t0.elapsed().as_secs_f64(),
            "errors": sum.errors,
        }))?;
    } else if !cli.quiet {
        println!(
            "restored {} files, {} directories, {} other entries, {}{}",
            sum.files,
            sum.dirs,
            sum.others,
            bytes(sum.bytes),
            if a.verify {
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
