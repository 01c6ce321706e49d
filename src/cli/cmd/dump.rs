//! `cista dump SNAPSHOT PATH`: one file to standard output.

use std::io::Write;

use anyhow::Result;

use cista::commands;

use crate::cli::*;

pub(crate) fn run(cli: &Cli, snapshot: &str, path: &str, filter: &Filter) -> Result<u8> {
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let (id, snap) = repo.resolve_snapshot(snapshot, &filter.to_lib())?;
    outcome::note(|r| {
        r.snapshot_id = Some(id.to_hex());
        r.tree_id = Some(snap.tree.to_hex());
    });
    let ix = l.indexed()?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let d = commands::dump(&ix, &snap, path, &mut out)?;
    out.flush()?;
    outcome::note_counts([("bytes_written", d.bytes)]);
    let detail = format!("{path}: every blob authenticated and the file's BLAKE3 digest matched");
    outcome::note(|r| {
        r.checks
            .push(commands::CheckRun::new("dump_digest", true, Some(detail)))
    });
    Ok(0)
}
