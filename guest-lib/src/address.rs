//! Guest physical addresses (IPAs): what MEM_SHARE, the MMIO guard and a device are
//! given. They are `pvmkit_abi`'s types, so a guest's virtual address cannot be passed
//! by mistake where an IPA is meant.

pub use pvmkit_abi::address::{Ipa, Page};

/// The IPA of `object` in a guest whose memory is identity mapped, as guest-lib's
/// runtime maps it (a foreign OS with a mapping of its own translates its addresses
/// itself).
pub fn ipa_of<T: ?Sized>(object: *const T) -> Ipa {
    Ipa(object.cast::<u8>() as usize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_objects_ipa_is_its_address_under_an_identity_map() {
        let page = [0u8; 16];
        assert_eq!(ipa_of(&page).get(), page.as_ptr() as u64);
        assert_eq!(ipa_of(&page[4..]).get(), page.as_ptr() as u64 + 4, "a slice: its first byte");
    }
}
