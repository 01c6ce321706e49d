//! One file per subcommand: builds the library's options from the arguments, calls one
//! command, renders its report.

pub(crate) mod backup;
pub(crate) mod cache;
pub(crate) mod cat;
pub(crate) mod check;
pub(crate) mod config;
pub(crate) mod copy;
pub(crate) mod diff;
pub(crate) mod drill;
pub(crate) mod dump;
pub(crate) mod find;
pub(crate) mod forget;
pub(crate) mod generate;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod ls;
pub(crate) mod manifest;
pub(crate) mod prune;
pub(crate) mod restore;
pub(crate) mod run;
pub(crate) mod snapshots;
pub(crate) mod stats;
pub(crate) mod tag;
pub(crate) mod unlock;
