//! `Tree::decode` must never panic; whatever it accepts must survive an encode/decode round trip.
#![no_main]

use cista::format::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut tree) = Tree::decode(data) {
        // `encode` sorts nodes and xattrs in place, so compare against the tree after encoding.
        let enc = tree.encode();
        let again = Tree::decode(&enc).expect("re-encoded tree decodes");
        assert_eq!(again, tree);
    }
});
