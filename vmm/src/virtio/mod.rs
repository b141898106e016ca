//! The VM's virtio devices, as the VMM emulates them on the pkvm backend: modern
//! virtio-mmio transports ([`transport`]) in front of a block device, an entropy source
//! and a console — the devices test-guest finds under hyp (QEMU's), at the same
//! addresses. Queues are rust-vmm's `virtio-queue`; every request is served when the
//! guest notifies, before its vCPU runs again, so a guest that polls needs no interrupt.
//!
//! Guest memory is touched only through the memslot mapping (`vm-memory`): a page the
//! guest has not shared faults, and [`crate::watch`] turns that fault into a violation
//! naming the device, queue and descriptor being served.

pub mod block;
pub mod console;
pub mod entropy;
pub mod transport;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::watch;

/// VIRTIO_F_VERSION_1: every device here is modern.
pub const VERSION_1: u64 = 1 << 32;
/// VIRTIO_F_ACCESS_PLATFORM: the device reaches memory through the platform's DMA rules,
/// so the driver must use its DMA API (a pKVM guest: the restricted pool it shares).
/// Offered to protected VMs; without it Linux puts rings in private memory.
pub const ACCESS_PLATFORM: u64 = 1 << 33;

/// What a device does with its queues.
pub trait Device: Send {
    /// The virtio device ID.
    fn device_id(&self) -> u32;
    /// The device's own feature bits (VERSION_1 is added by the transport).
    fn features(&self) -> u64;
    /// How many queues it has.
    fn queues(&self) -> usize;
    /// Reads its configuration space at `offset`.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Serves one request (a descriptor chain of `queue`); returns the bytes it wrote.
    fn serve(&mut self, queue: usize, chain: &[Buffer], mem: &GuestMemoryMmap) -> u32;
    /// Whether the device takes a request from `queue` now. A console's receive queue
    /// keeps its buffers until there is input for them.
    fn takes(&self, _queue: usize) -> bool {
        true
    }
    /// What the guest sent to the host, for a console.
    fn received(&self) -> Option<&[u8]> {
        None
    }
}

/// One descriptor of a chain: where, how long, whether the device writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// The descriptor's index (named in violations).
    pub index: u16,
    /// Guest address.
    pub addr: u64,
    /// Length.
    pub len: u32,
    /// The device writes it (else reads).
    pub write: bool,
}

impl Buffer {
    /// Whether the whole buffer lies in guest memory. Checked before anything is
    /// allocated for it: a descriptor's length is the guest's to choose (up to 4 GiB).
    pub fn in_memory(&self, mem: &GuestMemoryMmap) -> bool {
        mem.check_range(GuestAddress(self.addr), self.len as usize)
    }

    /// Reads the whole buffer from guest memory, or `None` if it is not all there.
    pub fn read(&self, mem: &GuestMemoryMmap) -> Option<Vec<u8>> {
        if !self.in_memory(mem) {
            return None;
        }
        watch::descriptor(Some(self.index));
        let mut data = vec![0; self.len as usize];
        mem.read_slice(&mut data, GuestAddress(self.addr)).ok().map(|()| data)
    }

    /// Reads the whole buffer from guest memory into `dst` (its length); `false` if the
    /// buffer is not all in guest memory.
    pub fn read_into(&self, mem: &GuestMemoryMmap, dst: &mut [u8]) -> bool {
        if !self.in_memory(mem) || dst.len() != self.len as usize {
            return false;
        }
        watch::descriptor(Some(self.index));
        mem.read_slice(dst, GuestAddress(self.addr)).is_ok()
    }

    /// Writes `data` (at most the buffer's length) at the buffer's start; returns the
    /// bytes written.
    pub fn write(&self, mem: &GuestMemoryMmap, data: &[u8]) -> u32 {
        watch::descriptor(Some(self.index));
        let n = data.len().min(self.len as usize);
        match mem.write_slice(&data[..n], GuestAddress(self.addr)) {
            Ok(()) => n as u32,
            Err(_) => 0,
        }
    }
}

/// Serves every chain the guest has made available on `queue` with `device`; returns
/// how many it completed. A chain the queue cannot walk (a bad index, a loop) ends the
/// walk: the guest gets nothing for it.
pub fn serve_queue(device: &mut dyn Device, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> usize {
    let mut done = 0;
    while device.takes(index) {
        watch::descriptor(None);
        let Some(chain) = queue.pop_descriptor_chain(mem) else { break };
        let head = chain.head_index();
        let mut buffers = Vec::new();
        let mut next = head;
        for desc in chain {
            buffers.push(Buffer { index: next, addr: desc.addr().0, len: desc.len(), write: desc.is_write_only() });
            next = desc.next();
        }
        let written = device.serve(index, &buffers, mem);
        watch::descriptor(None);
        if queue.add_used(mem, head, written).is_err() {
            break;
        }
        done += 1;
    }
    done
}

#[cfg(test)]
mod tests;
