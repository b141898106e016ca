//! The virtio devices `pvmkit` gives a guest, as QEMU's real devices: a block device
//! on a disk image, an entropy source, a console whose host end is a pair of FIFOs
//! `pvmkit` writes to and reads from, and, when pvmfw boots the guest, the instance
//! disk pvmfw keeps its record on (`pvmkit_abi::instance_disk`; pvmfw takes that transport out
//! of the payload's DT).
//!
//! QEMU `virt` gives the first `-device` the last virtio-mmio transport, the next one
//! the one below it, and so on; [`VIRTIO_SLOTS`] says which the guest is given.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pvmkit_abi::memory_map::VIRTIO_MMIO_SLOTS;

/// The disk a guest gets when it brings none: 8 MiB.
pub const DISK_SIZE: u64 = 8 << 20;
/// What `pvmkit` sends the guest on the virtio console.
pub const CONSOLE_TO_GUEST: &[u8] = b"pvmkit says hello\n";
/// The transports the guest is given: block (last), entropy, console (serial bus).
pub const VIRTIO_SLOTS: u32 =
    (1 << (VIRTIO_MMIO_SLOTS - 1)) | (1 << (VIRTIO_MMIO_SLOTS - 2)) | (1 << (VIRTIO_MMIO_SLOTS - 3));
/// The instance disk's transport: the one below the console's.
pub const INSTANCE_SLOT: u32 = VIRTIO_MMIO_SLOTS - 4;
/// The instance disk's size: its header, pvmfw's record and room to grow.
pub const INSTANCE_DISK_SIZE: u64 = 64 << 10;

/// The transports of a run: [`VIRTIO_SLOTS`], and the instance disk's when pvmfw boots
/// the guest.
pub const fn virtio_slots(instance_disk: bool) -> u32 {
    if instance_disk {
        VIRTIO_SLOTS | (1 << INSTANCE_SLOT)
    } else {
        VIRTIO_SLOTS
    }
}

/// A new instance disk: [`INSTANCE_DISK_SIZE`] bytes, the header with a random disk id,
/// no record yet (as AVF's host creates `instance.img`).
pub fn instance_disk_image() -> Result<Vec<u8>, String> {
    let id = crate::signing::random(pvmkit_abi::instance_disk::DISK_ID_SIZE)?;
    let id = id.try_into().map_err(|_| "the disk id is not 32 bytes")?;
    let mut disk = vec![0u8; INSTANCE_DISK_SIZE as usize];
    disk[..pvmkit_abi::instance_disk::SECTOR_SIZE].copy_from_slice(&pvmkit_abi::instance_disk::header(&id));
    Ok(disk)
}

/// Creates the instance disk `path` ([`instance_disk_image`]) unless it exists.
pub fn create_instance_disk(path: &Path) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    std::fs::write(path, instance_disk_image()?)
        .map_err(|e| format!("writing the instance disk {}: {e}", path.display()))
}

const O_NONBLOCK: i32 = 0o4000;

/// Creates `disk` ([`DISK_SIZE`], zero) unless it exists.
pub fn create_disk(disk: &Path) -> Result<(), String> {
    if !disk.exists() {
        let file = File::create(disk).map_err(|e| format!("creating {}: {e}", disk.display()))?;
        file.set_len(DISK_SIZE).map_err(|e| format!("sizing {}: {e}", disk.display()))?;
    }
    Ok(())
}

/// The host ends of one run's devices.
pub struct Devices {
    disk: PathBuf,
    instance: Option<PathBuf>,
    fifo: PathBuf,
    console_out: File,
    _console_in: File,
}

impl Devices {
    /// Creates the disk (unless `disk` names one to keep), the instance disk when
    /// `instance` asks for one (`Some(None)`: a fresh one in `dir`; `Some(Some(path))`:
    /// that one, kept) and the console FIFOs in `dir`, and queues [`CONSOLE_TO_GUEST`]
    /// for the guest.
    pub fn create(dir: &Path, disk: Option<&Path>, instance: Option<Option<&Path>>) -> Result<Self, String> {
        let disk = match disk {
            Some(disk) => disk.to_path_buf(),
            None => dir.join("disk.img"),
        };
        create_disk(&disk)?;
        let instance = instance.map(|kept| kept.map_or_else(|| dir.join("instance.img"), Path::to_path_buf));
        if let Some(path) = &instance {
            create_instance_disk(path)?;
        }
        let fifo = dir.join("virtio-console");
        let open = |suffix: &str| -> Result<File, String> {
            let path = fifo.with_extension(suffix);
            if !path.exists() {
                let ok = Command::new("mkfifo").arg(&path).status().is_ok_and(|s| s.success());
                if !ok {
                    return Err(format!("mkfifo {} failed", path.display()));
                }
            }
            // Read-write and non-blocking: opening never waits for QEMU, and the pipe
            // stays open while QEMU comes and goes.
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(O_NONBLOCK)
                .open(&path)
                .map_err(|e| format!("opening {}: {e}", path.display()))
        };
        let mut console_in = open("in")?;
        let console_out = open("out")?;
        console_in.write_all(CONSOLE_TO_GUEST).map_err(|e| format!("writing the console FIFO: {e}"))?;
        Ok(Self { disk, instance, fifo, console_out, _console_in: console_in })
    }

    /// QEMU arguments for the devices, in slot order.
    pub fn qemu_args(&self) -> Vec<String> {
        let disk = format!("file={},if=none,format=raw,id=disk0", self.disk.display());
        let console = format!("pipe,id=vcon0,path={}", self.fifo.display());
        let instance = self.instance.iter().flat_map(|path| {
            let drive = format!("file={},if=none,format=raw,id=instance0", path.display());
            ["-drive".to_string(), drive, "-device".into(), "virtio-blk-device,drive=instance0".into()]
        });
        let args: Vec<String> = [
            "-global",
            "virtio-mmio.force-legacy=false",
            "-drive",
            &disk,
            "-device",
            "virtio-blk-device,drive=disk0",
            "-device",
            "virtio-rng-device",
            "-chardev",
            &console,
            "-device",
            // One port: without MULTIPORT the console has two queues (a Linux guest
            // would otherwise set up 64, beyond what hyp shadows).
            "virtio-serial-device,max_ports=1",
            "-device",
            "virtconsole,chardev=vcon0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.into_iter().chain(instance).collect()
    }

    /// What the guest wrote to its console (call after QEMU has exited).
    pub fn console_output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = self.console_out.read(&mut chunk) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_disk_and_the_fifos_and_names_them_for_qemu() {
        let dir = std::env::temp_dir().join(format!("pvmkit-devices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut devices = Devices::create(&dir, None, Some(None)).unwrap();
        assert_eq!(std::fs::metadata(dir.join("disk.img")).unwrap().len(), DISK_SIZE);
        let args = devices.qemu_args().join(" ");
        assert!(args.contains("virtio-blk-device") && args.contains("virtconsole,chardev=vcon0"), "{args}");
        assert!(args.find("virtio-blk-device") < args.find("virtio-rng-device"), "block takes the last slot");
        assert!(args.rfind("drive=instance0") > args.find("virtconsole"), "the instance disk comes fourth");
        let instance = std::fs::read(dir.join("instance.img")).unwrap();
        assert_eq!(instance.len() as u64, INSTANCE_DISK_SIZE);
        let id = pvmkit_abi::instance_disk::read_header(instance[..512].try_into().unwrap()).unwrap();
        assert_ne!(id, [0; 32], "a random disk id");
        assert!(instance[512..].iter().all(|&b| b == 0), "no record yet");
        // A kept instance disk is not rewritten.
        create_instance_disk(&dir.join("instance.img")).unwrap();
        assert_eq!(std::fs::read(dir.join("instance.img")).unwrap(), instance);
        // The FIFO carries the guest's bytes back to us.
        let mut out = OpenOptions::new().write(true).open(dir.join("virtio-console.out")).unwrap();
        out.write_all(b"from the guest").unwrap();
        assert_eq!(devices.console_output(), b"from the guest");
        // The host's message waits in the input FIFO.
        let mut input =
            OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(dir.join("virtio-console.in")).unwrap();
        let mut buf = [0u8; 64];
        let n = input.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], CONSOLE_TO_GUEST);
        assert_eq!(VIRTIO_SLOTS, 0xe000_0000);
        assert_eq!((virtio_slots(false), virtio_slots(true)), (0xe000_0000, 0xf000_0000));
        std::fs::remove_dir_all(&dir).ok();
    }
}
