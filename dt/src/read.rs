//! The device-tree decoding hyp's platform reader, guest-lib and pvmfw's host-DT check
//! each did on their own: a node's `reg` as checked [`Region`]s, and a property of one
//! or two cells as a `u64`. Each reader names the property in its own error type.
//!
//! ```
//! use pvmkit_dt::read::cells_u64;
//!
//! assert_eq!(cells_u64(&[0, 0, 0x10, 0]), Some(0x1000));
//! assert_eq!(cells_u64(&[0, 0, 0, 1, 0, 0, 0, 0]), Some(1 << 32));
//! assert_eq!(cells_u64(&[1, 2, 3]), None);
//! ```
use dtoolkit::fdt::FdtNode;
use pvmkit_abi::memory_map::Region;

/// A `reg` property that does not decode (bad cells, or a region that wraps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadReg;

/// The regions of `node`'s `reg` (none when it has no `reg`), each checked not to wrap.
pub fn regions<'a>(node: FdtNode<'a>) -> Result<impl Iterator<Item = Result<Region, BadReg>> + 'a, BadReg> {
    let regs = node.reg().map_err(|_| BadReg)?;
    Ok(regs.into_iter().flatten().map(|reg| {
        let start = reg.address::<u64>().map_err(|_| BadReg)?;
        let size = reg.size::<u64>().map_err(|_| BadReg)?;
        Region::new(start, size).ok_or(BadReg)
    }))
}

/// The first region of `node`'s `reg`, if it has one.
pub fn first_region(node: FdtNode<'_>) -> Result<Option<Region>, BadReg> {
    regions(node)?.next().transpose()
}

/// A property value of one or two big-endian cells.
pub fn cells_u64(value: &[u8]) -> Option<u64> {
    match *value {
        [a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d]) as u64),
        [a, b, c, d, e, f, g, h] => Some(u64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => None,
    }
}

/// The INTID of a GIC `interrupts` property's first specifier (type, number, flags):
/// an SPI's number counts from 32, a PPI's from 16.
pub fn first_intid(value: &[u8]) -> Option<u32> {
    let cell = |i: usize| Some(u32::from_be_bytes(value.get(4 * i..4 * i + 4)?.try_into().ok()?));
    let (kind, number) = (cell(0)?, cell(1)?);
    cell(2)?;
    match kind {
        pvmkit_abi::dt::GIC_SPI if number < 988 => Some(pvmkit_abi::gic::spi_intid(number)),
        pvmkit_abi::dt::GIC_PPI if number < 16 => Some(pvmkit_abi::gic::ppi_intid(number)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gic_specifier_names_its_intid() {
        let cells = |c: [u32; 3]| c.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(first_intid(&cells([0, 16, 4])), Some(48));
        assert_eq!(first_intid(&cells([1, 11, 4])), Some(27));
        assert_eq!(first_intid(&cells([2, 1, 4])), None, "not a GIC type");
        assert_eq!(first_intid(&cells([1, 16, 4])), None, "PPIs are 0..16");
        assert_eq!(first_intid(&cells([0, 1, 4])[..8]), None, "cut short");
    }
    use dtoolkit::fdt::Fdt;
    use dtoolkit::Node;
    use vm_fdt::FdtWriter;

    fn tree(reg: &[u64]) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let dev = w.begin_node("dev@0").unwrap();
        w.property_array_u64("reg", reg).unwrap();
        w.end_node(dev).unwrap();
        let none = w.begin_node("none").unwrap();
        w.end_node(none).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn regions_decode_and_wrapping_ones_are_refused() {
        let blob = tree(&[0x0900_0000, 0x1000, 0x0a00_0000, 0x200]);
        let fdt = Fdt::new(&blob).unwrap();
        let dev = fdt.root().children().find(|n| n.name() == "dev@0").unwrap();
        let all: Vec<_> = regions(dev).unwrap().collect();
        assert_eq!(
            all,
            [Ok(Region { start: 0x0900_0000, end: 0x0900_1000 }), Ok(Region { start: 0x0a00_0000, end: 0x0a00_0200 })]
        );
        assert_eq!(first_region(dev), Ok(Some(Region { start: 0x0900_0000, end: 0x0900_1000 })));
        let none = fdt.root().children().find(|n| n.name() == "none").unwrap();
        assert_eq!(first_region(none), Ok(None));
        let blob = tree(&[u64::MAX, 2]);
        let fdt = Fdt::new(&blob).unwrap();
        let dev = fdt.root().children().find(|n| n.name() == "dev@0").unwrap();
        assert_eq!(first_region(dev), Err(BadReg));
    }
}
