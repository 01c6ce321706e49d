//! `cista ls SNAPSHOT [PATH]`.

use std::io::Write;

use anyhow::Result;

use cista::commands;

use crate::cli::*;

pub(crate) fn run(
    cli: &Cli,
    snapshot: &str,
    path: Option<&str>,
    long: bool,
    filter: &Selection,
) -> Result<u8> {
    let repo = open(cli)?;
    let (id, snap) = repo.resolve_snapshot(snapshot, &filter.to_lib())?;
    // A listing only reads trees, and cista has never locked for it: beside a prune that
    // removes a tree it fails loudly (the tree is missing), never lists wrongly.
    let ix = repo.lock(&commands::LockOptions::none())?.indexed()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if cli.json {
        serde_json::to_writer(&mut out, &snapshot_json(&id, &snap))?;
        writeln!(out)?;
    }
    let mut lister = Lister {
        json: cli.json,
        long,
        out: &mut out,
    };
    commands::ls(&ix, &snap, path.unwrap_or_default(), &mut |p, n| {
        lister.print(p, n)
    })?;
    out.flush()?;
    Ok(0)
}
