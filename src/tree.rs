//! Loading trees and walking snapshot paths.

use crate::error::{Error, Result};
use crate::format::{BlobType, Node, NodeKind, Tree};
use crate::id::TreeId;
use crate::index::Index;
use crate::pack::read_blob;
use crate::repository::Repository;

/// Loads and decodes a tree blob.
pub fn load_tree(repo: &Repository, index: &Index, id: &TreeId) -> Result<Tree> {
    let raw = read_blob(repo, index, BlobType::Tree, id)?;
    Tree::decode(&raw).map_err(|e| Error::corrupt("tree blob", id, e))
}

/// Splits a snapshot path (`/home/u/x`, `home/u/x`) into raw components.
pub fn path_components(path: &str) -> Vec<Vec<u8>> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| c.as_bytes().to_vec())
        .collect()
}

/// Finds the node at `path` below the tree `root`. The empty path yields a synthetic directory
/// node for the root itself.
pub fn find_node(repo: &Repository, index: &Index, root: &TreeId, path: &str) -> Result<Node> {
    let mut node = Node::new(b"/".to_vec(), NodeKind::Dir);
    node.subtree = Some(*root);
    node.mode = 0o755;
    let mut shown = String::new();
    for comp in path_components(path) {
        shown.push('/');
        shown.push_str(&String::from_utf8_lossy(&comp));
        let sub = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(s)) => s,
            _ => {
                return Err(Error::NotFound {
                    what: "path",
                    id: format!("{shown} (a parent is not a directory)"),
                })
            }
        };
        let tree = load_tree(repo, index, &sub)?;
        node = tree.find(&comp).cloned().ok_or_else(|| Error::NotFound {
            what: "path",
            id: shown.clone(),
        })?;
    }
    Ok(node)
}

/// Calls `f` with the path and node of every entry below the tree `root`, depth first.
pub fn walk(
    repo: &Repository,
    index: &Index,
    root: &TreeId,
    dir: &str,
    f: &mut dyn FnMut(&str, &Node) -> Result<()>,
) -> Result<()> {
    let tree = load_tree(repo, index, root)?;
    for n in &tree.nodes {
        let p = format!("{dir}/{}", n.name_lossy());
        f(&p, n)?;
        if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
            walk(repo, index, &sub, &p, f)?;
        }
    }
    Ok(())
}
