//! virtio-blk: read, write, flush and get-ID, over a disk in the VMM's memory (fresh
//! each run) or over a block device of the host (`--disk`: QEMU's, so it persists).

use std::fs::File;
use std::os::unix::fs::FileExt;

use vm_memory::GuestMemory;

use super::{Buffer, Device};

/// Sector size.
pub const SECTOR: u64 = 512;
/// VIRTIO_BLK_F_FLUSH.
const F_FLUSH: u64 = 1 << 9;
/// VIRTIO_BLK_F_SEG_MAX: `seg_max` says how many data buffers a request may have
/// (without it Linux sends one page per request).
const F_SEG_MAX: u64 = 1 << 2;
/// The data buffers a request may have (a 1 MiB request in 4 KiB pages, with room).
const SEG_MAX: u32 = 254;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

/// Where the sectors are.
pub enum Disk {
    /// In the VMM's memory.
    Memory(Vec<u8>),
    /// A file or block device of the host, this many bytes long.
    File(File, u64),
}

impl Disk {
    fn len(&self) -> u64 {
        match self {
            Self::Memory(bytes) => bytes.len() as u64,
            Self::File(_, len) => *len,
        }
    }

    /// Reads `buffer.len` bytes at `at` into the guest's `buffer` (the caller checked
    /// both ranges); returns the bytes written to the guest, `None` on a disk error. A
    /// disk in memory is copied straight into guest memory, once, as a device's DMA
    /// would move it, so that the bench does not charge the device for copies of ours.
    fn read_into_guest(&self, at: u64, buffer: &Buffer, mem: &impl GuestMemory) -> Option<u32> {
        let (at, len) = (at as usize, buffer.len as usize);
        match self {
            Self::Memory(bytes) => Some(buffer.write(mem, &bytes[at..at + len])),
            Self::File(file, _) => {
                let mut data = vec![0; len];
                file.read_exact_at(&mut data, at as u64).ok()?;
                Some(buffer.write(mem, &data))
            }
        }
    }

    /// Writes the guest's `buffer` to the disk at `at` (the caller checked both ranges);
    /// `false` on an error.
    fn write_from_guest(&mut self, at: u64, buffer: &Buffer, mem: &impl GuestMemory) -> bool {
        let (at, len) = (at as usize, buffer.len as usize);
        match self {
            Self::Memory(bytes) => buffer.read_into(mem, &mut bytes[at..at + len]),
            Self::File(file, _) => buffer.read(mem).is_some_and(|data| file.write_all_at(&data, at as u64).is_ok()),
        }
    }

    fn flush(&self) -> bool {
        match self {
            Self::Memory(_) => true,
            Self::File(file, _) => file.sync_data().is_ok(),
        }
    }
}

/// A block device on `disk`.
pub struct Block {
    disk: Disk,
}

impl Block {
    /// A device on a disk in memory holding `disk` (a whole number of sectors).
    pub fn new(disk: Vec<u8>) -> Self {
        Self { disk: Disk::Memory(disk) }
    }

    /// A device on `disk`.
    pub fn on(disk: Disk) -> Self {
        Self { disk }
    }

    fn request(&mut self, chain: &[Buffer], mem: &impl GuestMemory) -> (u8, u32) {
        let Some((header, rest)) = chain.split_first() else { return (S_IOERR, 0) };
        // The header is the driver's to write: a device-writable one is no request.
        if header.write {
            return (S_IOERR, 0);
        }
        let Some(bytes) = header.read_prefix(mem, 16).filter(|b| b.len() >= 16) else { return (S_IOERR, 0) };
        let kind = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let mut sector = [0u8; 8];
        sector.copy_from_slice(&bytes[8..16]);
        let mut at = u64::from_le_bytes(sector).saturating_mul(SECTOR);
        let data = &rest[..rest.len().saturating_sub(1)];
        let mut written = 0;
        match kind {
            T_IN | T_OUT => {
                for buffer in data {
                    let end = at.saturating_add(u64::from(buffer.len));
                    if end > self.disk.len() || buffer.write != (kind == T_IN) || !buffer.in_memory(mem) {
                        return (S_IOERR, written);
                    }
                    if kind == T_IN {
                        let Some(n) = self.disk.read_into_guest(at, buffer, mem) else { return (S_IOERR, written) };
                        written += n;
                    } else if !self.disk.write_from_guest(at, buffer, mem) {
                        return (S_IOERR, written);
                    }
                    at = end;
                }
                (S_OK, written)
            }
            T_FLUSH if self.disk.flush() => (S_OK, 0),
            T_FLUSH => (S_IOERR, 0),
            T_GET_ID => {
                let id = b"pvmkit-vmm-disk";
                (S_OK, data.iter().find(|b| b.write).map_or(0, |b| b.write(mem, id)))
            }
            _ => (S_UNSUPP, 0),
        }
    }
}

impl<M: GuestMemory> Device<M> for Block {
    fn device_id(&self) -> u32 {
        2
    }
    fn features(&self) -> u64 {
        F_FLUSH | F_SEG_MAX
    }
    fn queues(&self) -> usize {
        1
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // The capacity in sectors (offset 0), size_max (8, not offered) and seg_max (12).
        let mut config = [0u8; 16];
        config[..8].copy_from_slice(&(self.disk.len() / SECTOR).to_le_bytes());
        config[12..].copy_from_slice(&SEG_MAX.to_le_bytes());
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = config.get(offset as usize + i).copied().unwrap_or(0);
        }
    }
    fn serve(&mut self, _: usize, chain: &[Buffer], mem: &M) -> u32 {
        let (status, written) = self.request(chain, mem);
        match chain.last().filter(|b| b.write && chain.len() > 1) {
            Some(last) => written + last.write(mem, &[status]),
            None => written,
        }
    }
}
