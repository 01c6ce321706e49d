//! `cista dump SNAPSHOT PATH`: one file to standard output.

use anyhow::Result;

use cista::commands;

use crate::cli::*;

pub(crate) fn run(cli: &Cli, snapshot: &str, path: &str, filter: &Filter) -> Result<u8> {
    let repo = open(cli)?;
    let l = lock(cli, &repo)?;
    let (_, snap) = repo.resolve_snapshot(snapshot, &filter.to_lib())?;
    let ix = l.indexed()?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    commands::dump(&ix, &snap, path, &mut out)?;
    Ok(0)
}
