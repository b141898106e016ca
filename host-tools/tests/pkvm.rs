//! End to end on the real pKVM (`--backend pkvm`): Debian's arm64 Linux 7.3 booted in
//! QEMU with `kvm-arm.mode=protected`, pvmkit's VMM as its `/init`, pvmfw and test-guest
//! in a protected VM. The host kernel is fetched once into pvmkit's cache.

mod common;

use common::pvmkit;

/// test-guest's cases whose answers come from the hypervisor itself, checked against
/// the real pKVM's measured answers.
const REAL_ANSWERS: [&str; 14] = [
    "hypervisor_uid",
    "features_bitmap_exact",
    "unknown_ids_not_supported_hvc",
    "unknown_ids_not_supported_smc",
    "psci_version",
    "psci_features",
    "unmapped_ipa_aborts_and_guest_survives",
    "access_without_syndrome_aborts",
    "pvmfw_handover",
    "meminfo_granule",
    "share_unshare_one_page",
    "share_unshare_100_page_range",
    "sharing_error_codes",
    "share_rollback_names_the_failing_page",
];

#[test]
fn pvmfw_and_test_guest_run_as_a_protected_vm_on_the_real_pkvm() {
    let (_, out) = pvmkit(&["run", "--backend", "pkvm", "--timeout", "600"]);
    assert!(out.contains("host kernel 7."), "the kernel version is named:\n{out}");
    assert!(out.contains("[vmm] pvmkit vmm: protected VM, entry 0x7fe00000"), "{out}");
    assert!(out.contains("[pvmfw] platform: conduit Hvc, console 0x9000000"), "{out}");
    assert!(out.contains("[pvmfw] payload verified"), "pvmfw verified the payload under the real pKVM:\n{out}");
    for case in REAL_ANSWERS {
        assert!(out.contains(&format!("test {case} ... ok")), "case {case} did not pass on the real pKVM:\n{out}");
    }
    assert!(out.contains("[vmm] exit: reason="), "the VMM ends the run with an exit line:\n{out}");
}

#[test]
fn options_that_cannot_apply_to_the_real_pkvm_are_refused() {
    for (args, why) in [
        (&["run", "--backend", "pkvm", "--abi", "android"][..], "--abi picks one of hyp's profiles"),
        (&["run", "--backend", "pkvm", "--mode", "bare"][..], "does not apply to --backend pkvm"),
        (&["run", "--backend", "pkvm", "--hyp-stats"][..], "exist only under --backend hyp"),
        (&["run", "--kernel", "/nonexistent"][..], "applies only to --backend pkvm"),
        (&["run", "--backend", "pkvm", "--kernel", "/etc/hostname"][..], "not an arm64 Linux Image"),
        (&["run", "--backend", "kvm"][..], "unknown --backend 'kvm'"),
    ] {
        let (ok, out) = pvmkit(args);
        assert!(!ok, "{args:?} must be refused:\n{out}");
        assert!(out.contains(why), "{args:?}: expected '{why}':\n{out}");
    }
}
