//! `cista prune`.

use anyhow::Result;

use cista::{commands, PruneOptions};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, a: &PruneArgs) -> Result<u8> {
    let repo = open(cli)?;
    let ex = exclusive_lock(cli, &repo)?;
    run_locked(cli, &ex, a)
}

/// Prune under a lock already taken (by `forget --prune`).
pub(crate) fn run_locked(cli: &Cli, ex: &commands::Exclusive, a: &PruneArgs) -> Result<u8> {
    let mut opts = PruneOptions::default();
    opts.dry_run = a.dry_run;
    opts.max_unused = a.max_unused.parse()?;
    opts.max_repack_size = a
        .max_repack_size
        .as_deref()
        .map(cista::util::parse_size)
        .transpose()?;
    opts.repack_uncompressed = a.repack_uncompressed;
    let progress = std::sync::Arc::new(cista::Progress::default());
    opts.progress = Some(progress.clone());
    let shown = show_progress(cli, "prune", &progress);
    let r = commands::prune(ex, &opts);
    drop(shown);
    let r = r?;
    outcome::note_counts([
        ("packs_removed", r.packs_removed as u64),
        ("bytes_removed", r.bytes_removed),
        ("packs_repacked", r.packs_repacked as u64),
        ("packs_written", r.packs_written as u64),
        ("bytes_written", r.bytes_written),
        ("index_files_written", r.index_files_written as u64),
        ("index_files_deleted", r.index_files_deleted as u64),
        ("verifications_removed", r.verifications_removed as u64),
        ("delete_failed", r.delete_failed.len() as u64),
    ]);
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
        if r.verifications_deleted > 0 {
            println!(
                "verification records of forgotten or since re-verified snapshots: {} to delete{}",
                r.verifications_deleted,
                if r.dry_run {
                    String::new()
                } else {
                    format!(", {} deleted", r.verifications_removed)
                }
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
            report_problem(cli, "warning", "prune", e);
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
