//! virtio-blk: read, write, flush and get-ID, over a disk in the VMM's memory (fresh
//! each run) or over a block device of the host (`--disk`: QEMU's, so it persists).

use std::fs::File;
use std::os::unix::fs::FileExt;

use vm_memory::GuestMemoryMmap;

use super::{Buffer, Device};

/// Sector size.
pub const SECTOR: u64 = 512;
/// VIRTIO_BLK_F_FLUSH.
const F_FLUSH: u64 = 1 << 9;
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

    fn read_at(&self, at: u64, buf: &mut [u8]) -> bool {
        match self {
            Self::Memory(bytes) => {
                buf.copy_from_slice(&bytes[at as usize..at as usize + buf.len()]);
                true
            }
            Self::File(file, _) => file.read_exact_at(buf, at).is_ok(),
        }
    }

    fn write_at(&mut self, at: u64, data: &[u8]) -> bool {
        match self {
            Self::Memory(bytes) => {
                bytes[at as usize..at as usize + data.len()].copy_from_slice(data);
                true
            }
            Self::File(file, _) => file.write_all_at(data, at).is_ok(),
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

    fn request(&mut self, chain: &[Buffer], mem: &GuestMemoryMmap) -> (u8, u32) {
        let Some((header, rest)) = chain.split_first() else { return (S_IOERR, 0) };
        let Some(bytes) = header.read(mem).filter(|b| b.len() >= 16) else { return (S_IOERR, 0) };
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
                        let mut bytes = vec![0; buffer.len as usize];
                        if !self.disk.read_at(at, &mut bytes) {
                            return (S_IOERR, written);
                        }
                        written += buffer.write(mem, &bytes);
                    } else {
                        let Some(bytes) = buffer.read(mem) else { return (S_IOERR, written) };
                        if !self.disk.write_at(at, &bytes) {
                            return (S_IOERR, written);
                        }
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

impl Device for Block {
    fn device_id(&self) -> u32 {
        2
    }
    fn features(&self) -> u64 {
        F_FLUSH
    }
    fn queues(&self) -> usize {
        1
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // The capacity, in sectors, is the first field; nothing else is offered.
        let capacity = (self.disk.len() / SECTOR).to_le_bytes();
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = capacity.get(offset as usize + i).copied().unwrap_or(0);
        }
    }
    fn serve(&mut self, _: usize, chain: &[Buffer], mem: &GuestMemoryMmap) -> u32 {
        let (status, written) = self.request(chain, mem);
        match chain.last().filter(|b| b.write && chain.len() > 1) {
            Some(last) => written + last.write(mem, &[status]),
            None => written,
        }
    }
}
