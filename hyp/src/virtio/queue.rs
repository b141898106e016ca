//! One virtqueue: the guest's rings (checked, pinned) and the shadow rings QEMU's
//! device is given, and the two moves between them: `notify` (guest → device, every
//! descriptor validated) and `collect` (device → guest, completions copied back and
//! their pages unpinned).

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{fence, Ordering};

use super::{GuestRam, SharedAccess, Violation};
use crate::ownership::{Ownership, GRANULE};

/// The largest queue hyp shadows (it reports at most this in QueueNumMax).
pub const MAX_QUEUE_SIZE: usize = 256;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;
const NONE: u16 = u16::MAX;

/// A split-ring descriptor.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Buffer address (guest IPA = PA).
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// NEXT, WRITE, INDIRECT.
    pub flags: u16,
    /// Next descriptor when NEXT is set.
    pub next: u16,
}

impl Desc {
    fn from_bytes(b: &[u8; 16]) -> Self {
        let mut addr = [0u8; 8];
        addr.copy_from_slice(&b[0..8]);
        Self {
            addr: u64::from_le_bytes(addr),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// The available ring the device reads.
#[repr(C, align(4))]
pub struct AvailRing {
    /// Flags (0: the device may notify).
    pub flags: u16,
    /// Next free slot.
    pub idx: u16,
    /// Heads.
    pub ring: [u16; MAX_QUEUE_SIZE],
    /// Unused (no EVENT_IDX).
    pub used_event: u16,
}

/// One completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsedElem {
    /// The head of the completed chain.
    pub id: u32,
    /// Bytes the device wrote.
    pub len: u32,
}

/// The used ring the device writes.
#[repr(C, align(4))]
pub struct UsedRing {
    /// Flags.
    pub flags: u16,
    /// Next slot the device will fill.
    pub idx: u16,
    /// Completions.
    pub ring: [UsedElem; MAX_QUEUE_SIZE],
    /// Unused (no EVENT_IDX).
    pub avail_event: u16,
}

/// The rings QEMU's device is given for one queue, in hyp's memory.
#[repr(C, align(4096))]
pub struct ShadowQueue {
    /// Validated copies of the guest's descriptors, at the same indices.
    pub desc: [Desc; MAX_QUEUE_SIZE],
    /// Heads of validated chains.
    pub avail: AvailRing,
    /// What the device completed.
    pub used: UsedRing,
}

impl ShadowQueue {
    /// All zero.
    pub const EMPTY: Self = Self {
        desc: [Desc { addr: 0, len: 0, flags: 0, next: 0 }; MAX_QUEUE_SIZE],
        avail: AvailRing { flags: 0, idx: 0, ring: [0; MAX_QUEUE_SIZE], used_event: 0 },
        used: UsedRing { flags: 0, idx: 0, ring: [UsedElem { id: 0, len: 0 }; MAX_QUEUE_SIZE], avail_event: 0 },
    };

    /// Addresses to program into the device: (descriptors, available, used).
    pub fn addresses(&self) -> (u64, u64, u64) {
        (addr_of!(self.desc) as u64, addr_of!(self.avail) as u64, addr_of!(self.used) as u64)
    }

    fn reset(&mut self) {
        self.desc = [Desc::default(); MAX_QUEUE_SIZE];
        // SAFETY: plain memory hyp owns; volatile because the device reads it.
        unsafe {
            addr_of_mut!(self.avail.flags).write_volatile(0);
            addr_of_mut!(self.avail.idx).write_volatile(0);
            addr_of_mut!(self.used.flags).write_volatile(0);
            addr_of_mut!(self.used.idx).write_volatile(0);
        }
    }

    fn used_idx(&self) -> u16 {
        // SAFETY: hyp's memory, written by the device: read it fresh every time.
        unsafe { addr_of!(self.used.idx).read_volatile() }
    }

    fn used_elem(&self, slot: usize) -> UsedElem {
        // SAFETY: as above; `slot` < MAX_QUEUE_SIZE.
        unsafe { addr_of!(self.used.ring[slot]).read_volatile() }
    }

    fn publish_avail(&mut self, slot: usize, head: u16, idx: u16) {
        self.avail.ring[slot] = head;
        fence(Ordering::SeqCst);
        // SAFETY: hyp's memory; the device reads idx after the ring entry.
        unsafe { addr_of_mut!(self.avail.idx).write_volatile(idx) };
    }
}

/// hyp's view of one queue.
#[derive(Clone, Debug)]
pub struct QueueState {
    /// QueueNum as the guest wrote it.
    pub size: u16,
    /// Guest descriptor table IPA.
    pub guest_desc: u64,
    /// Guest available ring IPA.
    pub guest_avail: u64,
    /// Guest used ring IPA.
    pub guest_used: u64,
    enabled: bool,
    last_avail: u16,
    shadow_avail: u16,
    last_used: u16,
    guest_used_idx: u16,
    in_flight: [bool; MAX_QUEUE_SIZE],
    chain_next: [u16; MAX_QUEUE_SIZE],
    pinned: [(u64, u32); MAX_QUEUE_SIZE],
    head_writable: [u32; MAX_QUEUE_SIZE],
    head_active: [bool; MAX_QUEUE_SIZE],
    chains_in_flight: u16,
}

fn ring_sizes(size: u16) -> (u64, u64, u64) {
    let n = size as u64;
    (16 * n, 6 + 2 * n, 6 + 8 * n)
}

fn pin_range(ownership: &mut Ownership<'_>, addr: u64, len: u64, pin: bool) {
    if len == 0 {
        return;
    }
    let first = addr & !(GRANULE - 1);
    let last = (addr + len - 1) & !(GRANULE - 1);
    for page in (first..=last).step_by(GRANULE as usize) {
        // Ranges were checked to be shared before pinning, and every pin is dropped
        // exactly once, so these cannot fail.
        let _ = if pin { ownership.pin(page) } else { ownership.unpin(page) };
    }
}

impl Default for QueueState {
    fn default() -> Self {
        Self::new()
    }
}

impl QueueState {
    /// A queue the guest has not set up.
    pub const fn new() -> Self {
        Self {
            size: 0,
            guest_desc: 0,
            guest_avail: 0,
            guest_used: 0,
            enabled: false,
            last_avail: 0,
            shadow_avail: 0,
            last_used: 0,
            guest_used_idx: 0,
            in_flight: [false; MAX_QUEUE_SIZE],
            chain_next: [NONE; MAX_QUEUE_SIZE],
            pinned: [(0, 0); MAX_QUEUE_SIZE],
            head_writable: [0; MAX_QUEUE_SIZE],
            head_active: [false; MAX_QUEUE_SIZE],
            chains_in_flight: 0,
        }
    }

    /// Whether the queue is live.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Chains handed to the device and not yet completed.
    pub fn in_flight_chains(&self) -> usize {
        self.chains_in_flight as usize
    }

    /// QueueReady = 1: checks the guest's rings (size, alignment, every page shared),
    /// pins them for as long as the queue lives, and clears the shadow.
    pub fn enable<R: GuestRam>(
        &mut self,
        queue: u16,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadow: &mut ShadowQueue,
    ) -> Result<(), Violation> {
        let violation = |ipa, what| Violation { ipa, queue, descriptor: None, what };
        if self.enabled {
            return Err(violation(0, "queue enabled twice"));
        }
        let size = self.size;
        if size == 0 || !size.is_power_of_two() || size as usize > MAX_QUEUE_SIZE {
            return Err(violation(0, "queue size is not a power of two up to 256"));
        }
        let (desc_len, avail_len, used_len) = ring_sizes(size);
        let rings = [(self.guest_desc, desc_len, 16), (self.guest_avail, avail_len, 2), (self.guest_used, used_len, 4)];
        {
            let access = SharedAccess::new(&*ownership, ram);
            for (ipa, len, align) in rings {
                if !ipa.is_multiple_of(align) {
                    return Err(violation(ipa, "ring is misaligned"));
                }
                if let Some(page) = access.ownership().first_unshared(ipa, len) {
                    return Err(violation(page, "ring page not shared"));
                }
            }
        }
        for (ipa, len, _) in rings {
            pin_range(ownership, ipa, len, true);
        }
        shadow.reset();
        *self = Self {
            size,
            guest_desc: self.guest_desc,
            guest_avail: self.guest_avail,
            guest_used: self.guest_used,
            enabled: true,
            ..Self::new()
        };
        Ok(())
    }

    /// QueueReady = 0 or a device reset (the device has stopped using the queue): drops
    /// every pin the queue holds.
    pub fn disable(&mut self, ownership: &mut Ownership<'_>) {
        if !self.enabled {
            return;
        }
        for i in 0..MAX_QUEUE_SIZE {
            if self.in_flight[i] {
                let (addr, len) = self.pinned[i];
                pin_range(ownership, addr, len as u64, false);
            }
        }
        let (desc_len, avail_len, used_len) = ring_sizes(self.size);
        pin_range(ownership, self.guest_desc, desc_len, false);
        pin_range(ownership, self.guest_avail, avail_len, false);
        pin_range(ownership, self.guest_used, used_len, false);
        *self = Self {
            size: self.size,
            guest_desc: self.guest_desc,
            guest_avail: self.guest_avail,
            guest_used: self.guest_used,
            ..Self::new()
        };
    }

    /// QueueNotify: takes every new entry of the guest's available ring, validates its
    /// chain, pins its buffers and publishes it in the shadow. Returns how many chains
    /// were published. Nothing of a chain that fails reaches the device.
    pub fn notify<R: GuestRam>(
        &mut self,
        queue: u16,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadow: &mut ShadowQueue,
    ) -> Result<u16, Violation> {
        let violation = |ipa, descriptor, what| Violation { ipa, queue, descriptor, what };
        if !self.enabled {
            return Err(violation(0, None, "notify of a queue that is not ready"));
        }
        let size = self.size;
        let avail_idx = SharedAccess::new(&*ownership, ram)
            .read_u16(self.guest_avail + 2)
            .map_err(|e| violation(e.0, None, "available ring not shared"))?;
        let pending = avail_idx.wrapping_sub(self.last_avail);
        if pending > size {
            return Err(violation(self.guest_avail + 2, None, "available index ran ahead of the queue size"));
        }
        for _ in 0..pending {
            let slot = (self.last_avail % size) as u64;
            let head = SharedAccess::new(&*ownership, ram)
                .read_u16(self.guest_avail + 4 + 2 * slot)
                .map_err(|e| violation(e.0, None, "available ring not shared"))?;
            self.take_chain(queue, head, ownership, ram, shadow)?;
            self.last_avail = self.last_avail.wrapping_add(1);
        }
        Ok(pending)
    }

    fn take_chain<R: GuestRam>(
        &mut self,
        queue: u16,
        head: u16,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadow: &mut ShadowQueue,
    ) -> Result<(), Violation> {
        let size = self.size;
        let mut chain = [0u16; MAX_QUEUE_SIZE];
        let mut descs = [Desc::default(); MAX_QUEUE_SIZE];
        let mut count = 0usize;
        let mut index = head;
        let mut writable = 0u32;
        {
            let access = SharedAccess::new(&*ownership, ram);
            loop {
                let violation = |ipa, what| Violation { ipa, queue, descriptor: Some(index), what };
                if index >= size {
                    return Err(violation(0, "descriptor index out of range"));
                }
                if count == size as usize || chain[..count].contains(&index) {
                    return Err(violation(0, "descriptor chain loops"));
                }
                if self.in_flight[index as usize] {
                    return Err(violation(0, "descriptor already in flight"));
                }
                let mut raw = [0u8; 16];
                let at = self.guest_desc + 16 * index as u64;
                access.read(at, &mut raw).map_err(|e| violation(e.0, "descriptor table not shared"))?;
                let desc = Desc::from_bytes(&raw);
                if desc.flags & F_INDIRECT != 0 {
                    return Err(violation(desc.addr, "indirect descriptor (not negotiated)"));
                }
                if desc.addr.checked_add(desc.len as u64).is_none() {
                    return Err(violation(desc.addr, "buffer wraps around the address space"));
                }
                if desc.len > 0 {
                    if let Some(page) = access.ownership().first_unshared(desc.addr, desc.len as u64) {
                        return Err(violation(page, "buffer page not shared"));
                    }
                }
                if desc.flags & F_WRITE != 0 {
                    writable = writable.saturating_add(desc.len);
                }
                chain[count] = index;
                descs[count] = Desc { flags: desc.flags & (F_NEXT | F_WRITE), ..desc };
                count += 1;
                if desc.flags & F_NEXT == 0 {
                    break;
                }
                index = desc.next;
            }
        }
        for i in 0..count {
            let (index, desc) = (chain[i] as usize, descs[i]);
            pin_range(ownership, desc.addr, desc.len as u64, true);
            self.in_flight[index] = true;
            self.pinned[index] = (desc.addr, desc.len);
            self.chain_next[index] = if i + 1 < count { chain[i + 1] } else { NONE };
            shadow.desc[index] = desc;
        }
        self.head_active[head as usize] = true;
        self.chains_in_flight += 1;
        self.head_writable[head as usize] = writable;
        let slot = (self.shadow_avail % size) as usize;
        self.shadow_avail = self.shadow_avail.wrapping_add(1);
        shadow.publish_avail(slot, head, self.shadow_avail);
        Ok(())
    }

    /// Copies the device's new completions to the guest's used ring and unpins their
    /// buffers. Entries naming no chain in flight are dropped (a device fault that must
    /// not unpin anything). Returns how many completions reached the guest.
    pub fn collect<R: GuestRam>(
        &mut self,
        queue: u16,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadow: &ShadowQueue,
    ) -> Result<u16, Violation> {
        if !self.enabled {
            return Ok(0);
        }
        let size = self.size;
        fence(Ordering::SeqCst);
        let used_idx = shadow.used_idx();
        let new = used_idx.wrapping_sub(self.last_used).min(size);
        let mut delivered = 0;
        for _ in 0..new {
            let elem = shadow.used_elem((self.last_used % size) as usize);
            self.last_used = self.last_used.wrapping_add(1);
            let head = elem.id as usize;
            if head >= size as usize || !self.head_active[head] {
                continue;
            }
            self.head_active[head] = false;
            self.chains_in_flight -= 1;
            let len = elem.len.min(self.head_writable[head]);
            let mut index = head as u16;
            while index != NONE {
                let i = index as usize;
                let (addr, len) = self.pinned[i];
                pin_range(ownership, addr, len as u64, false);
                self.in_flight[i] = false;
                index = self.chain_next[i];
            }
            let slot = (self.guest_used_idx % size) as u64;
            let mut entry = [0u8; 8];
            entry[..4].copy_from_slice(&(head as u32).to_le_bytes());
            entry[4..].copy_from_slice(&len.to_le_bytes());
            let mut access = SharedAccess::new(&*ownership, ram);
            let violation =
                |e: super::NotShared| Violation { ipa: e.0, queue, descriptor: None, what: "used ring not shared" };
            access.write(self.guest_used + 4 + 8 * slot, &entry).map_err(violation)?;
            fence(Ordering::SeqCst);
            self.guest_used_idx = self.guest_used_idx.wrapping_add(1);
            access.write(self.guest_used + 2, &self.guest_used_idx.to_le_bytes()).map_err(violation)?;
            delivered += 1;
        }
        Ok(delivered)
    }
}
