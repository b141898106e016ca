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

/// Who wrote an exit line: hyp, or the pkvm backend's VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// `[hyp]`.
    Hyp,
    /// `[vmm]`.
    Vmm,
}

impl Writer {
    /// The tag that starts its lines.
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Hyp => "[hyp]",
            Self::Vmm => "[vmm]",
        }
    }
}

/// The `reason=` word of an exit line: the same words from hyp and the VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// PSCI SYSTEM_OFF: a clean power-off.
    SystemOff,
    /// PSCI SYSTEM_RESET: the guest (or pvmfw) gave up.
    Reset,
    /// The guest broke a rule the validator enforces.
    Violation,
    /// The guest took an exception nothing can hand back.
    GuestCrash,
    /// hyp could not go on.
    HypError,
    /// The VMM could not go on.
    VmmError,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 6] =
        [Self::SystemOff, Self::Reset, Self::Violation, Self::GuestCrash, Self::HypError, Self::VmmError];

    /// The word after `reason=`.
    pub const fn word(self) -> &'static str {
        match self {
            Self::SystemOff => "system_off",
            Self::Reset => "reset",
            Self::Violation => "violation",
            Self::GuestCrash => "guest_crash",
            Self::HypError => "hyp_error",
            Self::VmmError => "vmm_error",
        }
    }

    /// The reason a word names.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.word() == word)
    }
}

/// The start of an exit line, `[hyp] exit: reason=system_off`; the fields follow.
pub struct Head(pub Writer, pub Reason);

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} exit: reason={}", self.0.tag(), self.1.word())
    }
}

/// The `reason=` word of `writer`'s exit line, if `line` is one (any word: a reader
/// reports an unknown one rather than drop it).
pub fn parse(writer: Writer, line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix(writer.tag())?.strip_prefix(" exit: reason=")?;
    Some(rest.split_whitespace().next().unwrap_or(""))
}

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
    fn heads_are_written_and_read_in_one_wording() {
        for writer in [Writer::Hyp, Writer::Vmm] {
            for reason in Reason::ALL {
                let line = format!("{} ipa=0x0", Head(writer, reason));
                assert_eq!(parse(writer, &line), Some(reason.word()));
                assert_eq!(Reason::from_word(reason.word()), Some(reason));
            }
        }
        assert_eq!(Head(Writer::Hyp, Reason::SystemOff).to_string(), "[hyp] exit: reason=system_off");
        assert_eq!(parse(Writer::Vmm, "[hyp] exit: reason=reset"), None);
        assert_eq!(parse(Writer::Hyp, "  [hyp] exit: reason=reset  "), Some("reset"));
    }

    #[test]
    fn fields_and_quoting() {
        let v =
            Violation { ipa: 0x8000_1000, device: Some(0xa00_3e00), queue: Some(0), descriptor: Some(2), what: "x" };
        assert_eq!(format!("{v}"), " ipa=0x80001000 device=virtio-mmio@0xa003e00 queue=0 desc=2 what=\"x\"");
        let v = Violation { ipa: 0, device: None, queue: None, descriptor: None, what: "a \"b\"\nc" };
        assert_eq!(format!("{v}"), " ipa=0x0 what=\"a 'b''c\"");
    }
}
