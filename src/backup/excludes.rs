//! Exclude patterns: globs on names or whole paths, from options and files.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Compiled exclude patterns.
pub(crate) struct Excludes {
    pub(super) names: GlobSet,
    pub(super) paths: GlobSet,
}

impl Excludes {
    pub(super) fn new(patterns: &[String], files: &[PathBuf]) -> Result<Excludes> {
        let mut all: Vec<String> = patterns.to_vec();
        for f in files {
            let text = fs::read_to_string(f).map_err(|e| Error::io("read exclude file", f, e))?;
            all.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for p in all {
            let p = p.trim_end_matches('/');
            let glob = |s: &str| {
                GlobBuilder::new(s)
                    .literal_separator(true)
                    .backslash_escape(true)
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
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Invalid(format!("exclude patterns: {e}")))
        };
        Ok(Excludes {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    pub(super) fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.names.is_match(Path::new(OsStr::from_bytes(name))) || self.paths.is_match(path)
    }
}
