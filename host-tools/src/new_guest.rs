//! `pvmkit new PATH`: a guest crate of one's own that builds and passes under `cargo
//! run` on both backends as it is written: guest-lib by path (this repository's), the
//! toolchain and target pinned, pvmkit as the cargo runner, and a `main` that shares
//! and takes back a page, reads block 0 of its disk through the bouncing `Hal`,
//! registers an MMIO range of its own, and reports through the harness.

use std::path::Path;

use crate::Workspace;

/// The files of a new guest crate named `name`, guest-lib from `repo`: (path, text).
pub fn files(name: &str, repo: &Path) -> Vec<(&'static str, String)> {
    let repo = repo.display();
    vec![
        (
            "Cargo.toml",
            format!(
                "[package]\n\
                 name = \"{name}\"\n\
                 version = \"0.1.0\"\n\
                 edition = \"2021\"\n\
                 \n\
                 [dependencies]\n\
                 # guest-lib: its runtime boots the guest and calls `main`.\n\
                 guest-lib = {{ path = \"{repo}/guest-lib\" }}\n\
                 \n\
                 [profile.release]\n\
                 panic = \"abort\"\n\
                 \n\
                 [profile.dev]\n\
                 panic = \"abort\"\n\
                 \n\
                 # A crate of its own, not a member of an enclosing workspace.\n\
                 [workspace]\n"
            ),
        ),
        (
            "rust-toolchain.toml",
            "# The toolchain pvmkit is built and tested with, and the guest's target.\n\
             [toolchain]\n\
             channel = \"1.95.0\"\n\
             targets = [\"aarch64-unknown-none\"]\n"
                .into(),
        ),
        (
            ".cargo/config.toml",
            "# `cargo run` builds for the guest's target and boots it with pvmkit (on PATH:\n\
             # `cargo install --path host-tools` in the pvmkit repository). Any `pvmkit run`\n\
             # option goes after `--`: `cargo run -- --backend pkvm`.\n\
             [build]\n\
             target = \"aarch64-unknown-none\"\n\
             \n\
             [target.aarch64-unknown-none]\n\
             runner = \"pvmkit run --payload\"\n"
                .into(),
        ),
        (
            "build.rs",
            "//! Links the guest with guest-lib's layout (guest-lib puts `guest.ld` on the link path).\n\
             fn main() {\n    println!(\"cargo:rustc-link-arg-bins=-Tguest.ld\");\n}\n"
                .into(),
        ),
        ("src/main.rs", MAIN.into()),
    ]
}

/// The new guest's `main`.
const MAIN: &str = r#"//! A protected-VM guest on guest-lib's runtime. `cargo run` boots it under pvmkit's
//! hyp; `cargo run -- --backend pkvm` on the real pKVM. pvmkit's verdict reads the
//! harness's last line and the hypervisor's exit line.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;

use guest_lib::console::Console;
use guest_lib::harness::Harness;
use guest_lib::{ensure_eq, ipa_of, BootInfo, Ipa};

guest_lib::entry!(main);

/// A page of the guest's own memory.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

fn main(boot: &BootInfo) {
    let mut h = Harness::new(Console);
    h.run("share_and_take_back_a_page", || {
        // Private until shared: the host may read it only in between.
        let page = Box::leak(Box::new(Page([0; 4096])));
        // guest-lib's runtime maps memory identically: the page's address is its IPA.
        let at = ipa_of(&page.0);
        let sharer = boot.sharer().map_err(|e| format!("{e}"))?;
        sharer.share(at, 4096).map_err(|e| format!("{e}"))?;
        sharer.unshare(at, 4096).map_err(|e| format!("{e}"))?;
        Ok(())
    });
    // Discovery registers every virtio transport with the MMIO guard; keep what it
    // returns while the devices are used.
    let drivers = guest_lib::virtio::drivers(&boot.dt, guest_lib::mmio_guard());
    h.run("read_block_0", || {
        let mut disk = drivers.block.ok_or("no virtio block device")?;
        // The driver's buffers are bounced through the pool guest-lib shared: the
        // device never sees this private array.
        let mut sector = [0u8; 512];
        disk.read_blocks(0, &mut sector).map_err(|e| format!("{e}"))?;
        Ok(())
    });
    h.run("register_before_touching", || {
        // Any other MMIO range: registered with the MMIO guard before it is touched,
        // for as long as the handle lives.
        let (base, size) = boot.dt.virtio_mmio().next().ok_or("no virtio transport")?;
        let _registered = guest_lib::mmio_guard().guard(Ipa(base), size).map_err(|e| format!("{e}"))?;
        // SAFETY: a virtio-mmio transport's MagicValue, registered above.
        ensure_eq!(unsafe { (base as *const u32).read_volatile() }, 0x7472_6976);
        Ok(())
    });
    h.finish();
}
"#;

/// Writes a new guest crate at `path` (which must not exist yet), with guest-lib from
/// `ws`, and returns its name.
pub fn create(ws: &Workspace, path: &Path) -> Result<String, String> {
    if path.exists() {
        return Err(format!("{} exists already: pvmkit new writes a crate where there is nothing", path.display()));
    }
    let name = crate_name(path).ok_or_else(|| format!("{}: no crate name in that path", path.display()))?;
    let repo = std::fs::canonicalize(&ws.root).map_err(|e| format!("{}: {e}", ws.root.display()))?;
    for (file, text) in files(&name, &repo) {
        let at = path.join(file);
        if let Some(dir) = at.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(&at, text).map_err(|e| format!("writing {}: {e}", at.display()))?;
    }
    // The versions pvmkit is tested with.
    std::fs::copy(repo.join("Cargo.lock"), path.join("Cargo.lock"))
        .map_err(|e| format!("copying the lock file: {e}"))?;
    Ok(name)
}

/// A crate name from the path's last component: lower case, `-` for anything but
/// letters, digits and `_`, and not starting with a digit.
fn crate_name(path: &Path) -> Option<String> {
    let last = path.file_name()?.to_string_lossy();
    let name: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_string();
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files() {
        assert_eq!(crate_name(Path::new("/tmp/My Guest")).as_deref(), Some("my-guest"));
        assert_eq!(crate_name(Path::new("guest_2")).as_deref(), Some("guest_2"));
        assert_eq!(crate_name(Path::new("/tmp/2fast")), None);
        let files = files("demo", Path::new("/opt/pvmkit"));
        let manifest = &files.iter().find(|(f, _)| *f == "Cargo.toml").unwrap().1;
        assert!(manifest.contains("name = \"demo\"") && manifest.contains("path = \"/opt/pvmkit/guest-lib\""));
        let names: Vec<&str> = files.iter().map(|(f, _)| *f).collect();
        assert_eq!(names, ["Cargo.toml", "rust-toolchain.toml", ".cargo/config.toml", "build.rs", "src/main.rs"]);
    }
}
