//! Keys and authenticated encryption.
//!
//! One random 32-byte master secret per repository. Sub-keys are derived from it with BLAKE3's
//! `derive_key` under distinct contexts, so the encryption key, the blob-id MAC key and the
//! chunker seed are independent. The master secret is stored only wrapped: sealed under a key
//! derived from a password with Argon2id, in one or more key files.
//!
//! Sealing is AES-256-GCM-SIV with a random 96-bit nonce: `nonce ‖ ciphertext ‖ tag`. GCM-SIV stays
//! safe if a nonce ever repeats (it then only reveals that two plaintexts were equal), which matters
//! for a repository written by many hosts for years.

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes sealing adds to a plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

const CTX_ENC: &str = "cista 2026-11-22 encryption key v1";
const CTX_MAC: &str = "cista 2026-11-22 blob id key v1";
const CTX_CHUNKER: &str = "cista 2026-11-22 chunker gear key v1";
const KEYFILE_AAD: &[u8] = b"cista key file v1";

/// Sealing failed to authenticate: wrong key or modified bytes. Callers add which object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("authentication failed (modified bytes or wrong key)")
    }
}

/// The repository's keys, derived from the master secret. Never handed to a backend.
#[derive(Clone)]
pub struct Keys {
    master: [u8; 32],
    cipher: Aes256GcmSiv,
    mac_key: [u8; 32],
    chunker_key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// A fresh random master secret.
    pub fn generate() -> Keys {
        Keys::from_master(random_bytes())
    }

    pub fn from_master(master: [u8; 32]) -> Keys {
        let enc = blake3::derive_key(CTX_ENC, &master);
        Keys {
            master,
            cipher: Aes256GcmSiv::new_from_slice(&enc).expect("32-byte key"),
            mac_key: blake3::derive_key(CTX_MAC, &master),
            chunker_key: blake3::derive_key(CTX_CHUNKER, &master),
        }
    }

    /// The keyed BLAKE3 of a blob's plaintext: its id.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.mac_key, plaintext).as_bytes())
    }

    /// Secret bytes from which the chunker's gear table is expanded.
    pub fn chunker_key(&self) -> &[u8; 32] {
        &self.chunker_key
    }

    /// Seals `plaintext` bound to `aad`: `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.seal_with(aad, plaintext.len(), |out| out.extend_from_slice(plaintext))
    }

    /// Like `seal`, for a plaintext that `write` appends to the buffer (about `hint` bytes),
    /// encrypted where it lies, so the plaintext is not copied again.
    pub fn seal_with(&self, aad: &[u8], hint: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::with_capacity(NONCE_LEN + hint + TAG_LEN);
        let nonce: [u8; NONCE_LEN] = random_bytes();
        out.extend_from_slice(&nonce);
        write(&mut out);
        let tag = self
            .cipher
            .encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut out[NONCE_LEN..]).into())
            .expect("AES-GCM-SIV accepts plaintexts below 2^36 bytes");
        out.extend_from_slice(&tag);
        out
    }

    /// Opens sealed bytes; fails closed on any modification or a different `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut buf = Vec::new();
        self.open_into(aad, sealed, &mut buf)?;
        Ok(buf)
    }

    /// Like `open`, into `buf` (cleared first), so a caller opening many blobs reuses one
    /// buffer. On failure `buf` holds garbage.
    pub fn open_into(&self, aad: &[u8], sealed: &[u8], buf: &mut Vec<u8>) -> Result<(), OpenError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        buf.clear();
        buf.extend_from_slice(ct);
        let nonce = Nonce::try_from(nonce).expect("split at NONCE_LEN");
        let tag = Tag::try_from(tag).expect("split at TAG_LEN");
        self.cipher
            .decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag)
            .map_err(|_| OpenError)
    }
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("operating system random source failed");
    b
}

/// Argon2id cost parameters, stored in each key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        // The floor the format promises: t=3, m=64 MiB, p=4 (borg 2's choice).
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 4,
        }
    }
}

/// Argon2id ceilings accepted in key files (docs/format.md §3.3).
pub const KDF_MAX_M_KIB: u32 = 1024 * 1024;
pub const KDF_MAX_T: u32 = 16;
pub const KDF_MAX_P: u32 = 16;
/// `m_kib * t`, in KiB-passes: 1 GiB x 4 passes.
pub const KDF_MAX_COST: u64 = 4 * 1024 * 1024;

impl KdfParams {
    /// Parameters weaker than the floor are refused when reading a key file, so a tampered key
    /// file cannot quietly lower the cost of guessing the password.
    pub fn check(&self) -> Result<()> {
        let floor = KdfParams::default();
        if self.m_kib < floor.m_kib || self.t < floor.t || self.p < floor.p {
            return Err(Error::Invalid(format!(
                "Argon2id parameters m={} KiB t={} p={} are below the minimum m={} t={} p={}",
                self.m_kib, self.t, self.p, floor.m_kib, floor.t, floor.p
            )));
        }
        // The ceiling bounds what a planted key file can make every open cost: at most about
        // 1 GiB x 4 passes of memory work (a few seconds) per key file tried.
        if self.m_kib > KDF_MAX_M_KIB
            || self.t > KDF_MAX_T
            || self.p > KDF_MAX_P
            || u64::from(self.m_kib) * u64::from(self.t) > KDF_MAX_COST
        {
            return Err(Error::Invalid(format!(
                "Argon2id parameters m={} KiB t={} p={} are above the maximum this build accepts",
                self.m_kib, self.t, self.p
            )));
        }
        Ok(())
    }
}

/// A key file: the master secret sealed under a password-derived key. Stored as JSON under
/// `keys/<BLAKE3 of the file>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    pub hostname: String,
    pub username: String,
    pub kdf: String,
    #[serde(flatten)]
    pub params: KdfParams,
    #[serde(with = "hex::serde")]
    pub salt: [u8; 32],
    #[serde(with = "hex::serde")]
    pub data: Vec<u8>,
}

fn wrapping_key(password: &[u8], salt: &[u8; 32], params: KdfParams) -> Result<Keys> {
    Ok(Keys::from_master(argon2id(password, salt, params)?))
}

/// Argon2id v1.3 with a 32-byte output. The lanes are filled on rayon's threads (the argon2
/// crate's `parallel` feature): the same bytes, about half the wall time on two cores.
fn argon2id(password: &[u8], salt: &[u8; 32], params: KdfParams) -> Result<[u8; 32]> {
    params.check()?;
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|e| Error::Invalid(format!("Argon2id parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; 32];
    a.hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::Invalid(format!("Argon2id: {e}")))?;
    Ok(out)
}

impl KeyFile {
    /// Wraps `keys`' master secret under `password`.
    pub fn create(
        keys: &Keys,
        password: &[u8],
        params: KdfParams,
        hostname: &str,
        username: &str,
        created: &str,
    ) -> Result<KeyFile> {
        let salt = random_bytes();
        let wrap = wrapping_key(password, &salt, params)?;
        Ok(KeyFile {
            version: 1,
            created: created.to_string(),
            hostname: hostname.to_string(),
            username: username.to_string(),
            kdf: "argon2id".into(),
            params,
            salt,
            data: wrap.seal(KEYFILE_AAD, &keys.master),
        })
    }

    /// Unwraps the master secret; `Ok(None)` means the password does not open this key file.
    pub fn open(&self, password: &[u8]) -> Result<Option<Keys>> {
        if self.version != 1 || self.kdf != "argon2id" {
            return Err(Error::Invalid(format!(
                "key file version {} / kdf {:?} is not supported",
                self.version, self.kdf
            )));
        }
        let wrap = wrapping_key(password, &self.salt, self.params)?;
        match wrap.open(KEYFILE_AAD, &self.data) {
            Ok(m) if m.len() == 32 => {
                let mut master = [0u8; 32];
                master.copy_from_slice(&m);
                Ok(Some(Keys::from_master(master)))
            }
            Ok(_) => Err(Error::Invalid(
                "key file holds a master key of the wrong length".into(),
            )),
            Err(OpenError) => Ok(None),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("key file serializes");
        v.push(b'\n');
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyFile, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn open_accepts_the_reference_implementation_and_rejects_tampering() {
        // Sealed by OpenSSL's AES-256-GCM-SIV (python cryptography 48, `AESGCMSIV(key)
        // .encrypt(nonce, plaintext, aad)`): the format stays readable whatever aes-gcm-siv
        // version builds cista.
        let key: Vec<u8> = (0..32).collect();
        let nonce: Vec<u8> = (100..112).collect();
        let plaintext: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let aad = b"cista pack header v1";
        let keys = Keys {
            master: [0; 32],
            cipher: Aes256GcmSiv::new_from_slice(&key).unwrap(),
            mac_key: [0; 32],
            chunker_key: [0; 32],
        };
        let ct_tag = hex::decode(concat!(
            "d7415165c3d8179e2339d9d8ab69e8391c5e831201138bcf231d51e008173525da26b80f3fab4940bfcbf7ea",
            "36c8ff492f1e95f89c7b3c8856a1c4d62d96e2e57b953355b61ac6559144c2fdc664457c57b8262c8347c002",
            "41a47bbbcf3048700985aaa46382295993c1e9530f0b74b4d1b04ded061e47ba5aabf7bb4416552418140726",
            "fce5ce57429274799c8dc1b9a234367290f011b4bcbba07ec6900daf83eb58fd38b955d61031503f98969d9b",
            "ce154127f4d86c3bbfe19ced7b015ec1f87be5830e617001c57e654094871ecfa9486e5f98b9e5fc119062eb",
            "4070816aad0be7c7012dd2154a015c627e250849469f60e2f014325a27aeb04c0171ff282475d5b2944f6179",
            "51c37f90879afff78a25ee02b86391d86594ee97eb88c2b03bd9e24629e96cf63b9f311be9d64bf156edc074",
            "7b261623a3afdf20e6b48418060603a5e96538b2866767fbc8e9f18f6273132bf9aa420aaf64fb1e7c615936",
            "922b1d8a1bbba4a944137a3bceddfec68ef2c89e24a7cd897d7755004f739ba58101538a206e00980c088b3f",
            "b0449d630e573495a5c3a58dc5784d246da4abb47db4effa395d31c7e6607c3933b9f9027a20ff2330e2456f",
            "bc56316a7759128dae7236a7c5f05dadaeaea98c3b26e99b429d112ef6a61a82179c7a2e23076157bb3ffaaf",
            "3083aa03ee2819f9b7fbfff9428b873e6cfb7a59f974cf804b2fe235872351e21657ac554b92faa45803e8a7",
            "fe27a7c6ab47b356cc8375aa43a5304af0ff7c5420b8e1ec267e68354ac1e14e1a746b539f24f76976904e92",
            "94fad6d90088e12a5a2a5b24f4e17a2085d0215a7f95b44b308d9150e2b2885e45383bfa1f7edc4becfc80cd",
            "756e90a3d82024e9d9c2e1ab361ca9565f867e78231fc0c03771ef05c840d4705252695bac0746183594b888",
            "dfc23ad04a68440fbd8317cd91176984d0085a5ec393165bd2749cab8b22332600d8a8ca054e52ef564607a8",
            "23069aa3cc4daf83e405e79ae0b969e849f4d7f08859ef8e5faa67fe5dd5d21f5934e6feef8a14d56d691a45",
            "58e7d4224993644a1a31fe42ddc0a5174972d0c861324bb32cc98469455ca0782adf11304c5577e00f2e61b7",
            "1837dcca32b451ec6a7aa5b2129f8fc12652323689a1b9795755c244b4e4dc3917e6082ad54ac94f5ccf6589",
            "0398eef876fad657d90ce0320f5b0dcdefad0bdc4656b85a36721e34c30c092f96db7ddebefa219274d02148",
            "009d5de7fa66869a3793fcad746faaa4001b082dead8aaa205fd4a31fca52600bc3fc71775a9e56d1ae730b8",
            "0b6de3bb397caa8eec350e5867554a110f84c3ba1fde82877602bf1f8aeb49baf0d7e8cd342defe887901921",
            "235671640ddb9469556fe762dfe8df35b3554a3e779570804d3e766d6e77d4512016974efcb7f1b0fdd5fb78",
            "fca83afb",
        )).unwrap();
        let sealed = [nonce, ct_tag].concat();
        assert_eq!(keys.open(aad, &sealed).unwrap(), plaintext);
        assert!(keys.open(b"another aad", &sealed).is_err());
        for at in [0, 12, 500, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(keys.open(aad, &bad).is_err(), "flip at {at} accepted");
        }
        // And our own sealing round-trips under the same key.
        let again = keys.seal(aad, &plaintext);
        assert_eq!(keys.open(aad, &again).unwrap(), plaintext);
    }

    #[test]
    fn argon2id_matches_the_reference_implementation() {
        // Expected bytes from the reference C implementation (argon2-cffi 25.1,
        // `hash_secret_raw(..., time_cost=3, memory_cost=65536, parallelism=4, hash_len=32,
        // type=ID)`), so key files stay readable whatever argon2 crate version or lane
        // scheduling builds them.
        let salt: [u8; 32] = std::array::from_fn(|i| i as u8);
        let out = argon2id(b"correct horse battery staple", &salt, KdfParams::default()).unwrap();
        assert_eq!(
            hex::encode(out),
            "0b220637b2f1ea0425e3c3e4ea5c5c14fd91b0f26b5726839a04f2e387f75f73"
        );
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let k = Keys::from_master([7; 32]);
            let s = k.seal(&aad, &data);
            prop_assert_eq!(s.len(), data.len() + SEAL_OVERHEAD);
            prop_assert_eq!(k.open(&aad, &s).unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_fails(data in proptest::collection::vec(any::<u8>(), 1..512), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let k = Keys::from_master([9; 32]);
            let mut s = k.seal(b"x", &data);
            let i = pos.index(s.len());
            s[i] ^= 1 << bit;
            prop_assert!(k.open(b"x", &s).is_err());
        }
    }

    proptest! {
        #[test]
        fn key_file_encoding_round_trip(host in ".*", user in ".*", salt in any::<[u8; 32]>(), data in proptest::collection::vec(any::<u8>(), 0..100), m in any::<u32>(), t in any::<u32>(), p in any::<u32>()) {
            let kf = KeyFile {
                version: 1, created: "now".into(), hostname: host, username: user, kdf: "argon2id".into(),
                params: KdfParams { m_kib: m, t, p }, salt, data,
            };
            prop_assert_eq!(KeyFile::decode(&kf.encode()).unwrap(), kf);
        }
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let k = Keys::from_master([1; 32]);
        let s = k.seal(b"a", b"hello");
        assert!(k.open(b"b", &s).is_err());
        assert!(Keys::from_master([2; 32]).open(b"a", &s).is_err());
        assert!(k.open(b"a", &s[..10]).is_err());
    }

    #[test]
    fn subkeys_differ() {
        let k = Keys::from_master([3; 32]);
        assert_ne!(k.mac_key, k.chunker_key);
        assert_ne!(k.blob_id(b"x"), Id::of_bytes(b"x"));
    }

    #[test]
    fn key_file_round_trip() {
        let k = Keys::generate();
        let kf = KeyFile::create(&k, b"pw", KdfParams::default(), "h", "u", "t").unwrap();
        let decoded = KeyFile::decode(&kf.encode()).unwrap();
        assert_eq!(decoded, kf);
        let opened = decoded.open(b"pw").unwrap().unwrap();
        assert_eq!(opened.master, k.master);
        assert!(decoded.open(b"wrong").unwrap().is_none());
    }

    #[test]
    fn weak_kdf_refused() {
        let p = KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        };
        assert!(p.check().is_err());
    }
}
