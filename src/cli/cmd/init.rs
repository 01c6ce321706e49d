//! `cista init`.

use anyhow::Result;

use cista::{commands, InitOptions};

use crate::cli::*;

pub(crate) fn run(cli: &Cli, pack_size: u32) -> Result<u8> {
    let store = store(cli)?;
    let pw = password(cli, true)?;
    let mut opts = InitOptions::default();
    // --append-only (or CISTA_APPEND_ONLY) at init makes it the repository's setting.
    opts.append_only = cli.append_only;
    opts.pack_size = pack_size;
    let r = commands::init(store.backend.clone(), &pw, &opts)?;
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "initialized",
            "id": r.id,
            "repository": r.location,
        }))?;
    } else if !cli.quiet {
        println!(
            "created cista repository {} at {}",
            r.id.short(),
            r.location
        );
        println!("Keep the password safe: without it the data cannot be recovered.");
    }
    Ok(0)
}
