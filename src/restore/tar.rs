//! `dump` of a directory: a tar archive of the entries below it, each file verified before
//! its entry is written (see `dump`'s fail-closed passes).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::dump::*;
use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind};
use crate::id::TreeId;
use crate::index::Index;
use crate::repository::Repository;
use crate::tree::load_tree;

/// The archive's output, closed when the dump fails: the archive writer's end-of-archive
/// blocks (written when it is dropped) must not make a cut archive look complete.
struct Gate<'w> {
    out: &'w mut dyn Write,
    open: bool,
}

impl Write for Gate<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.open {
            return Err(io::Error::other("dump failed"));
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.open {
            return Err(io::Error::other("dump failed"));
        }
        self.out.flush()
    }
}

/// Writes the directory `tree` (at snapshot path `base`) as a tar archive: its entries by
/// paths relative to it, depth first in name order. Each file is verified whole before its
/// header is written (unless `stream`); a failure stops the archive there, without its
/// end-of-archive blocks, the entries before it written.
pub(super) fn dump_tar(
    repo: &Repository,
    index: &Index,
    tree: &TreeId,
    base: &str,
    stream: bool,
    out: &mut dyn Write,
) -> Result<DumpSummary> {
    let mut t = Tar {
        repo,
        index,
        base: base.trim_end_matches('/'),
        stream,
        ar: tar::Builder::new(Gate { out, open: true }),
        links: HashMap::new(),
        sum: DumpSummary::default(),
    };
    let r = t
        .dir(tree, b"")
        .and_then(|()| t.ar.finish().map_err(write_failed));
    if r.is_err() {
        t.ar.get_mut().open = false;
    }
    r.map(|()| t.sum)
}

struct Tar<'a, 'w> {
    repo: &'a Repository,
    index: &'a Index,
    base: &'a str,
    stream: bool,
    ar: tar::Builder<Gate<'w>>,
    /// The first path of each multiply linked file written, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    sum: DumpSummary,
}

impl Tar<'_, '_> {
    fn dir(&mut self, tree: &TreeId, rel: &[u8]) -> Result<()> {
        let t = load_tree(self.repo, self.index, tree)?;
        for n in &t.nodes {
            let mut p = rel.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&n.name);
            self.entry(n, &p)?;
            if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                self.dir(&sub, &p)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, n: &Node, rel: &[u8]) -> Result<()> {
        let shown = format!("{}/{}", self.base, String::from_utf8_lossy(rel));
        let path = Path::new(OsStr::from_bytes(rel));
        let mut h = header(n);
        let pax = pax_records(n);
        let key = (n.device, n.inode);
        let linked = n.kind == NodeKind::File && n.links > 1 && n.inode != 0;
        let written = match n.kind {
            NodeKind::File if linked && self.links.contains_key(&key) => {
                h.set_entry_type(tar::EntryType::Link);
                let first = self.links[&key].clone();
                self.pax(&pax)?;
                self.ar.append_link(&mut h, path, first)
            }
            NodeKind::File => return self.file(n, &shown, path, h, &pax, linked),
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                self.pax(&pax)?;
                let mut dir = rel.to_vec();
                dir.push(b'/');
                self.ar
                    .append_data(&mut h, OsStr::from_bytes(&dir), io::empty())
            }
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                self.pax(&pax)?;
                let target = OsStr::from_bytes(&n.link_target);
                self.ar.append_link(&mut h, path, target)
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                h.set_entry_type(match n.kind {
                    NodeKind::Fifo => tar::EntryType::Fifo,
                    NodeKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                if n.kind != NodeKind::Fifo {
                    let dev = n.rdev as rustix::fs::Dev;
                    h.set_device_major(rustix::fs::major(dev))
                        .and_then(|()| h.set_device_minor(rustix::fs::minor(dev)))
                        .map_err(write_failed)?;
                }
                self.pax(&pax)?;
                self.ar.append_data(&mut h, path, io::empty())
            }
            NodeKind::Socket => {
                self.sum.skipped.push(shown);
                return Ok(());
            }
        };
        written.map_err(|e| entry_failed(&shown, e))?;
        self.sum.entries += 1;
        Ok(())
    }

    /// A regular file: verified whole first (unless streaming), then its header and content.
    fn file(
        &mut self,
        n: &Node,
        shown: &str,
        path: &Path,
        mut h: tar::Header,
        pax: &[(String, Vec<u8>)],
        linked: bool,
    ) -> Result<()> {
        // The header gives the size before the content: the blobs must add up to it.
        let mut indexed = 0u64;
        for id in &n.content {
            let loc = self.index.get(BlobType::Data, id).ok_or_else(|| {
                Error::corrupt(
                    "file",
                    shown,
                    format!("data blob {id} not found; nothing of it was written"),
                )
            })?;
            indexed += loc.raw_len as u64;
        }
        if indexed != n.size {
            return Err(Error::corrupt(
                "file",
                shown,
                format!(
                    "its blobs hold {indexed} bytes, the snapshot records {}; nothing of it was written",
                    n.size
                ),
            ));
        }
        if !self.stream {
            verify_file(self.repo, self.index, n, shown)?;
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(n.size);
        self.pax(pax)?;
        let mut r = BlobReader {
            blobs: FileBlobs::new(self.repo, self.index, n, shown, Pass::Write),
            cur: Vec::new(),
            pos: 0,
            failed: None,
        };
        if let Err(e) = self.ar.append_data(&mut h, path, &mut r) {
            return Err(r.failed.take().unwrap_or_else(|| entry_failed(shown, e)));
        }
        self.sum.bytes += n.size;
        self.sum.entries += 1;
        if linked {
            self.links.insert((n.device, n.inode), path.to_path_buf());
        }
        Ok(())
    }

    fn pax(&mut self, records: &[(String, Vec<u8>)]) -> Result<()> {
        self.ar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(write_failed)
    }
}

/// A failure writing `shown`'s entry: the output failed, or the archive cannot hold its name.
fn entry_failed(shown: &str, e: io::Error) -> Error {
    Error::io("write to the archive", shown, e)
}

/// The header fields every entry has: mode, owner, modification time (whole seconds).
fn header(n: &Node) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode & 0o7777);
    h.set_uid(n.uid as u64);
    h.set_gid(n.gid as u64);
    // Names longer than the header holds are left out; the ids are there.
    let _ = h.set_username(&n.user);
    let _ = h.set_groupname(&n.group);
    h.set_mtime(n.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
    h.set_size(0);
    h
}

/// PAX records: the modification time when it has a fraction of a second, and the extended
/// attributes (as GNU tar and bsdtar write them).
fn pax_records(n: &Node) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let (secs, nanos) = (
        n.mtime_ns.div_euclid(1_000_000_000),
        n.mtime_ns.rem_euclid(1_000_000_000),
    );
    if nanos != 0 && secs >= 0 {
        out.push(("mtime".into(), format!("{secs}.{nanos:09}").into_bytes()));
    }
    for x in &n.xattrs {
        if let Ok(name) = std::str::from_utf8(&x.name) {
            out.push((format!("SCHILY.xattr.{name}"), x.value.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_writes_nothing() {
        let mut out = Vec::new();
        {
            let mut ar = tar::Builder::new(Gate {
                out: &mut out,
                open: true,
            });
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            ar.append_data(&mut h, "a", &b"abc"[..]).unwrap();
            ar.get_mut().open = false;
        }
        // One header and one block of content; no end-of-archive blocks after the failure.
        assert_eq!(out.len(), 1024);
    }
}
