//! The contracts between pvmkit's parts, in one place and with no dependencies.
//!
//! - [`smccc`]: the SMC Calling Convention: function-ID layout, the standard return codes
//!   and the Arm architecture calls.
//! - [`psci`]: the PSCI calls pvmkit's guests use.
//! - [`profile`]: what each hypervisor release answers, call by call, as data with sources.
//! - [`kvm`]: the KVM vendor-hypervisor service (UID, features bitmap) and the pKVM calls,
//!   in both the upstream Linux and the Android forms.
//! - [`arm64_image`]: the arm64 Linux `Image` payload format and where it is placed.
//! - [`avb`]: Android Verified Boot's footer, vbmeta image and descriptors, as avbtool writes them.
//! - [`avf_config`]: the configuration data a bootloader appends to pvmfw (AVF's layout).
//! - [`dice_handover`]: the DICE handover `{CDI_Attest, CDI_Seal, chain}` one stage gives the next.
//! - [`instance_disk`]: the instance disk pvmfw keeps its per-instance record on.
//! - [`dt`]: the device-tree vocabulary (compatibles, node and property names).
//! - [`fdt_header`]: a device tree's magic and size, read before anything else.
//! - [`esr`]: the architectural exception syndrome, decoded (hyp and guests both read it).
//! - [`bundle`]: the file `pvmkit` writes and `hyp` reads (`-initrd`).
//! - [`virtio_mmio`]: the virtio-mmio transport's register offsets.
//! - [`gic`]: the GICv3's register offsets and the bits pvmkit uses.
//! - [`exit_line`]: the wording of the line that ends a run (hyp's and the VMM's).
//! - [`guest_console`]: the harness's summary line and the `pvmkit.*` command-line words.
//! - [`hyp_options`]: the options `pvmkit` passes to `hyp` on its command line.
//! - [`memory_map`]: the addresses every part agrees on.
//! - [`pvmfw`]: pvmfw's contract (its region, its embedded key, its refusal codes).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod address;
pub mod arm64_image;
pub mod avb;
pub mod avf_config;
pub mod bench;
pub mod bundle;
pub mod dice_handover;
pub mod dt;
pub mod esr;
pub mod exit_line;
pub mod fdt_header;
pub mod gic;
pub mod guest_console;
pub mod hyp_options;
pub mod instance_disk;
pub mod kvm;
pub mod memory_map;
pub mod profile;
pub mod psci;
pub mod pvmfw;
pub mod smccc;
pub mod virtio_mmio;
