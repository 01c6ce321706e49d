//! Reading the source file system: kinds, listings, files opened safely, buffered reads.

use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::format::NodeKind;

pub(super) fn ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

pub(super) fn kind_of(m: &Metadata) -> NodeKind {
    let t = m.file_type();
    if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_socket() {
        NodeKind::Socket
    } else if t.is_char_device() {
        NodeKind::CharDevice
    } else if t.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::File
    }
}

/// Opens a regular file for reading without following a symlink swapped in after `lstat`,
/// without blocking on a FIFO swapped in, and without updating its atime where allowed.
pub(super) fn open_source(path: &Path) -> std::io::Result<File> {
    let base = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(base | libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fs::OpenOptions::new()
            .read(true)
            .custom_flags(base)
            .open(path),
        r => r,
    }?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("no longer a regular file"));
    }
    Ok(f)
}

/// Lists a directory's entry names, opened with `O_NOATIME` where allowed so that a backup
/// does not change the directory's atime (and with it the next backup's tree). A failure part
/// way returns the names read so far with the error.
pub(super) fn list_dir(path: &Path) -> std::io::Result<(Vec<Vec<u8>>, Option<std::io::Error>)> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let base = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let mut dir = match nix::dir::Dir::open(path, base | OFlag::O_NOATIME, Mode::empty()) {
        Err(nix::errno::Errno::EPERM) => nix::dir::Dir::open(path, base, Mode::empty()),
        r => r,
    }
    .map_err(std::io::Error::from)?;
    let mut names = Vec::new();
    for e in dir.iter() {
        match e {
            Ok(e) => {
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(n.to_vec());
                }
            }
            Err(e) => return Ok((names, Some(e.into()))),
        }
    }
    Ok((names, None))
}

/// Reads until `buf` holds `want` bytes or the reader ends; returns true at end of input.
/// `read_to_end` grows the buffer without zero-filling it first: zeroing a segment-sized buffer
/// per read made small-file backups spend most of their time in memset.
pub(super) fn fill(
    r: &mut (dyn Read + Send),
    buf: &mut Vec<u8>,
    want: usize,
) -> std::io::Result<bool> {
    while buf.len() < want {
        let need = (want - buf.len()) as u64;
        match r.take(need).read_to_end(buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}
