//! The VM's start: read the platform and the bundle, check where everything goes, build
//! stage 2, load the guest and enter it.

use hyp::device::devices::DeviceList;
use hyp::pkvm::hypercall::{ExitCounters, Services, ShortCounts};
use hyp::pkvm::mmio_guard::GuardTable;
use hyp::pkvm::ownership::{Ownership, GRANULE};
use hyp::platform::placement::{check_guest_ram, Reserved};
use hyp::platform::stage2::{self, Attributes, Stage2};
use hyp::platform::{self, Platform};
use hyp::vcpus::{Vcpus, MAX_VCPUS};
use hyp::vgic::forwarded::ForwardedSources;
use hyp::vgic::Vgic;
use pvmkit_abi::bundle::{Bundle, EntryKind, GuestLayout};
use pvmkit_abi::exit_line::Nonce;
use pvmkit_abi::hyp_options::{HypOptions, VmMode};
use pvmkit_abi::memory_map::Region;

use aarch64_cpu::registers::{CurrentEL, Readable};
use hyp::exclusive::Exclusive;

use crate::arch::registers;
use crate::arch::{self, gic, tick, GuestRegs};
use crate::console::{hyp_println, CONSOLE};
use crate::exit_path::fail;
use crate::virtio_transports;
use crate::vm_state::{Vm, MAX_GUEST_RAM, OWNERSHIP, STAGE2, VM};
use crate::work_meter;

/// hyp's tick: how often it takes control back from a guest that never traps, to
/// deliver device completions (counter ticks: 500 us at QEMU's 62.5 MHz).
pub const TICK_PERIOD: u64 = 31_250;
/// The seed of the short counts (fixed: a run repeats).
const SHORT_COUNT_SEED: u64 = 0x005e_ed0f_5407_c0de;
/// The guest's VMID.
const VMID: u64 = 1;

/// # Safety
/// `ptr .. ptr + len` must be readable memory that nothing writes while the slice lives.
unsafe fn bytes_at<'a>(ptr: u64, len: usize) -> &'a [u8] {
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(ptr as *const u8, len) }
}

#[unsafe(no_mangle)]
extern "C" fn hyp_main(dtb_ptr: u64) -> ! {
    if CurrentEL.read(CurrentEL::EL) != 2 {
        fail("hyp must be entered at EL2 (QEMU -M virt,virtualization=on)");
    }
    if dtb_ptr == 0 || !dtb_ptr.is_multiple_of(8) {
        fail!("no device tree from QEMU (x0 = {dtb_ptr:#x}); boot hyp as an arm64 Image with -kernel");
    }
    // SAFETY: QEMU's boot protocol puts a DTB at x0; only its header is read first.
    let header: [u8; 8] = unsafe { bytes_at(dtb_ptr, 8) }.try_into().unwrap_or([0; 8]);
    let dtb_len = platform::dtb_size(header).unwrap_or_else(|e| fail!("{e}"));
    // SAFETY: the header says the blob is `dtb_len` bytes; QEMU placed it in RAM.
    let dtb = unsafe { bytes_at(dtb_ptr, dtb_len) };
    let platform = Platform::read(dtb).unwrap_or_else(|e| fail!("{e}"));
    CONSOLE.set_base(platform.uart.start);
    // The nonce first, so that even a refusal of the other options is hyp's own line.
    CONSOLE.set_nonce(Nonce::from_options(platform.bootargs));
    hyp_println!("pvmkit hyp {}: EL2, DTB at {dtb_ptr:#x}", env!("CARGO_PKG_VERSION"));

    let options = HypOptions::parse(platform.bootargs).unwrap_or_else(|e| fail!("bad hyp options: {e}"));
    let Some(initrd) = platform.initrd else { fail("no bundle: QEMU was given no -initrd") };
    let dtb_region = Region::new(dtb_ptr, dtb_len as u64).unwrap_or(Region { start: dtb_ptr, end: dtb_ptr });
    // SAFETY: QEMU loaded the initrd at this range of RAM (from the DTB it wrote).
    let bundle_bytes = unsafe { bytes_at(initrd.start, initrd.size() as usize) };
    let bundle = Bundle::parse(bundle_bytes).unwrap_or_else(|e| fail!("bad bundle: {e}"));
    let layout = bundle.layout().unwrap_or_else(|e| fail!("bad bundle layout: {e}"));

    let (image_start, image_end) = arch::image_region();
    let reserved = [
        Reserved {
            name: "QEMU's boot stub",
            region: Region { start: pvmkit_abi::memory_map::QEMU_RAM_BASE, end: image_start },
        },
        Reserved { name: "hyp's image", region: Region { start: image_start, end: image_end } },
        Reserved { name: "QEMU's DTB", region: dtb_region },
        Reserved { name: "the bundle", region: initrd },
    ];
    check_guest_ram(layout.ram, platform.memory(), &reserved).unwrap_or_else(|e| fail!("{e}"));
    if layout.ram.size() > MAX_GUEST_RAM {
        fail!("guest RAM of {:#x} bytes is more than hyp tracks ({MAX_GUEST_RAM:#x})", layout.ram.size());
    }

    let vcpus = bundle.config().vcpus;
    let devices = DeviceList::new(platform.uart, platform.virtio_slots(), bundle.config().virtio_slots, vcpus)
        .unwrap_or_else(|e| fail!("{e}"));
    let protected = matches!(options.mode, VmMode::Protected(_));
    let services = Services { mode: options.mode, stats: options.stats, short_counts: options.short_counts };
    virtio_transports::setup(&devices, protected, options.access_platform)
        .unwrap_or_else(|(slot, e)| fail!("virtio-mmio transport {slot}: {e}"));
    let stage2_root = build_stage2(&layout);
    load_guest(&bundle, &layout);

    let Some(ownership_words) = OWNERSHIP.take_forever() else { fail("the ownership table was taken twice") };
    let vm = Vm {
        services,
        exits: ExitCounters::default(),
        ram: layout.ram,
        devices,
        guard: match layout.pvmfw {
            Some(pvmfw) => GuardTable::new(services.profile().guard_enrolled_with_pvmfw)
                .with_firmware(pvmfw, options.allow_inherited_guard),
            None => GuardTable::new(false),
        },
        short: ShortCounts::new(SHORT_COUNT_SEED),
        ownership: Ownership::new(layout.ram.start, &mut ownership_words[..(layout.ram.size() / GRANULE) as usize]),
        vcpus: Vcpus::new(vcpus as usize),
        vgics: core::array::from_fn(|i| Vgic::for_vcpu(i, vcpus as usize)),
        forwarded: [ForwardedSources::NONE; MAX_VCPUS],
    };
    if VM.set(vm).is_err() {
        fail("the VM was set up twice");
    }
    hyp_println!(
        "guest: {} VM, RAM {:#x}..{:#x}, entry {:#x}, DT {:#x}",
        options.mode,
        layout.ram.start,
        layout.ram.end,
        layout.entry_ipa,
        layout.dt.start
    );

    if options.stats && !work_meter::start() {
        hyp_println!("stats: no PMU instruction counter (QEMU counts instructions only with -icount)");
    }
    if let Some((gicd, gicr)) = platform.gic_v3 {
        gic::init(gicd.start, gicr.start);
        tick::start(TICK_PERIOD);
    } else if bundle.config().virtio_slots != 0 {
        fail("virtio needs hyp's tick, which needs a GICv3 (QEMU -M virt,gic-version=3)");
    }
    // SAFETY: the guest has not run yet; its first instruction sees this EL1 state.
    unsafe { registers::reset_guest_el1() };
    let access = services.profile().register_access;
    let traps = registers::Traps {
        id: !services.id_caps().is_empty(),
        debug: access.is_some_and(|r| r.traps_debug()),
        pmu: access.is_some_and(|r| r.traps_pmu()),
    };
    // SAFETY: stage 2 is installed (`build_stage2`) and hyp's vectors are set (entry.S):
    // every guest access and trap from here on has somewhere to go.
    unsafe { registers::configure_traps(traps) };
    let gic = platform.gic_v3.is_some();
    if SECONDARY_SETUP.set(SecondarySetup { traps, gic, stage2_root }).is_err() {
        fail("the secondary CPUs' set-up was written twice");
    }
    // vCPU i runs on CPU i: start the others, which wait for the guest's CPU_ON.
    for cpu in 1..vcpus as usize {
        let answer = arch::start_cpu(cpu);
        if answer != 0 {
            fail!("QEMU did not start CPU {cpu} for vCPU {cpu} (PSCI {answer}): give QEMU -smp {vcpus}");
        }
    }
    registers::set_guest_entry(layout.entry_ipa);
    let mut regs = GuestRegs::zeroed();
    regs.x[0] = layout.dt.start;
    arch::run_guest(&regs)
}

/// What a secondary CPU needs from the boot CPU's set-up.
#[derive(Clone, Copy)]
struct SecondarySetup {
    traps: registers::Traps,
    gic: bool,
    /// Stage 2's root table, as the boot CPU installed it.
    stage2_root: u64,
}

static SECONDARY_SETUP: Exclusive<SecondarySetup> = Exclusive::empty();

/// A secondary CPU (`secondary_entry` in entry.S, on its own stack): the boot CPU's EL2
/// set-up (stage 2, traps, its part of the GIC, the tick), then its vCPU waits, off,
/// for the guest's CPU_ON.
#[unsafe(no_mangle)]
extern "C" fn hyp_secondary_main() -> ! {
    let me = arch::this_cpu() as u8;
    let Ok(setup) = SECONDARY_SETUP.lock(me).map(|s| *s) else {
        fail("a secondary CPU started before the boot CPU's set-up")
    };
    // SAFETY: the boot CPU built these tables for good before starting this CPU.
    unsafe { registers::install_stage2(stage2::vtcr(), setup.stage2_root, VMID) };
    // SAFETY: stage 2 is installed and the vectors are set (entry.S).
    unsafe { registers::configure_traps(setup.traps) };
    if setup.gic {
        gic::init_cpu();
        tick::start(TICK_PERIOD);
    }
    park()
}

/// This CPU's vCPU is off: wait until the guest's CPU_ON starts it, then enter it at
/// the entry CPU_ON gave, with its context in x0 and EL1 as out of reset.
pub fn park() -> ! {
    let me = arch::this_cpu();
    loop {
        let start = crate::vm_state::vm().vcpus.take_start(me);
        if let Some((entry, context)) = start {
            // SAFETY: this vCPU does not run; its first instruction sees this EL1 state.
            unsafe { registers::reset_guest_el1() };
            for n in 0..gic::list_registers() {
                gic::write_list_register(n, 0);
            }
            registers::set_guest_entry(entry);
            let mut regs = GuestRegs::zeroed();
            regs.x[0] = context;
            arch::run_guest(&regs)
        }
        arch::wait_for_event();
    }
}

/// Builds and installs stage 2; returns its root table's address (the other CPUs
/// install the same).
fn build_stage2(layout: &GuestLayout) -> u64 {
    let Some(tables) = STAGE2.take_forever() else { fail("the stage-2 tables were taken twice") };
    let base = tables.as_ptr() as u64;
    let Some(mut s2) = Stage2::new(tables, base) else { fail("stage-2 arena is misaligned") };
    let ram = layout.ram;
    s2.map(ram.start, ram.start, ram.size(), Attributes::NORMAL_RW).unwrap_or_else(|e| fail!("stage 2: {e}"));
    // SAFETY: the tables map all of guest RAM and live in a static taken for good.
    unsafe { registers::install_stage2(stage2::vtcr(), s2.root_pa(), VMID) };
    arch::flush_guest_tlb();
    s2.root_pa()
}

/// Copies each loadable entry to its IPA (= PA) and zeroes the rest of its footprint.
fn load_guest(bundle: &Bundle<'_>, layout: &GuestLayout) {
    for entry in bundle.entries().filter(|e| e.kind != EntryKind::VmConfig) {
        // Checked by `layout()` (inside guest RAM, which is checked to be free RAM), and
        // again here, where a mistake would write over hyp.
        let footprint = entry.load_ipa.checked_add(entry.mem_size).map(|end| Region { start: entry.load_ipa, end });
        if !footprint.is_some_and(|f| layout.ram.contains(&f)) || entry.data.len() as u64 > entry.mem_size {
            fail!("bundle entry at {:#x} does not fit guest RAM", entry.load_ipa);
        }
        let dst = entry.load_ipa as *mut u8;
        // SAFETY: the destination lies in guest RAM (checked above), which is platform
        // RAM that neither hyp nor QEMU's DTB or the bundle occupy.
        unsafe {
            core::ptr::copy_nonoverlapping(entry.data.as_ptr(), dst, entry.data.len());
            dst.add(entry.data.len()).write_bytes(0, (entry.mem_size as usize) - entry.data.len());
        }
    }
}
