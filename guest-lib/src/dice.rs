//! The DICE handover pvmfw leaves the payload: a page named by a `/reserved-memory`
//! node `compatible = "google,open-dice"` (`no-map`), holding the CBOR map
//! `{1: CDI_Attest, 2: CDI_Seal, 3: DICE chain}` ([`pvmkit_abi::dice_handover`]) and zeroes.
//! The page is the VM's own memory, never shared with the host.
//!
//! A payload finds it with [`region`], takes its secrets with [`take`] (which copies
//! them out and wipes the page, so nothing later in the boot can read them again), or
//! reads it in place with [`parse`] and wipes it with [`wipe`]. Nothing here needs
//! guest-lib's runtime.
//!
//! ```
//! use guest_lib::dice::{parse, DiceError};
//! use pvmkit_abi::dice_handover::HandoverError;
//!
//! // A page of zeroes holds no handover: refused by name.
//! assert_eq!(parse(&[0; 4096]).unwrap_err(), DiceError::Handover(HandoverError::NotAMap));
//! ```

use alloc::vec::Vec;
use core::fmt;

use pvmkit_abi::dice_handover::{DiceHandover, HandoverError, CDI_SIZE};
use pvmkit_abi::dt;

use crate::device_tree::GuestDt;

/// Why the handover could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiceError {
    /// The DT has no `google,open-dice` region.
    NoRegion,
    /// The region is not whole, aligned 4 KiB pages.
    BadRegion {
        /// Its base.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// The page does not hold a handover.
    Handover(HandoverError),
    /// Something other than zeroes follows the handover in its page.
    DirtyPadding,
}

impl fmt::Display for DiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRegion => write!(f, "the device tree names no google,open-dice region"),
            Self::BadRegion { base, size } => {
                write!(f, "the DICE region {base:#x} (+{size:#x}) is not whole aligned 4 KiB pages")
            }
            Self::Handover(e) => write!(f, "{e}"),
            Self::DirtyPadding => write!(f, "bytes other than zero follow the DICE handover in its page"),
        }
    }
}

const PAGE: u64 = 4096;

/// The handover's region (base, size), from the DT.
pub fn region(dt: &GuestDt<'_>) -> Result<(u64, u64), DiceError> {
    let (base, size) = dt.reserved_memory(dt::OPEN_DICE).ok_or(DiceError::NoRegion)?;
    if !base.is_multiple_of(PAGE) || !size.is_multiple_of(PAGE) || size == 0 || base.checked_add(size).is_none() {
        return Err(DiceError::BadRegion { base, size });
    }
    Ok((base, size))
}

/// Reads the handover at the start of `page`; the rest of the page must be zero.
pub fn parse(page: &[u8]) -> Result<DiceHandover<'_>, DiceError> {
    let (handover, rest) = DiceHandover::parse_prefix(page).map_err(DiceError::Handover)?;
    if rest.iter().any(|&b| b != 0) {
        return Err(DiceError::DirtyPadding);
    }
    Ok(handover)
}

/// The payload's DICE secrets and chain, taken out of the page. The CDIs are zeroed
/// when this is dropped.
pub struct Dice {
    /// CDI_Attest: the payload's identity secret.
    pub cdi_attest: [u8; CDI_SIZE],
    /// CDI_Seal: the payload's sealing secret.
    pub cdi_seal: [u8; CDI_SIZE],
    /// The DICE chain (CBOR), ending in the payload's certificate.
    pub chain: Vec<u8>,
}

impl Drop for Dice {
    fn drop(&mut self) {
        wipe_bytes(&mut self.cdi_attest);
        wipe_bytes(&mut self.cdi_seal);
    }
}

impl fmt::Debug for Dice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dice {{ chain: {} bytes, .. }}", self.chain.len())
    }
}

/// Copies the handover out of `[base, base + size)` and wipes the region, whatever it
/// held (a malformed page is wiped too: a secret never outlives the call).
///
/// # Safety
///
/// The region must be this VM's memory, mapped and writable, used by nothing else
/// (pvmfw's `google,open-dice` region, before the OS hands the memory out).
pub unsafe fn take(base: u64, size: u64) -> Result<Dice, DiceError> {
    // SAFETY: guaranteed by the caller; the slice ends before the wipe.
    let page = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, size as usize) };
    let taken = parse(page).map(|h| Dice { cdi_attest: *h.cdi_attest, cdi_seal: *h.cdi_seal, chain: h.chain.to_vec() });
    wipe_bytes(page);
    taken
}

/// Zeroes `[base, base + size)`.
///
/// # Safety
///
/// As for [`take`].
pub unsafe fn wipe(base: u64, size: u64) {
    // SAFETY: guaranteed by the caller.
    wipe_bytes(unsafe { core::slice::from_raw_parts_mut(base as *mut u8, size as usize) });
}

/// Zeroes `bytes` with volatile writes, which the compiler may not drop as dead.
fn wipe_bytes(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: a valid, exclusive byte.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_with(chain: &[u8]) -> Vec<u8> {
        let mut page = alloc::vec![0xa3, 0x01, 0x58, 32];
        page.extend([0x11; 32]);
        page.extend([0x02, 0x58, 32]);
        page.extend([0x22; 32]);
        page.push(0x03);
        page.extend_from_slice(chain);
        page.resize(4096, 0);
        page
    }

    #[test]
    fn the_handover_is_taken_and_the_page_wiped() {
        let mut page = page_with(&[0x82, 0x41, 0xaa, 0x41, 0xbb]);
        // SAFETY: a buffer of ours, used by nothing else.
        let dice = unsafe { take(page.as_mut_ptr() as u64, page.len() as u64) }.unwrap();
        assert_eq!((dice.cdi_attest, dice.cdi_seal), ([0x11; 32], [0x22; 32]));
        assert_eq!(dice.chain, [0x82, 0x41, 0xaa, 0x41, 0xbb]);
        assert!(page.iter().all(|&b| b == 0), "the page is wiped");
        assert_eq!(alloc::format!("{dice:?}"), "Dice { chain: 5 bytes, .. }", "no CDI in Debug");
        // Dropped, the CDIs are zero (read through ManuallyDrop: the arrays' memory
        // stays ours after the drop glue ran).
        let mut dice = core::mem::ManuallyDrop::new(dice);
        // SAFETY: dropped once; only the plain arrays are read after.
        unsafe { core::mem::ManuallyDrop::drop(&mut dice) };
        assert_eq!((dice.cdi_attest, dice.cdi_seal), ([0; 32], [0; 32]));
    }

    #[test]
    fn a_malformed_page_is_refused_by_name_and_wiped_all_the_same() {
        let mut page = page_with(&[0x82, 0x5f, 0x41]); // an indefinite string broken off
                                                       // SAFETY: as above.
        let e = unsafe { take(page.as_mut_ptr() as u64, page.len() as u64) }.unwrap_err();
        assert_eq!(e, DiceError::Handover(HandoverError::MalformedCbor));
        assert!(page.iter().all(|&b| b == 0));
        let mut dirty = page_with(&[0x82, 0x40, 0x40]);
        dirty[4000] = 1;
        assert_eq!(parse(&dirty).unwrap_err(), DiceError::DirtyPadding);
        assert_eq!(parse(&page_with(&[0x81, 0x40])).unwrap_err(), DiceError::Handover(HandoverError::NotAChain));
        // Each error says what it is.
        let said = |e: DiceError| alloc::format!("{e}");
        assert!(said(DiceError::NoRegion).contains("google,open-dice"));
        assert!(said(DiceError::BadRegion { base: 0x800, size: 0x1000 }).contains("0x800"));
        assert!(said(DiceError::DirtyPadding).contains("follow the DICE handover"));
        assert!(said(DiceError::Handover(HandoverError::NoChain)).contains("no chain"));
    }

    #[test]
    fn the_region_is_found_in_the_dt_and_must_be_whole_pages() {
        let dt = |base: u64, size: u64| {
            let mut w = vm_fdt::FdtWriter::new().unwrap();
            let root = w.begin_node("").unwrap();
            w.property_u32("#address-cells", 2).unwrap();
            w.property_u32("#size-cells", 2).unwrap();
            let reserved = w.begin_node("reserved-memory").unwrap();
            w.property_u32("#address-cells", 2).unwrap();
            w.property_u32("#size-cells", 2).unwrap();
            let node = w.begin_node("dice").unwrap();
            w.property_string("compatible", "google,open-dice").unwrap();
            w.property_array_u64("reg", &[base, size]).unwrap();
            w.property_null("no-map").unwrap();
            w.end_node(node).unwrap();
            w.end_node(reserved).unwrap();
            w.end_node(root).unwrap();
            w.finish().unwrap()
        };
        let blob = dt(0x8008_0000, 0x1000);
        assert_eq!(region(&GuestDt::read(&blob).unwrap()), Ok((0x8008_0000, 0x1000)));
        let blob = dt(0x8008_0800, 0x1000);
        assert_eq!(
            region(&GuestDt::read(&blob).unwrap()),
            Err(DiceError::BadRegion { base: 0x8008_0800, size: 0x1000 })
        );
        let blob = dt(0x8008_0000, 0);
        assert!(region(&GuestDt::read(&blob).unwrap()).is_err());
    }
}
