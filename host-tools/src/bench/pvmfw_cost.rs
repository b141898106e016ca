//! What pvmfw's verification costs: its `[pvmfw] verification cost: …` line (bytes
//! hashed, counter ticks hashing, counter ticks of the vbmeta signature check, the
//! counter's frequency), turned into instructions under `-icount shift=0` (one virtual
//! nanosecond per instruction), per payload.

use std::fmt::Write;

use crate::Backend;

/// The most instructions per byte hashed pvmfw may take: the ARMv8 SHA-2 instructions'
/// pace (AOSP's pvmfw gets the same from BoringSSL), so that a 30 MB kernel costs well
/// under 100 ms of guest time.
pub const TARGET_INSTRUCTIONS_PER_BYTE: f64 = 2.0;

/// One run's cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Bytes hashed (kernel and ramdisk).
    pub bytes: u64,
    /// Counter ticks hashing.
    pub hash_ticks: u64,
    /// Counter ticks of the signature check.
    pub signature_ticks: u64,
    /// The counter's frequency.
    pub frequency: u64,
}

impl Cost {
    /// Reads pvmfw's line among a run's console lines.
    pub fn parse(lines: &[String]) -> Option<Cost> {
        let line = lines.iter().find_map(|l| l.split("[pvmfw] verification cost: ").nth(1))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        // "<bytes> bytes hashed in <t> ticks, vbmeta signature <t> ticks, counter <f> Hz"
        let number = |i: usize| words.get(i)?.trim_end_matches(',').parse().ok();
        Some(Cost { bytes: number(0)?, hash_ticks: number(4)?, signature_ticks: number(8)?, frequency: number(11)? })
    }

    /// Instructions of `ticks` under `-icount shift=0`.
    pub fn instructions(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e9 / self.frequency.max(1) as f64
    }

    /// Instructions per byte hashed.
    pub fn per_byte(&self) -> f64 {
        self.instructions(self.hash_ticks) / self.bytes.max(1) as f64
    }
}

/// The table: per payload, its runs' bytes, instructions per byte hashed and the
/// signature check's instructions, and whether the hashing meets the target. Under hyp
/// the figures are pvmfw's own (and hyp's few exits); on the real pKVM they are the
/// whole machine's, the host's work mapping each page at pvmfw's first touch included,
/// so the target, which is pvmfw's, is held to hyp's figures only.
pub fn table(backend: Backend, rows: &[(&str, Vec<Cost>)]) -> String {
    let mut out = String::new();
    let whose = match backend {
        Backend::Hyp => "pvmfw's instructions",
        Backend::Pkvm => {
            "the whole machine's instructions in guest time (the host mapping each page pvmfw first touches included)"
        }
    };
    let _ = writeln!(out, "pvmfw's verification, {whose} (one counter tick is {} of them):", tick_size(rows));
    let _ = writeln!(
        out,
        "{:<12} {:>12} {:>22} {:>28}",
        "payload", "bytes hashed", "instructions per byte", "vbmeta signature check"
    );
    for (name, runs) in rows {
        let Some(first) = runs.first() else { continue };
        let per_byte: Vec<String> = runs.iter().map(|c| format!("{:.3}", c.per_byte())).collect();
        let signature: Vec<String> = runs.iter().map(|c| format!("{:.0}", c.instructions(c.signature_ticks))).collect();
        let _ = writeln!(out, "{name:<12} {:>12} {:>22} {:>28}", first.bytes, per_byte.join(" "), signature.join(" "));
    }
    let worst = rows.iter().flat_map(|(_, runs)| runs).map(Cost::per_byte).fold(0.0, f64::max);
    match backend {
        Backend::Hyp => {
            let met = if worst <= TARGET_INSTRUCTIONS_PER_BYTE { "met" } else { "NOT MET" };
            let _ = writeln!(
                out,
                "target: at most {TARGET_INSTRUCTIONS_PER_BYTE} instructions per byte hashed: {met} (worst {worst:.3})"
            );
        }
        Backend::Pkvm => {
            let _ = writeln!(
                out,
                "(the target of {TARGET_INSTRUCTIONS_PER_BYTE} per byte is pvmfw's own: see hyp's table)"
            );
        }
    }
    out
}

fn tick_size(rows: &[(&str, Vec<Cost>)]) -> String {
    let frequency = rows.iter().flat_map(|(_, runs)| runs).map(|c| c.frequency).next().unwrap_or(0);
    if frequency == 0 {
        "unknown".into()
    } else {
        format!("{:.0}", 1e9 / frequency as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pvmfw's line as `pvmfw/src/firmware.rs` prints it.
    const LINE: &str =
        "[pvmfw] verification cost: 210000 bytes hashed in 16000 ticks, vbmeta signature 5000 ticks, counter 62500000 Hz";

    #[test]
    fn reads_pvmfws_line_and_counts_instructions() {
        let lines = vec!["[pvmfw] platform: conduit Hvc".to_string(), LINE.to_string()];
        let cost = Cost::parse(&lines).unwrap();
        assert_eq!(cost, Cost { bytes: 210_000, hash_ticks: 16_000, signature_ticks: 5000, frequency: 62_500_000 });
        // 62.5 MHz: 16 ns a tick, one instruction a nanosecond.
        assert_eq!(cost.instructions(16_000), 256_000.0);
        assert!((cost.per_byte() - 256_000.0 / 210_000.0).abs() < 1e-9);
        assert_eq!(Cost::parse(&["[pvmfw] verification cost: garbled".to_string()]), None);
        let text = table(Backend::Hyp, &[("test-guest", vec![cost, cost])]);
        assert!(text.contains("one counter tick is 16 of them"), "{text}");
        assert!(text.contains("1.219 1.219") && text.contains("80000 80000"), "{text}");
        assert!(text.contains(": met (worst 1.219)"), "{text}");
        // Software SHA-256's pace fails the target.
        let slow = Cost { hash_ticks: 16_000 * 12, ..cost };
        assert!(table(Backend::Hyp, &[("Linux", vec![slow])]).contains("NOT MET"));
        // On the real pKVM the figures are the whole machine's: shown, not held to it.
        let pkvm = table(Backend::Pkvm, &[("Linux", vec![slow])]);
        assert!(pkvm.contains("whole machine") && !pkvm.contains("NOT MET") && !pkvm.contains(": met"), "{pkvm}");
    }
}
