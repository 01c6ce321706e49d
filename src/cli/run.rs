//! Dispatch: each subcommand to its file in `cmd/`.

use anyhow::Result;

use super::cmd;
use super::*;

pub(crate) fn run(cli: &Cli) -> Result<u8> {
    match &cli.cmd {
        Cmd::Init { pack_size } => cmd::init::run(cli, *pack_size),
        Cmd::Backup(a) => cmd::backup::run(cli, a),
        Cmd::Run {
            name,
            config,
            list,
            dry_run,
        } => cmd::run::run(
            cli,
            cmd::run::Args {
                name: name.as_deref(),
                config: config.as_deref(),
                list: *list,
                dry_run: *dry_run,
            },
        ),
        Cmd::Snapshots {
            filter,
            group_by,
            latest,
        } => cmd::snapshots::run(cli, filter, group_by.as_deref(), *latest),
        Cmd::Forget(a) => cmd::forget::run(cli, a),
        Cmd::Config { key, value } => cmd::config::run(cli, key.as_deref(), value.as_deref()),
        Cmd::Prune(a) => cmd::prune::run(cli, a),
        Cmd::Tag {
            ids,
            add,
            remove,
            set,
            filter,
        } => cmd::tag::run(cli, ids, add, remove, set, filter),
        Cmd::Stats { ids, mode, filter } => cmd::stats::run(cli, ids, mode, filter),
        Cmd::Copy {
            ids,
            from_repo,
            from_password_file,
            from_password_command,
            from_insecure_no_password,
            from_option,
            filter,
        } => {
            let from = cmd::copy::From {
                repo: from_repo,
                options: from_option,
                password: PasswordSource {
                    file: from_password_file.clone(),
                    command: from_password_command.clone(),
                    insecure_no_password: *from_insecure_no_password,
                    var: "CISTA_FROM_PASSWORD",
                    flag_prefix: "from-",
                    has_command: true,
                    prompt: "enter password for the source repository: ",
                },
            };
            cmd::copy::run(cli, ids, from, filter)
        }
        Cmd::Restore {
            snapshot,
            target,
            include,
            exclude,
            sparse,
            verify,
            dry_run,
            overwrite,
            delete,
            filter,
        } => cmd::restore::run(
            cli,
            cmd::restore::Args {
                snapshot,
                target,
                include,
                exclude,
                sparse: *sparse,
                verify: *verify,
                dry_run: *dry_run,
                overwrite,
                delete: *delete,
                filter,
            },
        ),
        Cmd::Drill {
            snapshot,
            newer_than,
            target,
            keep,
            exec,
            no_record,
            filter,
        } => cmd::drill::run(
            cli,
            cmd::drill::Args {
                snapshot,
                newer_than: *newer_than,
                target: target.as_deref(),
                keep: *keep,
                exec: exec.as_deref(),
                no_record: *no_record,
                filter,
            },
        ),
        Cmd::Dump {
            snapshot,
            path,
            stream,
            archive: _,
            filter,
        } => cmd::dump::run(cli, snapshot, path, *stream, filter),
        Cmd::Ls {
            snapshot,
            path,
            long,
            filter,
        } => cmd::ls::run(cli, snapshot, path.as_deref(), *long, filter),
        Cmd::Find(a) => cmd::find::run(cli, a),
        Cmd::Diff {
            from,
            to,
            metadata,
            filter,
        } => cmd::diff::run(cli, from, to, *metadata, filter),
        Cmd::Manifest {
            snapshot,
            path,
            filter,
        } => cmd::manifest::run(cli, snapshot, path.as_deref(), filter),
        Cmd::Cat { kind, id } => cmd::cat::run(cli, kind, id.as_deref()),
        Cmd::Check {
            read_data,
            read_data_subset,
            no_record,
        } => cmd::check::run(cli, *read_data, read_data_subset.as_deref(), *no_record),
        Cmd::Cache {
            cleanup,
            max_age,
            no_size,
        } => cmd::cache::run(cli, *cleanup, *max_age, *no_size),
        Cmd::Unlock { remove_all } => cmd::unlock::run(cli, *remove_all),
        Cmd::Key { cmd } => cmd::key::run(cli, cmd),
        Cmd::Generate(a) => cmd::generate::run(cli, a),
    }
}
