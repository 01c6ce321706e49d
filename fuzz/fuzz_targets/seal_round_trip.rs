//! `seal` then `open` returns the plaintext; flipping any one bit of the sealed bytes, or
//! changing the associated data, makes `open` fail.
//!
//! Input layout: `[aad_len u8][flip_pos u16 LE][flip_bit u8][aad (aad_len, clamped)][plaintext]`.
#![no_main]

use std::sync::OnceLock;

use cista::crypto::{Keys, SEAL_OVERHEAD};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys::from_master([7u8; 32]))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let aad_len = (data[0] as usize).min(data.len() - 4);
    let flip_pos = u16::from_le_bytes([data[1], data[2]]) as usize;
    let flip_bit = data[3] % 8;
    let (aad, plaintext) = data[4..].split_at(aad_len);

    let k = keys();
    let sealed = k.seal(aad, plaintext);
    assert_eq!(sealed.len(), plaintext.len() + SEAL_OVERHEAD);
    assert_eq!(k.open(aad, &sealed).expect("fresh seal opens"), plaintext);

    let mut tampered = sealed.clone();
    let i = flip_pos % tampered.len();
    tampered[i] ^= 1 << flip_bit;
    assert!(k.open(aad, &tampered).is_err(), "open accepted a flipped bit at {i}");

    let mut other_aad = aad.to_vec();
    other_aad.push(0);
    assert!(k.open(&other_aad, &sealed).is_err(), "open accepted different aad");

    // Truncations must fail cleanly, never panic.
    assert!(k.open(aad, &sealed[..sealed.len() - 1]).is_err());
});
