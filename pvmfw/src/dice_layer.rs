//! The payload's DICE layer on the real VM: rollback protection as the payload's kind
//! asks (instance storage on the instance disk, [`crate::instance_device`]), the salt it
//! gives, the next layer derived from the handover pvmfw received ([`pvmfw::dice`]) and
//! written to the `google,open-dice` page, every copy of a secret wiped.

use guest_lib::{println, BootInfo};
use pvmfw::dice::{self, Measurements};
use pvmfw::host_dt::HostConfig;
use pvmfw::instance::{Keys, Record, Verdict};
use pvmfw::refusal::Refused;
use pvmfw::rollback::{self, Protection};
use pvmkit_abi::address::Ipa;
use pvmkit_abi::avf_config::DiceHandover;
use pvmkit_abi::memory_map::Region;
use pvmkit_abi::pvmfw::{Refusal, DICE_HANDOVER_BASE, DICE_HANDOVER_SIZE};

use crate::guest_memory::erase;
use crate::instance_device;

/// What the layer's hand-over did.
pub struct Layer {
    /// The page holding the handover.
    pub page: Region,
    /// Its handover's size.
    pub handover_size: usize,
    /// The instance disk's transport, if there is one (the payload's DT leaves it out).
    pub instance_disk: Option<Region>,
    /// Instance storage's verdict, and whether the TRNG was there to salt a new instance.
    pub storage: Option<(Verdict, bool)>,
}

/// Runs rollback protection for `protection`, derives the payload's layer after
/// `incoming` and writes its handover to the page.
pub fn hand_over(
    boot: &BootInfo,
    host: &HostConfig<'_>,
    incoming: &DiceHandover<'_>,
    measured: &Measurements,
    protection: Protection,
) -> Result<Layer, Refused> {
    let instance_hash = host.instance_id.map(dice::instance_hash);
    let storing = protection == Protection::InstanceStorage;
    let entropy = storing.then(|| instance_device::trng(&boot.conduit)).flatten();
    let storage = storing.then_some(|keys: &Keys| Record {
        code_hash: measured.code_hash,
        authority_hash: measured.authority_hash,
        mode: measured.mode,
        salt: instance_hash.unwrap_or_else(|| keys.new_salt(entropy.as_ref().map(|e| &e[..]))),
        rollback_index: measured.security_version,
    });
    let outcome = instance_device::run(boot, host, incoming.cdi_seal, storage)?;
    let recorded_salt = outcome.verdict.as_ref().map(|v| v.record().salt);
    let salt = rollback::salt(instance_hash.as_ref(), recorded_salt.as_ref());
    let mut next = dice::next_handover(incoming, measured, &salt, instance_hash.as_ref(), protection.deferred())?;
    let page = Region { start: DICE_HANDOVER_BASE, end: DICE_HANDOVER_BASE + DICE_HANDOVER_SIZE };
    let handover_size = next.len();
    if handover_size as u64 > page.size() {
        next.fill(0);
        return Err(Refused::new(
            Refusal::Dice,
            format_args!("the payload's DICE handover ({handover_size} bytes) does not fit its page"),
        ));
    }
    erase(Ipa(page.start), page.size());
    // SAFETY: the handover page, inside the DT area, which nothing else uses (host_dt,
    // kernel and layout keep everything else clear of it).
    unsafe { core::ptr::copy_nonoverlapping(next.as_ptr(), page.start as *mut u8, handover_size) };
    next.fill(0);
    Ok(Layer {
        page,
        handover_size,
        instance_disk: outcome.transport,
        storage: outcome.verdict.map(|v| (v, entropy.is_some())),
    })
}

impl Layer {
    /// Says what was derived and what rollback protection decided.
    pub fn report(&self, measured: &Measurements, protection: Protection, named_instance: bool) {
        println!(
            "[pvmfw] DICE: the payload's layer ({:?} mode, component {:?}, security version {}) appended to the \
             chain; its {}-byte handover is at {:#x}",
            measured.mode, measured.component_name, measured.security_version, self.handover_size, self.page.start
        );
        match &self.storage {
            None => println!("[pvmfw] rollback protection: {}", protection.name()),
            Some((Verdict::Create(record), trng)) => println!(
                "[pvmfw] rollback protection: instance storage: a new instance, recorded at rollback index {} (salt {})",
                record.rollback_index,
                match (named_instance, trng) {
                    (true, _) => "the instance hash",
                    (false, true) => "from the TRNG and the disk",
                    (false, false) => "derived for the disk",
                }
            ),
            Some((Verdict::Same(record), _)) => println!(
                "[pvmfw] rollback protection: instance storage: the instance's payload, rollback index {}",
                record.rollback_index
            ),
            Some((Verdict::Update(record), _)) => println!(
                "[pvmfw] rollback protection: instance storage: the instance's payload, its rollback index raised to {}",
                record.rollback_index
            ),
        }
    }
}
