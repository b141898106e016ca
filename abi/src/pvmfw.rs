//! pvmfw's contract with hyp (below it), pvmkit (which builds its image) and the payload
//! (above it).
//!
//! - pvmfw lives in a guest-private region [`PVMFW_BASE`], [`PVMFW_SIZE`] long, just below
//!   the payload's RAM. hyp enters it at [`PVMFW_BASE`] with x0 = the host's DT and
//!   x1..x3 = 0.
//! - The region's last page ([`VM_SECRET_IPA`]) holds the per-VM secret, put there by hyp
//!   from the bundle's `VmSecret` entry. pvmfw reads it, then erases it.
//! - pvmkit writes pvmfw's config block into the image at the symbol
//!   `__pvmfw_config`: [`CONFIG_MAGIC`], version, and the trusted Ed25519 public key.
//! - The host's DT names the signed payload with `/config` `kernel-address` and
//!   `kernel-size` (as crosvm does).
//! - pvmfw hands the payload a DT it rebuilt, with x0 = its IPA, and the payload's
//!   secret in `/reserved-memory/pvmkit-secret@…` (compatible [`SECRET_COMPATIBLE`],
//!   `no-map`), [`SECRET_SIZE`] bytes at [`PAYLOAD_SECRET_IPA`].
//!
//! ```
//! use abi::pvmfw::{config_block, config_key};
//!
//! // The block `pvmkit pvmfw` writes into pvmfw's image: the key it trusts.
//! let block = config_block(&[7; 32]);
//! assert_eq!(config_key(&block), Some([7; 32]));
//! assert_eq!(config_key(&[0; 48]), None);
//! ```

use crate::memory_map::{GUEST_DT_BASE, GUEST_DT_MAX_SIZE, GUEST_RAM_BASE};

/// Size of pvmfw's region.
pub const PVMFW_SIZE: u64 = 2 << 20;
/// pvmfw's region: right below the payload's RAM. pvmfw is linked here.
pub const PVMFW_BASE: u64 = GUEST_RAM_BASE - PVMFW_SIZE;
/// The per-VM secret hyp gives pvmfw (the region's last page).
pub const VM_SECRET_IPA: u64 = PVMFW_BASE + PVMFW_SIZE - 4096;
/// Bytes of secret.
pub const SECRET_SIZE: usize = 32;
/// Where pvmfw puts the payload's derived secret: the last page of the DT area.
pub const PAYLOAD_SECRET_IPA: u64 = GUEST_DT_BASE + GUEST_DT_MAX_SIZE - 4096;
/// The largest host device tree pvmfw accepts. It lies at [`GUEST_DT_BASE`] (the DT
/// slot), pvmfw copies it into its own memory before reading it, and the payload's new
/// DT goes in the same slot: all of it far below the secret page, whatever the input.
pub const HOST_DT_MAX_SIZE: u64 = 512 << 10;
const _: () = assert!(GUEST_DT_BASE + HOST_DT_MAX_SIZE <= PAYLOAD_SECRET_IPA);
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
/// The reserved-memory node's compatible.
pub const SECRET_COMPATIBLE: &str = "pvmkit,payload-secret";
/// Where pvmkit's host DT puts the signed payload for pvmfw to check (a staging copy;
/// pvmfw copies the image to its load address).
pub const SIGNED_PAYLOAD_STAGING: u64 = GUEST_RAM_BASE + (128 << 20);
/// First bytes of pvmfw's config block.
pub const CONFIG_MAGIC: [u8; 8] = *b"PVMFWCFG";
/// Config block version.
pub const CONFIG_VERSION: u32 = 1;
/// Size of the config block: magic, version u32, reserved u32, key (32 bytes).
pub const CONFIG_SIZE: usize = 48;
/// The label the payload secret is derived under (HMAC-SHA256 keyed with the VM secret
/// over this label, the image's SHA-256 and the signed header's SHA-256).
pub const SECRET_LABEL: &[u8] = b"pvmkit payload secret v1";

/// pvmfw's config block as it lies in the image.
#[repr(C)]
#[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable)]
pub struct RawConfig {
    /// [`CONFIG_MAGIC`].
    pub magic: [u8; 8],
    /// [`CONFIG_VERSION`].
    pub version: zerocopy::little_endian::U32,
    /// Zero.
    pub reserved: zerocopy::little_endian::U32,
    /// The Ed25519 public key pvmfw trusts.
    pub trusted_key: [u8; 32],
}

const _: () = assert!(size_of::<RawConfig>() == CONFIG_SIZE);

/// Encodes a config block carrying `public_key`.
pub fn config_block(public_key: &[u8; 32]) -> [u8; CONFIG_SIZE] {
    use zerocopy::IntoBytes;
    let raw =
        RawConfig { magic: CONFIG_MAGIC, version: CONFIG_VERSION.into(), reserved: 0.into(), trusted_key: *public_key };
    let mut c = [0u8; CONFIG_SIZE];
    c.copy_from_slice(raw.as_bytes());
    c
}

/// The trusted key in a config block, if the block is well formed.
pub fn config_key(block: &[u8]) -> Option<[u8; 32]> {
    use zerocopy::FromBytes;
    let (raw, _) = RawConfig::read_from_prefix(block).ok()?;
    let well_formed = raw.magic == CONFIG_MAGIC && raw.version.get() == CONFIG_VERSION && raw.reserved.get() == 0;
    well_formed.then_some(raw.trusted_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_block_round_trips() {
        let block = config_block(&[5; 32]);
        assert_eq!(config_key(&block), Some([5; 32]));
        assert_eq!(config_key(&[0; CONFIG_SIZE]), None);
        assert_eq!(config_key(&block[..40]), None);
        assert_eq!(PVMFW_BASE, 0x7fe0_0000);
        assert_eq!(PAYLOAD_SECRET_IPA, 0x801f_f000);
    }
}

/// Why pvmfw refused to hand over: a stable code per reason, printed as
/// `[pvmfw] error E05 device-not-exposed: <detail>`. Tools and tests match the code
/// (`Refusal::code`), never the English detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Refusal {
    /// pvmfw's config block holds no trusted key.
    NoTrustedKey = 1,
    /// The host's DT is not a well-formed device tree (magic, size, structure, a property).
    HostDtMalformed = 2,
    /// The host's DT describes RAM other than one region inside the VM's limits.
    HostDtMemory = 3,
    /// The host's DT names a device (console, GIC, transport) the platform does not have.
    HostDtDevice = 4,
    /// The platform has the device, but the hypervisor does not give it to this VM.
    DeviceNotExposed = 5,
    /// The host's DT names no payload, or one outside RAM or over the DT area.
    HostDtPayload = 6,
    /// The host's command line is too long or not printable ASCII.
    HostDtBootargs = 7,
    /// The host's bounce pool is unaligned, outside RAM, or over something else.
    HostDtBouncePool = 8,
    /// The host's DT does not lie in its slot.
    HostDtSlot = 9,
    /// The signed payload's header is malformed.
    PayloadHeader = 10,
    /// The payload does not fit where it must go.
    PayloadPlacement = 11,
    /// An arm64 Image's own header is malformed or disagrees with its signed layout.
    ImageHeader = 12,
    /// The trusted key is not a valid Ed25519 key.
    TrustedKeyInvalid = 13,
    /// The image is not the one its signed header's hash names.
    PayloadHash = 14,
    /// The signature is not the trusted key's.
    PayloadSignature = 15,
    /// The payload's new DT could not be built or does not fit its slot.
    NewDt = 16,
}

impl Refusal {
    /// Every refusal, in code order.
    pub const ALL: [Refusal; 16] = [
        Self::NoTrustedKey,
        Self::HostDtMalformed,
        Self::HostDtMemory,
        Self::HostDtDevice,
        Self::DeviceNotExposed,
        Self::HostDtPayload,
        Self::HostDtBootargs,
        Self::HostDtBouncePool,
        Self::HostDtSlot,
        Self::PayloadHeader,
        Self::PayloadPlacement,
        Self::ImageHeader,
        Self::TrustedKeyInvalid,
        Self::PayloadHash,
        Self::PayloadSignature,
        Self::NewDt,
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
            Self::PayloadHeader => "payload-header",
            Self::PayloadPlacement => "payload-placement",
            Self::ImageHeader => "image-header",
            Self::TrustedKeyInvalid => "trusted-key-invalid",
            Self::PayloadHash => "payload-hash",
            Self::PayloadSignature => "payload-signature",
            Self::NewDt => "new-dt",
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
