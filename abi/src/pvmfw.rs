//! pvmfw's contract with hyp and the VMM (below it), pvmkit (which builds its image and
//! plays the bootloader) and the payload (above it). The formats are Android AVF's (AOSP
//! `guest/pvmfw/README.md`); the memory map is pvmkit's.
//!
//! - pvmfw lives in a guest-private region [`PVMFW_BASE`], [`PVMFW_SIZE`] long, right
//!   below the payload's RAM (where crosvm puts it, and as large). Its first half holds
//!   the image and, at the next 4 KiB boundary after it, the configuration data the
//!   bootloader appends ([`crate::avf_config`]); its second half
//!   ([`PVMFW_WRITABLE_BASE`]) its data, stack and heap. hyp or the VMM enters it at
//!   [`PVMFW_BASE`] with x0 = the host's DT and x1..x3 = 0.
//! - The payload key is embedded in pvmfw's image at the symbol `__pvmfw_trusted_key`
//!   ([`trusted_key_slot`]), in AVB's public-key format (`avbtool extract_public_key`).
//! - The host's DT names the signed kernel with `/config` `kernel-address` and
//!   `kernel-size`, and a ramdisk with `/chosen` `linux,initrd-start`/`-end`; pvmfw
//!   verifies both in place and enters the kernel at `kernel-address` with x0 = the DT
//!   it rebuilt.
//!
//! ```
//! use pvmkit_abi::pvmfw::{trusted_key, trusted_key_slot};
//!
//! // The slot `pvmkit pvmfw --trusted-key` writes into pvmfw's image.
//! let slot = trusted_key_slot(&[7; 520]).unwrap();
//! assert_eq!(trusted_key(&slot), Some(&[7u8; 520][..]));
//! assert_eq!(trusted_key(&[0; 64]), None);
//! ```

use crate::memory_map::{GUEST_DT_MAX_SIZE, GUEST_RAM_BASE};

/// Size of pvmfw's region (crosvm's for protected VMs).
pub const PVMFW_SIZE: u64 = 4 << 20;
/// pvmfw's region: right below the payload's RAM. pvmfw is linked here.
pub const PVMFW_BASE: u64 = GUEST_RAM_BASE - PVMFW_SIZE;
/// The most bytes of image and appended configuration data: the region's first half.
pub const PVMFW_IMAGE_MAX: u64 = PVMFW_SIZE / 2;
/// Where pvmfw's data, stack and heap begin: the region's second half, so that the
/// configuration data after the image is never under them.
pub const PVMFW_WRITABLE_BASE: u64 = PVMFW_BASE + PVMFW_IMAGE_MAX;
/// The largest host device tree pvmfw accepts. It lies at [`crate::memory_map::GUEST_DT_BASE`] (the DT
/// slot), pvmfw copies it into its own memory before reading it, and the payload's new
/// DT goes in the same slot.
pub const HOST_DT_MAX_SIZE: u64 = 512 << 10;
const _: () = assert!(HOST_DT_MAX_SIZE <= GUEST_DT_MAX_SIZE);
/// The platform's console (QEMU `virt`'s PL011): pvmfw prints through it from the
/// start, before the host's DT is checked, and never takes the console from that DT.
pub const PLATFORM_CONSOLE: u64 = crate::memory_map::QEMU_EARLY_UART;
/// The platform's SMCCC conduit (as a DT `/psci` `method` names it): a pVM calls its
/// hypervisor with HVC. pvmfw uses it from the start, never the host DT's choice.
pub const PLATFORM_CONDUIT: &str = "hvc";
/// Command-line words the host may not pass to the payload, by prefix: the switches of
/// the guest runtime (`guest-lib.`) and of pvmfw itself (`pvmfw.`). pvmfw drops them
/// (and says so); every other word of a printable command line passes unchanged.
pub const RESERVED_BOOTARG_PREFIXES: [&str; 2] = ["guest-lib.", "pvmfw."];

/// First bytes of the embedded-key slot.
pub const TRUSTED_KEY_MAGIC: [u8; 8] = *b"PVMFWKEY";
/// The largest AVB public key: RSA-8192 (8-byte header, n and R² mod n).
pub const TRUSTED_KEY_MAX: usize = 8 + 2 * 1024;
/// Size of the slot: magic, key length u32, reserved u32, the key.
pub const TRUSTED_KEY_SLOT_SIZE: usize = 16 + TRUSTED_KEY_MAX;

/// The page pvmfw writes the payload's DICE handover into: the one after the DT slot,
/// inside the DT area (which no kernel, ramdisk or bounce pool may overlap). The
/// payload finds it by its `/reserved-memory` node (`google,open-dice`, `no-map`); it
/// is never shared with the host.
pub const DICE_HANDOVER_BASE: u64 = crate::memory_map::GUEST_DT_BASE + HOST_DT_MAX_SIZE;
/// Its size: one 4 KiB page, as AVF's pvmfw gives.
pub const DICE_HANDOVER_SIZE: u64 = 4096;
/// The rollback index an RKP VM (a payload asking for `remote_attest`) must carry:
/// AVF's pvmfw embeds its service VM's version and boots no other (AOSP
/// `service_vm_version::VERSION`).
pub const RKP_VM_ROLLBACK_INDEX: u64 = 1;

/// The embedded-key slot as it lies in pvmfw's image.
#[repr(C)]
#[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable)]
pub struct RawTrustedKey {
    /// [`TRUSTED_KEY_MAGIC`].
    pub magic: [u8; 8],
    /// Bytes of `key` used.
    pub key_len: zerocopy::little_endian::U32,
    /// Zero.
    pub reserved: zerocopy::little_endian::U32,
    /// The key in AVB's public-key format, zero-padded.
    pub key: [u8; TRUSTED_KEY_MAX],
}

const _: () = assert!(size_of::<RawTrustedKey>() == TRUSTED_KEY_SLOT_SIZE);

/// The slot carrying `avb_public_key`; `None` if it is empty or too large.
pub fn trusted_key_slot(avb_public_key: &[u8]) -> Option<[u8; TRUSTED_KEY_SLOT_SIZE]> {
    use zerocopy::IntoBytes;
    if avb_public_key.is_empty() || avb_public_key.len() > TRUSTED_KEY_MAX {
        return None;
    }
    let mut raw = RawTrustedKey {
        magic: TRUSTED_KEY_MAGIC,
        key_len: (avb_public_key.len() as u32).into(),
        reserved: 0.into(),
        key: [0; TRUSTED_KEY_MAX],
    };
    raw.key[..avb_public_key.len()].copy_from_slice(avb_public_key);
    let mut slot = [0u8; TRUSTED_KEY_SLOT_SIZE];
    slot.copy_from_slice(raw.as_bytes());
    Some(slot)
}

/// The key in a slot, if the slot is well formed (an empty slot holds none).
pub fn trusted_key(slot: &[u8]) -> Option<&[u8]> {
    use zerocopy::FromBytes;
    let (raw, _) = RawTrustedKey::ref_from_prefix(slot).ok()?;
    let len = raw.key_len.get() as usize;
    let well_formed = raw.magic == TRUSTED_KEY_MAGIC && raw.reserved.get() == 0 && (1..=TRUSTED_KEY_MAX).contains(&len);
    well_formed.then(|| &slot[16..16 + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_slot_round_trips_and_refuses_what_is_not_a_key() {
        let slot = trusted_key_slot(&[5; 1032]).unwrap();
        assert_eq!(trusted_key(&slot), Some(&[5u8; 1032][..]));
        assert_eq!(trusted_key(&[0; TRUSTED_KEY_SLOT_SIZE]), None, "the build-time zeroes");
        assert_eq!(trusted_key(&slot[..40]), None, "truncated");
        let mut long = slot;
        long[8..12].copy_from_slice(&(TRUSTED_KEY_MAX as u32 + 1).to_le_bytes());
        assert_eq!(trusted_key(&long), None);
        assert!(trusted_key_slot(&[]).is_none() && trusted_key_slot(&[1; TRUSTED_KEY_MAX + 1]).is_none());
        assert!(trusted_key_slot(&[1; TRUSTED_KEY_MAX]).is_some(), "an RSA-8192 key fits");
        // crosvm's region, as the memory map comment has it.
        assert_eq!((PVMFW_BASE, PVMFW_SIZE), (0x7fc0_0000, 4 << 20));
        // The largest AVB key: RSA-8192, whose modulus and R² are 1024 bytes each after
        // the 8-byte header (avbtool's 4096-bit key file is 8 + 2 × 512 bytes).
        assert_eq!(TRUSTED_KEY_MAX, 2056);
        let key4096 = include_bytes!("../testdata/avb/key4096.avbpubkey");
        assert_eq!(key4096.len(), 8 + 2 * 512);
    }

    /// pvmfw's linker script lays its region out as abi says: linked at the base, its
    /// writable half at the middle, its end at guest RAM, and its heap sized for the
    /// largest host DT.
    #[test]
    fn pvmfws_linker_script_agrees() {
        let script = include_str!("../../pvmfw/pvmfw.ld");
        for (what, value) in [
            ("linked at", PVMFW_BASE),
            ("writable half", PVMFW_WRITABLE_BASE),
            ("end", PVMFW_BASE + PVMFW_SIZE),
            ("largest host DT", HOST_DT_MAX_SIZE),
        ] {
            assert!(script.contains(&format!("{value:#x}")), "pvmfw.ld lacks the {what}, {value:#x}");
        }
        assert_eq!((PVMFW_WRITABLE_BASE, HOST_DT_MAX_SIZE), (0x7fe0_0000, 0x8_0000));
    }
}

/// Why pvmfw refused to hand over: a stable code per reason, printed as
/// `[pvmfw] error E05 device-not-exposed: <detail>`. Tools and tests match the code
/// (`Refusal::code`), never the English detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Refusal {
    /// pvmfw's image holds no embedded payload key.
    NoTrustedKey = 1,
    /// The host's DT is not a well-formed device tree (magic, size, structure, a property).
    HostDtMalformed = 2,
    /// The host's DT describes RAM other than one region inside the VM's limits.
    HostDtMemory = 3,
    /// The host's DT names a device (console, GIC, transport) the platform does not have.
    HostDtDevice = 4,
    /// The platform has the device, but the hypervisor does not give it to this VM.
    DeviceNotExposed = 5,
    /// The host's DT names no kernel, or a kernel or ramdisk outside RAM or over the DT
    /// area.
    HostDtPayload = 6,
    /// The host's command line is too long or not printable ASCII.
    HostDtBootargs = 7,
    /// The host's bounce pool is unaligned, outside RAM, or over something else.
    HostDtBouncePool = 8,
    /// The host's DT does not lie in its slot.
    HostDtSlot = 9,
    /// The signed kernel is not a well-formed AVB image (footer, vbmeta, descriptors).
    PayloadFormat = 10,
    /// The kernel does not fit where it was loaded.
    PayloadPlacement = 11,
    /// The kernel is not an arm64 Image, or its header disagrees with where it lies.
    ImageHeader = 12,
    /// The embedded payload key is not a valid AVB RSA public key.
    TrustedKeyInvalid = 13,
    /// The kernel is not the one its hash descriptor names.
    PayloadHash = 14,
    /// The vbmeta image's hash or signature does not verify.
    PayloadSignature = 15,
    /// The payload's new DT could not be built or does not fit its slot.
    NewDt = 16,
    /// The vbmeta image carries a key other than the embedded one.
    UntrustedKey = 17,
    /// The hash descriptors are not AVF's: another partition, one twice, no `boot`,
    /// another hash algorithm.
    PayloadDescriptors = 18,
    /// The vbmeta image's flags disable verification.
    VerificationDisabled = 19,
    /// The ramdisk is missing, has no descriptor, or matches neither descriptor.
    Ramdisk = 20,
    /// An AVF property (capabilities, name, page size) is malformed or unsupported.
    PayloadProperties = 21,
    /// The configuration data appended to pvmfw is malformed.
    ConfigData = 22,
    /// The VM's DT disagrees with the VM reference DT.
    ReferenceDt = 23,
    /// The DICE layer could not be derived from the handover pvmfw received.
    Dice = 24,
    /// Rollback protection refused the payload's rollback index.
    Rollback = 25,
    /// Instance storage refused the boot: no instance disk, a malformed or tampered
    /// record, or a payload other than the instance's.
    Instance = 26,
}

impl Refusal {
    /// Every refusal, in code order.
    pub const ALL: [Refusal; 26] = [
        Self::NoTrustedKey,
        Self::HostDtMalformed,
        Self::HostDtMemory,
        Self::HostDtDevice,
        Self::DeviceNotExposed,
        Self::HostDtPayload,
        Self::HostDtBootargs,
        Self::HostDtBouncePool,
        Self::HostDtSlot,
        Self::PayloadFormat,
        Self::PayloadPlacement,
        Self::ImageHeader,
        Self::TrustedKeyInvalid,
        Self::PayloadHash,
        Self::PayloadSignature,
        Self::NewDt,
        Self::UntrustedKey,
        Self::PayloadDescriptors,
        Self::VerificationDisabled,
        Self::Ramdisk,
        Self::PayloadProperties,
        Self::ConfigData,
        Self::ReferenceDt,
        Self::Dice,
        Self::Rollback,
        Self::Instance,
    ];

    /// The stable code.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// A short name beside the code.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoTrustedKey => "no-trusted-key",
            Self::HostDtMalformed => "host-dt-malformed",
            Self::HostDtMemory => "host-dt-memory",
            Self::HostDtDevice => "host-dt-device",
            Self::DeviceNotExposed => "device-not-exposed",
            Self::HostDtPayload => "host-dt-payload",
            Self::HostDtBootargs => "host-dt-bootargs",
            Self::HostDtBouncePool => "host-dt-bounce-pool",
            Self::HostDtSlot => "host-dt-slot",
            Self::PayloadFormat => "payload-format",
            Self::PayloadPlacement => "payload-placement",
            Self::ImageHeader => "image-header",
            Self::TrustedKeyInvalid => "trusted-key-invalid",
            Self::PayloadHash => "payload-hash",
            Self::PayloadSignature => "payload-signature",
            Self::NewDt => "new-dt",
            Self::UntrustedKey => "untrusted-key",
            Self::PayloadDescriptors => "payload-descriptors",
            Self::VerificationDisabled => "verification-disabled",
            Self::Ramdisk => "ramdisk",
            Self::PayloadProperties => "payload-properties",
            Self::ConfigData => "config-data",
            Self::ReferenceDt => "reference-dt",
            Self::Dice => "dice",
            Self::Rollback => "rollback",
            Self::Instance => "instance",
        }
    }

    /// What starts pvmfw's error line for this refusal: `[pvmfw] error E05 device-not-exposed:`.
    pub fn line_start(self) -> impl core::fmt::Display {
        struct Start(Refusal);
        impl core::fmt::Display for Start {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "[pvmfw] error E{:02} {}:", self.0.code(), self.0.name())
            }
        }
        Start(self)
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.code() as usize, i + 1);
        }
        assert_eq!(Refusal::PayloadSignature.line_start().to_string(), "[pvmfw] error E15 payload-signature:");
    }
}
