//! The VM's virtio devices, as the VMM emulates them on the pkvm backend: modern
//! virtio-mmio transports ([`transport`]) in front of a block device, an entropy source
//! and a console — the devices test-guest finds under hyp (QEMU's), at the same
//! addresses. Queues are rust-vmm's `virtio-queue`; every request is served when the
//! guest notifies, before its vCPU runs again, so a guest that polls needs no interrupt.
//!
//! Guest memory is touched only through the memslot mapping (`vm-memory`; the devices
//! take any `GuestMemory`, as rust-vmm's do, the VMM a `GuestMemoryMmap` of the
//! memslot): a page the guest has not shared faults, and [`crate::watch`] turns that fault into a violation
//! naming the device, queue and descriptor being served.

pub mod block;
pub mod console;
pub mod entropy;
pub mod transport;

use pvmkit_abi::address::Ipa;
use pvmkit_abi::virtio_mmio::BufferRole;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

use crate::watch;

/// VIRTIO_F_VERSION_1: every device here is modern.
pub const VERSION_1: u64 = 1 << 32;
/// VIRTIO_F_ACCESS_PLATFORM: the device reaches memory through the platform's DMA rules,
/// so the driver must use its DMA API (a pKVM guest: the restricted pool it shares).
/// Offered to protected VMs; without it Linux puts rings in private memory.
pub const ACCESS_PLATFORM: u64 = 1 << 33;

/// What a device does with its queues, in guest memory of type `M`.
pub trait Device<M: GuestMemory>: Send {
    /// The virtio device ID.
    fn device_id(&self) -> u32;
    /// The device's own feature bits (VERSION_1 is added by the transport).
    fn features(&self) -> u64;
    /// How many queues it has.
    fn queues(&self) -> usize;
    /// Reads its configuration space at `offset`.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Serves one request (a descriptor chain of `queue`); returns the bytes it wrote.
    fn serve(&mut self, queue: usize, chain: &[Buffer], mem: &M) -> u32;
    /// Whether the device takes a request from `queue` now. A console's receive queue
    /// keeps its buffers until there is input for them.
    fn takes(&self, _queue: usize) -> bool {
        true
    }
    /// What the guest sent to the host, for a console.
    fn received(&self) -> Option<&[u8]> {
        None
    }
    /// What the guest sent beyond what the device keeps, in bytes.
    fn dropped(&self) -> u64 {
        0
    }
}

/// One descriptor of a chain: where, how long, whether the device writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// The descriptor's index (named in violations).
    pub index: u16,
    /// Guest address.
    pub addr: Ipa,
    /// Length.
    pub len: u32,
    /// The device writes it (else reads).
    pub write: bool,
    /// Which part of its request it is (named in a violation), when known.
    pub role: Option<BufferRole>,
}

impl Buffer {
    /// Where it starts, as vm-memory addresses guest memory.
    fn start(&self) -> GuestAddress {
        GuestAddress(self.addr.get())
    }

    /// Whether the whole buffer lies in guest memory. Checked before anything is
    /// allocated for it: a descriptor's length is the guest's to choose (up to 4 GiB).
    pub fn in_memory(&self, mem: &impl GuestMemory) -> bool {
        let access = if self.write { Permissions::Write } else { Permissions::Read };
        mem.check_range(self.start(), self.len as usize, access)
    }

    /// Reads the whole buffer from guest memory, or `None` if it is not all there.
    pub fn read(&self, mem: &impl GuestMemory) -> Option<Vec<u8>> {
        self.read_prefix(mem, self.len as usize)
    }

    /// Reads the buffer's first `max` bytes (or all of it, if shorter) from guest memory,
    /// or `None` if the buffer is not all there.
    pub fn read_prefix(&self, mem: &impl GuestMemory, max: usize) -> Option<Vec<u8>> {
        if !self.in_memory(mem) {
            return None;
        }
        watch::descriptor(Some(self.index), self.role);
        let mut data = vec![0; max.min(self.len as usize)];
        mem.read_slice(&mut data, self.start()).ok().map(|()| data)
    }

    /// Reads the whole buffer from guest memory into `dst` (its length); `false` if the
    /// buffer is not all in guest memory.
    pub fn read_into(&self, mem: &impl GuestMemory, dst: &mut [u8]) -> bool {
        if !self.in_memory(mem) || dst.len() != self.len as usize {
            return false;
        }
        watch::descriptor(Some(self.index), self.role);
        mem.read_slice(dst, self.start()).is_ok()
    }

    /// Writes `data` (at most the buffer's length) at the buffer's start; returns the
    /// bytes written.
    pub fn write(&self, mem: &impl GuestMemory, data: &[u8]) -> u32 {
        watch::descriptor(Some(self.index), self.role);
        let n = data.len().min(self.len as usize);
        match mem.write_slice(&data[..n], self.start()) {
            Ok(()) => n as u32,
            Err(_) => 0,
        }
    }
}

/// A chain the VMM will not serve: the device errs, and the VM ends naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The queue.
    pub queue: u32,
    /// The descriptor where it went wrong, when one did.
    pub descriptor: Option<u16>,
    /// What was wrong.
    pub what: &'static str,
}

/// Descriptor flags.
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

/// The chain from `head` in the descriptor table at `table` of a queue of `size`: each
/// descriptor read from guest memory as it lies there. Refused: a descriptor naming an
/// indirect table (VIRTIO_F_INDIRECT_DESC is never offered), an index beyond the
/// queue, and a chain longer than the queue (a loop among them) — never cut short and
/// served.
fn chain(mem: &impl GuestMemory, queue: u32, table: u64, size: u16, head: u16) -> Result<Vec<Buffer>, Refused> {
    let refused = |descriptor, what| Refused { queue, descriptor: Some(descriptor), what };
    let mut buffers = Vec::new();
    let mut index = head;
    loop {
        if index >= size {
            return Err(refused(index, "descriptor index beyond the queue"));
        }
        if buffers.len() == usize::from(size) {
            return Err(refused(index, "descriptor chain longer than the queue"));
        }
        let mut raw = [0u8; 16];
        watch::descriptor(None, None);
        let at = table.checked_add(16 * u64::from(index)).ok_or(refused(index, "descriptor table wraps"))?;
        mem.read_slice(&mut raw, GuestAddress(at))
            .map_err(|_| refused(index, "descriptor table outside guest memory"))?;
        let field = |range: core::ops::Range<usize>| raw[range].iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b));
        let (addr, len, flags, next) = (field(0..8), field(8..12) as u32, field(12..14) as u16, field(14..16) as u16);
        if flags & F_INDIRECT != 0 {
            return Err(refused(index, "indirect descriptor (VIRTIO_F_INDIRECT_DESC not offered)"));
        }
        buffers.push(Buffer { index, addr: Ipa(addr), len, write: flags & F_WRITE != 0, role: None });
        if flags & F_NEXT == 0 {
            return Ok(buffers);
        }
        index = next;
    }
}

/// Serves every chain the guest has made available on `queue` with `device`; returns
/// how many it completed, or the chain it refused ([`Refused`]).
pub fn serve_queue<M: GuestMemory>(
    device: &mut dyn Device<M>,
    index: usize,
    queue: &mut Queue,
    mem: &M,
) -> Result<usize, Refused> {
    let mut done = 0;
    let (table, size) = (queue.desc_table(), queue.size());
    while device.takes(index) {
        watch::descriptor(None, None);
        let Some(popped) = queue.pop_descriptor_chain(mem) else { break };
        let head = popped.head_index();
        let mut buffers = chain(mem, index as u32, table, size, head)?;
        let (id, count) = (device.device_id(), buffers.len());
        for (position, buffer) in buffers.iter_mut().enumerate() {
            buffer.role = BufferRole::of(id, position, position + 1 == count);
        }
        let written = device.serve(index, &buffers, mem);
        watch::descriptor(None, None);
        if queue.add_used(mem, head, written).is_err() {
            break;
        }
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
