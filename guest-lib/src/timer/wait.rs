//! The host-tested part of a timed wait: how many ticks a duration is, and how a wait
//! woke.

/// Timer ticks for `ns` nanoseconds at `frequency` Hz, rounded up, at least one.
pub fn ticks(ns: u64, frequency: u64) -> u64 {
    let ticks = (u128::from(ns) * u128::from(frequency)).div_ceil(1_000_000_000);
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

/// How a wait was woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The timer's interrupt, through the GIC (hyp's vGIC, real KVM, plain QEMU).
    Interrupt,
    /// No usable GIC: each WFI returned at once and the timer was polled.
    Polled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up() {
        assert_eq!(ticks(1_000_000, 62_500_000), 62_500);
        assert_eq!(ticks(1, 62_500_000), 1);
        assert_eq!(ticks(0, 62_500_000), 1);
        assert_eq!(ticks(u64::MAX, u64::MAX), u64::MAX);
    }
}
