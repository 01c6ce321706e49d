//! `init`: a new repository in a store.

use std::sync::Arc;

use crate::backend::Backend;
use crate::error::Result;
use crate::id::Id;
use crate::repository::{InitOptions, Repository};

/// The repository `init` created.
#[derive(Debug)]
#[non_exhaustive]
pub struct InitReport {
    pub repository: Repository,
    pub id: Id,
    pub location: String,
}

/// Creates a repository in `store` whose key file opens with `password`; refuses a store
/// that holds a repository or repository objects already.
pub fn init(store: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<InitReport> {
    let location = store.location();
    let repository = Repository::init(store, password, opts.clone())?;
    Ok(InitReport {
        id: repository.config().id,
        repository,
        location,
    })
}
