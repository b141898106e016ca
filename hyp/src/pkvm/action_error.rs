//! Why an action a profile row allowed was not carried out: shared by the calls that
//! carry actions out (`memory_calls`, `guard_calls`) and the dispatcher that answers
//! for them (`hypercall`).

use pvmkit_abi::address::{Ipa, Page};

/// Why an action the profile allowed was not carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionError {
    /// A validator policy refused it: the guest is answered and goes on.
    Policy(PolicyRefusal),
    /// The guest took back a page a device holds: the VM ends.
    DeviceHeld(DeviceHeld),
    /// hyp's own tables disagree with what the profile saw: hyp cannot go on.
    Inconsistent(Inconsistency),
}

/// hyp's bookkeeping (page ownership, the guard table) disagreeing with the facts the
/// profile decided on: a bug of hyp's, which ends the VM with a hyp error naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inconsistency {
    /// The granule.
    pub ipa: Ipa,
    /// What was being done.
    pub what: &'static str,
}

/// A validator policy that refused an action the profile allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// The policy's name ([`pvmkit_abi::profile::POLICIES`]).
    pub policy: &'static str,
    /// The granule that made it fire.
    pub ipa: Ipa,
}

/// A device that holds a guest page: the transport (its register base), the queue,
/// and the descriptor (`None`: a ring page of a ready queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The transport's register base.
    pub device: u64,
    /// The queue.
    pub queue: u32,
    /// The descriptor, when a buffer (not a ring) is held.
    pub descriptor: Option<u16>,
}

/// A MEM_UNSHARE of a page a device holds: the race a validator exists to catch (the
/// release takes the page back and the device's next access faults in the VMM). hyp
/// ends the VM naming the page, its holder and the vCPU that asked (policy
/// `unshare-device-held`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceHeld {
    /// The page.
    pub page: Page,
    /// Who holds it (`None`: pinned, though no transport names it, which the exit
    /// line says too rather than hide).
    pub holder: Option<Holder>,
}

impl DeviceHeld {
    /// The violation's `what=`.
    pub fn what(&self) -> &'static str {
        match self.holder {
            Some(Holder { descriptor: Some(_), .. }) => "MEM_UNSHARE of a buffer a device request holds",
            Some(Holder { descriptor: None, .. }) => "MEM_UNSHARE of a ring page of a ready queue",
            None => "MEM_UNSHARE of a page a device holds",
        }
    }
}
