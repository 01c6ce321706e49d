//! A reader that digests what passes through it: the BLAKE3 and SHA-256 of a stream a backup
//! stores (standard input, a command's output), for receipts that others can check with
//! `b3sum` or `sha256sum`.

use std::io::Read;

use sha2::Digest;

/// Wraps a reader; [`DigestReader::finish`] gives the bytes read and their digests.
pub struct DigestReader<R> {
    inner: R,
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
    bytes: u64,
}

/// What went through a [`DigestReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDigest {
    pub bytes: u64,
    /// Lowercase hex.
    pub blake3: String,
    pub sha256: String,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R) -> DigestReader<R> {
        DigestReader {
            inner,
            blake3: blake3::Hasher::new(),
            sha256: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(self) -> StreamDigest {
        StreamDigest {
            bytes: self.bytes,
            blake3: self.blake3.finalize().to_hex().to_string(),
            sha256: hex(&self.sha256.finalize()),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.blake3.update(&buf[..n]);
        self.sha256.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_known_values() {
        let mut r = DigestReader::new(&b"abc"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let d = r.finish();
        assert_eq!(out, b"abc");
        assert_eq!(d.bytes, 3);
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.blake3, blake3::hash(b"abc").to_hex().to_string());
    }
}
