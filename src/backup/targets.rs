//! Targets listed in files, read as restic reads them: `--files-from` (one per line, trimmed,
//! blank and `#` lines skipped, each expanded as a glob the way Go's `filepath.Glob` does),
//! `--files-from-verbatim` (lines as they are, blank ones skipped) and `--files-from-raw`
//! (names each ended by a NUL byte, as `find -print0` writes them). A listed path that does not
//! exist, or a pattern that matches nothing, is skipped with a notice.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use globset::GlobBuilder;

use super::{Archiver, BackupOptions};
use crate::error::{Error, Result};
use crate::problem::{Problem, ProblemKind};

/// The paths `opts` lists, and a notice for each one skipped.
fn listed_targets(opts: &BackupOptions) -> Result<(Vec<PathBuf>, Vec<Problem>)> {
    let mut paths = Vec::new();
    let mut skipped = Vec::new();
    let skip = |what: String, shown: &[u8]| {
        let shown = String::from_utf8_lossy(shown).into_owned();
        Problem::new(ProblemKind::SourceSkipped, format!("{what}, skipping")).with_path(shown)
    };
    for f in &opts.files_from {
        for line in lines(&read(f, "read --files-from file")?) {
            let line = line.trim_ascii();
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let found = expand(line)?;
            if found.is_empty() {
                let shown = String::from_utf8_lossy(line);
                skipped.push(skip(
                    format!("pattern {shown:?} does not match any files"),
                    line,
                ));
            }
            paths.extend(found);
        }
    }
    let mut named: Vec<PathBuf> = Vec::new();
    for f in &opts.files_from_verbatim {
        let text = read(f, "read --files-from-verbatim file")?;
        named.extend(lines(&text).filter(|l| !l.is_empty()).map(path_of));
    }
    for f in &opts.files_from_raw {
        named.extend(raw_names(&read(f, "read --files-from-raw file")?, f)?);
    }
    for p in named {
        if matches!(fs::symlink_metadata(&p), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            let shown = p.as_os_str().as_bytes();
            skipped.push(skip(format!("{} does not exist", p.display()), shown));
        } else {
            paths.push(p);
        }
    }
    Ok((paths, skipped))
}

impl Archiver<'_> {
    /// `paths` and the targets the options list, those skipped noted. That every listed
    /// target is missing fails the backup when nothing else (`others`) is to be backed up.
    pub(super) fn with_listed(
        &self,
        mut paths: Vec<PathBuf>,
        others: bool,
    ) -> Result<Vec<PathBuf>> {
        let (listed, skipped) = listed_targets(self.opts)?;
        if paths.is_empty() && listed.is_empty() && !skipped.is_empty() && !others {
            return Err(Error::Invalid(
                "nothing to back up: none of the listed files exists".into(),
            ));
        }
        self.notices.lock().unwrap().extend(skipped);
        paths.extend(listed);
        Ok(paths)
    }
}

fn read(f: &Path, op: &'static str) -> Result<Vec<u8>> {
    fs::read(f).map_err(|e| Error::io(op, f, e))
}

/// Lines without their `\n` or `\r\n`, after a UTF-8 byte order mark.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(move |_| !text.is_empty())
}

fn path_of(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// NUL-terminated names; a missing final NUL or an empty name is an error (restic's checks:
/// an empty name would otherwise mean the current directory).
fn raw_names(data: &[u8], f: &Path) -> Result<Vec<PathBuf>> {
    let Some(body) = data.strip_suffix(b"\0") else {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        return Err(Error::Invalid(format!(
            "--files-from-raw {}: trailing zero byte missing",
            f.display()
        )));
    };
    body.split(|&b| b == 0)
        .map(|n| match n {
            [] => Err(Error::Invalid(format!(
                "--files-from-raw {}: empty filename in listing",
                f.display()
            ))),
            n => Ok(path_of(n)),
        })
        .collect()
}

fn has_meta(s: &[u8]) -> bool {
    s.iter().any(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
}

/// The existing paths that `pattern` matches, component by component as `filepath.Glob`:
/// `*`, `?` and `[…]` within one component (a leading dot is matched like any character),
/// `\` escaping; each directory's matches in name order. A pattern without them is itself,
/// if it exists.
fn expand(pattern: &[u8]) -> Result<Vec<PathBuf>> {
    let mut found = vec![if pattern.starts_with(b"/") {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for comp in pattern.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if !has_meta(comp) {
            found
                .iter_mut()
                .for_each(|p| p.push(OsStr::from_bytes(comp)));
            continue;
        }
        let text = std::str::from_utf8(comp).map_err(|_| {
            Error::Invalid(format!(
                "--files-from pattern {:?} is not UTF-8",
                String::from_utf8_lossy(pattern)
            ))
        })?;
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| {
                let shown = String::from_utf8_lossy(pattern);
                Error::Invalid(format!("--files-from pattern {shown:?}: {e}"))
            })?
            .compile_matcher();
        let mut next = Vec::new();
        for dir in &found {
            let listed = if dir.as_os_str().is_empty() {
                fs::read_dir(".")
            } else {
                fs::read_dir(dir)
            };
            // As Glob: a directory that cannot be listed contributes nothing.
            let Ok(listed) = listed else { continue };
            let mut names: Vec<_> = listed
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .filter(|n| glob.is_match(Path::new(n)))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_ok());
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_one_component_and_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        for f in ["a/x1", "a/x2", "a/.x3", "b/x1", "a/y", "a/sub/x9"] {
            let p = d.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b"").unwrap();
        }
        let root = d.path().to_str().unwrap();
        let got = expand(format!("{root}/*/x?").as_bytes()).unwrap();
        let want: Vec<PathBuf> = ["a/x1", "a/x2", "b/x1"]
            .iter()
            .map(|f| d.path().join(f))
            .collect();
        assert_eq!(got, want);
        // A leading dot is no special case, as in Go; `*` does not cross a `/`.
        let got = expand(format!("{root}/a/*x*").as_bytes()).unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(expand(format!("{root}/a/x[12]/nothing").as_bytes())
            .unwrap()
            .is_empty());
        // No meta characters: the path itself, if it exists.
        assert_eq!(
            expand(format!("{root}/a/y").as_bytes()).unwrap(),
            vec![d.path().join("a/y")]
        );
        assert!(expand(format!("{root}/a/missing").as_bytes())
            .unwrap()
            .is_empty());
        assert!(expand(format!("{root}/[").as_bytes()).is_err());
    }

    #[test]
    fn lines_drop_line_ends_and_a_byte_order_mark() {
        let got: Vec<&[u8]> = lines(b"\xef\xbb\xbfa\r\n b \n\nc").collect();
        assert_eq!(got, [&b"a"[..], b" b ", b"", b"c"]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"x\n").collect::<Vec<_>>(), [b"x"]);
    }

    #[test]
    fn raw_names_need_their_terminating_nul() {
        let f = Path::new("list");
        let got = raw_names(b"a b\0c\nd\0", f).unwrap();
        assert_eq!(got, [PathBuf::from("a b"), PathBuf::from("c\nd")]);
        assert!(raw_names(b"", f).unwrap().is_empty());
        assert!(raw_names(b"a\0b", f).is_err());
        assert!(raw_names(b"a\0\0", f).is_err());
    }
}
