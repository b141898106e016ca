//! The run: read the configuration data the bootloader appended (before anything else),
//! check the host's DT (and hold it to the VM reference DT), verify the kernel and its
//! ramdisk where the host loaded them, write the new DT, hand over.

extern crate alloc;

use core::arch::{asm, global_asm};
use pvmkit_abi::address::Ipa;

use alloc::vec::Vec;
use guest_lib::conduit::SystemConduit;
use pvmkit_abi::avf_config::DiceHandover;
use pvmkit_abi::avf_config::{self, Entry};
use pvmkit_abi::memory_map::Region;
use pvmkit_abi::pvmfw::{
    trusted_key, Refusal, PLATFORM_CONDUIT, PLATFORM_CONSOLE, PVMFW_WRITABLE_BASE, TRUSTED_KEY_SLOT_SIZE,
};

use crate::guest_memory::erase;
use guest_lib::{mmio_guard, println, psci, BootInfo, Platform};
use pvmfw::avb_verify::{self, Initrd};
use pvmfw::host_dt::{self, Limits};
use pvmfw::layout;
use pvmfw::refusal::Refused;
use pvmfw::rollback::Protection;
use pvmfw::{avb_properties, bootargs, dice, handover_dt, kernel, reference_dt};

/// What a virtio-mmio transport's MagicValue register reads: "virt".
const VIRTIO_MMIO_MAGIC: u32 = 0x7472_6976;

/// The payload key (AVB's public-key format), written into the image by `pvmkit pvmfw
/// --trusted-key` (zero until then): AOSP's `pvmfw_embedded_key`.
#[unsafe(link_section = ".pvmfw_trusted_key")]
#[used]
#[unsafe(no_mangle)]
static __pvmfw_trusted_key: [u8; TRUSTED_KEY_SLOT_SIZE] = [0; TRUSTED_KEY_SLOT_SIZE];

unsafe extern "C" {
    /// The end of pvmfw's image: the configuration data starts here (`pvmfw.ld`).
    static __pvmfw_image_end: u8;
}

/// Where the configuration data may lie: from the image's end to pvmfw's writable half.
fn config_region() -> Region {
    Region { start: &raw const __pvmfw_image_end as u64, end: PVMFW_WRITABLE_BASE }
}

/// What pvmfw believes before it has checked the host's DT: the platform's own conduit
/// and console (abi), never the DT's.
pub fn platform() -> Platform {
    Platform {
        conduit: SystemConduit::from_method(PLATFORM_CONDUIT).unwrap_or(SystemConduit::Hvc),
        console: PLATFORM_CONSOLE,
    }
}

pub fn main(boot: &BootInfo) {
    // What the runtime really chose, so a test can see that no DT picked it.
    println!("[pvmfw] platform: conduit {:?}, console {:#x}", boot.conduit, guest_lib::console::base());
    if let Some(e) = boot.dt_error {
        fail(Refused::new(Refusal::HostDtMalformed, format_args!("host device tree: {e}")));
    }
    match run(boot) {
        Ok(handover) => handover.go(),
        Err(reason) => fail(reason),
    }
}

fn fail(refused: Refused) -> ! {
    println!("{refused}");
    // The configuration data holds the DICE secrets: gone before the VM is.
    let config = config_region();
    erase(Ipa(config.start), config.size());
    let _ = psci::system_reset(&guest_lib::conduit::SystemConduit::Hvc);
    loop {
        core::hint::spin_loop();
    }
}

/// # Safety
/// `[ipa, ipa + len)` must be guest memory that stays put while the slice lives.
unsafe fn memory<'a>(ipa: u64, len: u64) -> &'a [u8] {
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(ipa as *const u8, len as usize) }
}

struct Handover {
    entry: u64,
    dt: u64,
}

/// What pvmfw takes from its configuration data.
struct Configuration {
    /// The DICE handover it received (entry 0).
    dice: DiceHandover<'static>,
    /// The VM reference DT (entry 3), if any.
    reference_dt: Option<&'static [u8]>,
}

/// Reads the configuration data; entries 1 and 2 are said and left alone.
fn configuration() -> Result<Configuration, Refused> {
    let region = config_region();
    // SAFETY: pvmfw's own region between its image and its writable half, loaded by
    // the host with the image and written by nothing in pvmfw.
    let loaded = unsafe { memory(region.start, region.size()) };
    let config = avf_config::parse(loaded)?;
    let dice = config.dice_handover()?;
    println!(
        "[pvmfw] configuration data {}.{}: DICE handover with a {}-byte chain",
        config.version >> 16,
        config.version & 0xffff,
        dice.chain.len()
    );
    for (entry, what) in [(Entry::DebugPolicy, "debug policy"), (Entry::VmDtbo, "VM DTBO")] {
        if let Some(blob) = config.entry(entry) {
            println!(
                "[pvmfw] configuration data: {what} ({} bytes) not applied: debug policies and device assignment \
                 are outside this pvmfw",
                blob.len()
            );
        }
    }
    Ok(Configuration { dice, reference_dt: config.entry(Entry::VmReferenceDt) })
}

fn run(boot: &BootInfo) -> Result<Handover, Refused> {
    // The configuration data first: nothing else is acted on if it is malformed.
    let Configuration { dice: incoming, reference_dt: reference } = configuration()?;

    // SAFETY: a static of the image; volatile so the build-time zeroes are not assumed.
    let slot = unsafe { core::ptr::read_volatile(&raw const __pvmfw_trusted_key) };
    let key = trusted_key(&slot)
        .ok_or_else(|| Refused::new(Refusal::NoTrustedKey, "pvmfw's image holds no embedded payload key"))?;

    // The host's DT: it must lie in the DT slot, and pvmfw copies it into its own memory
    // before reading a byte of it, so that what it checks is what it uses.
    // SAFETY: x0 pointed at the host's DT in guest RAM; its header is read first.
    let header: [u8; 8] = unsafe { memory(boot.dt_ipa, 8) }.try_into().unwrap_or([0; 8]);
    let dt_len = host_dt::dt_size(header)?;
    let host_region = layout::host_dt(boot.dt_ipa, dt_len as u64)?;
    // SAFETY: inside the DT slot, guest RAM.
    let host_blob: Vec<u8> = unsafe { memory(host_region.start, host_region.size()) }.to_vec();
    erase(Ipa(host_region.start), host_region.size());
    let limits = Limits::qemu_virt();
    let host = host_dt::check(&host_blob, &limits)?;
    if let Some(reference) = reference {
        reference_dt::check(reference, &host_blob)?;
        println!("[pvmfw] the host's DT agrees with the VM reference DT");
    }
    let bootargs = bootargs::filter(host.bootargs);
    for word in &bootargs.dropped {
        println!("[pvmfw] dropped host bootarg '{word}': reserved for the guest's own build");
    }
    // The platform has the device, but does the host give it to this VM? Ask the
    // device: a virtio-mmio transport the VMM emulates answers its magic value; an
    // address the host gives nothing at aborts. Under Android's guard the granule must
    // be registered first (6.12's unmap is a no-op: the registration stays).
    for device in &host.virtio {
        let guarded = mmio_guard().form().is_none() || mmio_guard().map(Ipa(device.start), device.size()).is_ok();
        // SAFETY: a virtio-mmio MagicValue register: a read without side effects, or an
        // abort the probe catches.
        let magic = guarded.then(|| unsafe { guest_lib::exceptions::probe::read_u32(device.start) });
        if magic.and_then(Result::ok) != Some(VIRTIO_MMIO_MAGIC) {
            return Err(Refused::new(
                Refusal::DeviceNotExposed,
                format_args!(
                    "host device tree: device at {:#x}, which the hypervisor does not expose to this VM",
                    device.start
                ),
            ));
        }
        let _ = mmio_guard().unmap(Ipa(device.start), device.size());
    }

    // The kernel and the ramdisk, verified where the host loaded them: in a pVM that
    // memory is the guest's alone, so what is verified is what runs.
    // SAFETY: both checked to lie inside guest RAM, clear of the DT area and each other.
    let signed = unsafe { memory(host.payload.start, host.payload.size()) };
    // SAFETY: as above.
    let ramdisk = host.ramdisk.map(|r| unsafe { memory(r.start, r.size()) });
    let (verified, cost) = avb_verify::verify_timed(signed, key, ramdisk, &counter)?;
    let properties = avb_properties::read(verified.payload.vbmeta.descriptors())?;
    let keep_clear = [
        ("the DT area", limits.dt_area),
        ("the bounce pool", host.bounce_pool.unwrap_or(Region { start: 0, end: 0 })),
        ("the ramdisk", host.ramdisk.unwrap_or(Region { start: 0, end: 0 })),
    ];
    let footprint = kernel::footprint(host.payload, verified.image, host.memory, &keep_clear)?;
    let debuggable = verified.initrd == Some(Initrd::Debug);

    // The payload's DICE layer, with the rollback protection AVF would give it.
    let protection = Protection::choose(properties.capabilities, host.defer_rollback_protection);
    protection.check(verified.rollback_index)?;
    let measured = dice::Measurements::new(&dice::Verified {
        kernel_digest: verified.kernel_digest,
        initrd_digest: verified.initrd_digest,
        public_key: key,
        debug: debuggable,
        rollback_index: verified.rollback_index,
        properties,
    });
    let layer = crate::dice_layer::hand_over(boot, &host, &incoming, &measured, protection)?;
    // The payload never sees the instance disk.
    let mut payload_view = host.clone();
    payload_view.virtio.retain(|&t| Some(t) != layer.instance_disk);

    // The new DT, in the DT slot (the host's blob there was erased above).
    let new_dt = handover_dt::build(&payload_view, &bootargs.kept, debuggable, layer.page)
        .map_err(|e| Refused::new(Refusal::NewDt, format_args!("building the payload's DT: {e}")))?;
    let new_region = layout::new_dt(new_dt.len() as u64)?;
    // SAFETY: the DT slot, clear of the kernel and the ramdisk (host_dt, kernel).
    unsafe { core::ptr::copy_nonoverlapping(new_dt.as_ptr(), new_region.start as *mut u8, new_dt.len()) };
    clean_to_poc(limits.dt_area);

    layer.report(&measured, protection, host.instance_id.is_some());
    let c = properties.capabilities;
    println!(
        "[pvmfw] payload: name {:?}, rollback index {}, capabilities remote_attest={} secretkeeper_protection={} \
         trusty_security_vm={}",
        properties.name.unwrap_or("(none)"),
        verified.rollback_index,
        c.remote_attest,
        c.secretkeeper_protection,
        c.trusty_security_vm
    );
    match verified.initrd {
        Some(Initrd::Normal) => println!("[pvmfw] ramdisk verified: initrd_normal"),
        Some(Initrd::Debug) => println!("[pvmfw] ramdisk verified: initrd_debug: the payload is debuggable"),
        None => {}
    }
    // What verification cost (`pvmkit bench` reads it: counter ticks, and under QEMU's
    // -icount instructions).
    println!(
        "[pvmfw] verification cost: {} bytes hashed in {} ticks, vbmeta signature {} ticks, counter {} Hz",
        cost.hashed_bytes,
        cost.hashing,
        cost.signature,
        counter_frequency()
    );
    println!(
        "[pvmfw] payload verified ({} bytes, arm64 Image at {:#x}, footprint {:#x} bytes), handing over",
        verified.image.len(),
        footprint.start,
        footprint.size()
    );
    // The payload registers the console itself; pvmfw's registration goes.
    let _ = mmio_guard().unmap(Ipa(PLATFORM_CONSOLE), 0x1000);
    Ok(Handover { entry: host.payload.start, dt: new_region.start })
}

/// The virtual counter, read in order with what comes before it.
fn counter() -> u64 {
    use aarch64_cpu::registers::{Readable, CNTVCT_EL0};
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTVCT_EL0.get()
}

/// The counter's frequency.
fn counter_frequency() -> u64 {
    use aarch64_cpu::registers::{Readable, CNTFRQ_EL0};
    CNTFRQ_EL0.get()
}

/// Cleans a range to the point of coherency (the payload starts with its caches off).
fn clean_to_poc(range: Region) {
    let mut line = range.start & !63;
    while line < range.end {
        // SAFETY: cache maintenance by VA on guest RAM has no memory-safety effect.
        unsafe { asm!("dc cvac, {}", in(reg) line, options(nostack)) };
        line += 64;
    }
    // SAFETY: barriers only.
    unsafe { asm!("dsb sy", "isb", options(nostack)) };
}

unsafe extern "C" {
    static __pvmfw_erase_start: u8;
    static __pvmfw_erase_end: u8;
    fn pvmfw_handover(entry: u64, dt: u64, erase_start: u64, erase_end: u64) -> !;
}

impl Handover {
    /// Turns the MMU off, erases pvmfw's data, stack, heap and page table, clears every
    /// register and jumps.
    fn go(self) -> ! {
        let (start, end) = (&raw const __pvmfw_erase_start as u64, &raw const __pvmfw_erase_end as u64);
        // SAFETY: the assembly below runs from .text (not erased) and never returns.
        unsafe { pvmfw_handover(self.entry, self.dt, start, end) }
    }
}

/// SCTLR_EL1's MMU and cache enables, cleared at handover (aarch64-cpu's fields).
const SCTLR_MMU_AND_CACHES: u64 = {
    use aarch64_cpu::registers::SCTLR_EL1;
    (SCTLR_EL1::M.mask << SCTLR_EL1::M.shift)
        | (SCTLR_EL1::C.mask << SCTLR_EL1::C.shift)
        | (SCTLR_EL1::I.mask << SCTLR_EL1::I.shift)
};

global_asm!(
    ".section .text",
    ".global pvmfw_handover",
    "pvmfw_handover:",
    // x0 = entry, x1 = DT, [x2, x3) = everything pvmfw wrote, its stack included.
    "   mov x16, x0",
    "   mov x17, x1",
    // Clean and invalidate pvmfw's memory to the point of coherency while the caches
    // are on, so no dirty line can later write a secret back over the zeroes.
    "   mov x4, x2",
    "3: cmp x4, x3",
    "   b.hs 4f",
    "   dc civac, x4",
    "   add x4, x4, #64",
    "   b 3b",
    "4: dsb sy",
    // MMU and caches off: the payload starts as pvmfw did.
    "   mrs x4, sctlr_el1",
    "   mov x5, #{sctlr_off}",
    "   bic x4, x4, x5",
    "   msr sctlr_el1, x4",
    "   isb",
    "   ic iallu",
    "   dsb sy",
    "   isb",
    "1: cmp x2, x3",
    "   b.hs 2f",
    "   stp xzr, xzr, [x2], #16",
    "   b 1b",
    "2: dsb sy",
    "   msr vbar_el1, xzr",
    "   isb",
    "   mov x0, x17",
    "   mov x1, xzr",
    "mov x2, xzr",
    "mov x3, xzr",
    "mov x4, xzr",
    "mov x5, xzr",
    "   mov x6, xzr",
    "mov x7, xzr",
    "mov x8, xzr",
    "mov x9, xzr",
    "mov x10, xzr",
    "   mov x11, xzr",
    "mov x12, xzr",
    "mov x13, xzr",
    "mov x14, xzr",
    "mov x15, xzr",
    "   mov x17, xzr",
    "mov x18, xzr",
    "mov x19, xzr",
    "mov x20, xzr",
    "mov x21, xzr",
    "   mov x22, xzr",
    "mov x23, xzr",
    "mov x24, xzr",
    "mov x25, xzr",
    "mov x26, xzr",
    "   mov x27, xzr",
    "mov x28, xzr",
    "mov x29, xzr",
    "mov x30, xzr",
    "   movi v0.2d, #0",
    "movi v1.2d, #0",
    "movi v2.2d, #0",
    "movi v3.2d, #0",
    "   movi v4.2d, #0",
    "movi v5.2d, #0",
    "movi v6.2d, #0",
    "movi v7.2d, #0",
    "   movi v8.2d, #0",
    "movi v9.2d, #0",
    "movi v10.2d, #0",
    "movi v11.2d, #0",
    "   movi v12.2d, #0",
    "movi v13.2d, #0",
    "movi v14.2d, #0",
    "movi v15.2d, #0",
    "   movi v16.2d, #0",
    "movi v17.2d, #0",
    "movi v18.2d, #0",
    "movi v19.2d, #0",
    "   movi v20.2d, #0",
    "movi v21.2d, #0",
    "movi v22.2d, #0",
    "movi v23.2d, #0",
    "   movi v24.2d, #0",
    "movi v25.2d, #0",
    "movi v26.2d, #0",
    "movi v27.2d, #0",
    "   movi v28.2d, #0",
    "movi v29.2d, #0",
    "movi v30.2d, #0",
    "movi v31.2d, #0",
    "   mov sp, x30",
    "   br x16",
    sctlr_off = const SCTLR_MMU_AND_CACHES,
);
