//! In-memory storage for unit tests.

use std::collections::BTreeMap;
use std::io::{Error as IoError, ErrorKind};
use std::sync::Mutex;

use super::{backend_err, object_path, Backend, FileType};
use crate::error::Result;

#[derive(Debug, Default)]
pub struct MemBackend {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemBackend {
    pub fn new() -> MemBackend {
        MemBackend::default()
    }
}

impl Backend for MemBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn create(&self) -> Result<()> {
        Ok(())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let m = self.objects.lock().unwrap();
        let b = m
            .get(&object_path(t, name))
            .ok_or_else(|| backend_err("read", t, name, IoError::from(ErrorKind::NotFound)))?;
        super::check_read_len(t, name, b.len() as u64)?;
        Ok(b.clone())
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let m = self.objects.lock().unwrap();
        let all = m
            .get(&object_path(t, name))
            .ok_or_else(|| backend_err("read", t, name, IoError::from(ErrorKind::NotFound)))?;
        let end = offset
            .checked_add(length)
            .filter(|&e| e <= all.len() as u64);
        match end {
            Some(end) => Ok(all[offset as usize..end as usize].to_vec()),
            None => Err(backend_err(
                "read range",
                t,
                name,
                IoError::from(ErrorKind::UnexpectedEof),
            )),
        }
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let mut m = self.objects.lock().unwrap();
        let p = object_path(t, name);
        if m.contains_key(&p) {
            return Err(backend_err(
                "write",
                t,
                name,
                IoError::from(ErrorKind::AlreadyExists),
            ));
        }
        m.insert(p, data.to_vec());
        Ok(())
    }

    fn replace_config(&self, data: &[u8]) -> Result<()> {
        self.objects
            .lock()
            .unwrap()
            .insert(object_path(FileType::Config, "config"), data.to_vec());
        Ok(())
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let m = self.objects.lock().unwrap();
        Ok(m.iter()
            .filter_map(|(p, v)| {
                let name = p.rsplit('/').next().unwrap();
                (object_path(t, name) == *p).then(|| (name.to_string(), v.len() as u64))
            })
            .collect())
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.objects.lock().unwrap().remove(&object_path(t, name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        crate::backend::conformance::run(&super::MemBackend::new());
    }
}
