//! guest-lib: what a Rust guest OS links to live as an Arm pKVM protected VM.
//!
//! Two ways to use it:
//!
//! - **With its runtime** (the default `runtime` feature): guest-lib is the guest's
//!   runtime too: the image entry point, stack, `.bss`, FP/SIMD, exception vectors, an
//!   identity-mapped MMU, the heap (`#[global_allocator]`), the `#[panic_handler]`, the
//!   console and `log`, all set up before [`entry!`]'s `main` runs with a [`BootInfo`].
//! - **As a library** (`default-features = false`): the enlightenment alone, for a guest
//!   OS that owns its allocator, vectors, page tables and console. Nothing assumes a
//!   runtime: what each part needs is passed in (a conduit, the DT, the MMIO guard, the
//!   pool `PvmHal` bounces through, via `virtio::set_dma`). The repository's
//!   `examples/aarch64-rt-guest` is such a guest, on aarch64-rt and aarch64-paging.
//!
//! The parts:
//! - [`conduit`]: SMCCC calls over HVC or SMC (chosen from the DT's `/psci` `method`).
//! - [`hypervisor`]: tells KVM/pKVM from "no hypervisor services", so one guest binary
//!   runs protected, unprotected and on plain QEMU.
//! - [`psci`]: version, features, power off, reset, and CPU_ON/CPU_OFF/AFFINITY_INFO.
//! - [`smp`]: starting secondary CPUs, per-CPU data, what is safe from any CPU.
//! - [`backend`]: what the hypervisor below offers, as capabilities (memory sharing, the
//!   MMIO guard, relinquish), chosen at discovery.
//! - [`sharing`]: MEM_SHARE/MEM_UNSHARE of any range, all or nothing; [`stats`]: what it cost.
//! - [`bounce_pool`]: the pre-shared pool every device buffer comes from (over memory
//!   the OS gives it, or its own allocation).
//! - the MMIO guard: the `mmio-guard` crate's [`mmio_guard::MmioGuard`] (the runtime
//!   keeps one: [`mmio_guard()`]).
//! - [`virtio`]: the bouncing `virtio_drivers::Hal` and device discovery.
//! - [`exceptions`]: decoded reports of unexpected exceptions, and `exceptions::probe`
//!   to turn an external abort on a chosen access into an `Err` (with a fix-up an OS's
//!   own vectors call).
//! - [`instructions`]: the guest's own instruction count (the PMU), for measurements
//!   that repeat.
//! - [`timer`]: timed waits (the virtual timer, woken through the GICv3 where there is one).
//! - [`dice`]: the DICE handover pvmfw leaves the payload (its CDIs and chain), taken
//!   and wiped.
//! - [`device_tree`]: what a guest reads from its DT; [`console`]: the PL011 and `log`;
//!   [`harness`]: the in-guest test harness (`N passed, M failed`); [`set_once`]: state
//!   written once.
//!
//! A first guest on the runtime, whole: it shares a page and takes it back, reads
//! block 0 of its virtio disk through the bouncing `Hal`, registers an MMIO range of
//! its own with the MMIO guard (and keeps the handle: dropping it unregisters the
//! range), and reports through the harness that `pvmkit` reads.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! extern crate alloc;
//!
//! use guest_lib::harness::Harness;
//! use guest_lib::{console::Console, ensure, ensure_eq, ipa_of, BootInfo, Ipa};
//!
//! #[repr(C, align(4096))]
//! struct Page([u8; 4096]);
//!
//! fn main(boot: &BootInfo) {
//!     let mut h = Harness::new(Console);
//!     h.run("share_and_take_back", || {
//!         let page = alloc::boxed::Box::leak(alloc::boxed::Box::new(Page([0; 4096])));
//!         let sharer = boot.sharer().map_err(|e| alloc::format!("{e}"))?; // a no-op unless protected
//!         sharer.share(ipa_of(&page.0), 4096).map_err(|e| alloc::format!("{e}"))?;
//!         sharer.unshare(ipa_of(&page.0), 4096).map_err(|e| alloc::format!("{e}"))?;
//!         Ok(())
//!     });
//!     h.run("read_block_0", || {
//!         // Discovery registers each transport with the MMIO guard; PvmHal bounces every
//!         // buffer through the pool the runtime shared.
//!         let drivers = guest_lib::virtio::drivers(&boot.dt, guest_lib::mmio_guard());
//!         let mut disk = drivers.block.ok_or("no virtio block device")?;
//!         let mut sector = [0u8; 512];
//!         disk.read_blocks(0, &mut sector).map_err(|e| alloc::format!("{e}"))?;
//!         ensure!(sector.len() == 512, "short read");
//!         Ok(())
//!     });
//!     h.run("my_own_device", || {
//!         // Any other MMIO range: registered before use, for as long as the handle lives.
//!         let (base, size) = boot.dt.virtio_mmio().next().ok_or("no transport")?;
//!         let _registered = guest_lib::mmio_guard().guard(Ipa(base), size).map_err(|e| alloc::format!("{e}"))?;
//!         // SAFETY: a virtio-mmio transport's MagicValue, registered above.
//!         ensure_eq!(unsafe { (base as *const u32).read_volatile() }, 0x7472_6976);
//!         Ok(())
//!     });
//!     h.finish();
//! }
//!
//! guest_lib::entry!(main);
//! ```
//!
//! Host builds (unit tests) get every module but the assembly and the runtime; the
//! documentation shows the firmware-only items too.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod address;
pub mod backend;
pub mod bounce_pool;
pub mod conduit;
pub mod console;
pub mod device_tree;
pub mod dice;
pub mod exceptions;
pub mod harness;
pub mod hypervisor;
pub mod instructions;
pub mod interrupts;
mod memops;
pub mod psci;
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))] // the constant serves host tests
mod register_gaps;
pub mod set_once;
pub mod sharing;
pub mod smp;
#[cfg(feature = "runtime")]
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // used by the firmware's MMU set-up
mod stage1;
pub mod stats;
pub mod timer;
pub mod virtio;

#[cfg(any(target_os = "none", doc))]
mod arch;
#[cfg(all(any(target_os = "none", doc), feature = "runtime"))]
mod runtime;

/// What guest-lib's macros expand to, so that they work in crates without `alloc` in scope.
#[doc(hidden)]
pub mod __private {
    pub use alloc::format;
}

pub use address::{ipa_of, Ipa, Page};
pub use device_tree::GuestDt;
pub use hypervisor::HypervisorInfo;
#[cfg(all(any(target_os = "none", doc), feature = "runtime"))]
pub use runtime::mmio_guard;
#[cfg(all(any(target_os = "none", doc), feature = "unsafe-test-switches"))]
pub use runtime::SKIP_MMIO_GUARD_ARG;

/// What guest-lib found at boot, handed to the guest's `main`.
#[cfg(feature = "runtime")]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// The device tree the guest was given (x0 at entry); empty when it was unusable.
    pub dt: GuestDt<'static>,
    /// Why the device tree was unusable, if it was (the guest then has no console).
    pub dt_error: Option<device_tree::DtError>,
    /// Its IPA.
    pub dt_ipa: u64,
    /// The conduit for SMCCC calls.
    pub conduit: conduit::SystemConduit,
    /// What the hypervisor offers.
    pub hypervisor: HypervisorInfo,
    /// Where the guest's image runs: its link address, or, for a position-independent
    /// image (an arm64 `Image` from `guest-image.ld`), wherever the loader placed it.
    pub image_base: u64,
}

#[cfg(all(feature = "runtime", any(target_arch = "aarch64", doc)))]
impl BootInfo {
    /// The sharing API for this VM (asks the hypervisor for its granule): the
    /// [`sharing::MemSharing`] capability of a pKVM backend, a successful no-op elsewhere.
    pub fn sharer(&self) -> Result<sharing::MemSharer<conduit::SystemConduit>, sharing::ShareError> {
        sharing::MemSharer::new(self.conduit, &self.hypervisor)
    }
}

#[cfg(feature = "runtime")]
impl BootInfo {
    /// The hypervisor below, by what it offers ([`backend::Backend`]).
    pub fn backend(&self) -> backend::Backend {
        backend::Backend::select(&self.hypervisor)
    }
}

/// Facts of its platform a guest trusts more than its device tree: the runtime then
/// takes the conduit and console from here and acts on nothing the DT says about them.
/// Firmware that must check its DT before believing it (pvmfw) boots this way.
#[cfg(feature = "runtime")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    /// The SMCCC conduit.
    pub conduit: conduit::SystemConduit,
    /// The PL011 console's base, registered with the MMIO guard at boot.
    pub console: u64,
}

/// Declares the guest's `main`: `fn main(boot: &guest_lib::BootInfo)`. guest-lib runs
/// it after setting everything up and powers the VM off when it returns.
///
/// `entry!(main)` takes the conduit and console from the device tree;
/// `entry!(main, platform = EXPR)` (a [`Platform`]) from `EXPR` instead.
#[cfg(feature = "runtime")]
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::entry!(@define $main, None);
    };
    ($main:path, platform = $platform:expr) => {
        $crate::entry!(@define $main, Some($platform));
    };
    (@define $main:path, $platform:expr) => {
        #[unsafe(no_mangle)]
        extern "Rust" fn __pvmkit_guest_main(boot: &$crate::BootInfo) {
            let main: fn(&$crate::BootInfo) = $main;
            main(boot)
        }

        #[unsafe(no_mangle)]
        extern "Rust" fn __pvmkit_guest_platform() -> Option<$crate::Platform> {
            $platform
        }
    };
}
