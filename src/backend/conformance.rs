//! The contract every [`Backend`] implementation must pass; for implementors and tests.
//!
//! [`run`] checks, on an empty location, what the rest of cista relies on: whole and ranged
//! reads (a short range is refused), create-only writes (a second write of a name fails with
//! `AlreadyExists` and leaves the object as it was), [`write_content_addressed`] taking that as
//! success, listings with sizes, `NotFound` for a missing object, a large object (past
//! [`MULTIPART_THRESHOLD`], so object stores upload it in parts), idempotent removes, and the
//! per-type cap on whole-object reads ([`max_read_len`]). The library's own backends run it in
//! their unit tests; `tests/backends.rs` and `tests/backends_azure.rs` run it against S3 (moto)
//! and Azure Blob (Azurite).
//!
//! It panics on the first broken rule, like a test assertion, naming what was expected.

use super::{max_read_len, write_content_addressed, Backend, FileType, MULTIPART_THRESHOLD};

/// Runs the contract against `be`, which must be an empty location: it calls `create`, then
/// writes, reads, lists and removes objects of its own (`config` among them). It leaves the
/// `config` object behind and removes everything else it wrote.
///
/// # Panics
///
/// On the first rule `be` breaks, with the operation and the error or value it got.
pub fn run(be: &dyn Backend) {
    be.create().unwrap();
    let name = "ab".repeat(32);
    be.write(FileType::Pack, &name, b"hello world").unwrap();
    assert_eq!(be.read(FileType::Pack, &name).unwrap(), b"hello world");
    assert_eq!(
        be.read_range(FileType::Pack, &name, 6, 5).unwrap(),
        b"world"
    );
    assert!(be.read_range(FileType::Pack, &name, 6, 50).is_err());
    assert_already_exists(be.write(FileType::Pack, &name, b"other"));
    assert_eq!(be.read(FileType::Pack, &name).unwrap(), b"hello world");
    write_content_addressed(be, FileType::Pack, &name, b"hello world").unwrap();
    assert_eq!(be.list(FileType::Pack).unwrap(), vec![(name.clone(), 11)]);
    assert!(be.list(FileType::Index).unwrap().is_empty());
    let e = be.read(FileType::Index, &name).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = be.read_range(FileType::Index, &name, 0, 1).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    be.write(FileType::Config, "config", b"c").unwrap();
    assert_eq!(be.read(FileType::Config, "config").unwrap(), b"c");

    // A large object goes up in parts on an object store, and is refused like any other the
    // second time.
    let big = pattern(MULTIPART_THRESHOLD + 1234, 9);
    let bname = "cd".repeat(32);
    be.write(FileType::Pack, &bname, &big).unwrap();
    assert!(
        be.read(FileType::Pack, &bname).unwrap() == big,
        "large object read back differs"
    );
    assert_already_exists(be.write(FileType::Pack, &bname, &big));
    let mut listed = be.list(FileType::Pack).unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![(name.clone(), 11), (bname.clone(), big.len() as u64)]
    );

    // Removing is idempotent and leaves the other objects.
    be.remove(FileType::Pack, &name).unwrap();
    be.remove(FileType::Pack, &name).unwrap();
    assert_eq!(
        be.list(FileType::Pack).unwrap(),
        vec![(bname.clone(), big.len() as u64)]
    );
    be.remove(FileType::Pack, &bname).unwrap();
    assert!(be.list(FileType::Pack).unwrap().is_empty());

    // Whole-object reads stop at the type's cap, naming the object; ranges are not capped.
    let cap = max_read_len(FileType::Lock) as usize;
    be.write(FileType::Lock, &name, &vec![1; cap]).unwrap();
    assert_eq!(be.read(FileType::Lock, &name).unwrap().len(), cap);
    be.remove(FileType::Lock, &name).unwrap();
    be.write(FileType::Lock, &name, &vec![1; cap + 1]).unwrap();
    let e = be.read(FileType::Lock, &name).unwrap_err();
    assert!(e.is_integrity() && e.to_string().contains(&name), "{e}");
    assert_eq!(be.read_range(FileType::Lock, &name, 0, 3).unwrap(), [1; 3]);
    be.remove(FileType::Lock, &name).unwrap();
}

/// A second write of a name fails with an `AlreadyExists` I/O error.
fn assert_already_exists(r: crate::Result<()>) {
    let e = r.expect_err("a second write of a name must fail");
    assert!(
        matches!(e, crate::Error::Backend { ref source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
}

/// `n` bytes that do not repeat (xorshift64*), so a part stored out of place shows.
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}
