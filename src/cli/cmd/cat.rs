//! `cista cat KIND [ID]`.

use std::io::Write;

use anyhow::Result;

use cista::commands::{self, CatOutput};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, kind: &str, id: Option<&str>) -> Result<u8> {
    let kind: commands::CatKind = kind.parse()?;
    let repo = open(cli)?;
    let mut out = std::io::stdout().lock();
    match commands::cat(&repo, kind, id)? {
        CatOutput::Raw(b) => out.write_all(&b)?,
        CatOutput::Json(v) => {
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)?;
        }
    }
    Ok(0)
}
