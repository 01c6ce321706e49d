//! `manifest`: every regular file of a snapshot (or of a directory in it) with the BLAKE3
//! digest of its content, for `b3sum -c` run in a restored tree.
//!
//! Backups record each file's whole-content digest in its node (format: `Node.digest`), so a
//! manifest reads trees only; a node without one (the format allows it) has its blobs read,
//! verified and hashed instead.

use crate::error::{Error, Result};
use crate::format::{Node, NodeKind, Snapshot};
use crate::id::{Id, TreeId};
use crate::index::Index;
use crate::repository::Repository;
use crate::restore::content_digest;
use crate::tree::{find_node, load_tree};

use super::Indexed;

/// One regular file of the manifest.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ManifestEntry {
    /// The path relative to the listed directory (a file's own name when a file was asked
    /// for): where a restore of the same path puts it, relative to the target.
    pub path: String,
    /// BLAKE3 (unkeyed) of the content.
    pub digest: Id,
    pub size: u64,
    /// The snapshot recorded no digest: it was computed from the file's blobs.
    pub computed: bool,
    /// A name on the path is not UTF-8, so `path` renders it lossily (as `b3sum` would,
    /// and `b3sum -c` refuses such a line).
    pub lossy: bool,
}

/// What `manifest` listed.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ManifestReport {
    pub files: u64,
    pub bytes: u64,
    /// Files whose digest had to be computed by reading their data.
    pub computed: u64,
    /// Files whose path is not UTF-8.
    pub lossy: u64,
}

/// Calls `visit` with every regular file of `path` in `snapshot` (all of it when empty),
/// depth first in name order; hard links are listed at each of their paths. A `visit`
/// error (a closed pipe) stops the listing and is returned as `Error::Io`.
pub fn manifest(
    ix: &Indexed,
    snapshot: &Snapshot,
    path: &str,
    visit: &mut dyn FnMut(&ManifestEntry) -> std::io::Result<()>,
) -> Result<ManifestReport> {
    let mut m = Lister {
        repo: ix.repo(),
        index: ix.index(),
        shown: format!("/{}", path.trim_matches('/')),
        visit,
        report: ManifestReport::default(),
    };
    let node = find_node(m.repo, m.index, &snapshot.tree, path)?;
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(sub)) => m.dir(&sub, "", false)?,
        (NodeKind::File, _) => m.file(&node, "", false)?,
        (kind, _) => {
            return Err(Error::Invalid(format!(
                "{} is a {}, not a file or a directory",
                m.shown,
                kind.name()
            )))
        }
    }
    Ok(m.report)
}

struct Lister<'a, 'v> {
    repo: &'a Repository,
    index: &'a Index,
    /// The listed path, for errors.
    shown: String,
    visit: &'v mut dyn FnMut(&ManifestEntry) -> std::io::Result<()>,
    report: ManifestReport,
}

impl Lister<'_, '_> {
    fn dir(&mut self, tree: &TreeId, prefix: &str, lossy: bool) -> Result<()> {
        let tree = load_tree(self.repo, self.index, tree)?;
        for n in &tree.nodes {
            let lossy = lossy || std::str::from_utf8(&n.name).is_err();
            match (n.kind, n.subtree) {
                (NodeKind::File, _) => self.file(n, prefix, lossy)?,
                (NodeKind::Dir, Some(sub)) => {
                    self.dir(&sub, &format!("{prefix}{}/", n.name_lossy()), lossy)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn file(&mut self, n: &Node, prefix: &str, lossy: bool) -> Result<()> {
        let path = format!("{prefix}{}", n.name_lossy());
        let (digest, computed) = match n.digest {
            Some(d) => (d, false),
            None => {
                let shown = format!("{}/{path}", self.shown.trim_end_matches('/'));
                (content_digest(self.repo, self.index, n, &shown)?, true)
            }
        };
        let lossy = lossy || std::str::from_utf8(&n.name).is_err();
        let r = &mut self.report;
        r.files += 1;
        r.bytes += n.size;
        r.computed += computed as u64;
        r.lossy += lossy as u64;
        let e = ManifestEntry {
            path,
            digest,
            size: n.size,
            computed,
            lossy,
        };
        (self.visit)(&e).map_err(|e| Error::io("write", "<output>", e))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;

    use super::*;
    use crate::backend::MemBackend;
    use crate::backup::{backup, BackupOptions, Source};
    use crate::repository::InitOptions;

    #[test]
    fn a_node_without_a_digest_has_it_computed_from_its_blobs() {
        let be = Arc::new(MemBackend::new());
        let repo = Repository::init(be, b"pw", InitOptions::default()).unwrap();
        let index = Index::load(&repo).unwrap();
        let mut data = vec![0u8; 6 << 20];
        blake3::Hasher::new().finalize_xof().fill(&mut data);
        let source = Source::Reader {
            name: "f".into(),
            reader: Box::new(Cursor::new(data.clone())),
        };
        backup(&repo, &index, source, &BackupOptions::default(), None).unwrap();
        let index = Index::load(&repo).unwrap();
        let (_, snap) = repo.snapshots().unwrap().pop().unwrap();
        let mut node = find_node(&repo, &index, &snap.tree, "f").unwrap();
        assert!(node.content.len() > 1, "several blobs");
        let recorded = node.digest.take().expect("backup records the digest");
        assert_eq!(recorded.0, *blake3::hash(&data).as_bytes());
        let mut got = Vec::new();
        let mut visit = |e: &ManifestEntry| {
            got.push(e.clone());
            Ok(())
        };
        let mut m = Lister {
            repo: &repo,
            index: &index,
            shown: "/".into(),
            visit: &mut visit,
            report: ManifestReport::default(),
        };
        m.file(&node, "", false).unwrap();
        assert_eq!(m.report.computed, 1);
        assert_eq!((got[0].digest, got[0].computed), (recorded, true));
    }
}
