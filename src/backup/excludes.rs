//! What the walk leaves out, as restic's `backup` flags say: globs on names or whole paths
//! (`--exclude`, `--iexclude` and their files), files above a size (`--exclude-larger-than`),
//! and the contents of directories holding a tag file (`--exclude-if-present`,
//! `--exclude-caches`).

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::source::open_source;
use super::{Archiver, BackupOptions};
use crate::error::{Error, Result};
use crate::problem::{Problem, ProblemKind};

/// The tag of the Cache Directory Tagging Specification (https://bford.info/cachedir/), as
/// restic's `--exclude-caches` gives it to `--exclude-if-present`.
const CACHEDIR_TAG: &str = "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55";

/// `--exclude-if-present NAME[:HEADER]`: a directory holding a file `name` that starts with
/// `header` (any file `name` when the header is empty) is backed up without its contents,
/// except that file.
struct TagSpec {
    name: Vec<u8>,
    header: Vec<u8>,
}

impl TagSpec {
    fn parse(spec: &str) -> Result<TagSpec> {
        let (name, header) = spec.split_once(':').unwrap_or((spec, ""));
        if name.is_empty() {
            return Err(Error::Invalid(format!(
                "--exclude-if-present {spec:?}: no tag file name given"
            )));
        }
        Ok(TagSpec {
            name: name.as_bytes().to_vec(),
            header: header.as_bytes().to_vec(),
        })
    }
}

/// Compiled exclude rules.
pub(crate) struct Excludes {
    /// Case-sensitive and case-insensitive patterns in one set each, so that a name is
    /// matched once whatever the flags.
    names: GlobSet,
    paths: GlobSet,
    larger_than: Option<u64>,
    tags: Vec<TagSpec>,
}

/// The non-blank lines of pattern files that do not start with `#`.
fn pattern_lines(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for f in files {
        let text = fs::read_to_string(f).map_err(|e| Error::io("read exclude file", f, e))?;
        all.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(all)
}

/// Adds `patterns` to the name and path sets: a pattern without `/` matches any file name,
/// one with `/` a whole path (anchored at `/` when it starts with one).
fn add_patterns(
    patterns: &[String],
    ignore_case: bool,
    names: &mut GlobSetBuilder,
    paths: &mut GlobSetBuilder,
) -> Result<()> {
    for p in patterns {
        let p = p.trim_end_matches('/');
        let glob = |s: &str| {
            GlobBuilder::new(s)
                .literal_separator(true)
                .backslash_escape(true)
                .case_insensitive(ignore_case)
                .build()
                .map_err(|e| Error::Invalid(format!("exclude pattern {p:?}: {e}")))
        };
        if p.contains('/') {
            let full = if p.starts_with('/') {
                p.to_string()
            } else {
                format!("**/{p}")
            };
            paths.add(glob(&full)?);
        } else {
            names.add(glob(p)?);
        }
    }
    Ok(())
}

impl Excludes {
    pub(super) fn new(opts: &BackupOptions) -> Result<Excludes> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let mut exact = opts.excludes.clone();
        exact.extend(pattern_lines(&opts.exclude_files)?);
        add_patterns(&exact, false, &mut names, &mut paths)?;
        let mut folded = opts.iexcludes.clone();
        folded.extend(pattern_lines(&opts.iexclude_files)?);
        add_patterns(&folded, true, &mut names, &mut paths)?;
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Invalid(format!("exclude patterns: {e}")))
        };
        let mut tags = opts
            .exclude_if_present
            .iter()
            .map(|s| TagSpec::parse(s))
            .collect::<Result<Vec<_>>>()?;
        if opts.exclude_caches {
            tags.push(TagSpec::parse(CACHEDIR_TAG)?);
        }
        Ok(Excludes {
            names: build(names)?,
            paths: build(paths)?,
            larger_than: opts.exclude_larger_than,
            tags,
        })
    }

    pub(super) fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.names.is_match(Path::new(OsStr::from_bytes(name))) || self.paths.is_match(path)
    }

    /// `--exclude-larger-than`: anything but a directory above the size, as restic.
    pub(super) fn too_large(&self, m: &Metadata) -> bool {
        self.larger_than
            .is_some_and(|max| !m.is_dir() && m.len() > max)
    }
}

impl Archiver<'_> {
    /// The names of the tag files that exclude the rest of directory `dir`, or `None` when
    /// no tag spec matches it; `present` says whether `dir` has an entry of a name. An entry
    /// is kept only if every matching spec names it, as restic applies each spec on its own.
    pub(super) fn tags_of(
        &self,
        dir: &Path,
        present: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<&[u8]>> {
        let specs = &self.excludes.tags;
        if specs.is_empty() {
            return None;
        }
        let hits: Vec<&[u8]> = specs
            .iter()
            .filter(|s| present(&s.name) && self.tag_matches(dir, s))
            .map(|s| s.name.as_slice())
            .collect();
        (!hits.is_empty()).then_some(hits)
    }

    /// Whether the present tag file of `spec` in `dir` starts with its header. One that
    /// cannot be read, or does not, excludes nothing and is named in a notice (restic warns).
    fn tag_matches(&self, dir: &Path, spec: &TagSpec) -> bool {
        if spec.header.is_empty() {
            return true;
        }
        let path = dir.join(OsStr::from_bytes(&spec.name));
        let mut head = Vec::with_capacity(spec.header.len());
        let read = open_source(&path)
            .and_then(|f| f.take(spec.header.len() as u64).read_to_end(&mut head));
        let why = match read {
            Err(e) => format!("could not be read ({e})"),
            Ok(n) if n < spec.header.len() => "is shorter than its signature".into(),
            Ok(_) if head != spec.header => "does not start with its signature".into(),
            Ok(_) => return true,
        };
        let shown = path.display();
        self.notice(
            Problem::new(
                ProblemKind::TagFileInvalid,
                format!("{shown}: exclusion tag file {why}; its directory is backed up"),
            )
            .with_path(shown.to_string()),
        );
        false
    }
}
