//! `pvmkit linux-guest`: a small arm64 Linux guest Image, built from Debian's
//! `linux-source-7.3` with the repository's config fragment (`linux-guest/pvm.config`:
//! the pKVM guest driver, restricted DMA pools, virtio-mmio block, console and entropy,
//! the PL011), and its ramdisk: an initramfs whose `/init` is `linux-guest/init` (checks
//! of the VM's devices, `N passed, M failed`, power-off). As AVF boots Microdroid, the
//! ramdisk is the kernel's own, signed with it (`initrd_normal`) and verified by pvmfw
//! where the host loaded it; nothing of it is built into the kernel.
//!
//! Everything lives in pvmkit's cache, outside the work tree: the unpacked source (by
//! package version) and each Image under a key hashed from everything that goes into
//! it (the source's version, the fragment, the cross compiler's version). A warm run
//! builds nothing; the ramdisk is written afresh each time (it is a few hundred KiB). The host tools it needs (the arm64 cross
//! compiler, flex, bison, bc, make) are installed the way QEMU is, with
//! `--no-install-recommends`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::firmware;
use crate::kernel::{self, cache_dir};
use crate::Workspace;

/// The kernel source package.
pub const SOURCE_PACKAGE: &str = "linux-source-7.3";
/// The cross compiler prefix.
const CROSS_COMPILE: &str = "aarch64-linux-gnu-";
/// Programs the build needs, and the Debian package of each.
const HOST_TOOLS: [(&str, &str); 5] = [
    ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("make", "make"),
];

/// A built guest.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// The arm64 Image.
    pub image: PathBuf,
    /// Its ramdisk (an uncompressed "newc" cpio archive with `/init`).
    pub ramdisk: PathBuf,
    /// Whether this call built it (else it came from the cache).
    pub built: bool,
}

/// The cache's directory for Linux guests.
pub fn dir() -> PathBuf {
    cache_dir().join("linux-guest")
}

/// The key of an Image: everything that goes into it.
pub fn key(source_version: &str, fragment: &[u8], compiler: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [source_version.as_bytes(), fragment, compiler] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Builds the guest, or finds it in the cache.
pub fn build(ws: &Workspace) -> Result<LinuxGuest, String> {
    ensure_host_tools()?;
    let init = firmware::build_linux_init(ws)?;
    let ramdisk = ws.out_dir().join("linux-guest-initramfs.cpio");
    let archive = crate::initramfs::for_linux_guest(&crate::files::read(&init)?);
    std::fs::create_dir_all(ws.out_dir()).map_err(|e| format!("creating {}: {e}", ws.out_dir().display()))?;
    std::fs::write(&ramdisk, archive).map_err(|e| format!("writing {}: {e}", ramdisk.display()))?;
    let repository_fragment = std::fs::read_to_string(ws.root.join("linux-guest/pvm.config"))
        .map_err(|e| format!("reading linux-guest/pvm.config: {e}"))?;
    let compiler = kernel::run(Command::new(format!("{CROSS_COMPILE}gcc")).arg("--version"), "the cross compiler")?;
    let (source, version) = source()?;
    let key = key(&version, repository_fragment.as_bytes(), &compiler);
    let out = dir().join(&key);
    let image = out.join("Image");
    if image.is_file() {
        return Ok(LinuxGuest { image, ramdisk, built: false });
    }
    let build = dir().join("build");
    std::fs::create_dir_all(&build).map_err(|e| format!("creating {}: {e}", build.display()))?;
    let inputs = dir().join("inputs");
    std::fs::create_dir_all(&inputs).map_err(|e| format!("creating {}: {e}", inputs.display()))?;
    let frag = inputs.join("pvm.config");
    std::fs::write(&frag, &repository_fragment).map_err(|e| format!("writing {}: {e}", frag.display()))?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    eprintln!("pvmkit: building the Linux guest ({version}, {jobs} jobs) in {}", build.display());
    let make = |args: &[String]| -> Result<(), String> {
        let status = Command::new("make")
            .current_dir(&source)
            .args(["-s", "ARCH=arm64", &format!("CROSS_COMPILE={CROSS_COMPILE}")])
            .arg(format!("O={}", build.display()))
            .args(args)
            .status()
            .map_err(|e| format!("running make: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("make {} failed ({status}) in {}", args.join(" "), build.display()))
        }
    };
    make(&[format!("KCONFIG_ALLCONFIG={}", frag.display()), "allnoconfig".into()])?;
    check_config(&build.join(".config"), &repository_fragment)?;
    make(&[format!("-j{jobs}"), "Image".into()])?;
    let built = build.join("arch/arm64/boot/Image");
    kernel::check_image(&crate::files::read(&built)?)?;
    let staged = dir().join(format!(".{key}-{}", std::process::id()));
    std::fs::create_dir_all(&staged).map_err(|e| e.to_string())?;
    std::fs::copy(&built, staged.join("Image")).map_err(|e| format!("copying the Image: {e}"))?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&staged, &out).map_err(|e| format!("caching the Image: {e}"))?;
    Ok(LinuxGuest { image, ramdisk, built: true })
}

/// Every option the fragment sets must have survived `allnoconfig` (an option whose
/// dependencies are missing is dropped silently).
fn check_config(config: &Path, fragment: &str) -> Result<(), String> {
    let config = std::fs::read_to_string(config).map_err(|e| format!("reading {}: {e}", config.display()))?;
    let missing = missing_options(&config, fragment);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("linux-guest/pvm.config: not in the resulting .config: {}", missing.join(", ")))
    }
}

/// The fragment's `CONFIG_…=…` lines that `config` does not contain.
pub fn missing_options(config: &str, fragment: &str) -> Vec<String> {
    fragment
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
        .filter(|l| !config.lines().any(|c| c.trim() == *l))
        .map(String::from)
        .collect()
}

/// The unpacked source tree and its package version, fetched once per version.
fn source() -> Result<(PathBuf, String), String> {
    let sources = dir().join("source");
    if let Some(found) = cached_source(&sources) {
        return Ok(found);
    }
    std::fs::create_dir_all(&sources).map_err(|e| format!("creating {}: {e}", sources.display()))?;
    let root = kernel::apt_root(&format!("Debian's {SOURCE_PACKAGE} into {}", sources.display()))?;
    kernel::in_scratch(&sources, |scratch| {
        let unpacked = kernel::download(&root, SOURCE_PACKAGE, scratch)?;
        let deb = std::fs::read_dir(scratch)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".deb"))
            .ok_or("no .deb")?;
        let version = deb.trim_end_matches(".deb").to_string();
        let tarball = unpacked.join(format!("usr/src/{SOURCE_PACKAGE}.tar.xz"));
        let tree = scratch.join("tree");
        std::fs::create_dir_all(&tree).map_err(|e| e.to_string())?;
        eprintln!("pvmkit: unpacking {}", tarball.display());
        kernel::run(Command::new("tar").arg("-xf").arg(&tarball).arg("-C").arg(&tree), "tar -xf")?;
        let target = sources.join(&version);
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(tree.join(SOURCE_PACKAGE), &target).map_err(|e| e.to_string())?;
        std::fs::write(sources.join("current"), &version).map_err(|e| e.to_string())?;
        Ok((target, version))
    })
}

fn cached_source(sources: &Path) -> Option<(PathBuf, String)> {
    let version = std::fs::read_to_string(sources.join("current")).ok()?.trim().to_string();
    let tree = sources.join(&version);
    tree.join("Makefile").is_file().then_some((tree, version))
}

/// Installs what the build needs that is missing (as root, with apt-get), or says what.
fn ensure_host_tools() -> Result<(), String> {
    let missing: Vec<&str> =
        HOST_TOOLS.iter().filter(|(program, _)| !on_path(program)).map(|&(_, package)| package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let line = format!("apt-get install --no-install-recommends {}", missing.join(" "));
    if !(Path::new("/usr/bin/apt-get").exists() && crate::qemu::is_root()) {
        return Err(format!("the Linux guest's build needs: {line}"));
    }
    eprintln!("pvmkit: installing {}", missing.join(" "));
    crate::host_packages::Apt::default()
        .install(&missing)
        .map_err(|e| format!("installing the Linux guest's build tools: {e}"))?;
    if HOST_TOOLS.iter().all(|(program, _)| on_path(program)) {
        Ok(())
    } else {
        Err(format!("the Linux guest's build tools are still missing after {line}"))
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_every_input() {
        let base = key("v1", b"CONFIG_A=y", b"gcc 12");
        assert_eq!(base, key("v1", b"CONFIG_A=y", b"gcc 12"), "stable");
        assert_eq!(base.len(), 24);
        for other in [
            key("v2", b"CONFIG_A=y", b"gcc 12"),
            key("v1", b"CONFIG_A=n", b"gcc 12"),
            key("v1", b"CONFIG_A=y", b"gcc 13"),
            // Parts are length-prefixed: moving a byte across a boundary changes it.
            key("v1", b"CONFIG_A=yg", b"cc 12"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn a_dropped_option_is_named() {
        let fragment = "# comment\nCONFIG_A=y\nCONFIG_B=y\n";
        assert!(missing_options("CONFIG_A=y\nCONFIG_B=y\n", fragment).is_empty());
        assert_eq!(missing_options("CONFIG_A=y\n# CONFIG_B is not set\n", fragment), ["CONFIG_B=y"]);
    }
}
