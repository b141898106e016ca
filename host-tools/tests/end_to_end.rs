//! End-to-end: `pvmkit` boots test-guest through hyp in QEMU, in every mode, and the
//! verdict must be right both ways (a failing guest must fail the run).

mod common;

use common::{pvmkit, SMP_CASES};

fn assert_passes(args: &[&str]) {
    let (ok, out) = pvmkit(args);
    assert!(ok, "pvmkit {args:?} failed:\n{out}");
    assert!(out.contains("pvmkit: PASS"), "no PASS verdict:\n{out}");
    assert!(out.contains(" passed, 0 failed"), "no guest summary:\n{out}");
}

fn assert_cases_passed(out: &str, cases: &[&str]) {
    for case in cases {
        assert!(out.contains(&format!("test {case} ... ok")), "case {case} did not pass:\n{out}");
    }
}

const SHARING_CASES: [&str; 7] = [
    "meminfo_granule",
    "share_unshare_one_page",
    "share_unshare_100_page_range",
    "sharing_error_codes",
    "share_rollback_names_the_failing_page",
    "relinquish",
    "bounce_pool_random_alloc_free",
];

#[test]
fn protected_android_passes() {
    let (ok, out) = pvmkit(&["run", "--mode", "protected", "--abi", "android"]);
    assert!(ok && out.contains("pvmkit: PASS"), "{out}");
    assert_cases_passed(&out, &SHARING_CASES);
}

#[test]
fn protected_upstream_passes() {
    let (ok, out) = pvmkit(&["run", "--mode", "protected", "--abi", "upstream"]);
    assert!(ok && out.contains("pvmkit: PASS"), "{out}");
    assert_cases_passed(&out, &SHARING_CASES);
}

/// Several vCPUs, one per QEMU CPU: the SMP cases pass under hyp in both ABI forms, and
/// on bare QEMU (its own PSCI, an independent implementation of the same answers);
/// with one vCPU they are skipped, not passed.
#[test]
fn several_vcpus_pass_on_hyp_and_bare_qemu() {
    for (args, cases) in [
        (&["--cpus", "4"][..], &SMP_CASES[..]),
        (&["--cpus", "2", "--abi", "upstream"], &SMP_CASES),
        (
            &["--cpus", "2", "--mode", "unprotected"],
            &[SMP_CASES[0], SMP_CASES[1], SMP_CASES[2], SMP_CASES[4], SMP_CASES[5], SMP_CASES[6]],
        ),
        (
            &["--cpus", "2", "--mode", "bare"],
            &[SMP_CASES[0], SMP_CASES[1], SMP_CASES[2], SMP_CASES[4], SMP_CASES[5], SMP_CASES[6]],
        ),
    ] {
        let (ok, out) = pvmkit(&[&["run"][..], args].concat());
        assert!(ok && out.contains("pvmkit: PASS"), "{args:?}:\n{out}");
        assert_cases_passed(&out, cases);
    }
    let (ok, out) = pvmkit(&["run"]);
    assert!(ok, "{out}");
    assert!(out.contains("test smp_every_cpu_starts ... skipped: one vCPU"), "{out}");
    // The vCPU power probes on a target of every kind, each checked by the guest against
    // pvmkit_abi::profile::vcpu_power (whose rows the real pKVM's recording holds), in both forms.
    for abi in ["android", "upstream"] {
        let (ok, out) = pvmkit(&["run", "--cpus", "2", "--abi", abi, "--scenario", "conformance"]);
        assert!(ok && out.contains("pvmkit: PASS (1 guest case passed"), "{abi}:\n{out}");
        assert!(out.contains("probe smp-cpu-on@off = x0=0x0 "), "{abi}:\n{out}");
    }
    // Negative control: every vCPU powers itself off; hyp ends the VM by name.
    let (ok, out) = pvmkit(&["run", "--cpus", "2", "--scenario", "all-cpus-off"]);
    assert!(!ok, "{out}");
    assert!(out.contains("pvmkit: FAIL: hyp ended the VM: reason=all_vcpus_off"), "{out}");
}

/// A payload that forgets to register an MMIO granule pvmfw registered (to probe the
/// transport) passes on ACK 6.12, whose UNMAP is a no-op; hyp's policy
/// `guard-inherited-from-pvmfw` fails it by default, naming the granule, and lets it
/// pass when turned off. The suite itself registers what it uses: it passes either way.
#[test]
fn a_forgotten_mmio_guard_registration_fails_by_default() {
    let (ok, out) = pvmkit(&["run", "--scenario", "forget-guard"]);
    assert!(!ok, "{out}");
    let base = page_after(&out, "test-guest: reading ");
    let want = format!("pvmkit: FAIL: hyp ended the VM: reason=violation ipa={base} vcpu=0 device=virtio-mmio@{base} what=\"MMIO to a granule only pvmfw registered, never the payload (policy guard-inherited-from-pvmfw)\"");
    assert!(out.contains(&want), "expected {want}:\n{out}");
    let (ok, out) = pvmkit(&["run", "--scenario", "forget-guard", "--allow-inherited-guard"]);
    assert!(ok && out.contains("test forgetful_mmio_read ... ok"), "{out}");
    // Without pvmfw nothing registered the granule: the ABI's own refusal, an abort.
    let (ok, out) = pvmkit(&["run", "--scenario", "forget-guard", "--no-pvmfw"]);
    assert!(!ok && out.contains("not registered with the MMIO guard"), "{out}");
}

/// The page a guest line names after `marker` (`… <marker>0x… …`).
fn page_after<'o>(out: &'o str, marker: &str) -> &'o str {
    out.lines()
        .find_map(|l| l.split(marker).nth(1)?.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("the guest printed no {marker:?} line:\n{out}"))
}

/// Negative controls for the race sharing invites, a page taken back while a device
/// holds it: a racy HAL on CPU 0 unshares the data page of a block write CPU 1 has
/// published (and notifies only after), and a console receive buffer the device holds
/// after its notify is unshared. hyp stops each at the MEM_UNSHARE, naming the page
/// the guest printed, its holder and the calling vCPU; without protection the same
/// guest goes unnoticed (and says so).
#[test]
fn a_page_taken_back_while_a_device_holds_it_is_a_violation() {
    for abi in ["android", "upstream"] {
        let (ok, out) = pvmkit(&["run", "--cpus", "2", "--abi", abi, "--scenario", "racy-hal"]);
        assert!(!ok, "{out}");
        let page = page_after(&out, "CPU 0 unshares ");
        let want = format!("pvmkit: FAIL: hyp ended the VM: reason=violation ipa={page} vcpu=0 device=virtio-mmio@0xa003e00 queue=0 desc=1 what=\"MEM_UNSHARE of a buffer a device request holds\"");
        assert!(out.contains(&want), "{abi}: expected {want}:\n{out}");
    }
    let (ok, out) = pvmkit(&["run", "--scenario", "unshare-held"]);
    assert!(!ok, "{out}");
    let page = page_after(&out, "unshare-held: unsharing ");
    let want = format!("pvmkit: FAIL: hyp ended the VM: reason=violation ipa={page} vcpu=0 device=virtio-mmio@0xa003a00 queue=0 desc=0 what=\"MEM_UNSHARE of a buffer a device request holds\"");
    assert!(out.contains(&want), "expected {want}:\n{out}");
    let (ok, out) = pvmkit(&["run", "--cpus", "2", "--mode", "unprotected", "--scenario", "racy-hal"]);
    assert!(ok && out.contains("test racy_hal"), "{out}");
}

#[test]
fn unprotected_passes() {
    assert_passes(&["run", "--mode", "unprotected"]);
}

#[test]
fn bare_qemu_passes() {
    let (ok, out) = pvmkit(&["run", "--mode", "bare"]);
    assert!(ok, "{out}");
    assert!(out.contains("pvmkit: PASS"), "{out}");
    assert!(!out.contains("[hyp]"), "bare mode must not run hyp:\n{out}");
}

#[test]
fn hyp_is_really_below_the_guest() {
    let (ok, out) = pvmkit(&["run", "--hyp-stats"]);
    assert!(ok, "{out}");
    // hyp's own lines, the guest's cases that only pass under it, and its exit line.
    assert!(out.contains("test wfi_traps_to_hyp ... ok"), "{out}");
    assert!(out.contains("[hyp] pvmkit hyp"), "{out}");
    assert!(out.contains("test unknown_ids_not_supported_smc ... ok"), "{out}");
    assert!(out.contains("test access_without_syndrome_aborts ... ok"), "{out}");
    assert!(out.contains("[hyp] exit: reason=system_off"), "{out}");
}

#[test]
fn a_failing_case_fails_the_verdict() {
    let (ok, out) = pvmkit(&["run", "--scenario", "fail-case"]);
    assert!(!ok, "a failing guest case must fail the run:\n{out}");
    assert!(out.contains("test deliberate_failure ... FAILED"), "{out}");
    assert!(out.contains("pvmkit: FAIL: 1 guest case(s) failed"), "{out}");
}

#[test]
fn a_missing_summary_fails_the_verdict() {
    for mode in ["protected", "bare"] {
        let (ok, out) = pvmkit(&["run", "--mode", mode, "--scenario", "no-summary"]);
        assert!(!ok, "a guest without a summary must fail the run ({mode}):\n{out}");
        assert!(out.contains("pvmkit: FAIL: the guest printed no 'N passed, M failed' summary"), "{out}");
    }
}

#[test]
fn a_hung_guest_times_out() {
    let (ok, out) = pvmkit(&["run", "--mode", "bare", "--scenario", "hang", "--timeout", "3"]);
    assert!(!ok, "{out}");
    assert!(out.contains("pvmkit: FAIL: timeout"), "{out}");
}

#[test]
fn a_guest_crash_is_reported_and_fails() {
    let (ok, out) = pvmkit(&["run", "--scenario", "crash"]);
    assert!(!ok, "{out}");
    assert!(out.contains("[guest] unexpected synchronous exception"), "{out}");
    assert!(out.contains("EC 0x00"), "the report decodes the syndrome:\n{out}");
    assert!(out.contains("pvmkit: FAIL"), "{out}");
}

#[test]
fn the_matrix_prints_one_line_per_mode() {
    let (ok, out) = pvmkit(&["test"]);
    assert!(ok, "{out}");
    for row in [
        "hyp    protected (android ABI)",
        "hyp    protected (upstream ABI)",
        "hyp    unprotected",
        "hyp    bare (no hypervisor)",
        "pkvm   protected (Linux pKVM)",
        "pkvm   unprotected (Linux KVM)",
    ] {
        assert!(out.lines().any(|l| l.starts_with(row) && l.contains("PASS")), "no PASS line for {row}:\n{out}");
    }
}

const MMIO_GUARD_CASES: [&str; 6] = [
    "mmio_guard_form",
    "console_granule_is_registered",
    "mmio_access_without_map_aborts",
    "mmio_map_refusals",
    "mmio_map_access_unmap_access",
    "mmio_shared_granule_kept_until_both_dropped",
];

#[test]
fn mmio_guard_cases_pass_in_both_forms() {
    let (ok, out) = pvmkit(&["run", "--abi", "android"]);
    assert!(ok, "{out}");
    assert_cases_passed(&out, &MMIO_GUARD_CASES);
    // Linux 7.3 has no guard: the refusals are skipped, by name.
    let (ok, out) = pvmkit(&["run", "--abi", "upstream"]);
    assert!(ok, "{out}");
    assert_cases_passed(&out, &[MMIO_GUARD_CASES[0], MMIO_GUARD_CASES[1], MMIO_GUARD_CASES[4], MMIO_GUARD_CASES[5]]);
    assert!(out.contains("test mmio_map_refusals ... skipped: Linux 7.3's pKVM has no MMIO guard calls"), "{out}");
}

/// Negative control: a guest that skips MMIO guard registration loses its console
/// under Android's guard, because hyp refuses every unregistered access once the guest
/// enrolled, and the run fails loudly. The same guest runs where nothing is enforced:
/// unprotected, and under Linux 7.3 (which has no MMIO guard); there only the case that
/// checks the console's registration notices what was skipped.
#[test]
fn a_guest_without_the_mmio_guard_fails_loudly_when_protected() {
    let (ok, out) =
        pvmkit(&["run", "--no-pvmfw", "--abi", "android", "--guest-arg", "guest-lib.unsafe-skip-mmio-guard"]);
    assert!(!ok, "an unguarded console must not work under Android's guard:\n{out}");
    assert!(
        out.contains("[hyp] injected 1 external abort(s) for refused accesses; last: IPA 0x9000018, not registered with the MMIO guard"),
        "{out}"
    );
    assert!(out.contains("pvmkit: FAIL: hyp ended the VM: reason=reset"), "{out}");
    assert!(!out.contains("test hypervisor_uid"), "nothing reached the console:\n{out}");
    for mode in [&["--abi", "upstream"], &["--mode", "unprotected"]] {
        let (ok, out) =
            pvmkit(&["run", "--no-pvmfw", mode[0], mode[1], "--guest-arg", "guest-lib.unsafe-skip-mmio-guard"]);
        assert!(!ok, "{out}");
        assert!(out.contains("test hypervisor_uid ... ok"), "{out}");
        assert!(out.contains("test console_granule_is_registered ... FAILED"), "{out}");
        assert!(out.contains("pvmkit: FAIL: 1 guest case(s) failed"), "{out}");
    }
}

const VIRTIO_CASES: [&str; 7] = [
    "virtio_discovery",
    "virtio_blk_capacity",
    "virtio_blk_patterns_512b_4k_64k_1m",
    "virtio_blk_flush",
    "virtio_rng_entropy",
    "virtio_console_both_ways",
    "virtio_ring_pages_free_after_the_driver",
];

#[test]
fn virtio_works_in_every_mode_and_the_console_reaches_the_host() {
    for args in [
        &["run", "--abi", "android"][..],
        &["run", "--abi", "upstream"],
        &["run", "--mode", "unprotected"],
        &["run", "--mode", "bare"],
    ] {
        let (ok, out) = pvmkit(args);
        assert!(ok, "{args:?}:\n{out}");
        let protected = !args.contains(&"--mode");
        let cases = if protected { &VIRTIO_CASES[..] } else { &VIRTIO_CASES[..6] };
        assert_cases_passed(&out, cases);
        assert!(
            out.contains("pvmkit: virtio-console received \"hello from the guest via virtio-console\\n\""),
            "{args:?}: the guest's bytes did not reach the host:\n{out}"
        );
    }
}

/// Negative control: a HAL that hands the device a private buffer is stopped by hyp
/// with a violation that names the page it printed and the part of the request it is
/// (the first buffer of a block request: its header).
#[test]
fn a_private_buffer_handed_to_a_device_is_a_violation() {
    for abi in ["android", "upstream"] {
        let (ok, out) = pvmkit(&["run", "--abi", abi, "--scenario", "leak"]);
        assert!(!ok, "{out}");
        let leaked = out
            .lines()
            .find_map(|l| l.split("(page ").nth(1))
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("the guest printed no leaked page:\n{out}"));
        let want = format!("pvmkit: FAIL: hyp ended the VM: reason=violation ipa={leaked} vcpu=0 device=virtio-mmio@0xa003e00 queue=0 desc=0 buffer=header what=\"buffer page not shared\"");
        assert!(out.contains(&want), "expected {want}:\n{out}");
    }
    // Without protection nothing checks, and the same guest goes unnoticed.
    let (ok, out) = pvmkit(&["run", "--mode", "unprotected", "--scenario", "leak"]);
    assert!(ok, "{out}");
}

/// A read QEMU's virtio-blk fails writes nothing into the bounce buffer yet reports the
/// whole buffer as written: `PvmHal` still hands back zeroes, never the secret the pool
/// held (`virtio_blk_failed_read_hands_back_no_stale_data` passes in every mode of the
/// normal run). Negative control: the same check over a HAL that skips the zeroing
/// finds the secret.
#[test]
fn a_failed_read_hands_back_no_stale_pool_data() {
    let (ok, out) = pvmkit(&["run"]);
    assert!(ok && out.contains("test virtio_blk_failed_read_hands_back_no_stale_data ... ok"), "{out}");
    let (ok, out) = pvmkit(&["run", "--scenario", "stale-bounce"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("a failed 64 KiB read reported 65537 bytes written of the 65537 it offered the device"),
        "QEMU's used length for a failed read:\n{out}"
    );
    assert!(out.contains("FAILED: stale pool data reached the caller: 65520 bytes of the secret"), "{out}");
    assert!(out.contains("pvmkit: FAIL: 1 guest case(s) failed"), "{out}");
}

/// Hostile drivers, end to end: each attack on hyp's device side stops the VM with a
/// violation that names its real cause (resizing a ready queue once panicked hyp; a
/// zero-length buffer at hyp's image once reached the device; a notify beyond the
/// shadowed queues was once named after QueueSel's queue).
#[test]
fn attacks_on_the_device_side_are_named_violations() {
    let device = "device=virtio-mmio@0xa003e00";
    for (scenario, want) in [
        (
            "resize-queue",
            format!("ipa=0x0 vcpu=0 {device} queue=0 what=\"queue size changed while the queue is ready\""),
        ),
        (
            "attack-zero-length",
            format!("ipa=0x40080000 vcpu=0 {device} queue=0 desc=0 buffer=header what=\"buffer page not shared\""),
        ),
        (
            "attack-notify-beyond",
            format!("ipa=0x0 vcpu=0 {device} queue=7 what=\"notify of a queue beyond what hyp shadows\""),
        ),
    ] {
        let (ok, out) = pvmkit(&["run", "--scenario", scenario]);
        assert!(!ok, "{out}");
        let want = format!("pvmkit: FAIL: hyp ended the VM: reason=violation {want}");
        assert!(out.contains(&want), "{scenario}: expected {want}:\n{out}");
        assert!(!out.contains("hyp panicked"), "{out}");
    }
}

#[test]
fn disk_contents_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("pvmkit-e2e-disk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    let disk = disk.to_str().unwrap();
    // The read check fails on a disk that never had the pattern: it really reads.
    let (ok, out) = pvmkit(&["run", "--disk", disk, "--scenario", "persist-read"]);
    assert!(!ok, "{out}");
    assert!(out.contains("test virtio_blk_persist_read ... FAILED"), "{out}");
    let (ok, out) = pvmkit(&["run", "--disk", disk, "--scenario", "persist-write"]);
    assert!(ok, "{out}");
    assert_cases_passed(&out, &["virtio_blk_persist_write"]);
    // A second VM, another mode even, reads it back.
    for mode in ["protected", "bare"] {
        let (ok, out) = pvmkit(&["run", "--mode", mode, "--disk", disk, "--scenario", "persist-read"]);
        assert!(ok, "{mode}:\n{out}");
        assert_cases_passed(&out, &["virtio_blk_persist_read"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_options_are_refused_clearly() {
    let (ok, out) = pvmkit(&["run", "--mode", "bare", "--abi", "upstream"]);
    assert!(!ok);
    assert!(out.contains("--abi applies only to --mode protected"), "{out}");
    // vCPUs: 1 to 8; several only where they run (not yet on hyp).
    for bad in ["0", "9"] {
        let (ok, out) = pvmkit(&["run", "--cpus", bad]);
        assert!(!ok && out.contains("--cpus"), "{out}");
    }
}

/// A bundle that asks hyp for more vCPUs than QEMU gave it CPUs is refused by name, not
/// run with fewer (a guest would wait for its secondaries for ever).
#[test]
fn hyp_refuses_a_bundle_with_more_vcpus_than_cpus() {
    let (ok, out) = run_edited_bundle("vcpus", |bytes| {
        let entry = pvmkit_abi::bundle::entry_mut(bytes, pvmkit_abi::bundle::EntryKind::VmConfig).expect("a VM config");
        let vcpus = entry.offset.get() as usize + 28;
        bytes[vcpus..vcpus + 4].copy_from_slice(&2u32.to_le_bytes());
    });
    assert!(!ok && out.contains("QEMU did not start CPU 1 for vCPU 1 (PSCI -2): give QEMU -smp 2"), "{out}");
}

/// Packs test-guest's bundle, lets `edit` spoil it, runs it, and returns the output.
fn run_edited_bundle(name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("pvmkit-e2e-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bundle.bin");
    let (ok, out) = pvmkit(&["pack", "-o", path.to_str().unwrap()]);
    assert!(ok, "pack failed:\n{out}");
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let result = pvmkit(&["run", "--bundle", path.to_str().unwrap(), "--timeout", "30"]);
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// Moves the entry of `kind` to `load_ipa`, editing the table's typed entry in place.
fn move_entry(bytes: &mut [u8], kind: pvmkit_abi::bundle::EntryKind, load_ipa: u64) {
    pvmkit_abi::bundle::entry_mut(bytes, kind).expect("entry present").load_ipa.set(load_ipa);
}

#[test]
fn the_packed_bundle_runs_unchanged() {
    let (ok, out) = run_edited_bundle("unchanged", |_| {});
    assert!(ok, "{out}");
}

#[test]
fn hyp_refuses_a_malformed_bundle() {
    let (ok, out) = run_edited_bundle("magic", |b| b[0] ^= 0xff);
    assert!(!ok, "{out}");
    assert!(out.contains("[hyp] error: bad bundle: bundle magic is not PVMKBNDL"), "{out}");
    assert!(out.contains("pvmkit: FAIL: hyp ended the VM: reason=hyp_error"), "{out}");

    let (ok, out) = run_edited_bundle("truncated", |b| b.truncate(b.len() / 2));
    assert!(!ok, "{out}");
    assert!(out.contains("[hyp] error: bad bundle: bundle total_size"), "{out}");
}

#[test]
fn hyp_refuses_a_payload_outside_guest_ram() {
    use pvmkit_abi::bundle::EntryKind;
    // Load the payload where hyp itself lives.
    let (ok, out) = run_edited_bundle("outside", |b| move_entry(b, EntryKind::Payload, 0x4008_0000));
    assert!(!ok, "{out}");
    assert!(out.contains("[hyp] error: bad bundle layout: payload does not fit inside guest RAM"), "{out}");
    // Make the payload overlap the guest DT.
    let (ok, out) = run_edited_bundle("overlap", |b| move_entry(b, EntryKind::Payload, 0x8000_0000));
    assert!(!ok, "{out}");
    assert!(out.contains("overlaps"), "{out}");
}

#[test]
fn hyp_refuses_guest_ram_over_its_own_memory() {
    use pvmkit_abi::bundle::{entry_mut, EntryKind, RawVmConfig};
    use zerocopy::FromBytes;
    // Guest RAM claimed from QEMU's RAM base: it would cover hyp, the DTB and the bundle.
    let (ok, out) = run_edited_bundle("ram", |b| {
        let at = entry_mut(b, EntryKind::VmConfig).unwrap().offset.get() as usize;
        let config = RawVmConfig::mut_from_prefix(&mut b[at..]).unwrap().0;
        config.ram_base.set(0x4000_0000);
        config.ram_size.set(0x6000_0000);
        config.virtio_slots.set(0);
    });
    assert!(!ok, "{out}");
    assert!(out.contains("[hyp] error: guest RAM 0x40000000..0xa0000000 overlaps QEMU's boot stub"), "{out}");
}

/// The bench's counted work repeats from run to run (the command fails if it does not),
/// protection costs no hypercall per request and one copy per data byte, and Linux's
/// time is set beside guest-lib's.
#[test]
fn bench_counts_work_that_repeats() {
    let (ok, out) = pvmkit(&["bench", "--runs", "2"]);
    assert!(ok, "{out}");
    assert!(!out.contains("NOT REPEATED"), "{out}");
    assert!(out.contains("guest P     guest U        hyp P       hyp U    work U/P  hcalls/req"), "{out}");
    for (op, size) in [("write", "4096"), ("read", "4096"), ("write", "65536"), ("read", "65536"), ("read", "1048576")]
    {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([op, size]) && l.ends_with("1.0000"))
            .unwrap_or_else(|| panic!("no work row {op} {size} with one data copy per byte:\n{out}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        // Counted instructions of guest and hyp in both modes, no hypercall, one MMIO exit.
        assert!(cells[2..6].iter().all(|c| c.parse::<u64>().is_ok_and(|n| n > 0)), "{line}");
        assert_eq!(&cells[7..9], ["0.00", "1.00"], "{line}");
    }
    assert!(out.contains("time (follows QEMU's devices in real time"), "{out}");
    // Linux beside guest-lib, in time: every phase measured in both VMs.
    let peer: Vec<&str> =
        out.lines().skip_while(|l| !l.starts_with("Linux 7.3 (O_DIRECT on /dev/vda")).skip(2).take(6).collect();
    assert_eq!(peer.len(), 6, "{out}");
    for row in peer {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(cells.len() == 9 && cells[2..].iter().all(|c| c.parse::<f64>().is_ok_and(|x| x > 0.0)), "{row}\n{out}");
    }
    // Both runs' figures, side by side: guest instructions of a 64 KiB read, twice alike.
    let runs = out.lines().skip_while(|l| !l.starts_with("protected, per request, run by run:"));
    let row = runs.clone().find(|l| l.trim_start().starts_with("read    65536")).unwrap_or_else(|| panic!("{out}"));
    let guest = row.split("guest ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default();
    let (a, b) = guest.split_once('/').unwrap_or_else(|| panic!("{row}"));
    assert_eq!(a, b, "{row}");
}

/// A guest that prints a clean summary and well-formed exit lines of hyp and the VMM
/// (with and without a guessed nonce), then resets: its lines are shown as the guest's
/// and the verdict reads hyp's one real exit line.
#[test]
fn a_guest_that_forges_exit_lines_fails_and_is_shown_as_the_guest() {
    let (ok, out) = pvmkit(&["run", "--scenario", "forge-exit"]);
    assert!(!ok, "{out}");
    assert!(out.contains("pvmkit: FAIL: hyp ended the VM: reason=reset"), "{out}");
    for forged in ["[hyp]", "[vmm]", "[hyp#0123456789abcdef]", "[vmm#0123456789abcdef]"] {
        assert!(out.contains(&format!("guest| {forged} exit: reason=system_off")), "{forged} not marked:\n{out}");
    }
    let clean_exits = out.lines().filter(|l| l.starts_with("[hyp] exit: reason=")).count();
    assert_eq!(clean_exits, 1, "{out}");
}

/// The bench checks what it reads back: reading each request one block off (the
/// negative control for a device that returns the wrong data, or none) fails it.
#[test]
fn the_bench_fails_when_reads_do_not_return_what_was_written() {
    let (ok, out) = pvmkit(&["run", "--mode", "unprotected", "--scenario", "bench-misread"]);
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED: read 4096: read back sector 0: stamp "), "{out}");
}
