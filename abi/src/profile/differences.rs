//! Where hyp deliberately departs from the releases it imitates.
//!
//! - [`POLICIES`]: refusals that are pvmkit's validator policy, not the ABI. hyp names
//!   each one when it fires (`[hyp] policy <name>: …` on its console, or a `violation`
//!   exit naming it), so a guest never gets an answer the real hypervisor would give
//!   silently.
//! - [`INTENDED_DIFFERENCES`]: answers of the real releases hyp does not give, and
//!   why. The conformance run (`pvmkit conformance`) tolerates exactly the probes
//!   listed here.

/// A refusal hyp adds to the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The name hyp prints when it fires.
    pub name: &'static str,
    /// What hyp refuses, and what the release does instead.
    pub what: &'static str,
    /// Why.
    pub why: &'static str,
}

/// hyp's validator policies.
pub const POLICIES: &[Policy] = &[
    Policy {
        name: "unshare-device-held",
        what: "MEM_UNSHARE of a page a virtio device holds (a ring page of a ready queue, or a \
               buffer from its chain's publication in the available ring until hyp has collected \
               its completion) ends the VM (`violation` naming the page, the device, queue and \
               descriptor, and the vCPU that asked); Linux 7.3 takes the page back and the \
               device's next access faults in the VMM",
        why: "a device reaching a page the guest has taken back is the race the validator exists \
              to catch, and the release's answer ends the VM too (later, in the VMM, without \
              naming who unshared); refusing instead would let a guest go on that the release stops",
    },
    Policy {
        name: "guard-table-full",
        what: "more than 320 MMIO-guard granules answer INVALID_PARAMETER; Android has no such limit",
        why: "hyp has no heap; 320 is more than every device page it gives a VM of 8 vCPUs (their \
              redistributors alone are 256 granules)",
    },
    Policy {
        name: "guard-inherited-from-pvmfw",
        what: "after pvmfw's handover, MMIO to a granule only pvmfw registered (the payload never \
               did) ends the VM (`violation`); ACK 6.12 lets it through, since its UNMAP is a no-op \
               and pvmfw's registrations outlive pvmfw. Off with `pvmkit run --allow-inherited-guard` \
               (hyp option `inherited-guard=allow`)",
        why: "a payload that relies on pvmfw's leftovers breaks on any release or pvmfw that cleans \
              up: the forgotten registration is the payload's mistake",
    },
    Policy {
        name: "private-buffer",
        what: "a virtio descriptor naming memory the guest has not shared ends the VM (`violation`); \
               the release lets the VMM fault on it",
        why: "handing a device a private address is the mistake pvmkit exists to show",
    },
    Policy {
        name: "queue-rules",
        what: "resizing a ready queue, re-enabling a queue whose buffers the device holds, or \
               notifying a queue that does not exist ends the VM (`violation`)",
        why: "each lets a device reach memory the guest no longer means it to",
    },
];

/// An answer of the real release that hyp does not give, pinned by value: the
/// conformance run accepts the difference only when the release answers `release` and
/// hyp `hyp`, exactly as the probe line shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The conformance probe (its name) where it shows.
    pub probe: &'static str,
    /// What the release answers.
    pub release: &'static str,
    /// What hyp answers.
    pub hyp: &'static str,
    /// Why hyp answers differently.
    pub why: &'static str,
}

/// NOT_SUPPORTED with x1–x3 zero, as a probe line shows it.
const NOT_SUPPORTED_SHOWN: &str = "x0=0xffffffffffffffff x1=0x0 x2=0x0 x3=0x0";

/// What hyp's upstream profile knowingly answers differently from Linux 7.3.4 (the rows
/// of hyp's overlay, `HYP_LINUX_7_3_*`).
pub const INTENDED_DIFFERENCES: &[Difference] = &[
    Difference {
        probe: "trng-version",
        release: "x0=0x10000 x1=0x0 x2=0x0 x3=0x0",
        hyp: NOT_SUPPORTED_SHOWN,
        why: "KVM's TRNG draws on the host's entropy pool; hyp has no entropy source to give \
              (QEMU's cortex-a72 has no RNDR), so it does not offer TRNG: guests use virtio-rng",
    },
    Difference {
        probe: "trng-features",
        release: "x0=0x0 x1=0x0 x2=0x0 x3=0x0",
        hyp: NOT_SUPPORTED_SHOWN,
        why: "as trng-version",
    },
    // The CPU a protected VM sees (`profile::cpu`): hyp traps the ID registers and caps
    // each field at the release's recorded value, but never claims what its CPU lacks.
    Difference {
        probe: "cpu-ras",
        release: "value 0x1",
        hyp: "value 0x0",
        why: "hyp's guest runs on QEMU's cortex-a72, which has no RAS extension; the real pKVM's host \
              CPU (QEMU's max) has RAS v1.1, which pKVM caps at v1. hyp caps fields, never raises them",
    },
];
