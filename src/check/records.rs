//! The verification records: each one must load (hash, envelope, JSON, bounds). One naming
//! snapshots that are gone is not a leftover worth a note: prune removes it.

use rayon::prelude::*;

use super::structure::unreadable;
use super::Findings;
use crate::backend::FileType;
use crate::error::Result;
use crate::problem::ObjectKind;
use crate::repository::Repository;

/// Every verification record loads; a damaged or unreadable one is an error naming it.
pub(super) fn records(repo: &Repository, rep: &Findings) -> Result<()> {
    let ids = repo.list_ids(FileType::Verification)?;
    let opened = repo.in_flight(|| {
        ids.par_iter()
            .filter(|id| match repo.load_verification(id) {
                Ok(_) => true,
                // Deleted since the listing (by a prune that took a stale lock): not damage.
                Err(e) if e.is_not_found() => false,
                Err(e) => {
                    rep.error(unreadable(&e).or_object(ObjectKind::Verification, id));
                    false
                }
            })
            .count()
    });
    rep.with(|r| r.verifications = opened);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{mem_repo, noise};
    use crate::format::{Verification, VerificationMethod, VerificationResult};
    use crate::id::Id;
    use crate::problem::{ObjectRef, ProblemKind};

    #[test]
    fn a_junk_record_is_an_error_naming_it_and_a_sound_one_counts() {
        let repo = mem_repo("f", noise(1000));
        let v = Verification {
            time: crate::util::now_string(),
            method: VerificationMethod::Check,
            subset: None,
            fraction: None,
            result: VerificationResult::Passed,
            snapshots: vec![Id([1; 32])],
            tree: None,
            bytes_read: 0,
            hostname: "h".into(),
            username: "u".into(),
            program_version: "cista".into(),
            detail: String::new(),
        };
        repo.save_verification(&v).unwrap();
        let junk = b"not a record".to_vec();
        let junk_id = Id::of_bytes(&junk);
        repo.backend()
            .write(FileType::Verification, &junk_id.to_hex(), &junk)
            .unwrap();
        let rep = Findings::default();
        records(&repo, &rep).unwrap();
        let r = rep.into_report();
        assert_eq!(r.verifications, 1);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.errors[0].kind, ProblemKind::Damaged);
        assert_eq!(
            r.errors[0].object,
            Some(ObjectRef::new(ObjectKind::Verification, junk_id))
        );
        assert!(
            r.errors[0].message.contains(&junk_id.to_hex()),
            "{}",
            r.errors[0]
        );
    }
}
