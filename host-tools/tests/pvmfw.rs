//! End-to-end: the full chain hyp → pvmfw → test-guest, the payload's secret, and
//! every refusal pvmfw must make, each through `pvmkit run`.

mod common;

use std::path::{Path, PathBuf};

use abi::pvmfw::Refusal;
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

/// pvmfw refused with this stable code (its line's English is for people, not tests).
fn assert_refused(args: &[&str], refusal: Refusal) {
    let (ok, out) = pvmkit(args);
    let start = refusal.line_start().to_string();
    assert!(!ok, "pvmfw must refuse ({start}):\n{out}");
    assert!(out.contains(&start), "expected '{start}':\n{out}");
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
    assert_refused(&["run", "--signed-payload", image_byte.to_str().unwrap()], Refusal::PayloadHash);
    let header_byte = flipped(60, "header.signed"); // inside the image hash
    assert_refused(&["run", "--signed-payload", header_byte.to_str().unwrap()], Refusal::PayloadSignature);
    let key = dir.join("other.key");
    let (ok, out) = pvmkit(&["keygen", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    let foreign = sign(&dir, "foreign.signed", &["--key", key.to_str().unwrap()]);
    assert_refused(&["run", "--signed-payload", foreign.to_str().unwrap()], Refusal::PayloadSignature);
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
    assert_refused(&["run", "--signed-payload", huge.to_str().unwrap()], Refusal::PayloadPlacement);
    let truncated = dir.join("truncated.signed");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    assert_refused(&["run", "--signed-payload", truncated.to_str().unwrap()], Refusal::PayloadHeader);
    std::fs::remove_dir_all(&dir).ok();
}

/// A host DT shaped like pvmkit's, with knobs.
struct HostDt {
    memory: (u64, u64),
    console: u64,
    payload_size: u64,
    virtio: &'static [u64],
    /// `/psci` `method`.
    psci: &'static str,
    /// Bytes of a padding property (to make the tree large).
    padding: usize,
}

fn host_dt(spec: &HostDt) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    if spec.padding > 0 {
        w.property("pvmkit,padding", &vec![0; spec.padding]).unwrap();
    }
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
    w.property_string("method", spec.psci).unwrap();
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
    let good = HostDt {
        memory: (0x8000_0000, 256 << 20),
        console: 0x0900_0000,
        payload_size: size,
        virtio: &[29, 30, 31],
        psci: "hvc",
        padding: 0,
    };
    let run_with = |name: &str, blob: &[u8], reason: Refusal| {
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
    run_with("memory.dtb", &host_dt(&HostDt { memory: (0x8000_0000, 4 << 30), ..good }), Refusal::HostDtMemory);
    run_with("console.dtb", &host_dt(&HostDt { console: 0x0901_0000, ..good }), Refusal::HostDtDevice);
    // A transport the platform has (QEMU's slot 0) but hyp does not give this VM.
    run_with("unexposed.dtb", &host_dt(&HostDt { virtio: &[0, 29, 30, 31], ..good }), Refusal::DeviceNotExposed);
    let blob = host_dt(&good);
    run_with("truncated.dtb", &blob[..blob.len() / 2], Refusal::HostDtMalformed);
    let mut outside = blob.clone();
    outside[12..16].copy_from_slice(&0x00f0_0000u32.to_be_bytes()); // off_dt_strings far outside
    run_with("offsets.dtb", &outside, Refusal::HostDtMalformed);
    // A tree that reaches the secret page (2 MiB less 16 bytes: it once wiped half the
    // secret) does not fit the DT slot.
    let big = host_dt(&HostDt { padding: (2 << 20) - 16 - blob.len() - 16, ..good });
    assert!(big.len() > (2 << 20) - 64 && big.len() < 2 << 20, "{}", big.len());
    run_with("big.dtb", &big, Refusal::HostDtSlot);
    std::fs::remove_dir_all(&dir).ok();
}

/// pvmfw copies the host's DT before reading it and keeps everything it writes apart:
/// the largest tree it accepts leaves the payload's secret exactly as a small one does.
/// And it takes its conduit and console from the platform, never from that tree.
#[test]
fn pvmfw_keeps_the_secret_whole_and_trusts_its_platform_not_the_tree() {
    let dir = scratch("layout");
    let signed = sign(&dir, "good.signed", &[]);
    let size = std::fs::metadata(&signed).unwrap().len();
    let spec = |psci, padding| HostDt {
        memory: (0x8000_0000, 256 << 20),
        console: 0x0900_0000,
        payload_size: size,
        virtio: &[29, 30, 31],
        psci,
        padding,
    };
    let run = |name: &str, blob: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, blob).unwrap();
        let (ok, out) =
            pvmkit(&["run", "--signed-payload", signed.to_str().unwrap(), "--host-dt", path.to_str().unwrap()]);
        assert!(ok, "{out}");
        assert!(out.contains("[pvmfw] platform: conduit Hvc, console 0x9000000"), "{out}");
        out
    };
    let small = run("small.dtb", host_dt(&spec("hvc", 0)));
    let max = abi::pvmfw::HOST_DT_MAX_SIZE as usize;
    let largest = host_dt(&spec("hvc", max - 4096));
    assert!(largest.len() <= max && largest.len() > max - 4096, "{}", largest.len());
    let large = run("large.dtb", largest);
    assert_eq!(digest(&small), digest(&large), "the secret is the same, whole");
    // A tree that names SMC: pvmfw still calls its hypervisor with HVC.
    run("smc.dtb", host_dt(&spec("smc", 0)));
    std::fs::remove_dir_all(&dir).ok();
}

/// The host cannot switch a guest's test switches on: pvmfw drops reserved words from
/// the command line (and names them), and neither pvmfw nor a guest built without
/// `unsafe-test-switches` holds the switch at all.
#[test]
fn host_bootargs_cannot_reach_test_switches() {
    let (ok, out) = pvmkit(&["run", "--guest-arg", "guest-lib.unsafe-skip-mmio-guard"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "[pvmfw] dropped host bootarg 'guest-lib.unsafe-skip-mmio-guard': reserved for the guest's own build"
        ),
        "{out}"
    );
    assert!(out.contains("test console_granule_is_registered ... ok") && out.contains("pvmkit: PASS"), "{out}");
    let firmware = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/firmware/aarch64-unknown-none/release/");
    let holds = |name: &str| {
        let elf = std::fs::read(format!("{firmware}{name}")).unwrap();
        let switch = b"guest-lib.unsafe-skip-mmio-guard";
        elf.windows(switch.len()).any(|w| w == switch)
    };
    assert!(!holds("pvmfw"), "pvmfw must not hold a test switch");
    assert!(holds("test-guest"), "test-guest turns the switch on (the check above can see it)");
}
