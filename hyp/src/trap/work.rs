//! hyp's own work, counted so that it repeats: the EL2 instructions spent on the
//! guest's requests, without the instructions spent waiting.
//!
//! The counter (the PMU's instruction counter, filtered to EL2) runs all the time;
//! what it counts while hyp only waits depends on how fast QEMU's devices answer in
//! real time, so the meter leaves it out:
//! - an exit the guest asked for (an MMIO access, a hypercall, an abort) counts whole,
//!   except the polls of the used rings that delivered nothing and the waits for the
//!   device (of which only the polls that delivered count);
//! - an exit the guest did not ask for (hyp's tick, a WFI) counts only the polls that
//!   delivered completions: the device's work for the guest, wherever it lands.
//!
//! ```
//! use hyp::trap::work::WorkMeter;
//!
//! let mut meter = WorkMeter::new();
//! meter.exit_begins(100);
//! meter.polled(110, 150, 0); // waited: not counted
//! meter.polled(150, 170, 1); // delivered a completion
//! meter.exit_ends(200, true);
//! assert_eq!(meter.total(), 60);
//! ```

/// Accumulates hyp's counted instructions from readings of a free-running 32-bit
/// counter (differences wrap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkMeter {
    total: u64,
    exit_start: u32,
    idle: u64,
    delivering: u64,
}

impl WorkMeter {
    /// Nothing counted yet.
    pub const fn new() -> Self {
        Self { total: 0, exit_start: 0, idle: 0, delivering: 0 }
    }

    /// An exit starts, the counter reading `now`.
    pub fn exit_begins(&mut self, now: u32) {
        self.exit_start = now;
        self.idle = 0;
        self.delivering = 0;
    }

    /// One poll of the used rings ran from `from` to `to` and delivered `delivered`
    /// completions.
    pub fn polled(&mut self, from: u32, to: u32, delivered: u16) {
        let spent = u64::from(to.wrapping_sub(from));
        if delivered == 0 {
            self.idle += spent;
        } else {
            self.delivering += spent;
        }
    }

    /// hyp waited for the device from `from` to `to`; of that, `delivering`
    /// instructions were polls that delivered completions.
    pub fn waited(&mut self, from: u32, to: u32, delivering: u64) {
        let spent = u64::from(to.wrapping_sub(from));
        let delivering = delivering.min(spent);
        self.idle += spent - delivering;
        self.delivering += delivering;
    }

    /// The exit ends at `now`; `requested` says whether the guest asked for it.
    pub fn exit_ends(&mut self, now: u32, requested: bool) {
        let spent = u64::from(now.wrapping_sub(self.exit_start));
        self.total += if requested { spent.saturating_sub(self.idle) } else { self.delivering.min(spent) };
        self.idle = 0;
        self.delivering = 0;
    }

    /// Instructions counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_is_left_out_and_delivering_is_kept() {
        let mut m = WorkMeter::new();
        // A notify: 1000 instructions, of which 700 were empty polls.
        m.exit_begins(0);
        m.polled(100, 800, 0);
        m.polled(800, 850, 1);
        m.exit_ends(1000, true);
        assert_eq!(m.total(), 300);
        // A tick that only polled: nothing.
        m.exit_begins(5000);
        m.polled(5010, 5040, 0);
        m.exit_ends(5100, false);
        assert_eq!(m.total(), 300);
        // A tick that delivered: the delivering poll only.
        m.exit_begins(6000);
        m.polled(6010, 6090, 2);
        m.exit_ends(6100, false);
        assert_eq!(m.total(), 380);
    }

    #[test]
    fn a_wait_counts_only_its_delivering_polls() {
        let mut m = WorkMeter::new();
        m.exit_begins(0);
        m.waited(100, 10_100, 80);
        m.exit_ends(10_150, true);
        assert_eq!(m.total(), 150 + 80);
        // A lying `delivering` cannot count more than the wait.
        m.exit_begins(0);
        m.waited(0, 10, 1000);
        m.exit_ends(10, true);
        assert_eq!(m.total(), 240);
    }

    #[test]
    fn waits_in_one_exit_add_up() {
        let mut m = WorkMeter::new();
        m.exit_begins(0);
        m.waited(100, 600, 0);
        m.waited(600, 1100, 0);
        m.exit_ends(1200, true);
        assert_eq!(m.total(), 1200 - 1000, "both waits are left out");
    }

    #[test]
    fn delivering_waits_in_one_tick_add_up() {
        let mut m = WorkMeter::new();
        m.exit_begins(0);
        m.waited(0, 500, 30);
        m.waited(500, 1000, 40);
        m.exit_ends(1000, false);
        assert_eq!(m.total(), 70, "a tick counts both waits' delivering polls");
    }

    #[test]
    fn the_counter_may_wrap() {
        let mut m = WorkMeter::new();
        m.exit_begins(u32::MAX - 9);
        m.exit_ends(10, true);
        assert_eq!(m.total(), 20);
    }

    #[test]
    fn the_same_work_counts_the_same_however_long_the_wait() {
        let run = |idle_polls: u32| {
            let mut m = WorkMeter::new();
            let mut now = 0u32;
            m.exit_begins(now);
            now += 40;
            let wait = now;
            for _ in 0..idle_polls {
                now += 25 + 7; // a poll and the loop around it
            }
            now += 90; // the poll that delivered
            m.waited(wait, now, 90);
            m.exit_ends(now + 10, true);
            // Ticks while the guest waits.
            for _ in 0..idle_polls / 3 {
                m.exit_begins(now + 100);
                m.polled(now + 110, now + 135, 0);
                m.exit_ends(now + 150, false);
                now += 200;
            }
            m.total()
        };
        assert_eq!(run(0), 140);
        assert_eq!(run(7), 140);
        assert_eq!(run(5000), 140);
    }
}
