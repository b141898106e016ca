//! The MMIO guard: registering, accessing, unregistering, refusals, and shared granules.
//! The device is the virtio-mmio transport pvmkit gives the VM; its identification
//! registers answer reads whether or not a device sits behind it.

extern crate alloc;

use guest_lib::conduit::{Conduit, SystemConduit};
use guest_lib::exceptions::{probe, ExternalAbort};
use guest_lib::harness::{CaseResult, Harness};
use guest_lib::{ensure, ensure_eq, mmio_guard, BootInfo};
use mmio_guard::{Form, GuardError};
use pvmkit_abi::address::Ipa;
use pvmkit_abi::kvm;

use pvmkit_abi::profile::{Action, Answer, Conduit::Hvc, Pages};

use crate::expect::Mode;

/// QEMU's first virtio-mmio transport, which pvmkit never gives a VM.
const NEVER_REGISTERED: u64 = 0x0a00_0000;
/// virtio-mmio MagicValue: "virt".
const VIRTIO_MAGIC: u32 = 0x7472_6976;

fn read_magic(base: u64) -> Result<u32, ExternalAbort> {
    // SAFETY: the MagicValue register of a virtio-mmio transport: a read without side
    // effects, or an abort that the probe catches.
    unsafe { probe::read_u32(base) }
}

fn expect_refused(result: Result<u32, ExternalAbort>, base: u64) -> CaseResult {
    match result {
        Ok(v) => Err(alloc::format!("unregistered access to {base:#x} was emulated ({v:#x})")),
        Err(abort) => {
            ensure!(abort.is_data_external_abort(), "not an external abort: {abort}");
            ensure_eq!(abort.far, base);
            Ok(())
        }
    }
}

pub fn run(h: &mut Harness<impl core::fmt::Write>, boot: &BootInfo, mode: Mode) {
    let Some((device, _)) = boot.dt.virtio_mmio().next() else {
        h.run("mmio_guard_device_present", || Err("the DT names no virtio-mmio transport".into()));
        return;
    };
    h.run("mmio_guard_form", || form(mode));
    h.run("console_granule_is_registered", || console(boot, mode));
    // Before anything maps the transport (the upstream form can never unmap it again).
    if mode.protected() && !mode.has_guard() {
        h.skip("mmio_access_without_map_aborts", "Linux 7.3's pKVM has no MMIO guard: the VMM sees every access");
        h.skip("mmio_map_refusals", "Linux 7.3's pKVM has no MMIO guard calls");
    } else if mode.protected() {
        // Android 6.12's UNMAP is a no-op: pvmfw's and discovery's registrations of the
        // transports stay. A granule of QEMU's that nothing ever registered shows the
        // refusal instead (`--no-pvmfw --guest-arg guest-lib.unsafe-skip-mmio-guard`
        // shows it on the console, end to end).
        h.run("mmio_access_without_map_aborts", || expect_refused(read_magic(NEVER_REGISTERED), NEVER_REGISTERED));
        h.run("mmio_map_refusals", || refusals(boot, device, mode));
    } else {
        h.skip("mmio_access_without_map_aborts", "no guard enforced in this mode");
        h.skip("mmio_map_refusals", "no MMIO guard calls in this mode");
    }
    h.run("mmio_map_access_unmap_access", || map_access_unmap(device, mode));
    h.run("mmio_shared_granule_kept_until_both_dropped", || shared_granule(device, mode));
}

fn form(mode: Mode) -> CaseResult {
    let want = match mode {
        Mode::Protected("android") => Some(Form::Android { ranged: true }),
        // Linux 7.3 (hyp's upstream profile and the real pKVM): no guard at all.
        _ => None,
    };
    ensure_eq!(mmio_guard().form(), want);
    ensure_eq!(mmio_guard().granule(), 4096);
    Ok(())
}

fn console(boot: &BootInfo, mode: Mode) -> CaseResult {
    let uart = boot.dt.uart.ok_or("no console in the DT")?;
    // guest-lib registered the console before its first byte; in a protected VM this
    // very line reaches the host only because of that.
    let users = mmio_guard().users(Ipa(uart));
    ensure!(users >= 1, "the console granule has {users} users");
    let _ = mode;
    Ok(())
}

fn map_access_unmap(device: u64, mode: Mode) -> CaseResult {
    let guard = mmio_guard();
    {
        let _mapped = guard.guard(Ipa(device), 0x200).map_err(|e| alloc::format!("{e}"))?;
        ensure_eq!(read_magic(device), Ok(VIRTIO_MAGIC));
    }
    after_unmap(read_magic(device), device, mode)
}

/// What an access after the last unmap gets: Android 6.12's UNMAP is a no-op (the
/// granule stays registered); a release that really unmapped would refuse it; without
/// a guard the device answers either way.
fn after_unmap(after: Result<u32, ExternalAbort>, device: u64, mode: Mode) -> CaseResult {
    let unmap = mode.expect(Hvc, kvm::MMIO_GUARD_UNMAP, [device & !0xfff, 0, 0], Pages::Outside);
    match unmap {
        Some((Answer::Act(Action::Nothing, _), _)) | None => {
            ensure_eq!(after, Ok(VIRTIO_MAGIC));
            Ok(())
        }
        Some((Answer::Act(..), _)) => expect_refused(after, device),
        Some(_) => {
            ensure_eq!(after, Ok(VIRTIO_MAGIC));
            Ok(())
        }
    }
}

fn refusals(boot: &BootInfo, device: u64, mode: Mode) -> CaseResult {
    let c: SystemConduit = boot.conduit;
    let guard = mmio_guard();
    let ram = boot.dt.memory.ok_or("no memory in the DT")?.0;
    ensure_eq!(guard.map(Ipa(ram), 0x1000), Err(GuardError::Refused { ipa: Ipa(ram), code: -3 }));
    ensure_eq!(guard.users(Ipa(ram)), 0);
    // Raw calls, checked against the profile: unaligned, a real QEMU device this VM is
    // not given and nothing at all (Android registers both: it does not look for a
    // device), guest RAM, a ranged call of no granules.
    let page = device & !0xfff;
    let calls = [
        (kvm::MMIO_GUARD_MAP, [device + 8, 0, 0], Pages::Outside),
        (kvm::MMIO_GUARD_MAP, [0x0901_0000, 0, 0], Pages::Outside),
        (kvm::MMIO_GUARD_MAP, [0xc000_0000, 0, 0], Pages::Outside),
        (kvm::MMIO_GUARD_MAP, [ram, 0, 0], Pages::Private),
        (kvm::MMIO_RGUARD_MAP, [page, 0, 0], Pages::Outside),
        (kvm::MMIO_RGUARD_MAP, [page, 1, 1], Pages::Outside),
    ];
    for (function, args, pages) in calls {
        let want = mode.expect_regs(function, args, pages).ok_or("no profile")?;
        ensure_eq!(c.call(function, args), want);
    }
    Ok(())
}

fn shared_granule(device: u64, mode: Mode) -> CaseResult {
    let guard = mmio_guard();
    let first = guard.guard(Ipa(device), 0x100).map_err(|e| alloc::format!("{e}"))?;
    let second = guard.guard(Ipa(device + 0x100), 0x100).map_err(|e| alloc::format!("{e}"))?;
    ensure_eq!(guard.users(Ipa(device)), 2);
    drop(first);
    ensure_eq!(read_magic(device), Ok(VIRTIO_MAGIC));
    drop(second);
    ensure_eq!(guard.users(Ipa(device)), 0);
    after_unmap(read_magic(device), device, mode)
}
