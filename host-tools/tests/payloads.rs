//! Payloads as real guests ship them: test-guest as a position-independent arm64
//! `Image` runs in every mode, through pvmfw and entered directly, placed per the
//! Linux boot protocol; malformed or oversized Images are refused by name, by pvmkit
//! and by pvmfw.

mod common;

use std::path::PathBuf;

use common::pvmkit;

const IMAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pvmkit/test-guest.img");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pvmkit-payloads-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn image_bytes() -> Vec<u8> {
    let (ok, out) = pvmkit(&["build"]);
    assert!(ok, "{out}");
    std::fs::read(IMAGE).unwrap()
}

/// The Image is linked at 0 and runs where it was placed: it must report that address.
fn assert_runs_at(args: &[&str], at: u64) -> String {
    let (ok, out) = pvmkit(args);
    assert!(ok && out.contains("pvmkit: PASS"), "{args:?}:\n{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(out.contains(&format!("test-guest: image at {at:#x}\n")), "{args:?}: not relocated to {at:#x}:\n{out}");
    out
}

#[test]
fn an_image_payload_runs_relocated_in_every_mode() {
    let image = image_bytes();
    assert!(pvmkit_abi::arm64_image::is_image(&image));
    let header = pvmkit_abi::arm64_image::parse(&image).unwrap();
    assert_eq!(header.text_offset, 0);
    assert!(header.image_size > image.len() as u64, "image_size covers .bss, stack and heap");
    // Through pvmfw: the lowest 2 MiB-aligned base clear of the DT area.
    let out = assert_runs_at(&["run", "--payload", IMAGE], 0x8020_0000);
    assert!(out.contains(&format!("[pvmfw] payload verified ({} bytes, arm64 Image at 0x80200000,", image.len())));
    assert_runs_at(&["run", "--payload", IMAGE, "--abi", "upstream", "--no-pvmfw"], 0x8020_0000);
    assert_runs_at(&["run", "--payload", IMAGE, "--mode", "unprotected"], 0x8020_0000);
    // QEMU's own Image loader, with no hypervisor: another base, the same verdict.
    assert_runs_at(&["run", "--payload", IMAGE, "--mode", "bare"], 0x4020_0000);
}

/// An Image with no place in guest RAM is refused by pvmkit before anything boots
/// (pvmfw's own refusal of such a kernel: `tests/pvmfw.rs`).
#[test]
fn pvmkit_refuses_to_sign_an_image_that_does_not_fit() {
    let dir = scratch("huge");
    let mut image = image_bytes();
    image[16..24].copy_from_slice(&(1u64 << 30).to_le_bytes());
    let huge = dir.join("huge.img");
    std::fs::write(&huge, &image).unwrap();
    let out_path = dir.join("huge.signed");
    let (ok, out) = pvmkit(&["sign", "--payload", huge.to_str().unwrap(), "-o", out_path.to_str().unwrap()]);
    assert!(!ok && out.contains("no such place free"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pvmkit_refuses_a_malformed_image_by_name() {
    let dir = scratch("malformed");
    let mut image = image_bytes();
    image[16..24].fill(0);
    let bad = dir.join("no-size.img");
    std::fs::write(&bad, &image).unwrap();
    let bad = bad.to_str().unwrap();
    let out_path = dir.join("x.signed");
    for args in [
        &["run", "--payload", bad][..],
        &["run", "--payload", bad, "--no-pvmfw"][..],
        &["sign", "--payload", bad, "-o", out_path.to_str().unwrap()][..],
    ] {
        let (ok, out) = pvmkit(args);
        assert!(!ok, "{args:?}:\n{out}");
        assert!(out.contains("image_size 0 (a pre-3.17 header)"), "{args:?}:\n{out}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
