//! `cista config [append-only on|off]`.

use anyhow::{bail, Result};

use cista::commands::{self, ConfigOptions};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, key: Option<&str>, value: Option<&str>) -> Result<u8> {
    let mut repo = open(cli)?;
    let mut opts = ConfigOptions::default();
    opts.lock = lock_options(cli);
    if let Some(key) = key {
        let on = match value {
            Some("on" | "true" | "yes" | "1") => true,
            Some("off" | "false" | "no" | "0") => false,
            Some(v) => bail!("{key}: expected on or off, not {v:?}"),
            None => bail!("{key}: give a value (on or off)"),
        };
        match key {
            "append-only" => {
                if cli.append_only && !on {
                    bail!("append-only mode: a client run with --append-only cannot lift the repository's setting");
                }
                opts.append_only = Some(on);
            }
            other => bail!("unknown setting {other:?} (settings: append-only)"),
        }
        release_locks_on_signal()?;
    }
    let c = commands::config(&mut repo, &opts)?;
    if cli.json {
        print_json(&c)?;
    } else if !cli.quiet {
        println!("repository {}", c.id);
        println!("format version     {}", c.version);
        println!(
            "chunk sizes        min {} / avg {} / max {}",
            bytes(c.chunker.min as u64),
            bytes(c.chunker.avg as u64),
            bytes(c.chunker.max as u64)
        );
        println!("pack size          {}", bytes(c.pack_size as u64));
        println!(
            "compression level  {} (blobs from {}: {})",
            c.compression_level,
            bytes(c.large_blob_size as u64),
            c.large_blob_level
        );
        println!(
            "append-only        {}",
            if c.append_only { "on" } else { "off" }
        );
    }
    Ok(0)
}
