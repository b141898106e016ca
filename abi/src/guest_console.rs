//! What the guest and `pvmkit` say to each other besides the exit line: the harness's
//! final `N passed, M failed` line (written by guest-lib, read by the verdict) and the
//! `pvmkit.*` command-line words (written by `pvmkit`, read by test-guest).
//!
//! ```
//! use pvmkit_abi::guest_console::{Summary, MODE};
//!
//! let line = Summary { passed: 12, failed: 0 }.to_string();
//! assert_eq!(line, "12 passed, 0 failed");
//! assert_eq!(Summary::parse(&line), Some(Summary { passed: 12, failed: 0 }));
//! assert_eq!(format!("{MODE}=protected"), "pvmkit.mode=protected");
//! ```

use core::fmt;

/// The harness's final line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cases that passed.
    pub passed: u32,
    /// Cases that failed.
    pub failed: u32,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

impl Summary {
    /// The summary `line` is, if it is exactly one (surrounding whitespace aside).
    pub fn parse(line: &str) -> Option<Self> {
        let (passed, rest) = line.trim().split_once(" passed, ")?;
        let failed = rest.strip_suffix(" failed")?;
        Some(Self { passed: passed.parse().ok()?, failed: failed.parse().ok()? })
    }
}

/// The VM's mode as test-guest must check it: `protected`, `unprotected` or `bare`.
pub const MODE: &str = "pvmkit.mode";
/// The profile a protected VM answers with: `android` or `upstream`.
pub const ABI: &str = "pvmkit.abi";
/// Which hypervisor runs the VM when it is not hyp: `pkvm`.
pub const BACKEND: &str = "pvmkit.backend";
/// A misbehaviour test-guest is asked for (`normal` by default).
pub const SCENARIO: &str = "pvmkit.scenario";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exact_summary_line_parses() {
        assert_eq!(Summary::parse("12 passed, 0 failed\r"), Some(Summary { passed: 12, failed: 0 }));
        assert_eq!(Summary::parse("x 12 passed, 0 failed"), None);
        assert_eq!(Summary::parse("12 passed, 0 failed, 1 skipped"), None);
        assert_eq!(Summary::parse("-1 passed, 0 failed"), None);
    }
}
