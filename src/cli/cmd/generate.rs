//! `cista generate`: shell completion scripts (clap_complete) and man pages (clap_mangen),
//! as restic's `generate`. Needs no repository, and calls no library command: what it
//! renders is the command line itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::*;

pub(crate) fn run(cli: &Cli, a: &GenerateArgs) -> Result<u8> {
    let mut written = Vec::new();
    let shells = [
        (&a.bash_completion, Shell::Bash),
        (&a.zsh_completion, Shell::Zsh),
        (&a.fish_completion, Shell::Fish),
    ];
    for (path, shell) in shells {
        if let Some(p) = path {
            completion(shell, p)?;
            written.push(p.clone());
        }
    }
    if let Some(dir) = &a.man {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating man page directory {}", dir.display()))?;
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        man_pages(cmd, dir, &mut written)
            .with_context(|| format!("writing man pages to {}", dir.display()))?;
    }
    // A script written to standard output must not have messages after it.
    let to_stdout = written.iter().any(|p| p == Path::new("-"));
    if cli.json && !to_stdout {
        print_json(&serde_json::json!({"message_type": "generated", "files": written}))?;
    } else if !cli.quiet && !to_stdout {
        for p in &written {
            println!("wrote {}", p.display());
        }
    }
    Ok(0)
}

/// `shell`'s completion script for `cista`, to `path` (`-`: standard output).
fn completion(shell: Shell, path: &Path) -> Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cista", &mut buf);
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(&buf)?;
        return Ok(out.flush()?);
    }
    std::fs::write(path, buf).with_context(|| {
        format!(
            "writing the {shell} completion script to {}",
            path.display()
        )
    })
}

/// A man page for `cmd` and one for each of its subcommands, depth first (`cista.1`,
/// `cista-backup.1`, `cista-key-add.1`, ...), as `clap_mangen::generate_to` writes them.
fn man_pages(cmd: clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub.clone(), dir, out)?;
    }
    let source = format!("cista {}", env!("CARGO_PKG_VERSION"));
    out.push(clap_mangen::Man::new(cmd).source(source).generate_to(dir)?);
    Ok(())
}
