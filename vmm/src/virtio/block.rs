//! virtio-blk over a disk held in the VMM's memory: read, write, flush and get-ID.

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

/// A block device on `disk`.
pub struct Block {
    disk: Vec<u8>,
}

impl Block {
    /// A device whose disk holds `disk` (a whole number of sectors).
    pub fn new(disk: Vec<u8>) -> Self {
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
                    if end > self.disk.len() as u64 || buffer.write != (kind == T_IN) {
                        return (S_IOERR, written);
                    }
                    let range = at as usize..end as usize;
                    if kind == T_IN {
                        written += buffer.write(mem, &self.disk[range]);
                    } else {
                        let Some(bytes) = buffer.read(mem) else { return (S_IOERR, written) };
                        self.disk[range].copy_from_slice(&bytes);
                    }
                    at = end;
                }
                (S_OK, written)
            }
            T_FLUSH => (S_OK, 0),
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
        let capacity = (self.disk.len() as u64 / SECTOR).to_le_bytes();
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
