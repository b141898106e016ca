//! The virtio devices `pvmkit` gives a guest, as QEMU's real devices: a block device
//! on a disk image, an entropy source, and a console whose host end is a pair of FIFOs
//! `pvmkit` writes to and reads from.
//!
//! QEMU `virt` gives the first `-device` the last virtio-mmio transport, the next one
//! the one below it, and so on; [`VIRTIO_SLOTS`] says which the guest is given.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use abi::memory_map::VIRTIO_MMIO_SLOTS;

/// The disk a guest gets when it brings none: 8 MiB.
pub const DISK_SIZE: u64 = 8 << 20;
/// What `pvmkit` sends the guest on the virtio console.
pub const CONSOLE_TO_GUEST: &[u8] = b"pvmkit says hello\n";
/// The transports the guest is given: block (last), entropy, console (serial bus).
pub const VIRTIO_SLOTS: u32 =
    (1 << (VIRTIO_MMIO_SLOTS - 1)) | (1 << (VIRTIO_MMIO_SLOTS - 2)) | (1 << (VIRTIO_MMIO_SLOTS - 3));

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
    fifo: PathBuf,
    console_out: File,
    _console_in: File,
}

impl Devices {
    /// Creates the disk (unless `disk` names one to keep) and the console FIFOs in
    /// `dir`, and queues [`CONSOLE_TO_GUEST`] for the guest.
    pub fn create(dir: &Path, disk: Option<&Path>) -> Result<Self, String> {
        let disk = match disk {
            Some(disk) => disk.to_path_buf(),
            None => dir.join("disk.img"),
        };
        create_disk(&disk)?;
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
        Ok(Self { disk, fifo, console_out, _console_in: console_in })
    }

    /// QEMU arguments for the devices, in slot order.
    pub fn qemu_args(&self) -> Vec<String> {
        let disk = format!("file={},if=none,format=raw,id=disk0", self.disk.display());
        let console = format!("pipe,id=vcon0,path={}", self.fifo.display());
        [
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
        .collect()
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
        let mut devices = Devices::create(&dir, None).unwrap();
        assert_eq!(std::fs::metadata(dir.join("disk.img")).unwrap().len(), DISK_SIZE);
        let args = devices.qemu_args().join(" ");
        assert!(args.contains("virtio-blk-device") && args.contains("virtconsole,chardev=vcon0"), "{args}");
        assert!(args.find("virtio-blk-device") < args.find("virtio-rng-device"), "block takes the last slot");
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
        std::fs::remove_dir_all(&dir).ok();
    }
}
