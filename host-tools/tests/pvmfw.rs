//! End-to-end: the full chain hyp → pvmfw → test-guest through AVF's contract (the
//! configuration data appended to pvmfw, the AVB-signed kernel and ramdisk verified in
//! place), and every refusal pvmfw must make, each through `pvmkit run` with a stable
//! code.

mod common;

use std::path::{Path, PathBuf};

use common::pvmkit;
use pvmkit_abi::avb::{footer, VbmetaHeader, VBMETA_HEADER_SIZE};
use pvmkit_abi::bundle::{entry_mut, EntryKind};
use pvmkit_abi::pvmfw::Refusal;
use vm_fdt::FdtWriter;
use zerocopy::FromBytes;

const TEST_GUEST: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../target/firmware/aarch64-unknown-none/release/test-guest");
const DEV_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pvmkit/keys/pvmkit-DEVELOPMENT-ONLY.pem");

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

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
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

fn refused_payload(path: &Path, refusal: Refusal) {
    assert_refused(&["run", "--signed-payload", path.to_str().unwrap()], refusal);
}

#[test]
fn the_chain_boots_through_avb_and_the_configuration_data() {
    let (ok, out) = pvmkit(&["run"]);
    assert!(ok, "{out}");
    for line in [
        "[pvmfw] configuration data 1.2: DICE handover",
        "[pvmfw] payload: name \"(none)\", rollback index 0",
        "[pvmfw] payload verified",
        "test pvmfw_handover ... ok",
    ] {
        assert!(out.contains(line), "missing {line}:\n{out}");
    }
}

/// Where the vbmeta image starts in a signed payload.
fn vbmeta_at(signed: &[u8]) -> usize {
    footer(signed).unwrap().vbmeta_offset.get() as usize
}

/// Signs a vbmeta image at `vbmeta` again with the development key (SHA256_RSA4096):
/// the hash and signature of its header and auxiliary block, as they now are.
fn resign(signed: &mut [u8], vbmeta: usize) {
    use rsa::pkcs1v15::Pkcs1v15Sign;
    use sha2::{Digest, Sha256};
    let header = VbmetaHeader::read_from_prefix(&signed[vbmeta..]).unwrap().0;
    let auth = vbmeta + VBMETA_HEADER_SIZE;
    let aux = auth + header.authentication_data_block_size.get() as usize;
    let aux_end = aux + header.auxiliary_data_block_size.get() as usize;
    let hash = Sha256::new().chain_update(&signed[vbmeta..auth]).chain_update(&signed[aux..aux_end]).finalize();
    let key = host_tools::signing::load_key(Path::new(DEV_KEY)).unwrap();
    let signature = key.sign(Pkcs1v15Sign::new::<Sha256>(), &hash).unwrap();
    let at = auth + header.hash_offset.get() as usize;
    signed[at..at + 32].copy_from_slice(&hash);
    let at = auth + header.signature_offset.get() as usize;
    signed[at..at + signature.len()].copy_from_slice(&signature);
}

#[test]
fn pvmfw_refuses_tampered_or_foreign_payloads() {
    let dir = scratch("tamper");
    let good = sign(&dir, "good.signed", &["--prop", "com.android.virt.name:e2e", "--rollback-index", "7"]);
    let (ok, out) = pvmkit(&["run", "--signed-payload", good.to_str().unwrap()]);
    assert!(ok && out.contains("[pvmfw] payload: name \"e2e\", rollback index 7"), "{out}");
    let bytes = std::fs::read(&good).unwrap();
    let vbmeta = vbmeta_at(&bytes);
    let edited = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        edit(&mut b);
        write(&dir, name, &b)
    };
    // One byte of the image.
    refused_payload(&edited("image.signed", &|b| b[4096] ^= 1), Refusal::PayloadHash);
    // One byte of the vbmeta header (its rollback index): the vbmeta hash no longer holds.
    refused_payload(&edited("vbmeta.signed", &|b| b[vbmeta + 0x73] ^= 1), Refusal::PayloadSignature);
    // An algorithm AVB does not have.
    refused_payload(&edited("algorithm.signed", &|b| b[vbmeta + 0x1f] = 99), Refusal::PayloadFormat);
    // The first descriptor's length overflows its block.
    let descriptors = {
        let header = VbmetaHeader::read_from_prefix(&bytes[vbmeta..]).unwrap().0;
        vbmeta + VBMETA_HEADER_SIZE + header.authentication_data_block_size.get() as usize
    };
    // Unsigned, that is a signature failure; signed again with the trusted key, the
    // parser refuses it by name.
    let overflow = |b: &mut Vec<u8>| b[descriptors + 8..descriptors + 16].copy_from_slice(&[0xff; 8]);
    refused_payload(&edited("descriptor.signed", &overflow), Refusal::PayloadSignature);
    refused_payload(
        &edited("descriptor-resigned.signed", &|b| {
            overflow(b);
            resign(b, vbmeta);
        }),
        Refusal::PayloadFormat,
    );
    // Verification turned off by the flags.
    refused_payload(&edited("flags.signed", &|b| b[vbmeta + 0x7b] = 1), Refusal::VerificationDisabled);
    // Cut short.
    refused_payload(&write(&dir, "truncated.signed", &bytes[..bytes.len() - 100]), Refusal::PayloadFormat);
    // Signed with another key; runs when pvmfw embeds that key instead.
    let key = dir.join("other.pem");
    let (ok, out) = pvmkit(&["keygen", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    let foreign = sign(&dir, "foreign.signed", &["--key", key.to_str().unwrap()]);
    refused_payload(&foreign, Refusal::UntrustedKey);
    let avbpubkey = key.with_extension("avbpubkey");
    let (ok, out) =
        pvmkit(&["run", "--signed-payload", foreign.to_str().unwrap(), "--trusted-key", avbpubkey.to_str().unwrap()]);
    assert!(ok, "{out}");
    // An unknown capability.
    let cap = sign(&dir, "cap.signed", &["--prop", "com.android.virt.cap:remote_attest|teleport"]);
    refused_payload(&cap, Refusal::PayloadProperties);
    // A descriptor for another partition, and an Image whose footprint does not fit:
    // signed by the library with the development key.
    let dev_key = host_tools::signing::load_key(Path::new(DEV_KEY)).unwrap();
    let image = host_tools::payload::Payload::read(Path::new(TEST_GUEST)).unwrap();
    let ram = pvmkit_abi::memory_map::Region { start: 0x8000_0000, end: 0x9000_0000 };
    let kernel = image.kernel(ram).unwrap().bytes;
    let options = host_tools::avb_sign::SignOptions {
        key: &dev_key,
        algorithm: pvmkit_abi::avb::Algorithm::Sha256Rsa4096,
        partition_name: "vendor_boot",
        salt: &[7; 32],
        properties: &[],
        rollback_index: 0,
        release: "pvmkit e2e",
        ramdisks: &[],
    };
    let vendor = host_tools::avb_sign::add_hash_footer(&kernel, &options).unwrap();
    refused_payload(&write(&dir, "vendor.signed", &vendor), Refusal::PayloadDescriptors);
    let mut huge = kernel.clone();
    huge[16..24].copy_from_slice(&(1u64 << 30).to_le_bytes()); // image_size: 1 GiB
    let huge = host_tools::avb_sign::add_hash_footer(
        &huge,
        &host_tools::avb_sign::SignOptions { partition_name: "boot", ..options },
    )
    .unwrap();
    refused_payload(&write(&dir, "huge.signed", &huge), Refusal::PayloadPlacement);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pvmfw_verifies_the_ramdisk_against_the_kernels_descriptors() {
    let dir = scratch("ramdisk");
    let ramdisk = write(&dir, "ramdisk.bin", &[0x42; 10000]);
    let other = write(&dir, "other.bin", &[0x43; 10000]);
    let rd = ramdisk.to_str().unwrap();
    let (ok, out) = pvmkit(&["run", "--initrd", rd]);
    assert!(ok && out.contains("[pvmfw] ramdisk verified: initrd_normal"), "{out}");
    let (ok, out) = pvmkit(&["run", "--initrd", rd, "--initrd-name", "initrd_debug"]);
    assert!(ok && out.contains("initrd_debug: the payload is debuggable"), "{out}");
    // A kernel that vouches for both, as AVF's do: the ramdisk's bytes pick the one.
    let both = sign(
        &dir,
        "both.signed",
        &[
            "--initrd",
            rd,
            "--initrd-name",
            "initrd_normal",
            "--initrd",
            other.to_str().unwrap(),
            "--initrd-name",
            "initrd_debug",
        ],
    );
    let both = both.to_str().unwrap();
    let (ok, out) = pvmkit(&["run", "--signed-payload", both, "--initrd", other.to_str().unwrap()]);
    assert!(ok && out.contains("initrd_debug: the payload is debuggable"), "{out}");
    // A ramdisk that matches neither; one the kernel has no descriptor for; none at all.
    let tampered = write(&dir, "tampered.bin", &[0x44; 10000]);
    assert_refused(&["run", "--signed-payload", both, "--initrd", tampered.to_str().unwrap()], Refusal::Ramdisk);
    let plain = sign(&dir, "plain.signed", &[]);
    assert_refused(&["run", "--signed-payload", plain.to_str().unwrap(), "--initrd", rd], Refusal::Ramdisk);
    assert_refused(&["run", "--signed-payload", both], Refusal::Ramdisk);
    std::fs::remove_dir_all(&dir).ok();
}

/// An edit of pvmfw's configuration data.
type Edit = Box<dyn Fn(&mut [u8])>;

/// The bundle `pvmkit run` would boot, with pvmfw's configuration data edited.
fn bundle_with_config(dir: &Path, name: &str, extra: &[&str], edit: &dyn Fn(&mut [u8])) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["pack", "-o", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (ok, out) = pvmkit(&args);
    assert!(ok, "{out}");
    let mut bundle = std::fs::read(&path).unwrap();
    let entry = entry_mut(&mut bundle, EntryKind::Pvmfw).unwrap();
    let (offset, size) = (entry.offset.get() as usize, entry.size.get() as usize);
    let pvmfw = &mut bundle[offset..offset + size];
    // The configuration data: the last 4 KiB boundary that starts with its magic.
    let at = (0..pvmfw.len()).step_by(4096).rev().find(|&at| pvmfw[at..].starts_with(b"pvmf")).unwrap();
    edit(&mut pvmfw[at..]);
    std::fs::write(&path, &bundle).unwrap();
    path
}

#[test]
fn pvmfw_reads_the_configuration_data_first_and_refuses_it_malformed() {
    let dir = scratch("config");
    let run_bundle = |path: &Path| vec!["run".to_string(), "--bundle".into(), path.to_str().unwrap().into()];
    let set = |at: usize, value: u32| move |c: &mut [u8]| c[at..at + 4].copy_from_slice(&value.to_le_bytes());
    let cases: [(&str, Edit); 8] = [
        ("magic", Box::new(set(0, 0x1234_5678))),
        ("version", Box::new(set(4, 2 << 16))),
        ("size", Box::new(set(8, 0x7fff_ffff))),
        ("bounds", Box::new(set(20, 0x10_0000))), // entry 0's size runs past the data
        ("misaligned", Box::new(set(16, 52))),    // entry 0 at an offset not 8-aligned
        (
            "overlap",
            Box::new(|c: &mut [u8]| {
                // Entry 1 placed over entry 0.
                let entry0 = c[16..20].to_vec();
                c[24..28].copy_from_slice(&entry0);
                c[28..32].copy_from_slice(&8u32.to_le_bytes());
            }),
        ),
        ("no-handover", Box::new(set(20, 0))),
        ("handover", Box::new(|c: &mut [u8]| c[48] = 0xa2)), // not a map of three
    ];
    for (name, edit) in &cases {
        let path = bundle_with_config(&dir, &format!("{name}.bin"), &[], edit.as_ref());
        let args = run_bundle(&path);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&args, Refusal::ConfigData);
    }
    // Entries 1 and 2 are read and said not to be applied; the run goes on.
    let blob = write(&dir, "blob.dtbo", &[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 8]);
    let (ok, out) = pvmkit(&["run", "--debug-policy", blob.to_str().unwrap(), "--vm-dtbo", blob.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("[pvmfw] configuration data: debug policy (8 bytes) not applied"), "{out}");
    assert!(out.contains("[pvmfw] configuration data: VM DTBO (8 bytes) not applied"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A reference DT with one property at one node.
fn reference_dt(node: &str, property: &str, value: &[u8]) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let n = w.begin_node(node).unwrap();
    w.property(property, value).unwrap();
    w.end_node(n).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn pvmfw_holds_the_hosts_dt_to_the_reference_dt() {
    let dir = scratch("reference");
    let agrees = write(&dir, "agrees.dtb", &reference_dt("memory@80000000", "device_type", b"memory\0"));
    let (ok, out) = pvmkit(&["run", "--vm-reference-dt", agrees.to_str().unwrap()]);
    assert!(ok && out.contains("[pvmfw] the host's DT agrees with the VM reference DT"), "{out}");
    let differs = write(&dir, "differs.dtb", &reference_dt("memory@80000000", "device_type", b"storage\0"));
    assert_refused(&["run", "--vm-reference-dt", differs.to_str().unwrap()], Refusal::ReferenceDt);
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
    w.property_u64("kernel-address", pvmkit_abi::memory_map::PAYLOAD_BASE).unwrap();
    w.property_u64("kernel-size", spec.payload_size).unwrap();
    w.end_node(config).unwrap();
    let mem = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[spec.memory.0, spec.memory.1]).unwrap();
    w.end_node(mem).unwrap();
    // The bounce pool pvmfw reaches the instance disk through.
    let reserved = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let pool = w.begin_node("restricted_dma_reserved").unwrap();
    w.property_string("compatible", pvmkit_abi::memory_map::BOUNCE_POOL_COMPATIBLE).unwrap();
    let (base, size) = (pvmkit_abi::memory_map::BOUNCE_POOL_BASE, pvmkit_abi::memory_map::BOUNCE_POOL_SIZE);
    w.property_array_u64("reg", &[base, size]).unwrap();
    w.end_node(pool).unwrap();
    w.end_node(reserved).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    let cpu = w.begin_node("cpu@0").unwrap();
    w.property_string("device_type", "cpu").unwrap();
    w.property_u32("reg", 0).unwrap();
    w.end_node(cpu).unwrap();
    w.end_node(cpus).unwrap();
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
        virtio: &[28, 29, 30, 31],
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
    run_with("unexposed.dtb", &host_dt(&HostDt { virtio: &[0, 28, 29, 30, 31], ..good }), Refusal::DeviceNotExposed);
    let blob = host_dt(&good);
    run_with("truncated.dtb", &blob[..blob.len() / 2], Refusal::HostDtMalformed);
    let mut outside = blob.clone();
    outside[12..16].copy_from_slice(&0x00f0_0000u32.to_be_bytes()); // off_dt_strings far outside
    run_with("offsets.dtb", &outside, Refusal::HostDtMalformed);
    // A tree larger than the DT slot (2 MiB less 16 bytes: such a tree once reached
    // into what pvmfw wrote after it) is refused.
    let big = host_dt(&HostDt { padding: (2 << 20) - 16 - blob.len() - 16, ..good });
    assert!(big.len() > (2 << 20) - 64 && big.len() < 2 << 20, "{}", big.len());
    run_with("big.dtb", &big, Refusal::HostDtSlot);
    std::fs::remove_dir_all(&dir).ok();
}

/// pvmfw copies the host's DT before reading it: the largest tree it accepts boots the
/// payload as a small one does. And it takes its conduit and console from the platform,
/// never from that tree.
#[test]
fn pvmfw_takes_the_largest_tree_and_trusts_its_platform_not_the_tree() {
    let dir = scratch("layout");
    let signed = sign(&dir, "good.signed", &[]);
    let size = std::fs::metadata(&signed).unwrap().len();
    let spec = |psci, padding| HostDt {
        memory: (0x8000_0000, 256 << 20),
        console: 0x0900_0000,
        payload_size: size,
        virtio: &[28, 29, 30, 31],
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
        assert!(out.contains("test pvmfw_handover ... ok"), "{out}");
    };
    let max = pvmkit_abi::pvmfw::HOST_DT_MAX_SIZE as usize;
    let largest = host_dt(&spec("hvc", max - 4096));
    assert!(largest.len() <= max && largest.len() > max - 4096, "{}", largest.len());
    run("large.dtb", largest);
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
