//! Carrying out the MMIO-guard actions a profile row allows (only the Android profile
//! has any): registering the granules a call walks (6.12's UNMAP is a no-op). The profile has
//! checked the arguments and that no granule is guest RAM; what can still refuse here
//! is hyp's bound on its table (policy `guard-table-full`).

use pvmkit_abi::address::Page;
use pvmkit_abi::memory_map::Region;

use crate::pkvm::action_error::{ActionError, Inconsistency, PolicyRefusal};
use crate::pkvm::mmio_guard::GuardTable;

/// Registers `walk` granules from `first`, all or none (`ram`: guest RAM). A granule
/// the table refuses although the profile allowed it (in RAM) is an
/// [`Inconsistency`], and nothing is registered.
pub fn map(table: &mut GuardTable, ram: Region, first: Page, walk: u64) -> Result<(), ActionError> {
    let granules = || first.run(walk);
    let new = granules().filter(|g| !table.is_guarded(g.ipa())).count();
    if table.room() < new {
        return Err(ActionError::Policy(PolicyRefusal { policy: "guard-table-full", ipa: first.ipa() }));
    }
    let inconsistent = |g: Page, what| ActionError::Inconsistent(Inconsistency { ipa: g.ipa(), what });
    for g in granules() {
        table.can_map(g, ram).map_err(|_| inconsistent(g, "guard MAP of a granule the profile allowed"))?;
    }
    for g in granules() {
        table.map(g, ram).map_err(|_| inconsistent(g, "guard MAP changed its mind"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkvm::ownership::GRANULE;
    use crate::testing::pg as p;
    use pvmkit_abi::address::Ipa;

    #[test]
    fn a_granule_the_table_refuses_registers_nothing_and_is_named() {
        let mut table = GuardTable::new(true);
        let ram = Region { start: 0x8000_0000, end: 0x9000_0000 };
        // The last granule runs into RAM: the profile should have refused it.
        let err = map(&mut table, ram, p(0x8000_0000 - GRANULE), 2).unwrap_err();
        assert_eq!(
            err,
            ActionError::Inconsistent(Inconsistency {
                ipa: Ipa(0x8000_0000),
                what: "guard MAP of a granule the profile allowed"
            })
        );
        assert!(!table.is_guarded(Ipa(0x8000_0000 - GRANULE)), "all or nothing");
        assert_eq!(map(&mut table, ram, p(0x0a00_0000), 2), Ok(()));
        assert!(table.is_guarded(Ipa(0x0a00_0000)) && table.is_guarded(Ipa(0x0a00_1000)));
        let room = table.room() as u64;
        let err = map(&mut table, ram, p(0x0b00_0000), room + 1).unwrap_err();
        assert_eq!(err, ActionError::Policy(PolicyRefusal { policy: "guard-table-full", ipa: Ipa(0x0b00_0000) }));
    }
}
