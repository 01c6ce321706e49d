//! `cista check [--read-data | --read-data-subset S]`.

use anyhow::{bail, Result};

use cista::{commands, CheckOptions, Subset};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, read_data: bool, read_data_subset: Option<&str>) -> Result<u8> {
    let subset = match (read_data, read_data_subset) {
        (_, Some(s)) => Some(s.parse::<Subset>()?),
        (true, None) => Some(Subset::All),
        (false, None) => None,
    };
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let mut opts = CheckOptions::default();
    opts.read_data = subset;
    let rep = commands::check(&l, &opts)?;
    for n in &rep.notes {
        if cli.verbose > 0 || !cli.quiet {
            eprintln!("note: {n}");
        }
    }
    for e in &rep.errors {
        eprintln!("error: {e}");
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
