//! How a run ends: the summaries of what hyp refused, the exit line, power-off; and
//! `fail!`, for a run hyp cannot go on with.

use core::fmt::Write;

use hyp::trap::exit::ExitReason;

use crate::arch;
use crate::console::hyp_println;
use crate::exit_summary::SUMMARY;

/// Ends the run: the exit line, then power off.
pub fn exit(reason: ExitReason<'_>) -> ! {
    if let Some(summary) = SUMMARY.borrow() {
        if let Some((ipa, why)) = summary.last_refused {
            hyp_println!(
                "injected {} external abort(s) for refused accesses; last: IPA {ipa:#x}, {}",
                summary.refused,
                why.describe()
            );
        }
        if let Some((policy, ipa)) = summary.last_policy {
            hyp_println!(
                "validator policies refused {} call(s) the release would have carried out; last: policy {policy} at {ipa:#x}",
                summary.policy_refusals
            );
        }
    }
    hyp_println!("{reason}");
    arch::power_off()
}

pub fn fail(detail: &str) -> ! {
    hyp_println!("error: {detail}");
    exit(ExitReason::HypError { detail })
}

/// Fails with a formatted detail (kept in a small buffer: hyp has no heap).
macro_rules! fail {
    ($($arg:tt)*) => {{
        let mut buf = $crate::exit_path::Line::new();
        let _ = core::fmt::Write::write_fmt(&mut buf, format_args!($($arg)*));
        $crate::exit_path::fail(buf.as_str())
    }};
}

/// A fixed buffer for one formatted message.
pub struct Line {
    bytes: [u8; 160],
    len: usize,
}

impl Line {
    pub const fn new() -> Self {
        Self { bytes: [0; 160], len: 0 }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("(message lost)")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.bytes.len() && b.is_ascii() {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}
