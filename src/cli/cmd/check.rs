//! `cista check [--read-data | --read-data-subset S] [--no-record]`.

use anyhow::{bail, Result};

use cista::commands::{self, CheckRun};
use cista::{CheckOptions, Subset};

use crate::cli::*;

pub(crate) fn run(
    cli: &Cli,
    read_data: bool,
    read_data_subset: Option<&str>,
    no_record: bool,
) -> Result<u8> {
    let subset = match (read_data, read_data_subset) {
        (_, Some(s)) => Some(s.parse::<Subset>()?),
        (true, None) => Some(Subset::All),
        (false, None) => None,
    };
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let mut opts = CheckOptions::default();
    opts.read_data = subset;
    opts.no_record = no_record;
    let progress = std::sync::Arc::new(cista::Progress::default());
    opts.progress = Some(progress.clone());
    let shown = show_progress(cli, "check", &progress);
    let rep = commands::check(&l, &opts);
    drop(shown);
    let rep = rep?;
    note_verification(cli, "check", &rep.recorded, rep.freshness.as_ref());
    outcome::note_counts([
        ("snapshots", rep.snapshots as u64),
        ("trees", rep.trees as u64),
        ("packs", rep.packs as u64),
        ("packs_read", rep.packs_read as u64),
        ("blobs_read", rep.blobs_read as u64),
        ("bytes_read", rep.bytes_read),
        ("errors", rep.errors.len() as u64),
        ("notes", rep.notes.len() as u64),
    ]);
    let name = match (read_data, read_data_subset) {
        (_, Some(_)) => "read_data_subset",
        (true, None) => "read_data",
        (false, None) => "structure",
    };
    let detail = rep.counts_line();
    let passed = rep.ok();
    outcome::note(|r| r.checks.push(CheckRun::new(name, passed, Some(detail))));
    for n in &rep.notes {
        if cli.verbose > 0 || !cli.quiet {
            report_problem(cli, "note", "check", n);
        }
    }
    for e in &rep.errors {
        report_problem(cli, "error", "check", e);
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
            "verification_record": record_id(&rep.recorded),
        }))?;
    } else if !cli.quiet {
        let read = if subset.is_some() {
            format!(
                "; read {} packs, {} blobs, {}",
                rep.packs_read,
                rep.blobs_read,
                bytes(rep.bytes_read)
            )
        } else {
            String::new()
        };
        println!(
            "checked {} snapshots, {} trees, {} packs{read}",
            rep.snapshots, rep.trees, rep.packs
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
