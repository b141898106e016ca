//! hyp's virtio device side: it stands between the guest's virtio-mmio driver and
//! QEMU's real device, forwarding register accesses but owning everything that gives
//! the device an address.
//!
//! In a protected VM the guest's rings must lie in shared pages; on every notify hyp
//! reads the guest's available ring and descriptor chains through [`SharedAccess`]
//! (which refuses any page that is not shared), validates every buffer, pins its pages,
//! and hands QEMU's device *shadow* rings in hyp's own memory that hold only validated
//! descriptors. Completions are copied back to the guest's used ring and the pages
//! unpinned. QEMU's virtio-mmio devices sit behind no IOMMU, so this shadowing is what
//! keeps a private address from ever reaching them. Any violation stops the VM.
//!
//! In an unprotected VM everything is forwarded unchanged: the baseline.

mod queue;
mod transport;

pub use queue::{Desc, QueueState, ShadowQueue, MAX_QUEUE_SIZE};
pub use transport::{find_transport, AccessError, VirtioDevice, MAX_QUEUES, NOTIFY_WAIT_POLLS};

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::pkvm::ownership::Ownership;

/// virtio-mmio register offsets (declared once, in `abi`).
pub use pvmkit_abi::virtio_mmio as regs;

/// Feature bits hyp never lets a protected VM negotiate: indirect descriptors (a
/// table the device would read that hyp has not shadowed), event indices and packed
/// rings (ring layouts hyp does not shadow).
pub const HIDDEN_FEATURES: u64 = (1 << 28) | (1 << 29) | (1 << 34);

/// VIRTIO_F_ACCESS_PLATFORM: the device reaches memory only as the platform allows,
/// so the driver must use the platform's DMA API (for a Linux pVM: its restricted
/// pool). A protected VM's devices offer it.
pub const ACCESS_PLATFORM: u64 = 1 << 33;

/// A broken rule: which guest IPA, which queue and descriptor, and what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The guest IPA involved (0 when no address is).
    pub ipa: Ipa,
    /// The queue.
    pub queue: u32,
    /// The descriptor index, when one is involved.
    pub descriptor: Option<u16>,
    /// Which part of its request the descriptor's buffer is, when known.
    pub buffer: Option<BufferRole>,
    /// What was wrong.
    pub what: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipa={} queue={}", self.ipa, self.queue)?;
        if let Some(d) = self.descriptor {
            write!(f, " desc={d}")?;
        }
        if let Some(role) = self.buffer {
            write!(f, " buffer={}", role.name())?;
        }
        write!(f, " what=\"{}\"", self.what)
    }
}

/// The real device's registers (hyp: volatile accesses at the transport's PA; tests: a
/// fake device).
pub trait DeviceRegs {
    /// Reads `width` bytes at `offset` from the transport's base.
    fn read(&mut self, offset: u64, width: u8) -> u64;
    /// Writes `width` bytes at `offset`.
    fn write(&mut self, offset: u64, width: u8, value: u64);
}

/// Raw guest RAM (hyp: the identity map; tests: a buffer). Only [`SharedAccess`] uses it.
pub trait GuestRam {
    /// Copies guest memory at `ipa` into `buf`. The caller has checked the range.
    fn read(&self, ipa: Ipa, buf: &mut [u8]);
    /// Copies `buf` into guest memory at `ipa`. The caller has checked the range.
    fn write(&mut self, ipa: Ipa, buf: &[u8]);
}

/// The one way the device side touches guest memory: every access is checked against
/// the ownership table first, and refused unless every page it touches is shared.
pub struct SharedAccess<'a, R: GuestRam> {
    ownership: &'a Ownership<'a>,
    ram: &'a mut R,
}

/// Guest physical addresses (intermediate physical, = PA under hyp's identity map).
pub use pvmkit_abi::address::{Ipa, Page};
pub use pvmkit_abi::virtio_mmio::BufferRole;

/// An access to a page that is not shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotShared(pub Page);

impl<'a, R: GuestRam> SharedAccess<'a, R> {
    /// Checked access through `ownership` to `ram`.
    pub fn new(ownership: &'a Ownership<'a>, ram: &'a mut R) -> Self {
        Self { ownership, ram }
    }

    /// The ownership table.
    pub fn ownership(&self) -> &Ownership<'a> {
        self.ownership
    }

    /// Reads `buf.len()` bytes at `ipa`, if every page is shared.
    pub fn read(&self, ipa: Ipa, buf: &mut [u8]) -> Result<(), NotShared> {
        if let Some(page) = self.ownership.first_unshared(ipa, buf.len() as u64) {
            return Err(NotShared(page));
        }
        self.ram.read(ipa, buf);
        Ok(())
    }

    /// Writes `buf` at `ipa`, if every page is shared.
    pub fn write(&mut self, ipa: Ipa, buf: &[u8]) -> Result<(), NotShared> {
        if let Some(page) = self.ownership.first_unshared(ipa, buf.len() as u64) {
            return Err(NotShared(page));
        }
        self.ram.write(ipa, buf);
        Ok(())
    }

    /// Reads a `T` (a ring's wire type) at `ipa`, if every page it spans is shared.
    pub fn read_obj<T: FromBytes + IntoBytes>(&self, ipa: Ipa) -> Result<T, NotShared> {
        let mut value = T::new_zeroed();
        self.read(ipa, value.as_mut_bytes())?;
        Ok(value)
    }

    /// Writes a `T` at `ipa`, if every page it spans is shared.
    pub fn write_obj<T: IntoBytes + Immutable>(&mut self, ipa: Ipa, value: &T) -> Result<(), NotShared> {
        self.write(ipa, value.as_bytes())
    }
}

#[cfg(test)]
mod tests;
