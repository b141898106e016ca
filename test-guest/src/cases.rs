//! The cases. Each states what it checks; cases that do not apply to a mode say so.

extern crate alloc;

use guest_lib::conduit::{Conduit, SystemConduit};
use guest_lib::console::Console;
use guest_lib::exceptions::probe;
use guest_lib::harness::{CaseResult, Harness};
use guest_lib::hypervisor::Hypervisor;
use guest_lib::{ensure, ensure_eq, println, psci, BootInfo};
use pvmkit_abi::esr::ec;
use pvmkit_abi::{kvm, psci as psci_ids, smccc};

use crate::clock::{counter, frequency};
use crate::expect::Mode;
use pvmkit_abi::profile::Pages;

/// An IPA that is neither guest RAM nor any device, in every mode: above QEMU's RAM
/// (`-m 2G` from 0x4000_0000) and far above guest RAM.
const UNMAPPED_IPA: u64 = 0xc000_0000;
/// QEMU `virt`'s PL031 RTC: a real device that hyp does not give the guest.
const UNEXPOSED_DEVICE: u64 = 0x0901_0000;
/// PL011 UARTPeriphID0: reads 0x11 on every PL011.
const PL011_PERIPH_ID0: u64 = 0xfe0;
/// Function IDs no part of pvmkit implements, of every owner and both conventions.
const UNKNOWN_IDS: [u32; 6] = [0x8200_0000, 0xc600_0030, 0x8600_0042, 0x8400_00ff, 0xc300_1234, 0xbf00_0000];

pub fn main(boot: &BootInfo) {
    println!("test-guest: {}", boot.dt.bootargs);
    println!("test-guest: image at {:#x}", boot.image_base);
    let Some(mode) = Mode::from_dt(&boot.dt) else {
        println!("test-guest: no valid pvmkit.mode in the command line; nothing to check against");
        return;
    };
    let scenario = boot.dt.bootarg(pvmkit_abi::guest_console::SCENARIO).unwrap_or("normal");
    let mut h = Harness::new(Console);
    let c = boot.conduit;
    if scenario == "conformance" {
        crate::conformance::run(&mut h, boot, mode);
        h.finish();
        return;
    }
    if scenario == "dice" {
        // What pvmfw handed over, alone: for the host's DICE tests, which boot often.
        crate::pvmfw_cases::run(&mut h, boot);
        h.finish();
        return;
    }
    if scenario == "forget-guard" {
        // Negative control for hyp's policy guard-inherited-from-pvmfw: a payload that
        // reads a virtio transport without registering it (pvmfw did, to probe it).
        h.run("forgetful_mmio_read", || forgetful_mmio_read(boot));
        h.finish();
        return;
    }
    if scenario == "bench" || scenario == "bench-misread" {
        h.run("bench", || crate::bench::run(boot, scenario == "bench-misread"));
        h.finish();
        return;
    }

    h.run("hypervisor_uid", || uid(boot, mode));
    h.run("features_bitmap_exact", || features(boot, mode));
    if mode.under_hyp() {
        h.run("smccc_version_at_least_1_1", || smccc_version(boot));
    } else {
        h.skip("smccc_version_at_least_1_1", "QEMU's own PSCI implements no SMCCC_VERSION");
    }
    h.run("unknown_ids_not_supported_hvc", || unknown_ids(SystemConduit::Hvc, mode));
    if mode.under_hyp() {
        h.run("unknown_ids_not_supported_smc", || unknown_ids(SystemConduit::Smc, mode));
    } else {
        h.skip("unknown_ids_not_supported_smc", "no EL2/EL3 to take an SMC on plain QEMU");
    }
    h.run("psci_version", || psci_version(c, mode));
    h.run("psci_features", || psci_features(c, mode, boot.dt.cpus().len()));
    h.run("unmapped_ipa_aborts_and_guest_survives", unmapped_ipa);
    h.run("console_register_read_emulated", || uart_id(boot));
    h.run("timer_wait_wakes", || timer_wait(boot));
    h.run("sgi_to_self_arrives", || sgi_to_self(boot));
    if mode.under_hyp() {
        if mode.real_kvm() {
            h.skip("wfi_traps_to_hyp", "KVM blocks a WFI until an interrupt is pending; no exit counters to read");
        } else if hyp_wfx_exits(boot).is_some() {
            h.run("wfi_traps_to_hyp", || wait_instructions(boot));
        } else {
            h.skip("wfi_traps_to_hyp", "hyp's exit counters are off (pvmkit run --hyp-stats)");
        }
        h.run("unexposed_device_aborts", unexposed_device);
        if mode.answers().pair_access_aborts {
            h.run("access_without_syndrome_aborts", || pair_access(boot));
        } else {
            // KVM fails KVM_RUN (ENOSYS) for an ordinary VM's access without a syndrome.
            h.skip("access_without_syndrome_aborts", "an ordinary KVM VM's vCPU stops (ENOSYS) instead");
        }
    } else {
        h.skip("wfi_traps_to_hyp", "no hypervisor to trap WFI/WFE");
        h.skip("unexposed_device_aborts", "no hypervisor to withhold devices");
        h.skip("access_without_syndrome_aborts", "no hypervisor: the UART answers pairs");
    }

    crate::pvmfw_cases::run(&mut h, boot);
    crate::sharing_cases::run(&mut h, boot, mode);
    crate::guard_cases::run(&mut h, boot, mode);
    crate::virtio_cases::run(&mut h, boot, mode, scenario);
    crate::smp_cases::run(&mut h, boot, mode);

    match scenario {
        "fail-case" => h.run("deliberate_failure", || Err("this scenario fails on purpose".into())),
        "racy-hal" => h.run("racy_hal", || crate::racy_hal::racy_hal(boot, mode)),
        "unshare-held" => h.run("unshare_held", || crate::racy_hal::unshare_held(boot, mode)),
        "crash" => {
            println!("test-guest: scenario crash: executing an undefined instruction");
            // SAFETY: UDF takes an exception, which guest-lib reports before powering off.
            unsafe { core::arch::asm!("udf #0") };
        }
        "all-cpus-off" => {
            // Negative control: every vCPU powers itself off (the secondaries first),
            // so nothing can run again; hyp ends the VM saying so.
            h.finish();
            println!("test-guest: scenario all-cpus-off: every vCPU calls CPU_OFF");
            crate::smp_cases::power_everything_off(boot);
            return;
        }
        "hang" => {
            println!("test-guest: scenario hang: spinning forever");
            loop {
                core::hint::spin_loop();
            }
        }
        "forge-exit" => {
            // What a guest that wants a PASS it did not earn would print: a clean summary
            // and clean exit lines of hyp and the VMM, with and without a guessed nonce.
            // It cannot know the run's nonce, so pvmkit marks these as the guest's.
            h.finish();
            for tag in ["[hyp]", "[vmm]", "[hyp#0123456789abcdef]", "[vmm#0123456789abcdef]"] {
                println!("{tag} exit: reason=system_off");
            }
            println!("test-guest: scenario forge-exit: resetting instead of powering off");
            let _ = guest_lib::psci::system_reset(&boot.conduit);
            loop {
                core::hint::spin_loop();
            }
        }
        "no-summary" => {
            println!("test-guest: scenario no-summary: powering off without a summary");
            return;
        }
        _ => {}
    }
    h.finish();
}

/// Reads the first virtio transport's MagicValue without registering the transport
/// with the MMIO guard first: the mistake hyp's policy names.
fn forgetful_mmio_read(boot: &BootInfo) -> CaseResult {
    let (base, _) = boot.dt.virtio_mmio().next().ok_or("no virtio transport in the DT")?;
    println!("test-guest: reading {base:#x} without registering it with the MMIO guard");
    // SAFETY: a transport's MagicValue, a 32-bit read-only register.
    let magic = unsafe { (base as *const u32).read_volatile() };
    ensure_eq!(magic, 0x7472_6976);
    Ok(())
}

fn uid(boot: &BootInfo, mode: Mode) -> CaseResult {
    match (mode.under_hyp(), boot.hypervisor.hypervisor) {
        (true, Hypervisor::Kvm(_)) | (false, Hypervisor::None) => Ok(()),
        (_, found) => Err(alloc::format!("found {found:x?} in {mode:?}")),
    }
}

fn features(boot: &BootInfo, mode: Mode) -> CaseResult {
    ensure_eq!(boot.hypervisor.features(), mode.expected_features());
    // The bitmap read again, raw: the upper 32 bits of each register must be ignored,
    // and the call must give the same answer twice.
    if mode.under_hyp() {
        let again = kvm::Features::from_regs(boot.conduit.call(kvm::KVM_FEATURES, [0; 3]));
        ensure_eq!(again, mode.expected_features());
    }
    Ok(())
}

fn smccc_version(boot: &BootInfo) -> CaseResult {
    let version = boot.hypervisor.smccc_version.ok_or("SMCCC_VERSION not implemented")?;
    ensure!(version >= (1, 1), "SMCCC {version:?} is older than 1.1");
    Ok(())
}

fn unknown_ids(conduit: SystemConduit, mode: Mode) -> CaseResult {
    for id in UNKNOWN_IDS {
        let args = [0x1111_2222_3333_4444, 0x5555_6666_7777_8888, 0x9999_aaaa_bbbb_cccc];
        let r = conduit.call(id, args);
        ensure!(r[0] as i64 == smccc::NOT_SUPPORTED, "{conduit:?} {id:#x} returned {:#x}", r[0]);
        // KVM zeroes x1..x3 (hyp answers as it does); plain QEMU's firmware leaves them.
        let want = match mode.expect_regs(id, args, Pages::Private) {
            Some(regs) => [regs[1], regs[2], regs[3]],
            None => args,
        };
        ensure!(r[1..] == want, "{conduit:?} {id:#x} set x1..x3 to {:x?}, not {want:x?}", &r[1..]);
    }
    Ok(())
}

fn psci_version(c: SystemConduit, mode: Mode) -> CaseResult {
    let version = psci::version(&c).map_err(|e| alloc::format!("{e}"))?;
    match mode.expect_regs(psci_ids::PSCI_VERSION, [0; 3], Pages::Private) {
        Some(want) => ensure_eq!(version, smccc::version_parts(want[0] as u32)),
        None => ensure!(version >= (1, 0), "PSCI {version:?} has no PSCI_FEATURES"),
    }
    Ok(())
}

fn psci_features(c: SystemConduit, mode: Mode, cpus: usize) -> CaseResult {
    for id in [psci_ids::PSCI_VERSION, psci_ids::SYSTEM_OFF, psci_ids::SYSTEM_RESET] {
        ensure!(psci::features(&c, id).is_ok(), "PSCI_FEATURES({id:#x}) says not implemented");
    }
    ensure!(psci::features(&c, 0x8400_00ff).is_err(), "PSCI_FEATURES of an unknown ID succeeded");
    // Every function the profile lists (CPU_ON among them: both releases list it
    // whatever the vCPU count) and what a vCPU hears when it asks to start itself or a
    // vCPU that does not exist (the first MPIDR past the VM's CPUs: with several, KVM
    // starts an existing one at whatever entry it is given, 0 included).
    for id in [psci_ids::CPU_ON_64, psci_ids::SYSTEM_RESET2, psci_ids::SYSTEM_OFF2_64, psci_ids::MIGRATE_INFO_TYPE] {
        if let Some(want) = mode.expect_regs(psci_ids::PSCI_FEATURES, [id as u64, 0, 0], Pages::Private) {
            ensure_eq!(c.call(psci_ids::PSCI_FEATURES, [id as u64, 0, 0])[0], want[0]);
        }
    }
    let past_the_last = guest_lib::smp::mpidr_of(cpus.max(1));
    for target in [0u64, past_the_last, 1 << 40] {
        if let Some(want) = mode.expect_regs(psci_ids::CPU_ON_64, [target, 0, 0], Pages::Private) {
            ensure_eq!(c.call(psci_ids::CPU_ON_64, [target, 0, 0]), want);
        }
    }
    Ok(())
}

fn expect_abort(result: Result<u64, guest_lib::exceptions::ExternalAbort>, addr: u64) -> CaseResult {
    let abort = match result {
        Ok(value) => return Err(alloc::format!("access to {addr:#x} succeeded with {value:#x}")),
        Err(abort) => abort,
    };
    ensure!(abort.is_data_external_abort(), "not a synchronous external abort: {abort}");
    ensure_eq!(abort.esr.ec(), ec::DABT_CURRENT);
    ensure_eq!(abort.far, addr);
    Ok(())
}

fn unmapped_ipa() -> CaseResult {
    // SAFETY: nothing lives at this address; the access is expected to abort.
    expect_abort(unsafe { probe::read_u32(UNMAPPED_IPA) }.map(u64::from), UNMAPPED_IPA)?;
    // SAFETY: as above, for a store.
    expect_abort(unsafe { probe::write_u32(UNMAPPED_IPA + 8, 0xdead) }.map(|_| 0), UNMAPPED_IPA + 8)?;
    Ok(())
}

fn uart_id(boot: &BootInfo) -> CaseResult {
    let uart = boot.dt.uart.ok_or("the DT names no PL011")?;
    // SAFETY: a read-only ID register of the guest's own console.
    let id = unsafe { probe::read_u32(uart + PL011_PERIPH_ID0) }.map_err(|e| alloc::format!("{e}"))?;
    ensure_eq!(id, 0x11);
    // SAFETY: as above, one byte wide (a different access width through emulation).
    let id8 = unsafe { probe::read_u8(uart + PL011_PERIPH_ID0) }.map_err(|e| alloc::format!("{e}"))?;
    ensure_eq!(id8, 0x11);
    Ok(())
}

/// hyp's count of WFI/WFE exits (`HYP_STATS`, answered with `--hyp-stats` only).
fn hyp_wfx_exits(boot: &BootInfo) -> Option<u64> {
    let r = boot.conduit.call(pvmkit_abi::hyp_options::HYP_STATS, [pvmkit_abi::hyp_options::HYP_STATS_WFX, 0, 0]);
    (r[0] == 0).then_some(r[1])
}

/// Each WFI must trap to hyp (HCR_EL2.TWI), which treats it as a yield. Returning
/// proves nothing (hyp's tick wakes an untrapped WFI too): hyp's count of WFx exits
/// must rise by exactly the number executed. WFE is only executed: QEMU's TCG runs it
/// as a plain yield that never waits and so never traps (measured: 0 of 3 with TWE
/// set), so no guest can observe HCR_EL2.TWE under QEMU.
fn wait_instructions(boot: &BootInfo) -> CaseResult {
    let exits = || hyp_wfx_exits(boot).ok_or("HYP_STATS stopped answering");
    let before = exits()?;
    for _ in 0..3 {
        // SAFETY: waiting has no memory effect.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
    let wfi = exits()? - before;
    if wfi != 3 {
        return Err(alloc::format!("3 WFI executed, {wfi} trapped to hyp"));
    }
    // SAFETY: as above; SEVL only sets the local event register.
    unsafe { core::arch::asm!("sevl", "wfe", "wfe", options(nomem, nostack)) };
    Ok(())
}

/// A timed wait returns after its time, woken by the timer's interrupt through the GIC
/// every backend gives (hyp's vGIC, the real KVM's, plain QEMU's) wherever the DT names
/// one; polled where it names none (a host's DT may leave it out). On real KVM a wait
/// without the GIC set up never returns.
fn timer_wait(boot: &BootInfo) -> CaseResult {
    const NS: u64 = 2_000_000;
    let start = counter();
    let wake = guest_lib::timer::sleep_ns(NS);
    let elapsed = counter() - start;
    ensure!(elapsed >= guest_lib::timer::ticks(NS, frequency()), "woke after {elapsed} ticks");
    let expected = match boot.dt.gic_v3() {
        Some(_) => guest_lib::timer::Wake::Interrupt,
        None => guest_lib::timer::Wake::Polled,
    };
    ensure_eq!(wake, expected);
    Ok(())
}

/// An SGI the guest sends itself arrives through the GIC: under hyp its write traps and
/// hyp hands it to a list register; KVM and plain QEMU deliver it themselves. Without
/// a GIC in the DT the API says there is none.
fn sgi_to_self(boot: &BootInfo) -> CaseResult {
    use guest_lib::interrupts::{self, InterruptError};
    const SGI: u32 = 3;
    if boot.dt.gic_v3().is_none() {
        ensure_eq!(interrupts::send_sgi_to_self(SGI), Err(InterruptError::NoGic));
        return Ok(());
    }
    ensure_eq!(guest_lib::timer::uses_interrupts(), guest_lib::timer::Wake::Interrupt);
    let fail = |e: InterruptError| alloc::format!("{e}");
    interrupts::enable(SGI).map_err(fail)?;
    interrupts::send_sgi_to_self(SGI).map_err(fail)?;
    interrupts::wait(SGI);
    interrupts::end(SGI);
    interrupts::disable(SGI).map_err(fail)?;
    Ok(())
}

fn unexposed_device() -> CaseResult {
    // SAFETY: a device hyp does not give us; the read is expected to abort.
    expect_abort(unsafe { probe::read_u32(UNEXPOSED_DEVICE) }.map(u64::from), UNEXPOSED_DEVICE)
}

fn pair_access(boot: &BootInfo) -> CaseResult {
    let uart = boot.dt.uart.ok_or("the DT names no PL011")?;
    // SAFETY: reading the PL011's ID registers with a load pair: no side effects, and
    // hyp must refuse it (no syndrome to emulate from).
    expect_abort(unsafe { probe::read_pair(uart + PL011_PERIPH_ID0) }, uart + PL011_PERIPH_ID0)
}
