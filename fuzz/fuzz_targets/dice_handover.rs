//! The DICE handover as pvmfw receives it and as a payload reads its page
//! (`pvmkit_abi::dice_handover`), and the chain walks pvmfw makes on it (`pvmkit_dice`): on
//! any bytes they return, never panic. An accepted handover's chain is one well-formed
//! item inside the input; a chain that takes a certificate keeps its items byte for
//! byte and grows by one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmkit_abi::dice_handover::{head, well_formed, DiceHandover};
use pvmkit_dice::handover::append_certificate;
use pvmkit_dice::profile::{last_certificate_profile, next_profile};

fuzz_target!(|data: &[u8]| {
    let _ = well_formed(data);
    let _ = DiceHandover::parse(data);
    if let Ok((handover, rest)) = DiceHandover::parse_prefix(data) {
        let chain = handover.chain;
        assert_eq!(well_formed(chain), Ok(chain.len()));
        assert_eq!(72 + chain.len() + rest.len(), data.len());
        let _ = next_profile(last_certificate_profile(chain).ok().flatten());
        let grown = append_certificate(chain, &[0x40]).expect("a parsed chain takes a certificate");
        let (_, _, items) = head(chain).expect("a parsed chain has a head");
        assert!(grown.ends_with(&[items, &[0x40]].concat()), "the chain's items are kept");
    }
    // The same walks on the bytes as a bare chain.
    let _ = last_certificate_profile(data);
    let _ = append_certificate(data, &[]);
});
