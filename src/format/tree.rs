//! Tree blobs: one directory's nodes, encoded deterministically so equal directories get
//! equal ids.

use bincode::Options;
use serde::{Deserialize, Serialize};

use super::{bad, DecodeError, MAX_OBJECT_LEN};
use crate::id::{BlobId, Id, TreeId};

/// What a tree node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::File => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::Socket => "socket",
            NodeKind::CharDevice => "chardev",
            NodeKind::BlockDevice => "blockdev",
        }
    }
}

/// One extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// One directory entry with its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Raw name bytes; never contains `/` or NUL, never empty, `.` or `..`.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub atime_ns: i64,
    pub size: u64,
    pub inode: u64,
    pub device: u64,
    pub links: u64,
    #[serde(with = "serde_bytes")]
    pub link_target: Vec<u8>,
    pub rdev: u64,
    pub xattrs: Vec<Xattr>,
    pub content: Vec<BlobId>,
    pub subtree: Option<TreeId>,
    /// BLAKE3 (unkeyed) of a regular file's whole content.
    pub digest: Option<Id>,
}

impl Node {
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime_ns: 0,
            ctime_ns: 0,
            atime_ns: 0,
            size: 0,
            inode: 0,
            device: 0,
            links: 0,
            link_target: Vec::new(),
            rdev: 0,
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
            digest: None,
        }
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

fn valid_name(n: &[u8]) -> bool {
    !n.is_empty() && n != b"." && n != b".." && !n.contains(&b'/') && !n.contains(&0)
}

/// A directory: nodes sorted by raw name bytes, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

fn tree_codec() -> impl Options {
    bincode::options()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_OBJECT_LEN)
}

impl Tree {
    /// Deterministic encoding: sorts nodes first so equal directories get equal ids.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for n in &mut self.nodes {
            n.xattrs.sort();
        }
        tree_codec().serialize(&*self).expect("tree serializes")
    }

    pub fn decode(raw: &[u8]) -> Result<Tree, DecodeError> {
        let t: Tree = tree_codec().deserialize(raw).map_err(bad)?;
        for w in t.nodes.windows(2) {
            if w[0].name >= w[1].name {
                return Err(bad("nodes not sorted by name or names repeat"));
            }
        }
        for n in &t.nodes {
            if !valid_name(&n.name) {
                return Err(bad(format!("invalid node name {:?}", n.name_lossy())));
            }
            if (n.kind == NodeKind::Dir) != n.subtree.is_some() {
                return Err(bad(format!(
                    "node {:?}: subtree only on directories",
                    n.name_lossy()
                )));
            }
        }
        Ok(t)
    }

    /// Finds a node by name (nodes are sorted).
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}
