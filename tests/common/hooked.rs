//! A backend wrapper for fault and I/O tests: a hook runs before every call and may fail it,
//! and ranged reads may be altered after they return.

use std::sync::Arc;

use cista::backend::{Backend, FileType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    ReadRange,
    Write,
    List,
    Remove,
}

type Hook = Box<dyn Fn(Op, FileType, &str) -> cista::Result<()> + Send + Sync>;
type Alter = Box<dyn Fn(&mut Vec<u8>) + Send + Sync>;

pub struct Hooked {
    pub inner: Arc<dyn Backend>,
    pub before: Hook,
    pub after_range: Option<Alter>,
    /// Runs after a write has succeeded (to act between two steps of the caller).
    pub after_write: Option<Hook>,
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hooked({})", self.inner.location())
    }
}

impl Hooked {
    pub fn new(
        inner: Arc<dyn Backend>,
        before: impl Fn(Op, FileType, &str) -> cista::Result<()> + Send + Sync + 'static,
    ) -> Hooked {
        Hooked {
            inner,
            before: Box::new(before),
            after_range: None,
            after_write: None,
        }
    }
}

/// The error an injected fault returns.
pub fn injected(
    op: &'static str,
    name: &str,
    kind: std::io::ErrorKind,
    what: &str,
) -> cista::Error {
    cista::Error::Backend {
        op,
        path: name.to_string(),
        source: std::io::Error::new(kind, what.to_string()),
    }
}

impl Backend for Hooked {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> cista::Result<()> {
        self.inner.create()
    }
    fn read(&self, t: FileType, name: &str) -> cista::Result<Vec<u8>> {
        (self.before)(Op::Read, t, name)?;
        self.inner.read(t, name)
    }
    fn read_range(
        &self,
        t: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> cista::Result<Vec<u8>> {
        (self.before)(Op::ReadRange, t, name)?;
        let mut v = self.inner.read_range(t, name, offset, length)?;
        if let Some(a) = &self.after_range {
            a(&mut v);
        }
        Ok(v)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> cista::Result<()> {
        (self.before)(Op::Write, t, name)?;
        self.inner.write(t, name, data)?;
        match &self.after_write {
            Some(a) => a(Op::Write, t, name),
            None => Ok(()),
        }
    }
    fn list(&self, t: FileType) -> cista::Result<Vec<(String, u64)>> {
        (self.before)(Op::List, t, "")?;
        self.inner.list(t)
    }
    fn replace_config(&self, data: &[u8]) -> cista::Result<()> {
        (self.before)(Op::Write, FileType::Config, "config")?;
        self.inner.replace_config(data)
    }
    fn remove(&self, t: FileType, name: &str) -> cista::Result<()> {
        (self.before)(Op::Remove, t, name)?;
        self.inner.remove(t, name)
    }
    fn retention(
        &self,
        t: FileType,
        name: &str,
    ) -> cista::Result<Option<cista::backend::Retention>> {
        self.inner.retention(t, name)
    }
    fn connections(&self) -> usize {
        self.inner.connections()
    }
}
