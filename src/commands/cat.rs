//! `cat`: one stored object, opened and shown as JSON (or its raw bytes for key files and
//! blobs), for debugging and for scripts.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::{BlobEntry, BlobType, FileKind, IndexFile};
use crate::id::Id;
use crate::index::Index;
use crate::repository::{Repository, SnapshotFilter};
use crate::tree::load_tree;

/// What to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatKind {
    Config,
    Key,
    Snapshot,
    Index,
    Tree,
    Blob,
    Pack,
    Verification,
}

impl std::str::FromStr for CatKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<CatKind> {
        Ok(match s {
            "config" => CatKind::Config,
            "key" => CatKind::Key,
            "snapshot" => CatKind::Snapshot,
            "index" => CatKind::Index,
            "tree" => CatKind::Tree,
            "blob" => CatKind::Blob,
            "pack" => CatKind::Pack,
            "verification" => CatKind::Verification,
            other => {
                return Err(Error::Invalid(format!(
                    "cannot cat {other:?}: use config, key, snapshot, index, tree, blob, pack or verification"
                )))
            }
        })
    }
}

/// The object, opened.
#[derive(Clone, Debug)]
pub enum CatOutput {
    /// Decoded objects (config, snapshot, index, tree, a pack's header, a verification
    /// record).
    Json(serde_json::Value),
    /// Bytes shown as stored (a key file) or as restored (a blob's plaintext).
    Raw(Vec<u8>),
}

/// Opens the object of `kind` named by `id` (an id or unique prefix; `latest` for a
/// snapshot; none for the config).
pub fn cat(repo: &Repository, kind: CatKind, id: Option<&str>) -> Result<CatOutput> {
    let need = || id.ok_or_else(|| Error::Invalid(format!("cat {} needs an id", kind_name(kind))));
    Ok(match kind {
        CatKind::Config => CatOutput::Json(to_json(repo.config())?),
        CatKind::Key => {
            let id = repo.find_id(FileType::Key, need()?)?;
            CatOutput::Raw(repo.backend().read(FileType::Key, &id.to_hex())?)
        }
        CatKind::Snapshot => {
            let (id, s) = repo.resolve_snapshot(need()?, &SnapshotFilter::default())?;
            let mut v = to_json(&s)?;
            v["id"] = id.to_hex().into();
            v["short_id"] = id.short().into();
            CatOutput::Json(v)
        }
        CatKind::Index => {
            let id = repo.find_id(FileType::Index, need()?)?;
            let raw = repo.load_file(FileKind::Index, FileType::Index, &id)?;
            let f = IndexFile::decode(&raw).map_err(|e| Error::corrupt("index", id, e))?;
            CatOutput::Json(serde_json::json!({
                "supersedes": f.supersedes,
                "packs": f.packs.iter().map(|p| serde_json::json!({
                    "id": p.id,
                    "blobs": p.blobs.iter().map(blob_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }))
        }
        CatKind::Tree => {
            let id: Id = need()?.parse()?;
            let index = Index::load(repo)?;
            CatOutput::Json(to_json(&load_tree(repo, &index, &id)?)?)
        }
        CatKind::Blob => {
            let id: Id = need()?.parse()?;
            let index = Index::load(repo)?;
            let ty = if index.contains(BlobType::Data, &id) {
                BlobType::Data
            } else {
                BlobType::Tree
            };
            CatOutput::Raw(crate::pack::read_blob(repo, &index, ty, &id)?)
        }
        CatKind::Verification => {
            let id = repo.find_id(FileType::Verification, need()?)?;
            let mut v = to_json(&repo.load_verification(&id)?)?;
            v["id"] = id.to_hex().into();
            CatOutput::Json(v)
        }
        CatKind::Pack => {
            let id = repo.find_id(FileType::Pack, need()?)?;
            let bytes = repo.backend().read(FileType::Pack, &id.to_hex())?;
            let entries = crate::pack::parse_pack(repo, &id, &bytes)?;
            CatOutput::Json(serde_json::Value::Array(
                entries.iter().map(blob_json).collect(),
            ))
        }
    })
}

fn kind_name(k: CatKind) -> &'static str {
    match k {
        CatKind::Config => "config",
        CatKind::Key => "key",
        CatKind::Snapshot => "snapshot",
        CatKind::Index => "index",
        CatKind::Tree => "tree",
        CatKind::Blob => "blob",
        CatKind::Pack => "pack",
        CatKind::Verification => "verification",
    }
}

fn blob_json(b: &BlobEntry) -> serde_json::Value {
    serde_json::json!({
        "type": b.ty.name(), "id": b.id, "offset": b.offset,
        "length": b.length, "uncompressed_length": b.raw_len,
    })
}

fn to_json(v: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::Invalid(format!("cannot show as JSON: {e}")))
}
