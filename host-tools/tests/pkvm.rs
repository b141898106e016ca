//! End to end on the real pKVM (`--backend pkvm`): Debian's arm64 Linux 7.3 booted in
//! QEMU with `kvm-arm.mode=protected`, pvmkit's VMM as its `/init`, pvmfw and test-guest
//! in a protected VM. The host kernel is fetched once into pvmkit's cache.

mod common;

use common::{dice_output, pvmkit, SMP_CASES};

/// test-guest's cases whose answers come from the hypervisor itself, checked against
/// the real pKVM's measured answers.
const REAL_ANSWERS: [&str; 8] = [
    "features_bitmap_exact",
    "unknown_ids_not_supported_hvc",
    "psci_version",
    "psci_features",
    "meminfo_granule",
    "sharing_error_codes",
    "access_without_syndrome_aborts",
    "pvmfw_handover",
];

/// The same test-guest that passes under hyp passes as a protected VM on the real pKVM,
/// through pvmfw, with the VMM's virtio devices; and as an ordinary VM on the same host.
/// Both with several vCPUs (2 and 4), so that the SMP cases run too.
#[test]
fn test_guest_passes_on_the_real_pkvm() {
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--cpus", "2", "--timeout", "600"]);
    assert!(ok && out.contains("pvmkit: PASS"), "{out}");
    assert!(out.contains("host kernel 7."), "the kernel version is named:\n{out}");
    assert!(out.contains("[vmm] pvmkit vmm: protected VM, entry 0x7fc00000"), "{out}");
    assert!(out.contains("[pvmfw] platform: conduit Hvc, console 0x9000000"), "{out}");
    assert!(out.contains("[pvmfw] payload verified"), "{out}");
    for case in REAL_ANSWERS.iter().chain(&["virtio_blk_patterns_512b_4k_64k_1m", "virtio_console_both_ways"]) {
        assert!(out.contains(&format!("test {case} ... ok")), "case {case} did not pass on the real pKVM:\n{out}");
    }
    assert!(out.contains("[vmm] virtio-console received \"hello from the guest via virtio-console\\n\""), "{out}");
    for case in SMP_CASES {
        assert!(out.contains(&format!("test {case} ... ok")), "SMP case {case}, protected:\n{out}");
    }
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--mode", "unprotected", "--cpus", "4", "--timeout", "600"]);
    assert!(ok && out.contains("pvmkit: PASS"), "{out}");
    assert!(out.contains("[vmm] pvmkit vmm: ordinary VM"), "{out}");
    for case in SMP_CASES.iter().filter(|c| !c.ends_with("one_page")) {
        assert!(out.contains(&format!("test {case} ... ok")), "SMP case {case}, ordinary:\n{out}");
    }
}

/// pvmfw on the real pKVM derives the payload's DICE layer exactly as on hyp: one signed
/// payload booted on both gives the same chain and the same CDIs, and the chain verifies;
/// its instance storage works through the host's virtio-blk.
#[test]
fn the_dice_chain_is_the_same_on_the_real_pkvm_as_on_hyp() {
    let (ok, out) = pvmkit(&["build"]);
    assert!(ok, "{out}");
    let dir = std::env::temp_dir().join(format!("pvmkit-pkvm-dice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signed = dir.join("dice.signed");
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pvmkit/test-guest.img");
    let args = ["sign", "--payload", image, "--reproducible", "--rollback-index", "4", "-o", signed.to_str().unwrap()];
    let (ok, out) = pvmkit(&args);
    assert!(ok, "{out}");
    // On the real pKVM with a kept instance disk (through the host's virtio-blk), on hyp
    // with a fresh one: the same instance id, so the same salt.
    let instance = dir.join("instance.img");
    let run = |backend: &str, signed: &std::path::Path, extra: &[&str]| {
        let args = ["run", "--backend", backend, "--scenario", "dice", "--instance-id", "pkvm-e2e", "--timeout", "600"];
        pvmkit(&[&args[..], &["--signed-payload", signed.to_str().unwrap()], extra].concat())
    };
    let (ok, out) = run("pkvm", &signed, &["--instance", instance.to_str().unwrap()]);
    assert!(ok && out.contains("instance storage: a new instance, recorded at rollback index 4"), "{out}");
    let real = dice_output(&out).expect("test-guest printed the handover");
    let (ok, out) = run("hyp", &signed, &[]);
    assert!(ok, "{out}");
    assert_eq!(real, dice_output(&out).unwrap(), "pvmfw derives the same layer on both hypervisors");
    let layers = host_tools::dice::verify(&real.chain).unwrap();
    assert_eq!((layers.len(), layers[1].security_version), (2, Some(4)));

    // The kept instance refuses an older rollback index on the real pKVM too.
    let older = dir.join("older.signed");
    let args = ["sign", "--payload", image, "--reproducible", "--rollback-index", "3", "-o", older.to_str().unwrap()];
    let (ok, out) = pvmkit(&args);
    assert!(ok, "{out}");
    let (ok, out) = run("pkvm", &older, &["--instance", instance.to_str().unwrap()]);
    assert!(!ok && out.contains("[pvmfw] error E25 rollback"), "{out}");
}

/// test-guest as a position-independent arm64 Image: placed by pvmfw per the boot
/// protocol in a protected VM, and by pvmkit when entered directly in an ordinary one.
#[test]
fn an_image_payload_runs_on_the_real_pkvm() {
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pvmkit/test-guest.img");
    let (ok, out) = pvmkit(&["build"]);
    assert!(ok, "{out}");
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--payload", image, "--timeout", "600"]);
    assert!(ok && out.contains("pvmkit: PASS"), "{out}");
    assert!(out.contains("arm64 Image at 0x80200000, footprint"), "{out}");
    assert!(out.contains("test-guest: image at 0x80200000\n"), "{out}");
    let args =
        ["run", "--backend", "pkvm", "--mode", "unprotected", "--no-pvmfw", "--payload", image, "--timeout", "600"];
    let (ok, out) = pvmkit(&args);
    assert!(ok && out.contains("pvmkit: PASS") && out.contains("test-guest: image at 0x80200000\n"), "{out}");
}

/// The leak on the real pKVM: the device's access to the private page faults in the
/// VMM, which names the page, device, queue, descriptor and the part of the request as
/// hyp does; and a failing case fails.
#[test]
fn the_real_pkvm_catches_the_leak_and_a_failing_case_fails() {
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--scenario", "leak", "--timeout", "600"]);
    assert!(!ok, "{out}");
    let printed: Vec<&str> = out.lines().filter_map(|l| l.split("(page ").nth(1)?.strip_suffix(')')).collect();
    assert!(!printed.is_empty(), "the guest printed no leaked page:\n{out}");
    let want = "pvmkit: FAIL: the VMM ended the VM: reason=violation ipa=";
    let line = out.lines().find(|l| l.starts_with(want)).unwrap_or_else(|| panic!("no violation verdict:\n{out}"));
    assert!(printed.iter().any(|page| line.contains(&format!("ipa={page} "))), "names a leaked page: {line}");
    let tail = "device=virtio-mmio@0xa003e00 queue=0 desc=0 buffer=header what=\"buffer page not shared\"";
    assert!(line.ends_with(tail), "{line}");
    // The racy HAL (CPU 0 unshares the data page of a block write CPU 1 published): the
    // release takes the page back, and the VMM faults on it at CPU 1's notify.
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--cpus", "2", "--scenario", "racy-hal", "--timeout", "600"]);
    assert!(!ok, "{out}");
    let page = out
        .lines()
        .find_map(|l| l.split("CPU 0 unshares ").nth(1)?.split(',').next())
        .unwrap_or_else(|| panic!("the guest printed no page:\n{out}"));
    let want = format!("pvmkit: FAIL: the VMM ended the VM: reason=violation ipa={page} vcpu=1 device=virtio-mmio@0xa003e00 queue=0 desc=1 buffer=data what=\"buffer page not shared\"");
    assert!(out.contains(&want), "expected {want}:\n{out}");
    // Every vCPU powers itself off: KVM keeps them waiting for a CPU_ON that cannot
    // come; the VMM ends the VM by name (it once waited for the timeout), as hyp does.
    let (ok, out) =
        pvmkit(&["run", "--backend", "pkvm", "--cpus", "2", "--scenario", "all-cpus-off", "--timeout", "600"]);
    assert!(!ok && out.contains("pvmkit: FAIL: the VMM ended the VM: reason=all_vcpus_off"), "{out}");
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--scenario", "fail-case", "--timeout", "600"]);
    assert!(!ok && out.contains("pvmkit: FAIL: 1 guest case(s) failed"), "{out}");
    // A bounce that skips the zeroing hands the caller stale pool data on a failed read
    // (pvmkit's VMM reports the true length, the 1-byte status; the check does not
    // depend on it).
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--scenario", "stale-bounce", "--timeout", "600"]);
    assert!(!ok && out.contains("FAILED: stale pool data reached the caller"), "{out}");
    assert!(out.contains("a failed 64 KiB read reported 1 bytes written"), "{out}");
    // Forged exit lines of hyp and the VMM, then a reset: shown as the guest's, and
    // the verdict reads the VMM's one real exit line.
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--scenario", "forge-exit", "--timeout", "600"]);
    assert!(!ok && out.contains("pvmkit: FAIL: the VMM ended the VM: reason=reset"), "{out}");
    for forged in ["[hyp]", "[vmm]", "[hyp#0123456789abcdef]", "[vmm#0123456789abcdef]"] {
        assert!(out.contains(&format!("guest| {forged} exit: reason=system_off")), "{forged} not marked:\n{out}");
    }
    assert_eq!(out.lines().filter(|l| l.starts_with("[vmm] exit: reason=")).count(), 1, "{out}");
}

#[test]
fn options_that_cannot_apply_to_the_real_pkvm_are_refused() {
    for (args, why) in [
        (&["run", "--backend", "pkvm", "--abi", "android"][..], "--abi picks one of hyp's profiles"),
        (&["run", "--backend", "pkvm", "--mode", "bare"][..], "does not apply to --backend pkvm"),
        (&["run", "--backend", "pkvm", "--hyp-stats"][..], "exist only under --backend hyp"),
        (&["run", "--backend", "pkvm", "--allow-inherited-guard"][..], "the real 7.3 pKVM has no MMIO guard"),
        (&["run", "--kernel", "/nonexistent"][..], "applies only to --backend pkvm"),
        (&["run", "--backend", "pkvm", "--kernel", "/etc/hostname"][..], "not an arm64 Linux Image"),
        (&["run", "--backend", "kvm"][..], "unknown --backend 'kvm'"),
        (&["run", "--backend", "pkvm", "--disk", "/tmp/x.img", "--kernel", "/etc/hostname"][..], "use Debian's kernel"),
    ] {
        let (ok, out) = pvmkit(args);
        assert!(!ok, "{args:?} must be refused:\n{out}");
        assert!(out.contains(why), "{args:?}: expected '{why}':\n{out}");
    }
}

/// A host kernel booted without `kvm-arm.mode=protected` cannot create a protected VM:
/// the VMM ends the run with an error naming the cause (QEMU's last `-append` wins).
#[test]
fn a_host_without_pkvm_is_named_as_the_cause() {
    let (ok, out) =
        pvmkit(&["run", "--backend", "pkvm", "--timeout", "600", "--", "-append", "console=ttyAMA0 panic=-1 quiet"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("pvmkit: FAIL: the VMM ended the VM: reason=vmm_error detail=\"creating a protected VM:"),
        "{out}"
    );
    assert!(out.contains("is the host booted with kvm-arm.mode=protected?"), "{out}");
}

/// A host kernel panic (here: no initramfs, so no root to mount) can never end QEMU
/// with status 0: the host runs with `panic=0` and stops where it stands, and pvmkit
/// ends QEMU at the kernel's last panic line with a verdict naming the panic. Negative
/// control: with the reset-on-panic the host once ran with (`panic=-1` under QEMU's
/// `-no-reboot`), QEMU ends by itself with status 0.
#[test]
fn a_host_panic_never_ends_qemu_with_status_0() {
    let empty = std::env::temp_dir().join(format!("pvmkit-no-initramfs-{}", std::process::id()));
    std::fs::write(&empty, b"\n").unwrap();
    let empty = empty.to_str().unwrap();
    let panicked = "pvmkit: FAIL: the VMM printed no exit line: the pKVM host's kernel panicked (Kernel panic - not syncing: VFS: Unable to mount root fs";
    let (ok, out) = pvmkit(&["run", "--backend", "pkvm", "--timeout", "600", "--", "-initrd", empty]);
    assert!(!ok && out.contains(panicked), "{out}");
    assert!(out.contains("pvmkit: stopped QEMU: the host kernel had panicked"), "QEMU was still running: {out}");
    let reset = ["-initrd", empty, "-append", "console=ttyAMA0 kvm-arm.mode=protected panic=-1 quiet"];
    let (ok, out) = pvmkit(&[&["run", "--backend", "pkvm", "--timeout", "600", "--"][..], &reset].concat());
    assert!(!ok && out.contains(panicked), "{out}");
    assert!(out.contains("pvmkit: QEMU exited with status 0"), "the old way ends QEMU cleanly: {out}");
    std::fs::remove_file(empty).ok();
}

/// `--disk` on the real pKVM: the guest's block device is QEMU's virtio-blk on the
/// user's file, served by the VMM through the host, so what one run writes the next
/// reads — on this backend or on hyp.
#[test]
fn a_disk_persists_across_runs_and_backends() {
    let dir = std::env::temp_dir().join(format!("pvmkit-pkvm-disk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    let disk = disk.to_str().unwrap();
    let (ok, out) =
        pvmkit(&["run", "--backend", "pkvm", "--disk", disk, "--scenario", "persist-read", "--timeout", "600"]);
    assert!(!ok && out.contains("test virtio_blk_persist_read ... FAILED"), "a fresh disk holds nothing:\n{out}");
    let (ok, out) =
        pvmkit(&["run", "--backend", "pkvm", "--disk", disk, "--scenario", "persist-write", "--timeout", "600"]);
    assert!(ok && out.contains("test virtio_blk_persist_write ... ok"), "{out}");
    let (ok, out) =
        pvmkit(&["run", "--backend", "pkvm", "--disk", disk, "--scenario", "persist-read", "--timeout", "600"]);
    assert!(ok && out.contains("test virtio_blk_persist_read ... ok"), "{out}");
    let (ok, out) = pvmkit(&["run", "--disk", disk, "--scenario", "persist-read"]);
    assert!(ok && out.contains("test virtio_blk_persist_read ... ok"), "hyp reads what the real pKVM wrote:\n{out}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The differential conformance run: every probe the real Linux 7.3 pKVM answers,
/// hyp's upstream profile answers the same, or the difference is listed with both
/// values; each agrees with the recording in abi/recordings/, as do the tables; hyp's
/// Android profile passes its own table. (The failing sides are covered by
/// `conformance::tests` and abi's recording tests.)
#[test]
fn hyps_upstream_profile_answers_as_the_real_pkvm() {
    let (ok, out) = pvmkit(&["conformance", "--timeout", "600"]);
    assert!(ok, "{out}");
    let recorded =
        pvmkit_abi::profile::recording::probes(pvmkit_abi::profile::recording::recorded::PROTECTED.lines()).count();
    let listed = pvmkit_abi::profile::INTENDED_DIFFERENCES.len();
    // The VMM's own probes (teardown) are not hyp's to answer.
    let host_side = host_tools::conformance::HOST_SIDE.len();
    let summary =
        format!("{} probes agree, {listed} differ as listed, 0 differ unexplained", recorded - listed - host_side);
    assert!(out.contains(&summary), "expected '{summary}':\n{out}");
    for side in ["the real pKVM", "hyp", "the Linux 7.3.4 protected table", "the Linux 7.3.4 ordinary table"] {
        assert!(out.contains(&format!("against the recording: {side} unchanged")), "{side}:\n{out}");
    }
    assert!(out.contains("varies from run to run on the real pKVM: teardown-private"), "{out}");
    for probe in ["share-outside-memory", "features-hvc", "mmio-pair-nothing", "unknown-0xc6000030", "reg-dbgbvr1-el1"]
    {
        assert!(out.contains(&format!("  {probe} ")), "probe {probe} missing:\n{out}");
    }
    assert!(out.contains("hyp's Android profile against its table: PASS"), "{out}");
}

/// `pvmkit bench --backend pkvm`: the whole machine on one CPU under `-icount`, so the
/// guest-time figures of a protected and an ordinary VM repeat from run to run (the
/// command fails if they do not); no hypercall per request, one copy per data byte; and
/// the Linux guest's figures on the same workload beside guest-lib's.
#[test]
fn the_bench_repeats_on_the_real_pkvm() {
    let (ok, out) = pvmkit(&["bench", "--backend", "pkvm", "--runs", "2", "--timeout", "600"]);
    assert!(ok, "{out}");
    assert!(!out.contains("NOT REPEATED"), "{out}");
    assert!(out.contains("-icount shift=0,sleep=off,align=off -smp 1"), "{out}");
    let exits =
        out.lines().find(|l| l.starts_with("one MMIO exit to the VMM and back")).unwrap_or_else(|| panic!("{out}"));
    assert!(!exits.contains("n/a"), "{exits}");
    for size in ["4096", "65536", "1048576"] {
        for op in ["write", "read"] {
            let line = out
                .lines()
                .find(|l| l.split_whitespace().take(2).eq([op, size]))
                .unwrap_or_else(|| panic!("no row {op} {size}:\n{out}"));
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert!(cells[2..7].iter().all(|c| c.parse::<f64>().is_ok_and(|n| n > 0.0)), "{line}");
            assert_eq!(cells[7], "0.00", "no hypercall per request: {line}");
            // The VMM saw the exits (the notify at least) in both VMs.
            assert!(cells[8..10].iter().all(|c| c.parse::<f64>().is_ok_and(|n| n >= 1.0)), "{line}");
            assert_eq!(cells[11], "1.0000", "one copy per data byte: {line}");
        }
    }
    // Linux beside guest-lib, every figure present (and repeated: no NOT REPEATED above).
    let mut peer = out.lines().skip_while(|l| !l.starts_with("Linux 7.3 (O_DIRECT")).skip(1);
    let header = peer.next().unwrap_or_else(|| panic!("no peer table:\n{out}"));
    assert!(header.contains("guest-lib gain"), "{header}");
    for row in peer.take(6) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), 9, "{row}");
        assert!(cells[2..].iter().all(|c| c.parse::<f64>().is_ok_and(|n| n > 0.0)), "{row}");
    }
}
