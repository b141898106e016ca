//! Carrying out the MMIO-guard actions a profile row allows (only the Android profile
//! has any): registering the granules a call walks (6.12's UNMAP is a no-op). The profile has
//! checked the arguments and that no granule is guest RAM; what can still refuse here
//! is hyp's bound on its table (policy `guard-table-full`).

use abi::memory_map::Region;

use crate::pkvm::hypercall::PolicyRefusal;
use crate::pkvm::mmio_guard::GuardTable;
use crate::pkvm::ownership::GRANULE;

/// Registers `walk` granules from `ipa`, all or none (`ram`: guest RAM).
pub fn map(table: &mut GuardTable, ram: Region, ipa: u64, walk: u64) -> Result<(), PolicyRefusal> {
    let granules = || (0..walk).map(move |i| ipa + i * GRANULE);
    let new = granules().filter(|&g| !table.is_guarded(g)).count();
    if table.room() < new {
        return Err(PolicyRefusal { policy: "guard-table-full", ipa });
    }
    for g in granules() {
        // The profile excluded unaligned and RAM granules, and the room was checked.
        let mapped = table.map(g, ram);
        debug_assert!(mapped.is_ok(), "{mapped:?}");
    }
    Ok(())
}
