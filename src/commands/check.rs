//! `check`: the repository's structure and, with `read_data`, every stored byte; then its
//! verification record.

use crate::check::{CheckOptions, CheckReport, Subset};
use crate::error::Result;
use crate::format::VerificationMethod;

use super::verification::{fraction, freshness, new_record, store};
use super::Locked;

/// Checks the repository `l` holds locked; damage is in the report, not an error. The
/// result is stored as a verification record covering every snapshot checked, unless the
/// repository is not locked (`--no-lock`) or `opts.no_record`.
pub fn check(l: &Locked, opts: &CheckOptions) -> Result<CheckReport> {
    let mut rep = crate::check::check(l.repo(), opts)?;
    let method = match opts.read_data {
        None => VerificationMethod::Check,
        Some(Subset::All) => VerificationMethod::CheckReadData,
        Some(_) => VerificationMethod::CheckReadDataSubset,
    };
    let mut detail = rep.counts_line();
    if let Some(first) = rep.errors.first() {
        detail.push_str(&format!(" (first: {first})"));
    }
    let mut v = new_record(
        method,
        rep.ok(),
        rep.checked.clone(),
        rep.bytes_read,
        &detail,
    );
    if method == VerificationMethod::CheckReadDataSubset {
        v.subset = opts.read_data.map(|s| s.to_string());
        v.fraction = Some(fraction(rep.bytes_read, rep.pack_bytes));
    }
    rep.recorded = store(l.repo(), l.guard().is_some() && !opts.no_record, &v);
    rep.freshness = freshness(l.repo(), &rep.recorded, &v);
    Ok(rep)
}
