//! Packs: sealed blobs, then a sealed header naming them, then the header's length.
//! `writer` fills one pack, `saver` is the blob saver every writer of blobs shares (backup, copy,
//! prune), `reader` fetches whole packs, headers and single blobs, `tree_cache` keeps a remote
//! repository's tree packs locally.

mod reader;
mod saver;
mod tree_cache;
mod writer;

pub use reader::{open_blob, open_blob_at, parse_pack, read_blob, read_blob_at};
pub(crate) use saver::{BlobSaver, INDEX_EVERY_PACKS};
pub(crate) use tree_cache::{cache_trees, clean_tree_cache};
pub use writer::{FinishedPack, PackWriter};
