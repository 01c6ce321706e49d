//! `cista backup`.

use anyhow::{bail, Result};

use cista::commands::{self, Artifact};
use cista::{BackupOptions, NamedCommand, ProblemKind, Source};

use crate::cli::*;

/// `--command NAME=COMMAND`, split at the first `=`.
fn named_command(arg: &str) -> Result<NamedCommand> {
    match arg.split_once('=') {
        Some((name, script)) if !name.is_empty() && !script.trim().is_empty() => {
            Ok(NamedCommand::shell(name, script))
        }
        _ => bail!("--command {arg:?}: expected NAME=COMMAND, such as db/app.dump='pg_dump app'"),
    }
}

fn source(a: &BackupArgs) -> Result<Source> {
    Ok(if !a.command.is_empty() {
        if a.stdin || a.stdin_from_command {
            bail!("--command cannot be combined with --stdin or --stdin-from-command");
        }
        Source::Mixed {
            paths: a.paths.clone(),
            commands: a
                .command
                .iter()
                .map(|c| named_command(c))
                .collect::<Result<_>>()?,
        }
    } else if a.stdin_from_command {
        if a.paths.is_empty() {
            bail!("--stdin-from-command needs a command after --");
        }
        Source::Command {
            name: a.stdin_filename.clone(),
            argv: a
                .paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        }
    } else if a.stdin {
        if !a.paths.is_empty() {
            bail!("--stdin takes no paths");
        }
        Source::Reader {
            name: a.stdin_filename.clone(),
            reader: Box::new(std::io::stdin()),
        }
    } else {
        let listed = [&a.files_from, &a.files_from_verbatim, &a.files_from_raw];
        if a.paths.is_empty() && listed.iter().all(|l| l.is_empty()) {
            bail!(
                "nothing to back up: give paths, --files-from, --command, --stdin or \
                 --stdin-from-command"
            );
        }
        Source::Paths(a.paths.clone())
    })
}

fn options(a: &BackupArgs) -> BackupOptions {
    let mut o = BackupOptions::default();
    o.tags = commands::split_tags(&a.tag);
    o.host = a.host.clone();
    o.excludes = a.exclude.clone();
    o.exclude_files = a.exclude_file.clone();
    o.iexcludes = a.iexclude.clone();
    o.iexclude_files = a.iexclude_file.clone();
    o.exclude_caches = a.exclude_caches;
    o.exclude_if_present = a.exclude_if_present.clone();
    o.exclude_larger_than = a.exclude_larger_than;
    o.files_from = a.files_from.clone();
    o.files_from_verbatim = a.files_from_verbatim.clone();
    o.files_from_raw = a.files_from_raw.clone();
    o.skip_if_unchanged = a.skip_if_unchanged;
    o.one_file_system = a.one_file_system;
    o.time = a.time.clone();
    o.parent = a.parent.clone();
    o.force = a.force;
    o.ignore_inode = a.ignore_inode;
    o.ignore_ctime = a.ignore_ctime;
    o.with_atime = a.with_atime;
    o.dry_run = a.dry_run;
    o.allow_empty = a.allow_empty;
    o
}

pub(crate) fn run(cli: &Cli, a: &BackupArgs) -> Result<u8> {
    let source = source(a)?;
    let repo = open(cli)?;
    let ix = indexed(cli, &repo)?;
    let mut opts = options(a);
    let progress = std::sync::Arc::new(cista::Progress::default());
    opts.progress = Some(progress.clone());
    let shown = show_progress(cli, "backup", &progress);
    let res = commands::backup(&ix, source, &opts);
    drop(shown);
    let res = res?;
    note(&res);
    let (changed, unreadable) = partial(&res);
    for w in &res.warnings {
        let level = match w.kind {
            ProblemKind::SourceChanged => "warning",
            _ => "error",
        };
        report_problem(cli, level, "archival", w);
    }
    // What the backup worked around (repository damage, listed paths that do not exist, tag
    // files without their header): the snapshot is complete, so no exit 3.
    for n in &res.notices {
        report_problem(cli, "warning", "archival", n);
    }
    render(cli, a, &res)?;
    if unreadable > 0 {
        eprintln!(
            "warning: {unreadable} source files could not be read; the snapshot is incomplete"
        );
    }
    if changed > 0 {
        eprintln!(
            "warning: {changed} files changed while they were read (twice); they are stored \
             as read the second time"
        );
    }
    Ok(if res.warnings.is_empty() {
        0
    } else {
        EXIT_PARTIAL
    })
}

/// How many warnings are of files that changed while read, and how many of the others
/// (files, directories or attributes that could not be read).
fn partial(res: &commands::BackupReport) -> (u64, u64) {
    let changed = res
        .warnings
        .iter()
        .filter(|w| w.kind == ProblemKind::SourceChanged)
        .count() as u64;
    (changed, res.warnings.len() as u64 - changed)
}

/// What the receipt says of a backup.
fn note(res: &commands::BackupReport) {
    let s = &res.summary;
    outcome::note(|r| {
        r.snapshot_id = res.snapshot_id.map(|i| i.to_hex());
        r.parent_id = res.snapshot.parent.map(|i| i.to_hex());
        r.tree_id = Some(res.snapshot.tree.to_hex());
        for (name, d) in &res.streams {
            r.artifacts.push(Artifact::new(
                name,
                d.bytes,
                d.blake3.clone(),
                d.sha256.clone(),
            ));
        }
    });
    outcome::note_counts([
        ("files_new", s.files_new),
        ("files_changed", s.files_changed),
        ("files_unmodified", s.files_unmodified),
        ("dirs_new", s.dirs_new),
        ("dirs_changed", s.dirs_changed),
        ("dirs_unmodified", s.dirs_unmodified),
        ("data_blobs", s.data_blobs),
        ("tree_blobs", s.tree_blobs),
        ("data_added", s.data_added),
        ("data_added_packed", s.data_added_packed),
        ("total_files_processed", s.total_files_processed),
        ("total_bytes_processed", s.total_bytes_processed),
        ("unreadable_files", partial(res).1),
        ("files_changed_while_read", partial(res).0),
        ("snapshot_skipped", u64::from(res.skipped)),
    ]);
}

fn render(cli: &Cli, a: &BackupArgs, res: &commands::BackupReport) -> Result<()> {
    let s = &res.summary;
    if cli.json {
        print_json(&serde_json::json!({
            "message_type": "summary",
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unmodified": s.files_unmodified,
            "dirs_new": s.dirs_new,
            "dirs_changed": s.dirs_changed,
            "dirs_unmodified": s.dirs_unmodified,
            "data_blobs": s.data_blobs,
            "tree_blobs": s.tree_blobs,
            "data_added": s.data_added,
            "data_added_packed": s.data_added_packed,
            "total_files_processed": s.total_files_processed,
            "total_bytes_processed": s.total_bytes_processed,
            "total_duration": s.duration_secs,
            "backup_start": s.backup_start,
            "backup_end": s.backup_end,
            "snapshot_id": res.snapshot_id,
            "parent": res.snapshot.parent,
            "errors": res.warnings.len(),
            "files_changed_while_read": partial(res).0,
            "skipped": res.skipped,
            "dry_run": a.dry_run,
            "requests": store_requests(),
        }))?;
    } else if !cli.quiet {
        println!(
            "Files: {} new, {} changed, {} unmodified",
            s.files_new, s.files_changed, s.files_unmodified
        );
        println!(
            "Dirs:  {} new, {} changed, {} unmodified",
            s.dirs_new, s.dirs_changed, s.dirs_unmodified
        );
        println!(
            "Added to the repository: {} ({} stored)",
            bytes(s.data_added),
            bytes(s.data_added_packed)
        );
        println!(
            "processed {} files, {} in {:.2}s",
            s.total_files_processed,
            bytes(s.total_bytes_processed),
            s.duration_secs
        );
        match res.snapshot_id {
            Some(id) => println!("snapshot {} saved", id.short()),
            None if a.dry_run => println!("dry run: no snapshot saved"),
            None => println!("skipped creating snapshot: nothing changed since the parent"),
        }
    }
    Ok(())
}
