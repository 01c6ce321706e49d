//! Commands as sources: a command's standard output stored as a file, either one at the
//! snapshot root (`Source::Command`) or several named ones at their paths below it, beside
//! walked paths (`Source::Mixed`). A command that exits non-zero, or prints nothing unless
//! empty output is allowed, fails the backup: no snapshot is saved.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use super::stream::{file_node, own_node};
use super::Archiver;
use crate::error::{Error, Result};
use crate::format::{Node, NodeKind, Tree};
use crate::util::DigestReader;

/// A command whose standard output is stored as the file `name` below the snapshot root
/// (see `Source::Mixed`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamedCommand {
    /// Where the output goes: `/`-separated components (`db/app.dump`), directories created
    /// for all but the last.
    pub name: String,
    /// The program and its arguments (run directly, not through a shell).
    pub argv: Vec<String>,
}

impl NamedCommand {
    /// Runs `argv` (program first) and stores its output as `name`.
    pub fn new(name: impl Into<String>, argv: Vec<String>) -> NamedCommand {
        NamedCommand {
            name: name.into(),
            argv,
        }
    }

    /// Runs `script` with `sh -c` and stores its output as `name`.
    pub fn shell(name: impl Into<String>, script: impl Into<String>) -> NamedCommand {
        NamedCommand::new(name, vec!["sh".into(), "-c".into(), script.into()])
    }

    /// The name's components, checked: relative, none empty, `.` or `..`, no NUL.
    pub(super) fn components(&self) -> Result<Vec<&str>> {
        let c: Vec<&str> = self.name.split('/').collect();
        if c.iter()
            .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0'))
        {
            return Err(Error::Invalid(format!(
                "command name {:?} must be a relative path of named components (such as \
                 db/app.dump)",
                self.name
            )));
        }
        Ok(c)
    }

    /// The name and the command line, for messages.
    fn label(&self) -> String {
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|w| {
                if w.is_empty() || w.contains(char::is_whitespace) {
                    format!("{w:?}")
                } else {
                    w.clone()
                }
            })
            .collect();
        format!("{} ({})", self.name, words.join(" "))
    }
}

impl Archiver<'_> {
    /// Runs `argv` and stores its standard output as a file node named `leaf`; `label` names
    /// the command in errors, and its digests are recorded as `stored_as` (the name below the
    /// snapshot root). A command that exits non-zero fails.
    pub(super) fn command_node(
        &self,
        leaf: &str,
        stored_as: &str,
        label: &str,
        argv: &[String],
    ) -> Result<Node> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| Error::Invalid(format!("command {label}: no program given")))?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Command(format!("cannot start {label}: {e}")))?;
        let mut out = DigestReader::new(child.stdout.take().expect("piped stdout"));
        let n = file_node(self, leaf, &mut out, &format!("<command:{leaf}>"));
        self.streams
            .lock()
            .unwrap()
            .push((stored_as.to_string(), out.finish()));
        let status = child
            .wait()
            .map_err(|e| Error::Command(format!("waiting for {label}: {e}")))?;
        let n = n?;
        if !status.success() {
            return Err(Error::Command(format!(
                "command {label} failed ({status}); no snapshot saved"
            )));
        }
        Ok(n)
    }

    /// Fails on an empty stream (`what` names it) unless `allow_empty`: an empty `pg_dump |
    /// cista backup --stdin` is a failed dump, not an empty database.
    pub(super) fn refuse_empty(&self, n: &Node, what: &str) -> Result<()> {
        if n.size == 0 && !self.opts.allow_empty {
            return Err(Error::Invalid(format!(
                "{what} is empty: a producer that failed (`pg_dump … | cista backup --stdin`) \
                 looks like this; no snapshot saved (--allow-empty stores an empty file)"
            )));
        }
        Ok(())
    }

    /// Runs `commands` one after another and returns the root-level nodes that hold their
    /// outputs, directories made for names with several components. `taken` says whether a
    /// root-level name is already used by the walked paths.
    pub(super) fn command_outputs(
        &self,
        commands: &[NamedCommand],
        taken: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Node>> {
        let names = commands
            .iter()
            .map(|c| c.components())
            .collect::<Result<Vec<_>>>()?;
        for (i, a) in names.iter().enumerate() {
            if taken(a[0]) {
                return Err(Error::Invalid(format!(
                    "command name {:?}: /{} is also backed up from a path; choose a name whose \
                     first component no path has",
                    commands[i].name, a[0]
                )));
            }
            for (j, b) in names.iter().enumerate().skip(i + 1) {
                let (short, long) = if a.len() <= b.len() { (i, j) } else { (j, i) };
                let (s, l) = (&names[short], &names[long]);
                if l.starts_with(s) {
                    return Err(Error::Invalid(if s.len() == l.len() {
                        format!("command name {:?} is given twice", commands[i].name)
                    } else {
                        format!(
                            "command name {:?} is both a file and a directory of {:?}",
                            commands[short].name, commands[long].name
                        )
                    }));
                }
            }
        }
        let mut outputs = Vec::with_capacity(commands.len());
        for (c, comps) in commands.iter().zip(&names) {
            let label = c.label();
            let n = self.command_node(comps[comps.len() - 1], &c.name, &label, &c.argv)?;
            self.refuse_empty(&n, &format!("the output of command {label}"))?;
            outputs.push((&comps[..comps.len() - 1], n));
        }
        self.command_dirs(outputs)
    }

    /// The nodes of one directory level: each output whose directories are all made, and a
    /// directory for each first component of the rest (made bottom-up, stored as trees).
    fn command_dirs(&self, outputs: Vec<(&[&str], Node)>) -> Result<Vec<Node>> {
        let mut nodes = Vec::new();
        let mut below: BTreeMap<&str, Vec<(&[&str], Node)>> = BTreeMap::new();
        for (dirs, n) in outputs {
            match dirs.split_first() {
                None => nodes.push(n),
                Some((first, rest)) => below.entry(first).or_default().push((rest, n)),
            }
        }
        for (name, group) in below {
            let tree = Tree {
                nodes: self.command_dirs(group)?,
            };
            let mut d = own_node(self, name, NodeKind::Dir, 0o755);
            self.finish_dir(&mut d, tree, None)?;
            nodes.push(d);
        }
        Ok(nodes)
    }
}
