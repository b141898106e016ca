//! The exit line that ends every run — hyp's (`[hyp] exit: …`) and the pkvm backend's
//! VMM's (`[vmm] exit: …`) — in one wording, which `pvmkit`'s verdict reads: `reason=`
//! first, then `key=value` fields, free text quoted.
//!
//! ```
//! use abi::exit_line::{Quoted, Violation};
//!
//! let v = Violation { ipa: 0x8040_0000, device: Some(0x0a00_3e00), queue: Some(0), descriptor: Some(2), what: "buffer page not shared" };
//! assert_eq!(
//!     format!("[hyp] exit: reason=violation{v}"),
//!     "[hyp] exit: reason=violation ipa=0x80400000 device=virtio-mmio@0xa003e00 queue=0 desc=2 what=\"buffer page not shared\""
//! );
//! assert_eq!(Quoted("a \"b\"").to_string(), "\"a 'b'\"");
//! ```

use core::fmt;

/// Free text as a quoted field value: quotes and control characters become `'`, so
/// the line stays one line and a value cannot end early.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            let c = if c == '"' || c.is_control() { '\'' } else { c };
            fmt::Write::write_char(f, c)?;
        }
        f.write_str("\"")
    }
}

/// A violation's fields: ` ipa=… device=virtio-mmio@… queue=… desc=… what="…"`.
pub struct Violation<'a> {
    /// The guest IPA.
    pub ipa: u64,
    /// The device's register base, when a device is involved.
    pub device: Option<u64>,
    /// The queue.
    pub queue: Option<u32>,
    /// The descriptor.
    pub descriptor: Option<u16>,
    /// What was wrong.
    pub what: &'a str,
}

impl fmt::Display for Violation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " ipa={:#x}", self.ipa)?;
        if let Some(base) = self.device {
            write!(f, " device=virtio-mmio@{base:#x}")?;
        }
        if let Some(q) = self.queue {
            write!(f, " queue={q}")?;
        }
        if let Some(d) = self.descriptor {
            write!(f, " desc={d}")?;
        }
        write!(f, " what={}", Quoted(self.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_quoting() {
        let v =
            Violation { ipa: 0x8000_1000, device: Some(0xa00_3e00), queue: Some(0), descriptor: Some(2), what: "x" };
        assert_eq!(format!("{v}"), " ipa=0x80001000 device=virtio-mmio@0xa003e00 queue=0 desc=2 what=\"x\"");
        let v = Violation { ipa: 0, device: None, queue: None, descriptor: None, what: "a \"b\"\nc" };
        assert_eq!(format!("{v}"), " ipa=0x0 what=\"a 'b''c\"");
    }
}
