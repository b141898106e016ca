//! The pKVM host's kernel: Debian's stock arm64 Linux (7.3 or later), which runs pKVM
//! when booted with `kvm-arm.mode=protected`.
//!
//! The package comes from a suite this machine's apt does not list (trixie-backports,
//! or sid), so pvmkit fetches it through an apt configuration of its own — its own
//! sources list, state and cache under pvmkit's cache directory, Debian's archive
//! keyring so that the download is verified — and only downloads and unpacks it: the
//! machine's apt setup is never changed and nothing is installed. The Image is cached
//! (`~/.cache/pvmkit/kernel/<version>/Image`); a second run downloads nothing. Every file
//! is written under a temporary name and renamed into place, so an interrupted fetch
//! leaves nothing half-written.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The suites searched, in order, and the keyring that verifies them.
const SUITES: [&str; 2] = ["trixie-backports", "sid"];
const MIRROR: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// The oldest kernel whose pKVM runs pvmkit's protected VMs as measured.
const MIN_VERSION: (u32, u32) = (7, 3);

/// A kernel to boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// The arm64 Image.
    pub image: PathBuf,
    /// Its release, e.g. `7.3.4+deb13-arm64`, or the file name of a user's own.
    pub version: String,
}

/// pvmkit's cache: `$PVMKIT_CACHE`, else `$XDG_CACHE_HOME/pvmkit`, else
/// `~/.cache/pvmkit` — outside the work tree, shared by every clone.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PVMKIT_CACHE") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("pvmkit")
}

/// Checks that `bytes` start like an arm64 Linux Image (the header's magic at 56).
pub fn check_image(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(56..60) {
        Some(b"ARM\x64") => Ok(()),
        _ => Err("not an arm64 Linux Image (no \"ARM\\x64\" magic at offset 56)".into()),
    }
}

/// A user's own kernel (`--kernel`), checked.
pub fn user_kernel(path: &Path) -> Result<Kernel, String> {
    use std::io::Read;
    let mut header = Vec::with_capacity(64);
    std::fs::File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut header))
        .map_err(|e| format!("reading the kernel {}: {e}", path.display()))?;
    check_image(&header).map_err(|e| format!("{}: {e}", path.display()))?;
    let version = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Kernel { image: path.to_path_buf(), version })
}

/// The release of a `linux-binary-<release>` package name for plain arm64 (not `cloud`
/// or `rt`), with its numeric version.
pub fn release_of(package: &str) -> Option<(String, (u32, u32, u32))> {
    let release = package.strip_prefix("linux-binary-")?;
    let (version, flavour) = release.split_once('+')?;
    let rest = flavour.strip_prefix("deb")?;
    let (debian, arch) = rest.split_once('-')?;
    if arch != "arm64" || debian.is_empty() || !debian.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().ok());
    let parsed = (numbers.next()??, numbers.next()??, numbers.next()??);
    numbers.next().is_none().then(|| (release.to_string(), parsed))
}

/// The newest plain arm64 kernel package of `names` at 7.3 or later.
pub fn newest(names: &[String]) -> Option<(String, String)> {
    names
        .iter()
        .filter_map(|n| release_of(n).map(|(release, v)| (v, n.clone(), release)))
        .filter(|(v, ..)| (v.0, v.1) >= MIN_VERSION)
        .max()
        .map(|(_, name, release)| (name, release))
}

/// The kernel to boot: the cached one, or Debian's fetched into the cache first.
pub fn debian_kernel() -> Result<Kernel, String> {
    let dir = cache_dir().join("kernel");
    if let Some(kernel) = cached(&dir) {
        return Ok(kernel);
    }
    fetch(&dir)
}

fn cached(dir: &Path) -> Option<Kernel> {
    let version = std::fs::read_to_string(dir.join("current")).ok()?.trim().to_string();
    let image = dir.join(&version).join("Image");
    image.is_file().then_some(Kernel { image, version })
}

/// The private apt configuration: every option that would otherwise read or write the
/// machine's apt state points into `root`.
fn apt(root: &Path, tool: &str) -> Command {
    let mut cmd = Command::new(tool);
    for (key, value) in [
        ("Dir::Etc::SourceList", root.join("sources.list")),
        ("Dir::Etc::SourceParts", PathBuf::from("/dev/null")),
        ("Dir::Etc::Preferences", root.join("preferences")),
        ("Dir::Etc::PreferencesParts", PathBuf::from("/dev/null")),
        ("Dir::State", root.join("state")),
        ("Dir::State::Lists", root.join("lists")),
        ("Dir::State::status", root.join("status")),
        ("Dir::Cache", root.join("cache")),
    ] {
        cmd.arg("-o").arg(format!("{key}={}", value.display()));
    }
    cmd.args(["-o", "APT::Architecture=arm64", "-o", "APT::Architectures::=arm64", "-o", "Debug::NoLocking=1"]);
    cmd.args(["-o", "APT::Sandbox::User=root", "-q"]);
    cmd
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

/// The private apt root, set up (sources, state) and updated.
pub(crate) fn apt_root(tried: &str) -> Result<PathBuf, String> {
    if !Path::new(KEYRING).is_file() {
        return Err(format!("{KEYRING} is missing (Debian's archive keyring)"));
    }
    let root = cache_dir().join("apt");
    for sub in ["lists/partial", "cache/archives/partial", "state"] {
        std::fs::create_dir_all(root.join(sub)).map_err(|e| format!("creating {}: {e}", root.display()))?;
    }
    let sources: String =
        SUITES.iter().map(|s| format!("deb [arch=arm64 signed-by={KEYRING}] {MIRROR} {s} main\n")).collect();
    std::fs::write(root.join("sources.list"), sources).map_err(|e| e.to_string())?;
    std::fs::write(root.join("status"), "").map_err(|e| e.to_string())?;
    eprintln!("pvmkit: fetching {tried}");
    run(apt(&root, "apt-get").arg("update"), "apt-get update")?;
    Ok(root)
}

/// Downloads `package` (arm64, or architecture-independent) with the private apt
/// configuration and unpacks it into `scratch/x`.
pub(crate) fn download(root: &Path, package: &str, scratch: &Path) -> Result<PathBuf, String> {
    run(apt(root, "apt-get").current_dir(scratch).args(["download", package]), "apt-get download")?;
    let deb = std::fs::read_dir(scratch)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let unpacked = scratch.join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked), "dpkg-deb -x")?;
    Ok(unpacked)
}

/// Runs `work` in a fresh scratch directory under `dir`, removed afterwards whatever
/// happens: nothing half-written is left where the cache looks.
pub(crate) fn in_scratch<T>(dir: &Path, work: impl FnOnce(&Path) -> Result<T, String>) -> Result<T, String> {
    let scratch = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let result = work(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn fetch(dir: &Path) -> Result<Kernel, String> {
    let tried = format!("Debian's linux-binary-*-arm64 (>= 7.3) from {} at {MIRROR}", SUITES.join(" or "));
    let fail = |e: String| format!("cannot fetch the pKVM host kernel: {e} (tried {tried}; or pass --kernel IMAGE)");
    let root = apt_root(&format!("the pKVM host kernel ({tried}) into {}", dir.display())).map_err(fail)?;
    let names = run(apt(&root, "apt-cache").args(["pkgnames", "linux-binary-"]), "apt-cache pkgnames").map_err(fail)?;
    let names: Vec<String> = String::from_utf8_lossy(&names).lines().map(String::from).collect();
    let (package, release) = newest(&names).ok_or_else(|| fail("no such package in those suites".into()))?;
    in_scratch(dir, |scratch| {
        let unpacked = download(&root, &format!("{package}:arm64"), scratch)?;
        let image = unpacked.join("usr/lib/modules").join(&release).join("vmlinuz");
        let bytes = std::fs::read(&image).map_err(|e| format!("the package has no {}: {e}", image.display()))?;
        check_image(&bytes)?;
        let target = dir.join(&release);
        let staged = scratch.join("staged");
        std::fs::create_dir_all(&staged).map_err(|e| e.to_string())?;
        std::fs::rename(&image, staged.join("Image")).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&staged, &target).map_err(|e| e.to_string())?;
        std::fs::write(scratch.join("current"), &release).map_err(|e| e.to_string())?;
        std::fs::rename(scratch.join("current"), dir.join("current")).map_err(|e| e.to_string())?;
        Ok(Kernel { image: target.join("Image"), version: release.clone() })
    })
    .map_err(fail)
}

/// The host kernel's modules a `--disk` needs (Debian builds virtio-mmio and virtio-blk
/// as modules), in load order: fetched once from `linux-modules-<release>` into the
/// cache beside the kernel.
pub const DISK_MODULES: [&str; 2] = ["drivers/virtio/virtio_mmio.ko.xz", "drivers/block/virtio_blk.ko.xz"];

/// [`DISK_MODULES`] of `kernel` (Debian's), as (file name, bytes).
pub fn disk_modules(kernel: &Kernel) -> Result<Vec<(String, Vec<u8>)>, String> {
    let dir = kernel.image.parent().ok_or("the kernel has no cache directory")?.join("modules");
    let names: Vec<String> =
        DISK_MODULES.iter().enumerate().map(|(i, m)| format!("{i}-{}", m.rsplit('/').next().unwrap_or(m))).collect();
    if !names.iter().all(|n| dir.join(n).is_file()) {
        let package = format!("linux-modules-{}", kernel.version);
        let fail = |e: String| format!("cannot fetch the host's virtio modules ({package}): {e}");
        let root = apt_root(&format!("{package} (the host's virtio-blk for --disk)")).map_err(fail)?;
        let parent = dir.parent().ok_or("no cache directory")?;
        in_scratch(parent, |scratch| {
            let unpacked = download(&root, &format!("{package}:arm64"), scratch)?;
            let staged = scratch.join("modules");
            std::fs::create_dir_all(&staged).map_err(|e| e.to_string())?;
            for (module, name) in DISK_MODULES.iter().zip(&names) {
                let from = unpacked.join("usr/lib/modules").join(&kernel.version).join("kernel").join(module);
                std::fs::rename(&from, staged.join(name)).map_err(|e| format!("{}: {e}", from.display()))?;
            }
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&staged, &dir).map_err(|e| e.to_string())
        })
        .map_err(fail)?;
    }
    names.into_iter().map(|n| std::fs::read(dir.join(&n)).map(|b| (n, b)).map_err(|e| e.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_plain_arm64_kernel_at_7_3_or_later() {
        let names: Vec<String> = [
            "linux-binary-7.0.13+deb13-arm64",
            "linux-binary-7.3.4+deb13-arm64",
            "linux-binary-7.3.4+deb13-cloud-arm64",
            "linux-binary-7.3.10+deb13-rt-arm64",
            "linux-binary-7.3.2+deb13-arm64",
            "linux-binary-7.2.9+deb14-arm64",
            "linux-binary-7.3.4+deb13-arm64-dbg",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(newest(&names), Some(("linux-binary-7.3.4+deb13-arm64".into(), "7.3.4+deb13-arm64".into())));
        assert_eq!(newest(&names[..1]), None, "7.0 is too old");
        assert_eq!(release_of("linux-binary-7.10.1+deb14-arm64").map(|r| r.1), Some((7, 10, 1)));
        assert_eq!(release_of("linux-binary-7.3+deb13-arm64"), None);
    }

    #[test]
    fn only_an_arm64_image_is_a_kernel() {
        let mut image = vec![0u8; 64];
        assert!(check_image(&image).is_err());
        image[56..60].copy_from_slice(b"ARM\x64");
        assert_eq!(check_image(&image), Ok(()));
        assert!(check_image(b"short").is_err());
        let dir = std::env::temp_dir().join(format!("pvmkit-kernel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bzImage"), b"MZ not arm64").unwrap();
        assert!(user_kernel(&dir.join("bzImage")).unwrap_err().contains("not an arm64 Linux Image"));
        std::fs::write(dir.join("Image"), &image).unwrap();
        assert_eq!(user_kernel(&dir.join("Image")).unwrap().version, "Image");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_cached_kernel_needs_its_image() {
        let dir = std::env::temp_dir().join(format!("pvmkit-kernel-cache-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("7.3.4+deb13-arm64")).unwrap();
        std::fs::write(dir.join("current"), "7.3.4+deb13-arm64\n").unwrap();
        assert_eq!(cached(&dir), None, "no Image: a half-written cache is not used");
        std::fs::write(dir.join("7.3.4+deb13-arm64/Image"), b"x").unwrap();
        assert_eq!(cached(&dir).unwrap().version, "7.3.4+deb13-arm64");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
