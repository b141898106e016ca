//! hyp's work meter wired to the PMU: on only with the hyp option `stats=on` (for
//! `pvmkit bench`) and a PMU whose instruction counter moves (QEMU with `-icount`).
//! What counts and what does not is `hyp::trap::work`'s.

use hyp::exclusive::Exclusive;
use hyp::trap::work::WorkMeter;

use crate::arch::pmu::{self, HypCounter};

static METER: Exclusive<Option<(HypCounter, WorkMeter)>> = Exclusive::new(None);

/// Starts counting; `false` when the PMU cannot (the meter then stays off).
pub fn start() -> bool {
    let Some(counter) = pmu::start() else { return false };
    match METER.borrow() {
        Some(mut meter) => {
            *meter = Some((counter, WorkMeter::new()));
            true
        }
        None => false,
    }
}

fn with(f: impl FnOnce(&HypCounter, &mut WorkMeter)) {
    if let Some(mut meter) = METER.borrow() {
        if let Some((counter, meter)) = meter.as_mut() {
            f(counter, meter);
        }
    }
}

/// A guest exit starts.
pub fn exit_begins() {
    with(|c, m| m.exit_begins(c.instructions()));
}

/// The exit ends; `requested`: the guest asked for it (not a tick or a WFI).
pub fn exit_ends(requested: bool) {
    with(|c, m| m.exit_ends(c.instructions(), requested));
}

/// Runs one poll of the used rings, which returns how many completions it delivered.
pub fn poll<E>(f: impl FnOnce() -> Result<u16, E>) -> Result<u16, E> {
    let mut from = None;
    with(|c, _| from = Some(c.instructions()));
    let result = f();
    if let Some(from) = from {
        let delivered = *result.as_ref().unwrap_or(&0);
        with(|c, m| m.polled(from, c.instructions(), delivered));
    }
    result
}

/// The counter now, when the meter runs.
pub fn now() -> Option<u32> {
    let mut now = None;
    with(|c, _| now = Some(c.instructions()));
    now
}

/// hyp waited for the device since `from` (a reading of [`now`]); `delivering`: the
/// instructions of the polls that delivered completions meanwhile.
pub fn waited(from: Option<u32>, delivering: u64) {
    if let Some(from) = from {
        with(|c, m| m.waited(from, c.instructions(), delivering));
    }
}

/// hyp's counted instructions so far, or `None` when the meter is off.
pub fn total() -> Option<u64> {
    let mut total = None;
    with(|_, m| total = Some(m.total()));
    total
}
