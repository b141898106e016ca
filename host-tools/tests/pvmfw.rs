//! End-to-end: the full chain hyp → pvmfw → test-guest, the payload's secret, and
//! every refusal pvmfw must make, each through `pvmkit run`.

mod common;

use std::path::{Path, PathBuf};

use common::pvmkit;
use vm_fdt::FdtWriter;

const TEST_GUEST: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../target/firmware/aarch64-unknown-none/release/test-guest");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pvmkit-pvmfw-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Signs test-guest with `extra` arguments; returns the signed file.
fn sign(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    // `pvmkit build` first, so that test-guest's ELF exists.
    let (ok, out) = pvmkit(&["build"]);
    assert!(ok, "{out}");
    let path = dir.join(name);
    let mut args = vec!["sign", "--payload", TEST_GUEST, "-o", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (ok, out) = pvmkit(&args);
    assert!(ok, "{out}");
    path
}

fn digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("secret digest: "))
        .unwrap_or_else(|| panic!("no secret digest:\n{out}"))
        .to_string()
}

fn assert_refused(args: &[&str], reason: &str) {
    let (ok, out) = pvmkit(args);
    assert!(!ok, "pvmfw must refuse ({reason}):\n{out}");
    assert!(out.contains(&format!("[pvmfw] error: {reason}")), "expected '[pvmfw] error: {reason}':\n{out}");
    assert!(
        out.contains("pvmkit: FAIL: hyp ended the VM: reason=reset"),
        "pvmfw must fail closed with a reset:\n{out}"
    );
    assert!(!out.contains("test hypervisor_uid"), "the payload must not have run:\n{out}");
}

#[test]
fn the_chain_boots_and_the_secret_follows_the_payload() {
    let dir = scratch("secret");
    let (ok, first) = pvmkit(&["run"]);
    assert!(ok, "{first}");
    assert!(first.contains("[pvmfw] payload verified"), "{first}");
    assert!(first.contains("test pvmfw_handover ... ok"), "{first}");
    let (ok, second) = pvmkit(&["run"]);
    assert!(ok, "{second}");
    assert_eq!(digest(&first), digest(&second), "the same payload gets the same secret");
    // Another payload: the same code with 16 more bytes.
    let other = sign(&dir, "padded.signed", &["--pad", "16"]);
    let (ok, third) = pvmkit(&["run", "--signed-payload", other.to_str().unwrap()]);
    assert!(ok, "{third}");
    assert_ne!(digest(&first), digest(&third), "another payload gets another secret");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pvmfw_refuses_tampered_or_foreign_payloads() {
    let dir = scratch("tamper");
    let good = sign(&dir, "good.signed", &[]);
    let bytes = std::fs::read(&good).unwrap();
    let flipped = |at: usize, name: &str| {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        let path = dir.join(name);
        std::fs::write(&path, b).unwrap();
        path
    };
    let image_byte = flipped(256 + 4096, "image.signed");
    assert_refused(
        &["run", "--signed-payload", image_byte.to_str().unwrap()],
        "payload image does not match the hash in its signed header",
    );
    let header_byte = flipped(60, "header.signed"); // inside the image hash
    assert_refused(
        &["run", "--signed-payload", header_byte.to_str().unwrap()],
        "payload signature does not verify with the trusted key",
    );
    let key = dir.join("other.key");
    let (ok, out) = pvmkit(&["keygen", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    let foreign = sign(&dir, "foreign.signed", &["--key", key.to_str().unwrap()]);
    assert_refused(
        &["run", "--signed-payload", foreign.to_str().unwrap()],
        "payload signature does not verify with the trusted key",
    );
    // ... which runs when pvmfw is told to trust that key instead.
    let (ok, out) = pvmkit(&[
        "run",
        "--signed-payload",
        foreign.to_str().unwrap(),
        "--trusted-key",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let huge = sign(&dir, "huge.signed", &["--mem-size", "1073741824"]);
    assert_refused(
        &["run", "--signed-payload", huge.to_str().unwrap()],
        "payload 0x80200000..0xc0200000 does not fit guest RAM",
    );
    let truncated = dir.join("truncated.signed");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    assert_refused(&["run", "--signed-payload", truncated.to_str().unwrap()], "signed payload image is");
    std::fs::remove_dir_all(&dir).ok();
}

/// A host DT shaped like pvmkit's, with knobs.
struct HostDt {
    memory: (u64, u64),
    console: u64,
    payload_size: u64,
    virtio: &'static [u64],
}

fn host_dt(spec: &HostDt) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "pvmkit.mode=protected pvmkit.abi=android pvmkit.scenario=normal").unwrap();
    w.end_node(chosen).unwrap();
    let config = w.begin_node("config").unwrap();
    w.property_u64("kernel-address", abi::pvmfw::SIGNED_PAYLOAD_STAGING).unwrap();
    w.property_u64("kernel-size", spec.payload_size).unwrap();
    w.end_node(config).unwrap();
    let mem = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[spec.memory.0, spec.memory.1]).unwrap();
    w.end_node(mem).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-1.0").unwrap();
    w.property_string("method", "hvc").unwrap();
    w.end_node(psci).unwrap();
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u64("reg", &[spec.console, 0x1000]).unwrap();
    w.end_node(uart).unwrap();
    for &slot in spec.virtio {
        let base = 0x0a00_0000 + slot * 0x200;
        let node = w.begin_node(&format!("virtio_mmio@{base:x}")).unwrap();
        w.property_string("compatible", "virtio,mmio").unwrap();
        w.property_array_u64("reg", &[base, 0x200]).unwrap();
        w.end_node(node).unwrap();
    }
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn pvmfw_refuses_hostile_device_trees() {
    let dir = scratch("dt");
    let signed = sign(&dir, "good.signed", &[]);
    let size = std::fs::metadata(&signed).unwrap().len();
    let good =
        HostDt { memory: (0x8000_0000, 256 << 20), console: 0x0900_0000, payload_size: size, virtio: &[29, 30, 31] };
    let run_with = |name: &str, blob: &[u8], reason: &str| {
        let path = dir.join(name);
        std::fs::write(&path, blob).unwrap();
        assert_refused(
            &["run", "--signed-payload", signed.to_str().unwrap(), "--host-dt", path.to_str().unwrap()],
            reason,
        );
    };
    // The knob-free tree is accepted (the refusals below come from the knobs).
    let path = dir.join("good.dtb");
    std::fs::write(&path, host_dt(&good)).unwrap();
    let (ok, out) = pvmkit(&["run", "--signed-payload", signed.to_str().unwrap(), "--host-dt", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    run_with(
        "memory.dtb",
        &host_dt(&HostDt { memory: (0x8000_0000, 4 << 30), ..good }),
        "host device tree: memory 0x80000000..0x180000000 is outside the VM's limits",
    );
    run_with(
        "console.dtb",
        &host_dt(&HostDt { console: 0x0901_0000, ..good }),
        "host device tree: console at 0x9010000, where the platform exposes none",
    );
    // A transport the platform has (QEMU's slot 0) but hyp does not give this VM.
    run_with(
        "unexposed.dtb",
        &host_dt(&HostDt { virtio: &[0, 29, 30, 31], ..good }),
        "host device tree: device at 0xa000000, which the hypervisor does not expose to this VM",
    );
    let blob = host_dt(&good);
    run_with("truncated.dtb", &blob[..blob.len() / 2], "host device tree: device tree is malformed");
    let mut outside = blob.clone();
    outside[12..16].copy_from_slice(&0x00f0_0000u32.to_be_bytes()); // off_dt_strings far outside
    run_with("offsets.dtb", &outside, "host device tree: device tree is malformed");
    std::fs::remove_dir_all(&dir).ok();
}
