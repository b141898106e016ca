//! What hyp refused along the way, summed up before the exit line (printing each as
//! it happens would split the guest's own console lines). Kept apart from the VM's
//! state so that the exit path can read it from inside any handler, and below both.

use hyp::exclusive::Exclusive;
use hyp::trap::mmio::Refusal;
use pvmkit_abi::address::Ipa;

/// The refusals so far.
pub struct ExitSummary {
    /// External aborts injected for refused accesses, and the last one.
    pub refused: u64,
    pub last_refused: Option<(Ipa, Refusal)>,
    /// Calls a validator policy refused that the release would have carried out, and
    /// the last policy with its granule.
    pub policy_refusals: u64,
    pub last_policy: Option<(&'static str, Ipa)>,
}

pub static SUMMARY: Exclusive<ExitSummary> =
    Exclusive::new(ExitSummary { refused: 0, last_refused: None, policy_refusals: 0, last_policy: None });

/// Records an injected abort for the summary.
pub fn note_refused(ipa: Ipa, why: Refusal) {
    if let Ok(mut summary) = SUMMARY.lock(crate::arch::this_cpu() as u8) {
        summary.refused += 1;
        summary.last_refused = Some((ipa, why));
    }
}

/// Records a validator policy's refusal for the summary.
pub fn note_policy(policy: &'static str, ipa: Ipa) {
    if let Ok(mut summary) = SUMMARY.lock(crate::arch::this_cpu() as u8) {
        summary.policy_refusals += 1;
        summary.last_policy = Some((policy, ipa));
    }
}
