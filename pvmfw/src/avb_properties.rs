//! The vbmeta properties pvmfw honours, as AVF defines them:
//! - `com.android.virt.cap`: a `|`-separated list of capabilities (`remote_attest`,
//!   `secretkeeper_protection`, `trusty_security_vm`; `supports_uefi_boot` is known but
//!   this pvmfw boots no UEFI payload, so it is refused);
//! - `com.android.virt.name`: the VM's name (UTF-8);
//! - `com.android.virt.page_size`: the guest's page size in KiB (this pvmfw boots 4 KiB
//!   guests only; absent means 4).
//!
//! pvmfw fails closed: an unknown key, a key given twice, an unknown or repeated
//! capability and any other page size are refused by name (AOSP's pvmfw also refuses
//! unknown capabilities; refusing unknown keys is pvmkit's choice, so that a property
//! a newer AVF gives meaning to is never silently ignored).

use core::fmt;

use pvmkit_abi::avb::{AvbError, Descriptor};

/// The capabilities key.
pub const CAPABILITIES: &[u8] = b"com.android.virt.cap";
/// The name key.
pub const NAME: &[u8] = b"com.android.virt.name";
/// The page-size key.
pub const PAGE_SIZE: &[u8] = b"com.android.virt.page_size";

/// The capabilities a payload may ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `remote_attest`: the VM may ask for remote attestation.
    pub remote_attest: bool,
    /// `secretkeeper_protection`: rollback protection is the payload's (Secretkeeper).
    pub secretkeeper_protection: bool,
    /// `trusty_security_vm`: the payload is a Trusty security VM.
    pub trusty_security_vm: bool,
}

/// What a payload's properties say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Properties<'a> {
    /// The capabilities asked for.
    pub capabilities: Capabilities,
    /// The VM's name, if given.
    pub name: Option<&'a str>,
}

/// Why a payload's properties were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyError<'a> {
    /// The descriptors are malformed.
    Format(AvbError),
    /// A key pvmfw does not know.
    UnknownKey(&'a [u8]),
    /// A key given more than once.
    RepeatedKey(&'a [u8]),
    /// A capability pvmfw does not know.
    UnknownCapability(&'a [u8]),
    /// A capability given twice.
    RepeatedCapability(&'a [u8]),
    /// A capability pvmfw knows but does not support.
    UnsupportedCapability(&'a [u8]),
    /// A page size other than 4 KiB.
    PageSize(&'a [u8]),
    /// A name that is not UTF-8.
    BadName,
}

impl fmt::Display for PropertyError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text =
            |b: &[u8]| core::str::from_utf8(b).map_or_else(|_| "(not UTF-8)".into(), alloc::string::String::from);
        match self {
            Self::Format(e) => write!(f, "{e}"),
            Self::UnknownKey(k) => write!(f, "unknown vbmeta property '{}'", text(k)),
            Self::RepeatedKey(k) => write!(f, "vbmeta property '{}' given twice", text(k)),
            Self::UnknownCapability(c) => write!(f, "unknown capability '{}'", text(c)),
            Self::RepeatedCapability(c) => write!(f, "capability '{}' given twice", text(c)),
            Self::UnsupportedCapability(c) => write!(f, "capability '{}' is not supported by this pvmfw", text(c)),
            Self::PageSize(v) => write!(f, "page size '{}' KiB: this pvmfw boots 4 KiB guests only", text(v)),
            Self::BadName => write!(f, "the VM name is not UTF-8"),
        }
    }
}

fn capabilities(value: &[u8]) -> Result<Capabilities, PropertyError<'_>> {
    let mut caps = Capabilities::default();
    for name in value.split(|&b| b == b'|') {
        let slot = match name {
            b"remote_attest" => &mut caps.remote_attest,
            b"secretkeeper_protection" => &mut caps.secretkeeper_protection,
            b"trusty_security_vm" => &mut caps.trusty_security_vm,
            b"supports_uefi_boot" => return Err(PropertyError::UnsupportedCapability(name)),
            _ => return Err(PropertyError::UnknownCapability(name)),
        };
        if core::mem::replace(slot, true) {
            return Err(PropertyError::RepeatedCapability(name));
        }
    }
    Ok(caps)
}

/// Reads the properties among `descriptors` (other descriptors are not theirs).
pub fn read<'a>(
    descriptors: impl Iterator<Item = Result<Descriptor<'a>, AvbError>>,
) -> Result<Properties<'a>, PropertyError<'a>> {
    let mut properties = Properties::default();
    let mut seen = [false; 3];
    for descriptor in descriptors {
        let Descriptor::Property { key, value } = descriptor.map_err(PropertyError::Format)? else { continue };
        let index = match key {
            CAPABILITIES => 0,
            NAME => 1,
            PAGE_SIZE => 2,
            _ => return Err(PropertyError::UnknownKey(key)),
        };
        if core::mem::replace(&mut seen[index], true) {
            return Err(PropertyError::RepeatedKey(key));
        }
        match index {
            0 => properties.capabilities = capabilities(value)?,
            1 => properties.name = Some(core::str::from_utf8(value).map_err(|_| PropertyError::BadName)?),
            _ if value == b"4" => {}
            _ => return Err(PropertyError::PageSize(value)),
        }
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props<'a>(pairs: &[(&'a [u8], &'a [u8])]) -> Result<Properties<'a>, PropertyError<'a>> {
        let descriptors: alloc::vec::Vec<_> =
            pairs.iter().map(|&(key, value)| Ok(Descriptor::Property { key, value })).collect();
        read(descriptors.into_iter())
    }

    /// avbtool's vector carries `com.android.virt.cap:remote_attest` and
    /// `com.android.virt.name:pvmkit-test` (`abi/testdata/avb/README.md`).
    #[test]
    fn reads_the_vectors_properties() {
        let payload = include_bytes!("../../abi/testdata/avb/sha256-rsa4096.img");
        let vbmeta = pvmkit_abi::avb::SignedPayload::parse(payload).unwrap().vbmeta;
        let p = read(vbmeta.descriptors()).unwrap();
        assert_eq!(p.capabilities, Capabilities { remote_attest: true, ..Capabilities::default() });
        assert_eq!(p.name, Some("pvmkit-test"));
    }

    #[test]
    fn capabilities_page_size_and_name() {
        let all = props(&[(CAPABILITIES, b"remote_attest|secretkeeper_protection|trusty_security_vm")]).unwrap();
        assert_eq!(
            all.capabilities,
            Capabilities { remote_attest: true, secretkeeper_protection: true, trusty_security_vm: true }
        );
        assert_eq!(props(&[(PAGE_SIZE, b"4")]).unwrap(), Properties::default());
        assert_eq!(props(&[]).unwrap(), Properties::default(), "no properties: nothing asked for");
    }

    #[test]
    fn refuses_by_name() {
        use PropertyError::*;
        assert_eq!(props(&[(CAPABILITIES, b"remote_attest|fly")]), Err(UnknownCapability(b"fly")));
        assert_eq!(props(&[(CAPABILITIES, b"")]), Err(UnknownCapability(b"")), "an empty list names nothing");
        assert_eq!(props(&[(CAPABILITIES, b"remote_attest|remote_attest")]), Err(RepeatedCapability(b"remote_attest")));
        assert_eq!(props(&[(CAPABILITIES, b"supports_uefi_boot")]), Err(UnsupportedCapability(b"supports_uefi_boot")));
        assert_eq!(props(&[(PAGE_SIZE, b"16")]), Err(PageSize(b"16")));
        assert_eq!(props(&[(PAGE_SIZE, b"4096")]), Err(PageSize(b"4096")), "KiB, not bytes");
        assert_eq!(props(&[(NAME, b"a"), (NAME, b"b")]), Err(RepeatedKey(NAME)));
        assert_eq!(props(&[(b"com.android.virt.other", b"x")]), Err(UnknownKey(b"com.android.virt.other")));
        assert_eq!(props(&[(NAME, b"\xff")]), Err(BadName));
        assert_eq!(PageSize(b"16").to_string(), "page size '16' KiB: this pvmfw boots 4 KiB guests only");
    }
}
