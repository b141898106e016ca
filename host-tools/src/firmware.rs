//! Building the firmware crates for their targets, and turning ELF files into the flat
//! images QEMU and hyp load.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SectionFlags};

use crate::toolchain::Toolchain;
use crate::Workspace;

/// The hypervisor's target: no FP/SIMD, so hyp never has guest FP state to save.
pub const HYP_TARGET: &str = "aarch64-unknown-none-softfloat";
/// The guests' target.
pub const GUEST_TARGET: &str = "aarch64-unknown-none";
/// The VMM's target: a static Linux binary for the pKVM host (rust-lld, self-contained).
pub const VMM_TARGET: &str = "aarch64-unknown-linux-musl";

/// What `build_all` produced.
#[derive(Clone, Debug)]
pub struct Firmware {
    /// hyp as a flat arm64 Image.
    pub hyp_image: PathBuf,
    /// test-guest's ELF.
    pub test_guest_elf: PathBuf,
    /// test-guest as a position-independent arm64 `Image` (the same suite, linked at 0
    /// with guest-lib's `guest-image.ld`, relocating itself wherever it is placed).
    pub test_guest_image: PathBuf,
    /// pvmfw's ELF (its flat image is made per run, with the trusted key written in).
    pub pvmfw_elf: PathBuf,
}

/// Guests are compiled position-independent, so that one build can be linked both
/// where pvmkit loads an ELF and, with `-pie`, as an Image that runs anywhere (linking
/// position-independent code at a fixed address costs nothing). They may use the ARMv8
/// SHA-2 instructions (every CPU pvmkit's QEMU runs has them): pvmfw hashes a kernel
/// with them. One setting for every guest build, so they share their dependencies'
/// builds. (`CARGO_ENCODED_RUSTFLAGS` separates flags with 0x1f.)
const GUEST_RUSTFLAGS: &str = "-Crelocation-model=pie\x1f-Ctarget-feature=+sha2";

fn cargo_build(ws: &Workspace, package: &str, target: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = ws.firmware_target_dir();
    let rustflags = if target == GUEST_TARGET { GUEST_RUSTFLAGS } else { "" };
    let mut child = Command::new(&cargo)
        .current_dir(&ws.root)
        .args(["build", "--release", "-p", package, "--target", target, "--target-dir"])
        .arg(&target_dir)
        // Settings of an outer cargo (e.g. `cargo test`) must not leak into firmware.
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("CARGO_BUILD_TARGET")
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {cargo}: {e}"))?;
    // cargo's progress, condensed: one line when there is something to build (a first
    // build takes minutes, and is silent otherwise), and every warning or error.
    let mut announced = false;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            match build_line(&line) {
                BuildLine::Progress if !announced => {
                    announced = true;
                    eprintln!("pvmkit: building {package} for {target} (release; a first build takes a few minutes)");
                }
                BuildLine::Progress | BuildLine::Quiet => {}
                BuildLine::Message => eprintln!("{line}"),
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("building {package} for {target} failed ({status})"));
    }
    Ok(target_dir.join(target).join("release").join(package))
}

/// What a line cargo prints while building means to `pvmkit`'s user.
#[derive(Debug, PartialEq, Eq)]
enum BuildLine {
    /// Work is being done (a crate compiled or fetched).
    Progress,
    /// Nothing to say (the build finished, or waits for a lock).
    Quiet,
    /// A warning, an error, or anything else: shown as it is.
    Message,
}

fn build_line(line: &str) -> BuildLine {
    match line.split_whitespace().next() {
        Some("Compiling" | "Downloading" | "Downloaded" | "Updating" | "Locking" | "Adding") => BuildLine::Progress,
        Some("Finished" | "Blocking" | "Fresh") => BuildLine::Quiet,
        _ => BuildLine::Message,
    }
}

/// Builds hyp, pvmfw and test-guest (release) and writes hyp's flat image and
/// test-guest's Image.
pub fn build_all(ws: &Workspace) -> Result<Firmware, String> {
    build(ws, true)
}

/// Builds hyp and pvmfw, and test-guest when `test_guest` (a run of one's own payload
/// does not need it: its paths are then where it would be).
pub fn build(ws: &Workspace, test_guest: bool) -> Result<Firmware, String> {
    Toolchain::current().ensure_targets(&ws.root, &[HYP_TARGET, GUEST_TARGET])?;
    let hyp_elf = cargo_build(ws, "hyp", HYP_TARGET)?;
    let pvmfw_elf = cargo_build(ws, "pvmfw", GUEST_TARGET)?;
    let test_guest_elf = if test_guest {
        cargo_build(ws, "test-guest", GUEST_TARGET)?
    } else {
        ws.firmware_target_dir().join(GUEST_TARGET).join("release").join("test-guest")
    };
    let out = ws.out_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let hyp_image = out.join("hyp.bin");
    write_flat(&hyp_elf, &hyp_image)?;
    let test_guest_image = out.join("test-guest.img");
    if test_guest {
        write_image(&test_guest_elf.with_file_name("test-guest-image"), &test_guest_image)?;
    }
    Ok(Firmware { hyp_image, test_guest_elf, test_guest_image, pvmfw_elf })
}

fn write_flat(elf: &Path, to: &Path) -> Result<FlatImage, String> {
    let image = FlatImage::from_elf(&crate::files::read(elf)?).map_err(|e| format!("{}: {e}", elf.display()))?;
    std::fs::write(to, &image.bytes).map_err(|e| format!("writing {}: {e}", to.display()))?;
    Ok(image)
}

/// Writes the arm64 `Image` file of a position-independent ELF linked at 0 (its loadable
/// bytes, header first), checking that the result reads as an Image.
pub fn write_image(elf: &Path, to: &Path) -> Result<(), String> {
    let image = write_flat(elf, to)?;
    if image.load_address != 0 {
        return Err(format!("{} is linked at {:#x}, not 0: not an Image", elf.display(), image.load_address));
    }
    pvmkit_abi::arm64_image::parse(&image.bytes).map(|_| ()).map_err(|e| format!("{}: {e}", to.display()))
}

/// Builds the VMM (release, static) for the pKVM host's initramfs.
pub fn build_vmm(ws: &Workspace) -> Result<PathBuf, String> {
    Toolchain::current().ensure_targets(&ws.root, &[VMM_TARGET])?;
    cargo_build(ws, "vmm", VMM_TARGET)
}

/// Builds the Linux guest's `/init` (release, static).
pub fn build_linux_init(ws: &Workspace) -> Result<PathBuf, String> {
    Toolchain::current().ensure_targets(&ws.root, &[VMM_TARGET])?;
    cargo_build(ws, "linux-guest-init", VMM_TARGET)
}

/// An ELF executable laid out as the bytes to load at one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatImage {
    /// Address of the first byte.
    pub load_address: u64,
    /// Bytes from the file (gaps between segments zero-filled).
    pub bytes: Vec<u8>,
    /// Bytes of memory the image occupies, `.bss`, stack and heap included.
    pub mem_size: u64,
    /// The entry point.
    pub entry: u64,
}

/// The largest image `pvmkit` will flatten.
const MAX_IMAGE: u64 = 256 << 20;

impl FlatImage {
    /// Lays out an AArch64 ELF executable: its loadable segments' file bytes from the
    /// lowest address to the highest, and its footprint from every allocated section.
    pub fn from_elf(data: &[u8]) -> Result<Self, String> {
        let file = object::File::parse(data).map_err(|e| format!("not an ELF file: {e}"))?;
        if file.architecture() != object::Architecture::Aarch64 {
            return Err(format!("not an AArch64 ELF ({:?})", file.architecture()));
        }
        let segments: Vec<_> = file.segments().filter(|s| s.size() > 0).collect();
        let start = segments.iter().map(|s| s.address()).min().ok_or("no loadable segments")?;
        let mut end_file = start;
        let mut end_mem = start;
        for s in &segments {
            let (file_off, file_size) = s.file_range();
            let _ = file_off;
            end_file = end_file.max(s.address().checked_add(file_size).ok_or("segment wraps")?);
            end_mem = end_mem.max(s.address().checked_add(s.size()).ok_or("segment wraps")?);
        }
        for section in file.sections() {
            let allocated = matches!(section.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0);
            if allocated && section.size() > 0 {
                end_mem = end_mem.max(section.address().checked_add(section.size()).ok_or("section wraps")?);
            }
        }
        if end_mem - start > MAX_IMAGE {
            return Err(format!("image spans {:#x} bytes, more than {MAX_IMAGE:#x}", end_mem - start));
        }
        let mut bytes = vec![0u8; (end_file - start) as usize];
        for s in &segments {
            let data = s.data().map_err(|e| format!("segment data: {e}"))?;
            let at = (s.address() - start) as usize;
            bytes[at..at + data.len()].copy_from_slice(data);
        }
        let entry = file.entry();
        if entry < start || entry >= end_file {
            return Err(format!("entry point {entry:#x} is outside the image {start:#x}..{end_file:#x}"));
        }
        Ok(Self { load_address: start, bytes, mem_size: end_mem - start, entry })
    }
}

/// The address of `name` in an ELF.
fn symbol(elf: &[u8], name: &str) -> Result<u64, String> {
    let file = object::File::parse(elf).map_err(|e| format!("pvmfw: {e}"))?;
    file.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address()).ok_or(format!("pvmfw has no {name} symbol"))
}

/// pvmfw's image as a bootloader loads it: its flat image with `trusted_key` (AVB's
/// public-key format) written into its embedded-key slot, and the configuration data
/// `config` appended at the next 4 KiB boundary, where pvmfw reads it
/// (`__pvmfw_image_end`). Loaded at [`pvmkit_abi::pvmfw::PVMFW_BASE`].
pub fn pvmfw_image(elf: &[u8], trusted_key: &[u8], config: &[u8]) -> Result<Vec<u8>, String> {
    use pvmkit_abi::pvmfw::{trusted_key_slot, PVMFW_BASE, PVMFW_IMAGE_MAX, TRUSTED_KEY_MAX};
    let mut image = FlatImage::from_elf(elf)?;
    if image.load_address != PVMFW_BASE {
        return Err(format!("pvmfw is linked at {:#x}, not {PVMFW_BASE:#x}", image.load_address));
    }
    let slot = trusted_key_slot(trusted_key)
        .ok_or(format!("a trusted key of {} bytes (at most {TRUSTED_KEY_MAX})", trusted_key.len()))?;
    let at = symbol(elf, "__pvmfw_trusted_key")?.checked_sub(image.load_address).ok_or("key slot before the image")?;
    let place = image.bytes.get_mut(at as usize..at as usize + slot.len()).ok_or("key slot outside the image")?;
    place.copy_from_slice(&slot);
    let end = symbol(elf, "__pvmfw_image_end")? - image.load_address;
    if (image.bytes.len() as u64).next_multiple_of(pvmkit_abi::avf_config::ALIGN as u64) != end {
        return Err(format!(
            "pvmfw's image is {} bytes, but it reads its configuration at {end:#x}",
            image.bytes.len()
        ));
    }
    let loaded = crate::avf_config::append(&image.bytes, config);
    if loaded.len() as u64 > PVMFW_IMAGE_MAX {
        return Err(format!(
            "pvmfw and its configuration data are {} bytes, more than {PVMFW_IMAGE_MAX}",
            loaded.len()
        ));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cargo's lines, as a build shows them: progress once, messages always.
    #[test]
    fn a_builds_lines_are_progress_quiet_or_messages() {
        assert_eq!(build_line("   Compiling hyp v0.1.0 (/w/hyp)"), BuildLine::Progress);
        assert_eq!(build_line("  Downloaded zerocopy v0.8.27"), BuildLine::Progress);
        assert_eq!(build_line("    Finished `release` profile [optimized] target(s) in 0.10s"), BuildLine::Quiet);
        assert_eq!(build_line("    Blocking waiting for file lock on build directory"), BuildLine::Quiet);
        assert_eq!(build_line("warning: unused import: `x`"), BuildLine::Message);
        assert_eq!(build_line("error[E0425]: cannot find value `y` in this scope"), BuildLine::Message);
        assert_eq!(build_line("  --> hyp/src/lib.rs:1:1"), BuildLine::Message);
    }

    /// A minimal AArch64 ELF executable: two PT_LOAD segments (code, then data with
    /// .bss beyond the file bytes) and a NOBITS section that extends the footprint.
    fn elf(entry: u64, machine: u16) -> Vec<u8> {
        let mut f = vec![0u8; 0x200];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little endian
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[40..48].copy_from_slice(&0x100u64.to_le_bytes()); // shoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes()); // phnum
        f[58..60].copy_from_slice(&64u16.to_le_bytes());
        f[60..62].copy_from_slice(&3u16.to_le_bytes()); // shnum
        f[62..64].copy_from_slice(&2u16.to_le_bytes()); // shstrndx
        let phdr = |f: &mut Vec<u8>, at: usize, off: u64, vaddr: u64, filesz: u64, memsz: u64| {
            f[at..at + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            f[at + 24..at + 32].copy_from_slice(&vaddr.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
        };
        phdr(&mut f, 64, 0x1c0, 0x8020_0000, 8, 8);
        phdr(&mut f, 120, 0x1c8, 0x8020_1000, 4, 0x100);
        f[0x1c0..0x1c8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        f[0x1c8..0x1cc].copy_from_slice(&[9, 9, 9, 9]);
        // Section 1: NOBITS, allocated, at 0x8020_2000 size 0x3000 (a stack/heap).
        let sh = 0x100 + 64;
        f[sh..sh + 4].copy_from_slice(&1u32.to_le_bytes()); // name offset
        f[sh + 4..sh + 8].copy_from_slice(&8u32.to_le_bytes()); // SHT_NOBITS
        f[sh + 8..sh + 16].copy_from_slice(&2u64.to_le_bytes()); // SHF_ALLOC
        f[sh + 16..sh + 24].copy_from_slice(&0x8020_2000u64.to_le_bytes());
        f[sh + 32..sh + 40].copy_from_slice(&0x3000u64.to_le_bytes());
        // Section 2: the string table.
        let st = 0x100 + 128;
        f[st + 4..st + 8].copy_from_slice(&3u32.to_le_bytes()); // SHT_STRTAB
        f[st + 24..st + 32].copy_from_slice(&0x1e0u64.to_le_bytes());
        f[st + 32..st + 40].copy_from_slice(&16u64.to_le_bytes());
        f[0x1e0..0x1e6].copy_from_slice(b"\0.bss\0");
        f
    }

    #[test]
    fn flattens_segments_and_counts_the_footprint() {
        let image = FlatImage::from_elf(&elf(0x8020_0004, 183)).unwrap();
        assert_eq!(image.load_address, 0x8020_0000);
        assert_eq!(image.entry, 0x8020_0004);
        assert_eq!(image.bytes.len(), 0x1004);
        assert_eq!(&image.bytes[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(image.bytes[8..0x1000].iter().all(|&b| b == 0));
        assert_eq!(&image.bytes[0x1000..], &[9, 9, 9, 9]);
        assert_eq!(image.mem_size, 0x5000, "the NOBITS section ends the footprint");
    }

    #[test]
    fn refuses_what_it_cannot_load() {
        assert!(FlatImage::from_elf(b"not an elf").unwrap_err().contains("not an ELF"));
        assert!(FlatImage::from_elf(&elf(0x8020_0004, 62)).unwrap_err().contains("not an AArch64"));
        assert!(FlatImage::from_elf(&elf(0x9000_0000, 183)).unwrap_err().contains("entry point"));
    }
}
