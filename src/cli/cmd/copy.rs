//! `cista copy`: snapshots of another repository into this one.

use anyhow::Result;

use cista::commands::{self, Copied, StoreOptions};

use crate::cli::*;

/// The source repository's flags.
pub(crate) struct From<'a> {
    pub(crate) repo: &'a str,
    pub(crate) options: &'a [String],
    pub(crate) password: PasswordSource,
}

pub(crate) fn run(cli: &Cli, ids: &[String], from: From, filter: &Selection) -> Result<u8> {
    let mut so = StoreOptions::new(from.repo);
    so.options = key_values(from.options)?;
    so.limit_download = cli.limit_download;
    // Nothing in the source is deleted, whatever this host may do.
    so.append_only = true;
    let src_store = open_counted(&so)?;
    let src_pw = from.password.read(false)?;
    // As before the command layer: no key hint (-r's is not the source's) and no cache.
    let src = commands::open_repository(&src_store, &src_pw, &Default::default())?;
    // Both passwords before the first lock: a prompt interrupted by a signal would leave the
    // terminal without echo.
    let dst = open(cli)?;
    let src = indexed(cli, &src)?;
    let dst = lock(cli, &dst)?;
    let snaps = commands::select_snapshots(src.repo(), ids, &filter.to_lib())?;
    let (quiet, json, verbose) = (cli.quiet, cli.json, cli.verbose);
    let progress = std::sync::Arc::new(cista::Progress::default());
    let mut opts = commands::CopyOptions::default();
    opts.progress = Some(progress.clone());
    let shown = show_progress(cli, "copy", &progress);
    let say = |line: String| match &shown {
        Some(s) => s.suspend(|| println!("{line}")),
        None => println!("{line}"),
    };
    let report = commands::copy(&dst, &src, &snaps, &opts, &mut |id, s, c| match c {
        Copied::As(new) if !quiet && !json => say(format!(
            "snapshot {} of {} copied as {}",
            id.short(),
            short_time(&s.time),
            new.short()
        )),
        Copied::Present if verbose > 0 => say(format!(
            "snapshot {} is already in the destination",
            id.short()
        )),
        _ => {}
    });
    drop(shown);
    let report = report?;
    let (copied, skipped) = (report.copied(), report.skipped());
    outcome::note_counts([("copied", copied as u64), ("skipped", skipped as u64)]);
    if cli.json {
        print_json(
            &serde_json::json!({"message_type": "summary", "copied": copied, "skipped": skipped}),
        )?;
    } else if !cli.quiet {
        println!("copied {copied} snapshots, {skipped} already present");
    }
    Ok(0)
}
