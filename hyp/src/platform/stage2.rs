//! Stage-2 translation tables: 4 KiB granule, 39-bit IPA, walk starting at level 1
//! (VTCR_EL2.T0SZ = 25, SL0 = 1), one 4 KiB root table.
//!
//! Descriptor format: Arm ARM D8.3 (VMSAv8-64 descriptors, stage 2 attributes).
//! Tables come from an arena whose physical address is known; in hyp the arena is a
//! static and PA = VA (the EL2 MMU is off), in tests it is a heap buffer.

use core::fmt;

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Bits of IPA this layout translates.
pub const IPA_BITS: u32 = 39;

/// `VTCR_EL2` for this layout: T0SZ = 64 - 39, walks start at level 1, inner/outer
/// write-back cacheable walks, inner shareable, 4 KiB granule, 40-bit PA, RES1 bit 31.
pub fn vtcr() -> u64 {
    use aarch64_cpu::registers::VTCR_EL2;
    (VTCR_EL2::T0SZ.val(64 - IPA_BITS as u64)
        + VTCR_EL2::SL0::Granule4KBLevel1
        + VTCR_EL2::IRGN0::NormalWBRAWA
        + VTCR_EL2::ORGN0::NormalWBRAWA
        + VTCR_EL2::SH0::Inner
        + VTCR_EL2::TG0::Granule4KB
        + VTCR_EL2::PS::PA_40B_1TB
        + VTCR_EL2::RES1::SET)
        .value
}

use pvmkit_abi::memory_map::GRANULE;
const L2_BLOCK: u64 = 2 << 20;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AF: u64 = 1 << 10;

/// Memory attributes of a stage-2 mapping (MemAttr, S2AP, SH, XN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes(u64);

impl Attributes {
    /// Normal memory, inner and outer write-back, read/write, inner shareable,
    /// executable: guest RAM.
    pub const NORMAL_RW: Self = Self((0b1111 << 2) | (0b11 << 6) | (0b11 << 8));
    /// Device-nGnRE, read/write, never executable.
    pub const DEVICE_RW: Self = Self((0b0001 << 2) | (0b11 << 6) | (1 << 54));

    /// The raw descriptor bits.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

/// One translation table.
#[repr(C, align(4096))]
#[derive(Clone)]
pub struct Table(pub [u64; ENTRIES]);

impl Table {
    /// An empty (all-invalid) table.
    pub const EMPTY: Self = Self([0; ENTRIES]);
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// IPA, PA or size not page aligned.
    Unaligned,
    /// The range is empty, wraps or goes beyond the IPA space.
    OutOfRange,
    /// Part of the range is already mapped.
    AlreadyMapped(u64),
    /// The arena has no table left.
    OutOfTables,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned => write!(f, "stage-2 range is not page aligned"),
            Self::OutOfRange => write!(f, "stage-2 range is empty or outside the IPA space"),
            Self::AlreadyMapped(ipa) => write!(f, "IPA {ipa:#x} is already mapped"),
            Self::OutOfTables => write!(f, "out of stage-2 tables"),
        }
    }
}

/// A stage-2 address space built in an arena of tables. Table 0 is the root.
pub struct Stage2<'a> {
    tables: &'a mut [Table],
    base_pa: u64,
    used: usize,
}

impl<'a> Stage2<'a> {
    /// Takes an arena of at least one table, physically at `base_pa`, and clears it.
    pub fn new(tables: &'a mut [Table], base_pa: u64) -> Option<Self> {
        if tables.is_empty() || !base_pa.is_multiple_of(GRANULE) {
            return None;
        }
        tables[0] = Table::EMPTY;
        Some(Self { tables, base_pa, used: 1 })
    }

    /// Physical address of the root table (for VTTBR_EL2).
    pub fn root_pa(&self) -> u64 {
        self.base_pa
    }

    /// Tables in use, the root included.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    fn index_of(&self, pa: u64) -> Option<usize> {
        let offset = pa.checked_sub(self.base_pa)?;
        let index = (offset / GRANULE) as usize;
        (offset % GRANULE == 0 && index < self.used).then_some(index)
    }

    fn next_table(&mut self, table: usize, slot: usize) -> Result<usize, MapError> {
        let entry = self.tables[table].0[slot];
        if entry & VALID != 0 {
            if entry & TABLE_OR_PAGE == 0 {
                return Err(MapError::AlreadyMapped(0)); // a block covers it
            }
            return self.index_of(entry & ADDR_MASK).ok_or(MapError::OutOfTables);
        }
        if self.used >= self.tables.len() {
            return Err(MapError::OutOfTables);
        }
        let index = self.used;
        self.used += 1;
        self.tables[index] = Table::EMPTY;
        let pa = self.base_pa + index as u64 * GRANULE;
        self.tables[table].0[slot] = pa | TABLE_OR_PAGE | VALID;
        Ok(index)
    }

    /// Maps `[ipa, ipa + size)` to `[pa, pa + size)`, with 2 MiB blocks where both
    /// sides allow and 4 KiB pages elsewhere. Nothing already mapped is replaced.
    /// On error, mappings made before the failing address stay.
    pub fn map(&mut self, ipa: u64, pa: u64, size: u64, attrs: Attributes) -> Result<(), MapError> {
        if !ipa.is_multiple_of(GRANULE) || !pa.is_multiple_of(GRANULE) || !size.is_multiple_of(GRANULE) {
            return Err(MapError::Unaligned);
        }
        let end = ipa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if size == 0 || end > 1 << IPA_BITS || pa.checked_add(size).is_none_or(|e| e > 1 << 48) {
            return Err(MapError::OutOfRange);
        }
        let mut offset = 0;
        while offset < size {
            let (i, p) = (ipa + offset, pa + offset);
            let l1 = self::slot(i, 1);
            let l2_table = self.next_table(0, l1).map_err(|e| at(e, i))?;
            let l2 = self::slot(i, 2);
            let block_fits = i % L2_BLOCK == 0 && p % L2_BLOCK == 0 && size - offset >= L2_BLOCK;
            if block_fits && self.tables[l2_table].0[l2] & VALID == 0 {
                self.tables[l2_table].0[l2] = p | attrs.0 | AF | VALID;
                offset += L2_BLOCK;
                continue;
            }
            let l3_table = self.next_table(l2_table, l2).map_err(|e| at(e, i))?;
            let l3 = self::slot(i, 3);
            if self.tables[l3_table].0[l3] & VALID != 0 {
                return Err(MapError::AlreadyMapped(i));
            }
            self.tables[l3_table].0[l3] = p | attrs.0 | AF | TABLE_OR_PAGE | VALID;
            offset += GRANULE;
        }
        Ok(())
    }

    /// Walks the tables like the MMU: the PA and attributes an IPA maps to.
    pub fn translate(&self, ipa: u64) -> Option<(u64, Attributes)> {
        if ipa >= 1 << IPA_BITS {
            return None;
        }
        let mut table = 0;
        for level in 1..=3 {
            let entry = self.tables[table].0[slot(ipa, level)];
            if entry & VALID == 0 {
                return None;
            }
            let is_table = entry & TABLE_OR_PAGE != 0;
            if level == 3 || !is_table {
                if level == 1 || (level == 3 && !is_table) {
                    return None; // 1 GiB blocks are never made; L3 needs the page bit
                }
                let span = if level == 2 { L2_BLOCK } else { GRANULE };
                let attrs = entry & !(ADDR_MASK | VALID | TABLE_OR_PAGE | AF);
                return Some(((entry & ADDR_MASK & !(span - 1)) + ipa % span, Attributes(attrs)));
            }
            table = self.index_of(entry & ADDR_MASK)?;
        }
        None
    }
}

fn at(error: MapError, ipa: u64) -> MapError {
    match error {
        MapError::AlreadyMapped(_) => MapError::AlreadyMapped(ipa),
        other => other,
    }
}

const fn slot(ipa: u64, level: u32) -> usize {
    ((ipa >> (12 + 9 * (3 - level))) & 0x1ff) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena(n: usize) -> Vec<Table> {
        vec![Table::EMPTY; n]
    }

    fn stage2(tables: &mut [Table]) -> Stage2<'_> {
        let base = tables.as_ptr() as u64;
        Stage2::new(tables, base).unwrap()
    }

    #[test]
    fn vtcr_is_the_architectural_value() {
        assert_eq!(vtcr(), 25 | (1 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (0b010 << 16) | (1 << 31));
    }

    #[test]
    fn identity_maps_guest_ram_with_blocks() {
        let mut tables = arena(8);
        let mut s2 = stage2(&mut tables);
        s2.map(0x8000_0000, 0x8000_0000, 256 << 20, Attributes::NORMAL_RW).unwrap();
        assert_eq!(s2.tables_used(), 2, "root + one L2 table of 2 MiB blocks");
        for ipa in [0x8000_0000u64, 0x8000_0123, 0x8020_0000, 0x8fff_fff8] {
            assert_eq!(s2.translate(ipa), Some((ipa, Attributes::NORMAL_RW)));
        }
        assert_eq!(s2.translate(0x7fff_f000), None);
        assert_eq!(s2.translate(0x9000_0000), None);
        assert_eq!(s2.translate(0x0900_0000), None, "devices stay unmapped");
    }

    #[test]
    fn unaligned_edges_use_pages() {
        let mut tables = arena(8);
        let mut s2 = stage2(&mut tables);
        s2.map(0x4_0000_3000, 0x1_0000_3000, (2 << 20) + 0x2000, Attributes::DEVICE_RW).unwrap();
        assert_eq!(s2.translate(0x4_0000_3000), Some((0x1_0000_3000, Attributes::DEVICE_RW)));
        assert_eq!(s2.translate(0x4_0020_4ff8), Some((0x1_0020_4ff8, Attributes::DEVICE_RW)));
        assert_eq!(s2.translate(0x4_0020_5000), None);
        assert_eq!(s2.translate(0x4_0000_2fff), None);
    }

    #[test]
    fn refuses_overlaps_bad_ranges_and_exhaustion() {
        let mut tables = arena(3);
        let mut s2 = stage2(&mut tables);
        s2.map(0x8000_0000, 0x8000_0000, 4 << 20, Attributes::NORMAL_RW).unwrap();
        assert_eq!(
            s2.map(0x8000_0000, 0x9000_0000, 0x1000, Attributes::NORMAL_RW),
            Err(MapError::AlreadyMapped(0x8000_0000))
        );
        assert_eq!(s2.map(0x8000_0800, 0, 0x1000, Attributes::NORMAL_RW), Err(MapError::Unaligned));
        assert_eq!(s2.map(0, 0, 0, Attributes::NORMAL_RW), Err(MapError::OutOfRange));
        assert_eq!(s2.map(1 << 39, 0, 0x1000, Attributes::NORMAL_RW), Err(MapError::OutOfRange));
        assert_eq!(s2.map(!0xfff, 0, 0x1000, Attributes::NORMAL_RW), Err(MapError::OutOfRange));
        // One table left: an L3 table for a page in a new 1 GiB region needs two.
        assert_eq!(s2.map(0x1_0000_1000, 0x1000, 0x1000, Attributes::NORMAL_RW), Err(MapError::OutOfTables));
        assert_eq!(s2.translate(0x1_0000_1000), None);
    }

    #[test]
    fn descriptors_have_the_architected_bits() {
        let mut tables = arena(4);
        let mut s2 = stage2(&mut tables);
        s2.map(0x8000_0000, 0x8000_0000, 2 << 20, Attributes::NORMAL_RW).unwrap();
        s2.map(0x8020_0000, 0x8020_0000, 0x1000, Attributes::NORMAL_RW).unwrap();
        let root = s2.tables[0].0[2];
        assert_eq!(root & 3, 3, "L1 entry is a table");
        let l2 = &s2.tables[1].0;
        assert_eq!(l2[0], 0x8000_0000 | (0b1111 << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10) | 1);
        let page = s2.tables[2].0[0];
        assert_eq!(page & 3, 3, "L3 entry is a page");
        assert_eq!(page & ADDR_MASK, 0x8020_0000);
        assert_eq!(s2.root_pa(), s2.tables.as_ptr() as u64, "VTTBR_EL2 gets the arena's own address");
    }

    /// Device memory, field by field as the Arm ARM gives a stage-2 page descriptor:
    /// MemAttr[5:2] 0b0001 (Device-nGnRE), S2AP[7:6] 0b11 (read/write), SH[9:8] 0,
    /// AF (bit 10), XN (bit 54), page and valid (bits 1:0).
    #[test]
    fn device_pages_are_device_ngnre_and_never_executable() {
        let mut tables = arena(4);
        let mut s2 = stage2(&mut tables);
        s2.map(0x0900_0000, 0x0900_0000, 0x1000, Attributes::DEVICE_RW).unwrap();
        let page = s2.tables[2].0[slot(0x0900_0000, 3)];
        assert_eq!(page, 0x0900_0000 | (0b0001 << 2) | (0b11 << 6) | (1 << 10) | (1 << 54) | 0b11);
        assert_eq!(Attributes::DEVICE_RW.bits(), (0b0001 << 2) | (0b11 << 6) | (1 << 54));
        assert_eq!(Attributes::NORMAL_RW.bits(), (0b1111 << 2) | (0b11 << 6) | (0b11 << 8));
    }

    /// Each alignment is checked on its own, and the last page of the IPA space and of
    /// the 48-bit PA space can be mapped, but not one byte beyond.
    #[test]
    fn each_bound_is_checked_alone_and_at_its_edge() {
        let mut tables = arena(8);
        let mut s2 = stage2(&mut tables);
        let rw = Attributes::NORMAL_RW;
        assert_eq!(s2.map(0x1000, 0x2800, 0x1000, rw), Err(MapError::Unaligned), "PA");
        assert_eq!(s2.map(0x1000, 0x2000, 0x800, rw), Err(MapError::Unaligned), "size");
        let last_ipa = (1 << IPA_BITS) - 0x1000;
        assert_eq!(s2.map(last_ipa, 0x5000, 0x1000, rw), Ok(()), "the IPA space's last page");
        assert_eq!(s2.translate(last_ipa), Some((0x5000, rw)));
        assert_eq!(s2.map(0x1000, (1 << 48) - 0x1000, 0x1000, rw), Ok(()), "the PA space's last page");
        assert_eq!(s2.map(0x3000, 1 << 48, 0x1000, rw), Err(MapError::OutOfRange), "a PA beyond 48 bits");
    }

    /// Descriptors hyp never writes (a 1 GiB block, a table pointing at a table not
    /// handed out, an L3 entry without the page bit) translate to nothing, and mapping
    /// under them fails.
    #[test]
    fn descriptors_hyp_never_writes_translate_to_nothing() {
        let mut tables = arena(4);
        let mut s2 = stage2(&mut tables);
        s2.map(0x8000_0000, 0x8000_0000, 0x1000, Attributes::NORMAL_RW).unwrap();
        let (base, used) = (s2.base_pa, s2.tables_used() as u64);
        assert_eq!(used, 3);
        // An L1 block at 0x4000_0000.
        s2.tables[0].0[1] = 0x4000_0000 | Attributes::NORMAL_RW.bits() | AF | VALID;
        assert_eq!(s2.translate(0x4000_0000), None, "1 GiB blocks are never made");
        // An L1 table pointing just past the tables in use.
        s2.tables[0].0[3] = (base + used * GRANULE) | TABLE_OR_PAGE | VALID;
        assert_eq!(s2.translate(0xc000_0000), None);
        assert_eq!(s2.map(0xc000_0000, 0, 0x1000, Attributes::NORMAL_RW), Err(MapError::OutOfTables));
        // An L3 entry with the page bit cleared.
        let l3 = slot(0x8000_0000, 3);
        s2.tables[2].0[l3] &= !TABLE_OR_PAGE;
        assert_eq!(s2.translate(0x8000_0000), None);
    }
}
