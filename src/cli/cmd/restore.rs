//! `cista restore SNAPSHOT[:PATH] --target DIR`.

use anyhow::{bail, Result};

use cista::commands::{self, CheckRun};
use cista::{ItemAction, OnItem, RestoreOptions, RestoreSummary};

use crate::cli::*;

pub(crate) struct Args<'a> {
    pub(crate) snapshot: &'a str,
    pub(crate) target: &'a std::path::Path,
    pub(crate) include: &'a [String],
    pub(crate) exclude: &'a [String],
    pub(crate) sparse: bool,
    pub(crate) verify: bool,
    pub(crate) dry_run: bool,
    pub(crate) overwrite: &'a str,
    pub(crate) delete: bool,
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
    opts.dry_run = a.dry_run;
    opts.overwrite = a.overwrite.parse()?;
    opts.delete = a.delete;
    // restic lists every path at -vv (its verbosity 3), as text or `verbose_status` lines.
    let listing = cli.verbose >= 2 && !cli.quiet;
    if listing {
        opts.on_item = Some(item_printer(cli.json));
    }
    if !cli.quiet && !cli.json {
        eprintln!(
            "restoring snapshot {} of {} to {}{}",
            sp.id.short(),
            short_time(&sp.snapshot.time),
            a.target.display(),
            if a.dry_run { " (dry run)" } else { "" }
        );
    }
    outcome::note(|r| {
        r.snapshot_id = Some(sp.id.to_hex());
        r.tree_id = Some(sp.snapshot.tree.to_hex());
    });
    let t0 = std::time::Instant::now();
    let progress = std::sync::Arc::new(cista::Progress::default());
    opts.progress = Some(progress.clone());
    // Listed paths are the progress; a bar redrawn beside them would garble the terminal.
    let shown = (!listing || cli.json)
        .then(|| show_progress(cli, "restore", &progress))
        .flatten();
    let sum = commands::restore(&ix, &sp.snapshot, &sp.path, &opts);
    drop(shown);
    let sum = sum?;
    note_outcome(&sum, a.verify, a.dry_run);
    for e in &sum.errors {
        report_problem(cli, "error", "restore", e);
    }
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "summary",
            "requests": store_requests(),
            "snapshot_id": sp.id,
            "dry_run": a.dry_run,
            "files_restored": sum.files,
            "dirs_restored": sum.dirs,
            "special_restored": sum.others,
            "bytes_restored": sum.bytes,
            "files_verified": sum.verified_files,
            "total_files": sum.files + sum.others,
            "files_skipped": sum.files_skipped,
            "files_deleted": sum.files_deleted,
            "total_bytes": sum.bytes,
            "bytes_skipped": sum.bytes_skipped,
            "seconds_elapsed": t0.elapsed().as_secs_f64(),
            "errors": sum.errors,
        }))?;
    } else if !cli.quiet {
        println!("{}", summary_line(&sum, a.verify, a.dry_run));
    }
    if !sum.errors.is_empty() {
        bail!("{} paths could not be restored", sum.errors.len());
    }
    Ok(0)
}

/// Prints each path as restic's `-vv` does: `restored  /path with size 1.000 KiB` (no size
/// for directories, links, special files and deletions), or a `verbose_status` JSON line.
fn item_printer(json: bool) -> OnItem {
    OnItem::new(move |action: ItemAction, path: &str, size: Option<u64>| {
        let line = if json {
            serde_json::json!({
                "message_type": "verbose_status",
                "action": action.as_str(),
                "item": path,
                "size": size.unwrap_or(0),
            })
            .to_string()
        } else {
            let sized = size.map_or(String::new(), |s| format!(" with size {}", bytes(s)));
            format!("{:<9} {path}{sized}", action.as_str())
        };
        // A closed stdout is noticed when the summary is printed.
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    })
}

fn note_outcome(sum: &RestoreSummary, verify: bool, dry_run: bool) {
    if dry_run {
        // Nothing was restored; the receipt's counts say only what was done.
        outcome::note_counts([("errors", sum.errors.len() as u64)]);
        return;
    }
    outcome::note_counts([
        ("files_restored", sum.files),
        ("dirs_restored", sum.dirs),
        ("special_restored", sum.others),
        ("bytes_restored", sum.bytes),
        ("files_skipped", sum.files_skipped),
        ("bytes_skipped", sum.bytes_skipped),
        ("files_deleted", sum.files_deleted),
        ("files_verified", sum.verified_files),
        ("errors", sum.errors.len() as u64),
    ]);
    if verify {
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
}

/// `restored 3 files, 2 directories, 0 other entries, 1.000 KiB`, then what was updated,
/// skipped, deleted and verified, when there was any; a dry run says what it would do.
fn summary_line(sum: &RestoreSummary, verify: bool, dry_run: bool) -> String {
    let verb = |done: &str, would: &str| {
        if dry_run {
            format!("would {would}")
        } else {
            done.to_string()
        }
    };
    let mut line = format!(
        "{} {} files, {} directories, {} other entries, {}",
        verb("restored", "restore"),
        sum.files,
        sum.dirs,
        sum.others,
        bytes(sum.bytes)
    );
    if sum.files_updated > 0 {
        line += &format!(" ({} files updated)", sum.files_updated);
    }
    if sum.files_skipped > 0 {
        line += &format!(
            "; {} {} unchanged ({})",
            verb("left", "leave"),
            sum.files_skipped,
            bytes(sum.bytes_skipped)
        );
    }
    if sum.files_deleted > 0 {
        line += &format!("; {} {}", verb("deleted", "delete"), sum.files_deleted);
    }
    if verify {
        line += &format!("; verified {} files", sum.verified_files);
    }
    line
}
