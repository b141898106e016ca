//! The payload's command line: the host's, less the words it may not pass.
//!
//! The rule: every word of the host's (already checked, printable) command line passes
//! unchanged, except words in the reserved namespaces `guest-lib.` and `pvmfw.`
//! ([`RESERVED_BOOTARG_PREFIXES`]): those are the guest runtime's and the firmware's
//! own switches, which only a build may set, never the host. pvmfw drops them and
//! names each one on its console.

use alloc::string::String;
use alloc::vec::Vec;

use pvmkit_abi::pvmfw::RESERVED_BOOTARG_PREFIXES;

/// The host's command line split into what passes and what pvmfw drops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filtered<'a> {
    /// The payload's command line: the words that pass, single-spaced.
    pub kept: String,
    /// The words dropped.
    pub dropped: Vec<&'a str>,
}

/// Applies the rule to `host`.
pub fn filter(host: &str) -> Filtered<'_> {
    let (mut kept, mut dropped) = (String::new(), Vec::new());
    for word in host.split_ascii_whitespace() {
        if RESERVED_BOOTARG_PREFIXES.iter().any(|p| word.starts_with(p)) {
            dropped.push(word);
        } else {
            if !kept.is_empty() {
                kept.push(' ');
            }
            kept.push_str(word);
        }
    }
    Filtered { kept, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_switches_are_dropped_and_named() {
        let f = filter("pvmkit.mode=protected  guest-lib.unsafe-skip-mmio-guard console=x pvmfw.debug");
        assert_eq!(f.kept, "pvmkit.mode=protected console=x");
        assert_eq!(f.dropped, ["guest-lib.unsafe-skip-mmio-guard", "pvmfw.debug"]);
        assert_eq!(filter("").kept, "");
        assert_eq!(filter("a guest-lib b").kept, "a guest-lib b", "only the prefix with its dot is reserved");
    }
}
