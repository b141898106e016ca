//! Carrying out the MMIO-guard actions a profile row allows (only the Android profile
//! has any): registering the granules a call walks (6.12's UNMAP is a no-op). The profile has
//! checked the arguments and that no granule is guest RAM; what can still refuse here
//! is hyp's bound on its table (policy `guard-table-full`).

use abi::bundle::Region;

use crate::hypercall::PolicyRefusal;
use crate::mmio::DeviceWindow;
use crate::mmio_guard::{GuardTable, GRANULE};

/// The VM facts the guard and its calls check against.
#[derive(Clone, Copy, Debug)]
pub struct GuardVm<'a> {
    /// The VM's devices.
    pub devices: &'a [DeviceWindow],
    /// Guest RAM.
    pub ram: Region,
}

/// Registers `walk` granules from `ipa`, all or none.
pub fn map(table: &mut GuardTable, vm: GuardVm<'_>, ipa: u64, walk: u64) -> Result<(), PolicyRefusal> {
    let granules = || (0..walk).map(move |i| ipa + i * GRANULE);
    let new = granules().filter(|&g| !table.is_guarded(g)).count();
    if table.room() < new {
        return Err(PolicyRefusal { policy: "guard-table-full", ipa });
    }
    for g in granules() {
        // The profile excluded unaligned and RAM granules, and the room was checked.
        let mapped = table.map(g, vm.ram);
        debug_assert!(mapped.is_ok(), "{mapped:?}");
    }
    Ok(())
}
