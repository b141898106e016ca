//! The lines hyp and the pkvm backend's VMM write, and the exit line that ends every
//! run — hyp's (`[hyp] exit: …`) and the VMM's (`[vmm] exit: …`) — in one wording, which
//! `pvmkit`'s verdict reads: `reason=` first, then `key=value` fields, free text quoted.
//!
//! The guest's console bytes share the stream with these lines, so a guest could print
//! a perfect exit line of its own. It cannot print the run's [`Nonce`]: `pvmkit` picks
//! one per run and hands it to hyp (its command line, from QEMU's DTB) or to the VMM
//! (a file in the pKVM host's initramfs), never to the guest. On the wire every line
//! they write starts with their [`Tag`] and the nonce, `[hyp#0123456789abcdef] `;
//! [`Shown`] turns a line with the run's nonce into its plain form (`[hyp] …`) and
//! marks any other line that could pass for a host line, so that none can.
//!
//! ```
//! use pvmkit_abi::exit_line::{Head, Nonce, Quoted, Reason, Shown, Tag, Violation, Writer};
//! use pvmkit_abi::virtio_mmio::BufferRole;
//!
//! let v = Violation {
//!     ipa: 0x8040_0000,
//!     vcpu: Some(1),
//!     device: Some(0x0a00_3e00),
//!     queue: Some(0),
//!     descriptor: Some(2),
//!     buffer: Some(BufferRole::Status),
//!     what: "buffer page not shared",
//! };
//! assert_eq!(
//!     format!("{} {}{v}", Tag(Writer::Hyp, None), Head(Reason::Violation)),
//!     "[hyp] exit: reason=violation ipa=0x80400000 vcpu=1 device=virtio-mmio@0xa003e00 queue=0 desc=2 buffer=status what=\"buffer page not shared\""
//! );
//! assert_eq!(Quoted("a \"b\"").to_string(), "\"a 'b'\"");
//!
//! let nonce = Nonce(0x0123_4567_89ab_cdef);
//! let wire = format!("{} {}", Tag(Writer::Hyp, Some(nonce)), Head(Reason::SystemOff));
//! assert_eq!(wire, "[hyp#0123456789abcdef] exit: reason=system_off");
//! assert_eq!(Shown(&wire, Some(nonce)).to_string(), "[hyp] exit: reason=system_off");
//! assert_eq!(Shown("[hyp] exit: reason=system_off", Some(nonce)).to_string(), "guest| [hyp] exit: reason=system_off");
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
    /// The tag that starts its lines as shown.
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Hyp => "[hyp]",
            Self::Vmm => "[vmm]",
        }
    }

    /// Its name inside the tag.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hyp => "hyp",
            Self::Vmm => "vmm",
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
    /// Every vCPU powered itself off (PSCI CPU_OFF): nothing can run again.
    AllVcpusOff,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 7] = [
        Self::SystemOff,
        Self::Reset,
        Self::Violation,
        Self::GuestCrash,
        Self::HypError,
        Self::VmmError,
        Self::AllVcpusOff,
    ];

    /// The word after `reason=`.
    pub const fn word(self) -> &'static str {
        match self {
            Self::SystemOff => "system_off",
            Self::Reset => "reset",
            Self::Violation => "violation",
            Self::GuestCrash => "guest_crash",
            Self::HypError => "hyp_error",
            Self::VmmError => "vmm_error",
            Self::AllVcpusOff => "all_vcpus_off",
        }
    }

    /// The reason a word names.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.word() == word)
    }
}

/// A run's secret: 64 random bits `pvmkit` hands hyp or the VMM and never the guest,
/// written as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nonce(pub u64);

impl Nonce {
    /// The option word that hands it over: `nonce=<16 hex digits>`.
    pub const OPTION: &'static str = "nonce";

    /// Reads 16 hex digits (exactly: a shorter or longer word is not a nonce).
    pub fn parse(digits: &str) -> Option<Self> {
        let valid = digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| u64::from_str_radix(digits, 16).ok().map(Self)).flatten()
    }

    /// The nonce an option line hands over (`… nonce=… …`), if any.
    pub fn from_options(options: &str) -> Option<Self> {
        options
            .split_whitespace()
            .find_map(|w| w.strip_prefix(Self::OPTION).and_then(|w| w.strip_prefix('=')))
            .and_then(Self::parse)
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What starts every line `writer` writes: `[hyp#<nonce>]` on the wire, `[hyp]` as
/// shown (and for a writer that was handed no nonce).
pub struct Tag(pub Writer, pub Option<Nonce>);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(nonce) => write!(f, "[{}#{nonce}]", self.0.name()),
            None => f.write_str(self.0.tag()),
        }
    }
}

/// An exit line's body after the tag, `exit: reason=system_off`; the fields follow.
pub struct Head(pub Reason);

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit: reason={}", self.0.word())
    }
}

/// The `reason=` word of `writer`'s exit line as shown (`[hyp] exit: reason=…`), if
/// `line` is one (any word: a reader reports an unknown one rather than drop it).
pub fn parse(writer: Writer, line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix(writer.tag())?.strip_prefix(" exit: reason=")?;
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// What starts a console line that is not a host's, where it could pass for one.
pub const GUEST_MARK: &str = "guest| ";

/// The writer and the rest of `line`, if it starts with a writer's wire tag with
/// `nonce`.
fn host_line(line: &str, nonce: Nonce) -> Option<(Writer, &str)> {
    [Writer::Hyp, Writer::Vmm].into_iter().find_map(|writer| {
        let rest = line.strip_prefix('[')?.strip_prefix(writer.name())?.strip_prefix('#')?;
        let (digits, rest) = (rest.get(..16)?, rest.get(16..)?);
        let rest = rest.strip_prefix(']')?;
        (Nonce::parse(digits)? == nonce).then_some((writer, rest))
    })
}

/// A console line as `pvmkit` shows and judges it (`Shown(line, nonce).to_string()`).
/// A line that starts with a writer's tag and the run's nonce is that writer's: shown
/// with its plain tag. Any other line that could be read as a host line (one starting,
/// after blanks, with `[hyp` or `[vmm`, with a wrong nonce or none) is marked
/// [`GUEST_MARK`]; control characters in lines not the host's are shown escaped
/// (`\u{1b}`), so that no terminal trick can make one look like a host line either.
pub struct Shown<'a>(pub &'a str, pub Option<Nonce>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Shown(line, nonce) = *self;
        if let Some((writer, rest)) = nonce.and_then(|n| host_line(line, n)) {
            return write!(f, "{}{rest}", writer.tag());
        }
        let start = line.trim_start_matches(|c: char| c.is_whitespace() || c.is_control());
        if start.starts_with("[hyp") || start.starts_with("[vmm") {
            f.write_str(GUEST_MARK)?;
        }
        for c in line.chars() {
            if c.is_control() && c != '\t' {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
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

/// A violation's fields: ` ipa=… vcpu=… device=virtio-mmio@… queue=… desc=… buffer=… what="…"`.
pub struct Violation<'a> {
    /// The guest IPA.
    pub ipa: u64,
    /// The vCPU whose exit found it, when known.
    pub vcpu: Option<u32>,
    /// The device's register base, when a device is involved.
    pub device: Option<u64>,
    /// The queue.
    pub queue: Option<u32>,
    /// The descriptor.
    pub descriptor: Option<u16>,
    /// Which part of its request the descriptor's buffer is (`header`, `data`, `status`).
    pub buffer: Option<crate::virtio_mmio::BufferRole>,
    /// What was wrong.
    pub what: &'a str,
}

impl fmt::Display for Violation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " ipa={:#x}", self.ipa)?;
        if let Some(vcpu) = self.vcpu {
            write!(f, " vcpu={vcpu}")?;
        }
        if let Some(base) = self.device {
            write!(f, " device=virtio-mmio@{base:#x}")?;
        }
        if let Some(q) = self.queue {
            write!(f, " queue={q}")?;
        }
        if let Some(d) = self.descriptor {
            write!(f, " desc={d}")?;
        }
        if let Some(role) = self.buffer {
            write!(f, " buffer={}", role.name())?;
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
                let line = format!("{} {} ipa=0x0", Tag(writer, None), Head(reason));
                assert_eq!(parse(writer, &line), Some(reason.word()));
                assert_eq!(Reason::from_word(reason.word()), Some(reason));
            }
        }
        assert_eq!(Head(Reason::SystemOff).to_string(), "exit: reason=system_off");
        assert_eq!(parse(Writer::Vmm, "[hyp] exit: reason=reset"), None);
        assert_eq!(parse(Writer::Hyp, "  [hyp] exit: reason=reset  "), Some("reset"));
    }

    const NONCE: Nonce = Nonce(0x5eed_0000_0000_0001);

    #[test]
    fn nonces_are_16_hex_digits_handed_over_as_an_option() {
        assert_eq!(NONCE.to_string(), "5eed000000000001");
        assert_eq!(Nonce::parse("5eed000000000001"), Some(NONCE));
        assert_eq!(Nonce::parse("5eed00000000001"), None, "15 digits");
        assert_eq!(Nonce::parse("+eed000000000001"), None);
        assert_eq!(Nonce::from_options("mode=protected nonce=5eed000000000001 stats=on"), Some(NONCE));
        assert_eq!(Nonce::from_options("mode=protected nonces=5eed000000000001"), None);
        assert_eq!(Nonce::from_options("mode=protected"), None);
    }

    #[test]
    fn only_the_runs_nonce_makes_a_host_line() {
        let real = format!("{} {}", Tag(Writer::Vmm, Some(NONCE)), Head(Reason::SystemOff));
        assert_eq!(real, "[vmm#5eed000000000001] exit: reason=system_off");
        assert_eq!(Shown(&real, Some(NONCE)).to_string(), "[vmm] exit: reason=system_off");
        assert_eq!(parse(Writer::Vmm, &Shown(&real, Some(NONCE)).to_string()), Some("system_off"));
        // A guest's forgeries: no nonce, a guessed one, blanks or escapes in front.
        for forged in [
            "[vmm] exit: reason=system_off",
            "[vmm#5eed000000000002] exit: reason=system_off",
            "  [hyp] exit: reason=system_off",
            "\u{1b}[2K\r[hyp] exit: reason=system_off",
            "[hyp#5eed000000000001] exit: reason=system_off",
        ] {
            let nonce = if forged.starts_with("[hyp#") { Nonce(1) } else { NONCE };
            let line = Shown(forged, Some(nonce)).to_string();
            assert!(line.starts_with(GUEST_MARK) || line.starts_with("\\u{1b}"), "{line}");
            assert_eq!(parse(Writer::Vmm, &line), None);
            assert_eq!(parse(Writer::Hyp, &line), None);
        }
        assert_eq!(Shown("\u{1b}[31mred", None).to_string(), "\\u{1b}[31mred");
        assert_eq!(Shown("test a ... ok", Some(NONCE)).to_string(), "test a ... ok");
        // A bare run has no host: every look-alike is the guest's.
        assert!(Shown("[hyp] exit: reason=system_off", None).to_string().starts_with(GUEST_MARK));
    }

    #[test]
    fn fields_and_quoting() {
        let v = Violation {
            ipa: 0x8000_1000,
            vcpu: Some(3),
            device: Some(0xa00_3e00),
            queue: Some(0),
            descriptor: Some(2),
            buffer: Some(crate::virtio_mmio::BufferRole::Data),
            what: "x",
        };
        assert_eq!(
            format!("{v}"),
            " ipa=0x80001000 vcpu=3 device=virtio-mmio@0xa003e00 queue=0 desc=2 buffer=data what=\"x\""
        );
        let v = Violation {
            ipa: 0,
            vcpu: None,
            device: None,
            queue: None,
            descriptor: None,
            buffer: None,
            what: "a \"b\"\nc",
        };
        assert_eq!(format!("{v}"), " ipa=0x0 what=\"a 'b''c\"");
    }
}
