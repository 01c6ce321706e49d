//! `--read-data`: packs read whole, each checked against its storage hash, its header against
//! the index, and every blob opened and its keyed id verified.

use std::collections::HashMap;

use rayon::prelude::*;

use super::structure::{unreadable, Packs};
use super::{select_packs, Findings, Subset};
use crate::backend::FileType;
use crate::format::{self, BlobEntry, BlobType};
use crate::id::{Id, PackId};
use crate::index::BlobLocation;
use crate::pack::parse_pack;
use crate::problem::{ObjectKind, Problem, ProblemKind};
use crate::repository::Repository;

thread_local! {
    // Blobs are opened and decompressed into per-thread buffers: check keeps no plaintext.
    static SCRATCH: std::cell::RefCell<format::BlobScratch> = std::cell::RefCell::new(Default::default());
    static PACK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads the packs of `subset` and checks each.
pub(super) fn read_data(
    repo: &Repository,
    packs: &Packs,
    subset: Subset,
    progress: Option<&crate::util::Progress>,
    rep: &Findings,
) {
    let chosen = select_packs(&packs.stored, subset);
    if let Some(p) = progress {
        p.set_totals(chosen.len() as u64, chosen.iter().map(|(_, s)| *s).sum());
    }
    if chosen.is_empty() && !packs.stored.is_empty() {
        if let Subset::Part(n, m) = subset {
            rep.note(Problem::new(
                ProblemKind::EmptyGroup,
                format!(
                    "group {n}/{m} holds none of the {} packs: no data was read",
                    packs.stored.len()
                ),
            ));
        }
    }
    let check = |pack: &PackId, bytes: &[u8]| {
        let indexed = packs.by_pack.get(pack).map(|v| v.as_slice()).unwrap_or(&[]);
        check_pack(repo, pack, bytes, indexed, rep);
        if let Some(p) = progress {
            p.add_files(1);
            p.add_bytes(bytes.len() as u64);
        }
    };
    let width = repo.pack_width();
    if width > 0 {
        // An object store: 2 x `connections` packs on the wire at once, instead of one per
        // core waiting a round trip each. Fetch threads of their own leave the cores to
        // decrypting and verifying, and at most `width` packs are held at any time.
        crate::ahead::fetch_unordered(
            &chosen,
            width,
            |(pack, _)| repo.backend().read(FileType::Pack, &pack.to_hex()),
            |(pack, _), bytes| match bytes {
                Ok(b) => check(pack, &b),
                Err(e) => rep.error(unreadable(&e).or_object(ObjectKind::Pack, pack)),
            },
        );
        return;
    }
    chosen.par_iter().for_each(|(pack, _)| {
        let name = pack.to_hex();
        // Local disk: pack files are never changed in place, so mapping them is safe and
        // saves copying them.
        match repo.backend().map(FileType::Pack, &name) {
            Ok(Some(m)) => return check(pack, &m),
            Ok(None) => {}
            Err(e) => return rep.error(unreadable(&e).or_object(ObjectKind::Pack, pack)),
        }
        let mut bytes = PACK_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
        if let Err(e) = repo.backend().read_into(FileType::Pack, &name, &mut bytes) {
            return rep.error(unreadable(&e).or_object(ObjectKind::Pack, pack));
        }
        check(pack, &bytes);
        PACK_BUF.with(|b| *b.borrow_mut() = bytes);
    });
}

/// Checks pack `pack`, read whole into `bytes`, against its index entries `indexed`.
fn check_pack(
    repo: &Repository,
    pack: &PackId,
    bytes: &[u8],
    indexed: &[(BlobType, Id, BlobLocation)],
    rep: &Findings,
) {
    let entries = match parse_pack(repo, pack, bytes) {
        Ok(e) => e,
        Err(e) => return rep.error(unreadable(&e).or_object(ObjectKind::Pack, pack)),
    };
    let in_header: HashMap<(BlobType, Id), (u32, u32)> = entries
        .iter()
        .map(|e| ((e.ty, e.id), (e.offset, e.length)))
        .collect();
    for (ty, id, loc) in indexed {
        if in_header.get(&(*ty, *id)) != Some(&(loc.offset, loc.length)) {
            rep.error(
                Problem::new(
                    ProblemKind::HeaderMismatch,
                    format!(
                        "pack {pack}: index entry for {} blob {id} does not match the pack header",
                        ty.name()
                    ),
                )
                .with_object(ObjectKind::Pack, pack),
            );
        }
    }
    // Blobs in parallel too, so the last pack does not leave a core idle.
    let n: usize = entries
        .par_chunks(16)
        .map(|chunk| verify_blobs(repo, pack, bytes, chunk, rep))
        .sum();
    rep.with(|r| {
        r.packs_read += 1;
        r.blobs_read += n;
        r.bytes_read += bytes.len() as u64;
    });
}

/// Opens each blob of `chunk` in `bytes` and verifies its id; returns how many verified.
fn verify_blobs(
    repo: &Repository,
    pack: &PackId,
    bytes: &[u8],
    chunk: &[BlobEntry],
    rep: &Findings,
) -> usize {
    SCRATCH.with(|scratch| {
        let scratch = &mut scratch.borrow_mut();
        let mut n = 0;
        for e in chunk {
            let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            match format::verify_blob(repo.keys(), e.ty, &e.id, sealed, e.raw_len, scratch) {
                Ok(()) => n += 1,
                Err(why) => rep.error(
                    Problem::new(
                        ProblemKind::Damaged,
                        format!("{} {}: in pack {pack}: {why}", e.ty.blob_name(), e.id),
                    )
                    .with_object(ObjectKind::of_blob(e.ty), e.id),
                ),
            }
        }
        n
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::{Backend, LocalBackend, MemBackend};
    use crate::check::subset::MAX_GROUPS;
    use crate::check::testing::{damage, mem_repo, repo_on};
    use crate::check::CheckReport;
    use crate::error::Result;
    use crate::index::Index;
    use crate::problem::ObjectRef;

    fn read(repo: &Repository, packs: &Packs, subset: Subset) -> CheckReport {
        let rep = Findings::default();
        read_data(repo, packs, subset, None, &rep);
        rep.into_report()
    }

    fn packs(repo: &Repository) -> Packs {
        Packs::list(repo, &Index::load(repo).unwrap()).unwrap()
    }

    fn data() -> Vec<u8> {
        crate::check::testing::noise(3 << 20)
    }

    /// A `MemBackend` that says it is an object store, so packs are fetched in flight.
    #[derive(Debug, Default)]
    struct Remote(MemBackend);

    impl Backend for Remote {
        fn location(&self) -> String {
            "remote".into()
        }
        fn create(&self) -> Result<()> {
            self.0.create()
        }
        fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
            self.0.read(t, name)
        }
        fn read_range(&self, t: FileType, name: &str, off: u64, len: u64) -> Result<Vec<u8>> {
            self.0.read_range(t, name, off, len)
        }
        fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
            self.0.write(t, name, data)
        }
        fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
            self.0.list(t)
        }
        fn remove(&self, t: FileType, name: &str) -> Result<()> {
            self.0.remove(t, name)
        }
        fn replace_config(&self, data: &[u8]) -> Result<()> {
            self.0.replace_config(data)
        }
        fn connections(&self) -> usize {
            1
        }
    }

    #[test]
    fn every_pack_and_blob_is_read_on_each_kind_of_store() {
        let dir = tempfile::tempdir().unwrap();
        for repo in [
            mem_repo("f", data()),
            repo_on(Arc::new(LocalBackend::new(dir.path())), "f", data()),
            repo_on(Arc::new(Remote::default()), "f", data()),
        ] {
            let packs = packs(&repo);
            let r = read(&repo, &packs, Subset::All);
            assert!(
                r.errors.is_empty(),
                "{}: {:?}",
                repo.backend().location(),
                r.errors
            );
            assert_eq!(r.packs_read, packs.stored.len());
            let blobs: usize = packs.by_pack.values().map(Vec::len).sum();
            assert_eq!(r.blobs_read, blobs);
            assert_eq!(r.bytes_read, packs.stored.values().sum::<u64>());
        }
    }

    /// The largest pack: the one holding the data.
    fn data_pack(packs: &Packs) -> PackId {
        *packs.stored.iter().max_by_key(|(_, s)| **s).unwrap().0
    }

    #[test]
    fn a_damaged_pack_is_an_error_naming_it_and_the_others_are_still_read() {
        for repo in [
            mem_repo("f", data()),
            repo_on(Arc::new(Remote::default()), "f", data()),
        ] {
            let packs = packs(&repo);
            let victim = data_pack(&packs);
            damage(&repo, FileType::Pack, &victim.to_hex(), |b| b[1000] ^= 1);
            let r = read(&repo, &packs, Subset::All);
            assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
            assert!(
                r.errors[0].message.contains(&victim.to_hex()),
                "{}",
                r.errors[0]
            );
            assert_eq!(r.errors[0].kind, ProblemKind::Damaged);
            assert_eq!(
                r.errors[0].object,
                Some(ObjectRef::new(ObjectKind::Pack, victim))
            );
            assert_eq!(r.packs_read, packs.stored.len() - 1);
        }
    }

    #[test]
    fn an_index_entry_the_header_does_not_have_is_an_error() {
        let repo = mem_repo("f", data());
        let mut packs = packs(&repo);
        let victim = data_pack(&packs);
        let (_, id, loc) = &mut packs.by_pack.get_mut(&victim).unwrap()[0];
        loc.length += 1;
        let id = *id;
        let r = read(&repo, &packs, Subset::All);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        let e = &r.errors[0];
        assert!(e.message.contains("does not match the pack header"));
        assert!(e.message.contains(&id.to_hex()) && e.message.contains(&victim.to_hex()));
        assert_eq!(e.kind, ProblemKind::HeaderMismatch);
        assert_eq!(e.object, Some(ObjectRef::new(ObjectKind::Pack, victim)));
    }

    #[test]
    fn an_empty_group_reads_nothing_and_says_so() {
        let repo = mem_repo("f", data());
        let packs = packs(&repo);
        let n = (1..=MAX_GROUPS)
            .find(|n| packs.stored.keys().all(|p| p.0[0] as u32 != n - 1))
            .unwrap();
        let r = read(&repo, &packs, Subset::Part(n, MAX_GROUPS));
        assert_eq!((r.packs_read, r.blobs_read), (0, 0));
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0]
            .message
            .contains(&format!("group {n}/{MAX_GROUPS}")));
        assert_eq!(r.notes[0].kind, ProblemKind::EmptyGroup);
    }
}
