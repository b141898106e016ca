//! The VM reference DT (entry 3 of the configuration data, [`pvmkit_abi::avf_config`]): the
//! bootloader's word on what the VM's DT must say. Every property of the reference DT
//! that the VM's DT also carries, at the same node path, must have exactly the same
//! value; a property or node the VM's DT lacks is not required (as the issue states
//! AVF's contract: "any property of the reference DT that the VM's DT also carries must
//! match it exactly"). Both trees are validated whole (dtoolkit) before either is read.

use alloc::string::String;
use core::fmt;

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};

/// Why the VM's DT was refused against the reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferenceDtError {
    /// The named tree (`reference` or `VM`) is not a valid DT.
    Malformed(&'static str),
    /// A property the VM's DT carries with another value than the reference's.
    Mismatch {
        /// The node's path.
        node: String,
        /// The property's name.
        property: String,
    },
}

impl fmt::Display for ReferenceDtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(which) => write!(f, "the {which} device tree is malformed"),
            Self::Mismatch { node, property } => {
                write!(f, "the VM's device tree gives {node}:{property} another value than the reference DT")
            }
        }
    }
}

/// Checks `vm` against `reference`.
pub fn check(reference: &[u8], vm: &[u8]) -> Result<(), ReferenceDtError> {
    let reference = Fdt::new(reference).map_err(|_| ReferenceDtError::Malformed("reference"))?;
    let vm = Fdt::new(vm).map_err(|_| ReferenceDtError::Malformed("VM"))?;
    let mut path = String::from("/");
    compare(&reference.root(), &vm.root(), &mut path)
}

/// The walk recurses only where both trees have the node, so its depth is the
/// reference's (the bootloader's), whatever the host nests in the VM's DT.
fn compare(reference: &FdtNode<'_>, vm: &FdtNode<'_>, path: &mut String) -> Result<(), ReferenceDtError> {
    for property in reference.properties() {
        let theirs = vm.properties().find(|p| p.name() == property.name());
        if theirs.is_some_and(|p| p.value() != property.value()) {
            return Err(ReferenceDtError::Mismatch { node: path.clone(), property: property.name().into() });
        }
    }
    for child in reference.children() {
        let Some(theirs) = vm.children().find(|c| c.name() == child.name()) else { continue };
        let depth = path.len();
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(child.name());
        compare(&child, &theirs, path)?;
        path.truncate(depth);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use vm_fdt::FdtWriter;

    /// A tree with `/avf` holding `key`, `/avf/untrusted` holding `flag` (when given),
    /// and `/chosen` holding `bootargs`.
    fn tree(key: &[u8], flag: Option<u32>, bootargs: &str) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        let avf = w.begin_node("avf").unwrap();
        w.property("secretkeeper_public_key", key).unwrap();
        if let Some(flag) = flag {
            let untrusted = w.begin_node("untrusted").unwrap();
            w.property_u32("instance-id", flag).unwrap();
            w.end_node(untrusted).unwrap();
        }
        w.end_node(avf).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", bootargs).unwrap();
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn shared_properties_must_match_and_others_are_free() {
        let reference = tree(b"key-1", Some(7), "ref");
        // The same values where both carry them (bootargs too: it is in both).
        assert_eq!(check(&reference, &tree(b"key-1", Some(7), "ref")), Ok(()));
        assert_eq!(check(&reference, &tree(b"key-1", None, "ref")), Ok(()), "a node the VM lacks");
        assert_eq!(
            check(&reference, &tree(b"key-2", Some(7), "ref")),
            Err(ReferenceDtError::Mismatch { node: "/avf".into(), property: "secretkeeper_public_key".into() })
        );
        assert_eq!(
            check(&reference, &tree(b"key-1", Some(8), "ref")),
            Err(ReferenceDtError::Mismatch { node: "/avf/untrusted".into(), property: "instance-id".into() })
        );
        assert_eq!(
            check(&reference, &tree(b"key-1", Some(7), "other")),
            Err(ReferenceDtError::Mismatch { node: "/chosen".into(), property: "bootargs".into() })
        );
        // A reference without /avf/untrusted leaves the VM's free.
        assert_eq!(check(&tree(b"key-1", None, "ref"), &tree(b"key-1", Some(9), "ref")), Ok(()));
    }

    #[test]
    fn malformed_trees_are_named() {
        let good = tree(b"k", None, "");
        assert_eq!(check(b"not a dt", &good), Err(ReferenceDtError::Malformed("reference")));
        assert_eq!(check(&good, &good[..good.len() - 8]), Err(ReferenceDtError::Malformed("VM")));
        let e = ReferenceDtError::Mismatch { node: "/avf".into(), property: "k".into() };
        assert!(e.to_string().contains("/avf:k"));
    }
}
