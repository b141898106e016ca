//! Which Android profile a new certificate names. pvmkit writes `"android.16"`, the
//! profile Google recommends for new chains (it makes the security version mandatory).
//! A chain's profiles may not go backwards: when the previous certificate names a later
//! Android profile (`android.N`, N > 16), the new one names that profile too. A previous
//! certificate with no profile name, or a name of another family, does not bind us.

use pvmkit_abi::dice_handover::{head, well_formed};

use crate::handover::ChainError;

/// The profile pvmkit's certificates follow.
pub const ANDROID_16: &str = "android.16";

/// The profile name's label as the argument of its CBOR head (major type 1: -1 - n).
const PROFILE_NAME_LABEL: u64 = !(crate::certificate::label::PROFILE_NAME as u64);

/// The profile the next certificate names after a chain whose last certificate names
/// `previous`.
pub fn next_profile(previous: Option<&str>) -> &str {
    match previous.and_then(android_version) {
        Some(n) if n > 16 => previous.unwrap_or(ANDROID_16),
        _ => ANDROID_16,
    }
}

/// `N` of `android.N`.
fn android_version(name: &str) -> Option<u32> {
    name.strip_prefix("android.")?.parse().ok()
}

/// The profile name of the last certificate of `chain` (a definite-length array whose
/// items after the first are COSE_Sign1 certificates), if it names one; `None` for a
/// chain that is only its root key.
pub fn last_certificate_profile(chain: &[u8]) -> Result<Option<&str>, ChainError> {
    let bad = ChainError::NotAnArray;
    let (major, Some(count), mut rest) = head(chain).ok_or(bad)? else { return Err(bad) };
    if major != 4 || count == 0 {
        return Err(bad);
    }
    if count == 1 {
        return Ok(None);
    }
    for _ in 1..count {
        rest = &rest[well_formed(rest).map_err(|_| bad)?..];
    }
    // The last item: an optional COSE_Sign1 tag (18), then [protected, unprotected,
    // payload, signature].
    let mut cert = rest;
    if let Some((6, Some(18), after)) = head(cert) {
        cert = after;
    }
    let (4, Some(4), mut fields) = head(cert).ok_or(bad)? else { return Err(bad) };
    for _ in 0..2 {
        fields = &fields[well_formed(fields).map_err(|_| bad)?..];
    }
    let (2, Some(len), after) = head(fields).ok_or(bad)? else { return Err(bad) };
    let payload = usize::try_from(len).ok().and_then(|len| after.get(..len)).ok_or(bad)?;
    let (5, Some(pairs), mut entries) = head(payload).ok_or(bad)? else { return Err(bad) };
    for _ in 0..pairs {
        let key = head(entries).ok_or(bad)?;
        entries = &entries[well_formed(entries).map_err(|_| bad)?..];
        let value = entries;
        entries = &entries[well_formed(entries).map_err(|_| bad)?..];
        if let ((1, Some(PROFILE_NAME_LABEL), _), Some((3, Some(len), text))) = (key, head(value)) {
            let text = usize::try_from(len).ok().and_then(|len| text.get(..len)).ok_or(bad)?;
            return core::str::from_utf8(text).map(Some).map_err(|_| bad);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::{certificate, cose_key};
    use crate::{Config, InputValues, Mode};
    use alloc::vec::Vec;

    #[test]
    fn profiles_never_go_backwards() {
        assert_eq!(next_profile(None), ANDROID_16);
        assert_eq!(next_profile(Some("android.14")), ANDROID_16);
        assert_eq!(next_profile(Some("android.16")), ANDROID_16);
        assert_eq!(next_profile(Some("android.18")), "android.18");
        assert_eq!(next_profile(Some("opendice.example")), ANDROID_16);
        // Another spelling of 16 is not a later profile: the canonical name is written.
        assert_eq!(next_profile(Some("android.016")), ANDROID_16);
    }

    #[test]
    fn the_last_certificates_profile_is_read() {
        let input = InputValues {
            code_hash: [1; 64],
            code_descriptor: &[],
            config: Config::Inline([2; 64]),
            authority_hash: [3; 64],
            authority_descriptor: &[],
            mode: Mode::Normal,
            hidden: [0; 64],
        };
        let chain = |profiles: &[Option<&str>]| {
            let mut out = alloc::vec![0x80 | (profiles.len() as u8 + 1)];
            out.extend(cose_key(&[9; 32]));
            for p in profiles {
                out.extend(certificate(&[5; 32], &[6; 32], &input, *p));
            }
            out
        };
        assert_eq!(last_certificate_profile(&chain(&[None])), Ok(None));
        assert_eq!(last_certificate_profile(&chain(&[Some("android.14"), Some("android.18")])), Ok(Some("android.18")));
        assert_eq!(last_certificate_profile(&chain(&[Some("android.18"), None])), Ok(None));
        // A root key alone has no profile; an empty chain, or something else in the
        // last place, is refused.
        let mut key_only = alloc::vec![0x81];
        key_only.extend(cose_key(&[9; 32]));
        assert_eq!(last_certificate_profile(&key_only), Ok(None));
        assert_eq!(last_certificate_profile(&[0x80]), Err(ChainError::NotAnArray));
        let not_cert: Vec<u8> = [&[0x82, 0x40][..], &[0x83, 1, 2, 3]].concat();
        assert_eq!(last_certificate_profile(&not_cert), Err(ChainError::NotAnArray));
        assert_eq!(last_certificate_profile(&[0xa1, 0x01, 0x02]), Err(ChainError::NotAnArray), "a map");
    }
}
