//! The run: read the VM secret and the trusted key, check the host's DT, place and
//! verify the payload, derive its secret, write the new DT, hand over.

extern crate alloc;

use core::arch::{asm, global_asm};

use abi::memory_map::Region;
use alloc::vec::Vec;

use abi::arm64_image::{self, ImageHeader};
use abi::pvmfw::{
    config_key, Refusal, CONFIG_SIZE, PAYLOAD_SECRET_IPA, PLATFORM_CONDUIT, PLATFORM_CONSOLE, SECRET_SIZE,
    VM_SECRET_IPA,
};
use abi::signed_payload::{self, Header, PayloadFormat, HEADER_SIZE};
use guest_lib::conduit::SystemConduit;
use guest_lib::{mmio_guard, println, psci, BootInfo, Platform};

/// What a virtio-mmio transport's MagicValue register reads: "virt".
const VIRTIO_MMIO_MAGIC: u32 = 0x7472_6976;
use pvmfw::host_dt::{self, Limits};
use pvmfw::layout::{self, SECRET_PAGE};
use pvmfw::refusal::Refused;
use pvmfw::{bootargs, handover_dt, placement, secret, verify};
use sha2::{Digest, Sha256};

/// The trusted key, written into the image by `pvmkit` (zero until then).
#[unsafe(link_section = ".pvmfw_config")]
#[used]
#[unsafe(no_mangle)]
static __pvmfw_config: [u8; CONFIG_SIZE] = [0; CONFIG_SIZE];

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
    erase(VM_SECRET_IPA, SECRET_SIZE as u64);
    let _ = psci::system_reset(&guest_lib::conduit::SystemConduit::Hvc);
    loop {
        core::hint::spin_loop();
    }
}

/// Overwrites guest memory with zeroes.
fn erase(ipa: u64, len: u64) {
    // SAFETY: callers pass ranges of the VM's own memory that nothing else uses.
    unsafe { core::ptr::write_bytes(ipa as *mut u8, 0, len as usize) };
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

fn run(boot: &BootInfo) -> Result<Handover, Refused> {
    // The per-VM secret: read once, erased at once.
    let mut vm_secret = [0u8; SECRET_SIZE];
    // SAFETY: the last page of pvmfw's own region, written by hyp.
    vm_secret.copy_from_slice(unsafe { memory(VM_SECRET_IPA, SECRET_SIZE as u64) });
    erase(VM_SECRET_IPA, 4096);

    // SAFETY: a static of the image; volatile so the build-time zeroes are not assumed.
    let config = unsafe { core::ptr::read_volatile(&raw const __pvmfw_config) };
    let key = config_key(&config)
        .ok_or_else(|| Refused::new(Refusal::NoTrustedKey, "pvmfw's config block holds no trusted key"))?;

    // The host's DT: it must lie in the DT slot (so nothing of it can reach the secret
    // page), and pvmfw copies it into its own memory before reading a byte of it, so
    // that what it checks is what it uses, whatever pvmfw later writes to guest memory.
    // SAFETY: x0 pointed at the host's DT in guest RAM; its header is read first.
    let header: [u8; 8] = unsafe { memory(boot.dt_ipa, 8) }.try_into().unwrap_or([0; 8]);
    let dt_len = host_dt::dt_size(header)?;
    let host_region = layout::host_dt(boot.dt_ipa, dt_len as u64)?;
    // SAFETY: inside the DT slot, guest RAM.
    let host_blob: Vec<u8> = unsafe { memory(host_region.start, host_region.size()) }.to_vec();
    erase(host_region.start, host_region.size());
    let limits = Limits::qemu_virt();
    let host = host_dt::check(&host_blob, &limits)?;
    let bootargs = bootargs::filter(host.bootargs);
    for word in &bootargs.dropped {
        println!("[pvmfw] dropped host bootarg '{word}': reserved for the guest's own build");
    }
    // The platform has the device, but does the host give it to this VM? Ask the
    // device: a virtio-mmio transport the VMM emulates answers its magic value; an
    // address the host gives nothing at aborts. Under Android's guard the granule must
    // be registered first (6.12's unmap is a no-op: the registration stays).
    for device in &host.virtio {
        let guarded = mmio_guard().form().is_none() || mmio_guard().map(device.start, device.size()).is_ok();
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
        let _ = mmio_guard().unmap(device.start, device.size());
    }

    // The signed payload where the host put it; its header copied into pvmfw's memory
    // first and parsed from the copy.
    // SAFETY: checked to lie inside guest RAM, clear of the DT area.
    let signed = unsafe { memory(host.payload.start, host.payload.size()) };
    let header_bytes: [u8; HEADER_SIZE] = signed
        .get(..HEADER_SIZE)
        .and_then(|h| h.try_into().ok())
        .ok_or(signed_payload::HeaderError::TooShort(signed.len()))?;
    let header = signed_payload::parse_header(&header_bytes, signed.len() - HEADER_SIZE)?;
    let staged_image = &signed[HEADER_SIZE..HEADER_SIZE + header.image_size as usize];
    let secret_page = SECRET_PAGE;
    let keep_clear = [
        ("pvmfw", limits.pvmfw),
        ("the DT area", limits.dt_area),
        ("the staged payload", host.payload),
        ("the secret", secret_page),
        ("the bounce pool", host.bounce_pool.unwrap_or(Region { start: 0, end: 0 })),
    ];
    let (target, entry) = place(&header, host.memory, &keep_clear)?;

    // Copy, then verify exactly the bytes that will run.
    // SAFETY: `target` is guest RAM, clear of everything pvmfw still reads.
    unsafe {
        core::ptr::copy_nonoverlapping(staged_image.as_ptr(), target.start as *mut u8, staged_image.len());
        core::ptr::write_bytes(
            (target.start + header.image_size) as *mut u8,
            0,
            (header.mem_size - header.image_size) as usize,
        );
    }
    // SAFETY: just written.
    let image = unsafe { memory(target.start, header.image_size) };
    verify::check(&header_bytes, &header, image, &key)?;
    if header.format == PayloadFormat::Arm64Image {
        verify::check_image_header(&header, image)?;
    }

    // The payload's secret, bound to exactly this image and header.
    let header_hash: [u8; 32] = Sha256::digest(header_bytes).into();
    let payload_secret = secret::derive(&vm_secret, &header.image_sha256, &header_hash);
    vm_secret.fill(0);
    erase(secret_page.start, 4096);
    // SAFETY: the secret page, clear of the payload (checked) and of the new DT (below).
    unsafe { core::ptr::copy_nonoverlapping(payload_secret.as_ptr(), PAYLOAD_SECRET_IPA as *mut u8, SECRET_SIZE) };

    // The new DT, in the DT slot (the host's blob there was erased above).
    let new_dt = handover_dt::build(&host, &bootargs.kept, PAYLOAD_SECRET_IPA)
        .map_err(|e| Refused::new(Refusal::NewDt, format_args!("building the payload's DT: {e}")))?;
    let new_region = layout::new_dt(new_dt.len() as u64)?;
    drop(host);
    // SAFETY: the DT slot, clear of the secret page and the payload (layout, placement).
    unsafe { core::ptr::copy_nonoverlapping(new_dt.as_ptr(), new_region.start as *mut u8, new_dt.len()) };
    clean_to_poc(target);
    clean_to_poc(limits.dt_area);

    let format = match header.format {
        PayloadFormat::Flat => "flat image",
        PayloadFormat::Arm64Image => "arm64 Image",
    };
    println!("[pvmfw] payload verified ({} bytes, {format} at {entry:#x}), handing over", header.image_size);
    // The payload registers the console itself; pvmfw's registration goes.
    let _ = mmio_guard().unmap(PLATFORM_CONSOLE, 0x1000);
    Ok(Handover { entry, dt: new_region.start })
}

/// Where the payload goes and where it is entered: a flat image where its signed header
/// says; an arm64 Image at the lowest 2 MiB-aligned base (plus its text_offset) where
/// its signed footprint is clear of everything pvmfw keeps, entered at its first byte.
fn place(header: &Header, ram: Region, keep_clear: &[(&'static str, Region)]) -> Result<(Region, u64), Refused> {
    match header.format {
        PayloadFormat::Flat => {
            let target = placement::payload_region(header.load_ipa, header.mem_size, ram, keep_clear)?;
            Ok((target, header.entry_ipa))
        }
        PayloadFormat::Arm64Image => {
            let image = ImageHeader { text_offset: header.text_offset, image_size: header.mem_size, flags: 0 };
            let clear: Vec<Region> = keep_clear.iter().map(|&(_, r)| r).collect();
            let target = arm64_image::place(&image, ram, &clear)?;
            Ok((target, target.start))
        }
    }
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
