//! One virtqueue: the guest's rings (checked, pinned) and the shadow rings QEMU's
//! device is given, and the two moves between them: `notify` (guest → device, every
//! descriptor validated) and `collect` (device → guest, completions copied back and
//! their pages unpinned).
//!
//! The rule that keeps private memory from the device: a page the device may still use
//! stays pinned (and so cannot be unshared) until hyp has *seen* the device give it
//! back — a completion in the shadow used ring, or a finished device reset. QueueReady=0
//! proves nothing (QEMU's virtio-mmio device keeps serving the queue), so it releases
//! only the guest's ring pins, never a buffer's. Every pin is remembered as the exact
//! range it covered and dropped exactly once; a failed unpin is a hyp bug.
//!
//! A queue's life in a protected VM (`transport.rs` routes the register writes here;
//! the tests in `tests.rs` walk each row):
//!
//! | state                 | guest or device does                       | hyp does                                               | next state           |
//! |-----------------------|--------------------------------------------|--------------------------------------------------------|----------------------|
//! | unset                 | writes QueueNum (≤ 256, a power of two)    | records the size, forwards it                          | sized                |
//! | unset, sized          | writes a ring address                      | records it; the device never sees it                   | unchanged            |
//! | sized                 | QueueReady = 1                             | checks the rings lie in shared RAM, pins them, gives the device its shadow rings | ready |
//! | ready                 | writes QueueNum or a ring address          | violation: the VM ends                                 | —                    |
//! | ready                 | notifies                                   | validates each new chain (shared pages, no indirect, no loops), pins its buffers, copies it to the shadow ring, forwards the notify | ready, in flight |
//! | ready, in flight      | the device completes a chain               | copies the used entry back, unpins the chain's buffers | ready                |
//! | ready, in flight      | QueueReady = 0                             | forwards it, drops the ring pins only (the device may still use the buffers) | disabled, in flight |
//! | any, in flight        | STATUS = 0 and it reads back 0 (reset done)| drops every pin of every queue                         | unset                |
//! | any                   | a descriptor names private memory          | violation naming the page: the VM ends                 | —                    |

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{fence, Ordering};

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{AccessError, BufferRole, GuestRam, Ipa, Page, SharedAccess, Violation};
use crate::pkvm::ownership::{Ownership, PinnedRange, GRANULE};

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

/// A descriptor as it lies in the guest's table (little-endian, whatever hyp's order).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GuestDesc {
    /// Buffer address.
    pub addr: U64,
    /// Buffer length.
    pub len: U32,
    /// NEXT, WRITE, INDIRECT.
    pub flags: U16,
    /// Next descriptor when NEXT is set.
    pub next: U16,
}

/// A used-ring entry as hyp writes it into the guest's ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GuestUsedElem {
    /// The chain's head.
    pub id: U32,
    /// Bytes the device wrote.
    pub len: U32,
}

impl From<GuestDesc> for Desc {
    fn from(d: GuestDesc) -> Self {
        Self { addr: d.addr.get(), len: d.len.get(), flags: d.flags.get(), next: d.next.get() }
    }
}

/// Where a split ring's parts lie (virtio 1.x, 2.7): the available and used rings'
/// index fields and their `slot`th entries.
mod ring {
    use super::Ipa;

    /// The available ring's `idx`.
    pub fn avail_idx(avail: u64) -> Ipa {
        Ipa(avail).offset(2)
    }

    /// The available ring's entry `slot`.
    pub fn avail_entry(avail: u64, slot: u64) -> Ipa {
        Ipa(avail).offset(4 + 2 * slot)
    }

    /// The used ring's `idx`.
    pub fn used_idx(used: u64) -> Ipa {
        Ipa(used).offset(2)
    }

    /// The used ring's entry `slot`.
    pub fn used_entry(used: u64, slot: u64) -> Ipa {
        Ipa(used).offset(4 + 8 * slot)
    }

    /// Descriptor `index` of the table.
    pub fn desc(table: u64, index: u16) -> Ipa {
        Ipa(table).offset(16 * index as u64)
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

    fn used_elem(&self, slot: usize) -> Option<UsedElem> {
        let elem = self.used.ring.get(slot)?;
        // SAFETY: as above.
        Some(unsafe { addr_of!(*elem).read_volatile() })
    }

    fn publish_avail(&mut self, slot: usize, head: u16, idx: u16) -> Option<()> {
        *self.avail.ring.get_mut(slot)? = head;
        fence(Ordering::SeqCst);
        // SAFETY: hyp's memory; the device reads idx after the ring entry.
        unsafe { addr_of_mut!(self.avail.idx).write_volatile(idx) };
        Some(())
    }
}

/// What hyp remembers of one descriptor the device holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    /// Exactly the pages this descriptor's buffer pinned.
    pinned: PinnedRange,
    /// The next descriptor of its chain ([`NONE`] at the end).
    next: u16,
    /// On a chain's head: the bytes the device may write into the chain.
    head_writable: Option<u32>,
}

/// The guest's rings while the queue is ready (QueueReady=1 until QueueReady=0 or a
/// device reset), with the size fixed when it became ready.
#[derive(Clone, Copy, Debug)]
struct GuestRings {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    /// Exactly what enabling pinned: descriptor table, available ring, used ring.
    pins: [PinnedRange; 3],
    last_avail: u16,
    used_idx: u16,
}

/// hyp's place in the shadow rings. It lives from QueueReady=1 until a device reset,
/// not until QueueReady=0: the device keeps serving (and completing) the queue that long.
#[derive(Clone, Copy, Debug, Default)]
struct ShadowCursor {
    /// The queue size the device was last given (0: not since the last reset).
    size: u16,
    avail_idx: u16,
    last_used: u16,
}

/// hyp's view of one queue.
#[derive(Clone, Debug)]
pub struct QueueState {
    /// QueueNum as the guest wrote it (fixed while the queue is ready).
    pub size: u16,
    /// Guest descriptor table IPA.
    pub guest_desc: u64,
    /// Guest available ring IPA.
    pub guest_avail: u64,
    /// Guest used ring IPA.
    pub guest_used: u64,
    rings: Option<GuestRings>,
    cursor: ShadowCursor,
    descs: [Option<InFlight>; MAX_QUEUE_SIZE],
    chains_in_flight: u16,
}

fn ring_sizes(size: u16) -> [u64; 3] {
    let n = size as u64;
    [16 * n, 6 + 2 * n, 6 + 8 * n]
}

/// hyp's own bookkeeping is inconsistent: the VM stops with `hyp_error`.
fn hyp_bug(ipa: Ipa, what: &'static str) -> AccessError {
    AccessError::HypBug { ipa, what }
}

fn unpin(ownership: &mut Ownership<'_>, range: PinnedRange) -> Result<(), AccessError> {
    ownership.unpin_range(range).map_err(|_| hyp_bug(range.first.ipa(), "unpin of a page hyp had not pinned"))
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
            rings: None,
            cursor: ShadowCursor { size: 0, avail_idx: 0, last_used: 0 },
            descs: [None; MAX_QUEUE_SIZE],
            chains_in_flight: 0,
        }
    }

    /// Whether the queue is ready (QueueReady=1 was accepted and not undone).
    pub fn is_enabled(&self) -> bool {
        self.rings.is_some()
    }

    /// Chains handed to the device and not yet given back.
    pub fn in_flight_chains(&self) -> usize {
        self.chains_in_flight as usize
    }

    /// Pins held for the device: ring pins while ready, and one per descriptor in
    /// flight (ready or not).
    pub fn pinned_ranges(&self) -> impl Iterator<Item = PinnedRange> + '_ {
        let rings = self.rings.iter().flat_map(|r| r.pins);
        rings.chain(self.descs.iter().flatten().map(|d| d.pinned))
    }

    /// Descriptors the device holds: their index and exactly the pages pinned for them.
    pub fn in_flight_descriptors(&self) -> impl Iterator<Item = (usize, PinnedRange)> + '_ {
        self.descs.iter().enumerate().filter_map(|(i, d)| d.map(|d| (i, d.pinned)))
    }

    /// Whether the device holds guest page `page` through this queue, and by which
    /// descriptor (`Some(None)`: a ring page of the ready queue). A buffer belongs to
    /// the device from the moment its chain is published in the available ring, not
    /// only once hyp has taken it at a notify: a device may serve a queue without
    /// being notified, so the chains the guest published and hyp has not yet taken
    /// are walked too (bounded by the queue size, as a notify would walk them; what
    /// a notify would refuse is left for it to name).
    pub fn holds<R: GuestRam>(&self, page: Page, ownership: &Ownership<'_>, ram: &mut R) -> Option<Option<u16>> {
        let covers = |range: PinnedRange| range.pages().any(|p| p == page);
        if let Some((index, _)) = self.in_flight_descriptors().find(|&(_, range)| covers(range)) {
            return Some(Some(index as u16));
        }
        let rings = self.rings?;
        if rings.pins.iter().any(|&range| covers(range)) {
            return Some(None);
        }
        let access = SharedAccess::new(ownership, ram);
        let avail_idx = access.read_obj::<U16>(ring::avail_idx(rings.avail)).ok()?.get();
        let pending = avail_idx.wrapping_sub(rings.last_avail).min(rings.size);
        for n in 0..pending {
            let slot = (rings.last_avail.wrapping_add(n) % rings.size) as u64;
            let mut index = access.read_obj::<U16>(ring::avail_entry(rings.avail, slot)).ok()?.get();
            for _ in 0..rings.size {
                if index >= rings.size {
                    break;
                }
                let Ok(desc) = access.read_obj::<GuestDesc>(ring::desc(rings.desc, index)) else { break };
                let (addr, len) = (desc.addr.get(), (desc.len.get() as u64).max(1));
                // The buffer [addr, addr + len) overlaps the page.
                let start = page.ipa().get();
                if addr <= start.saturating_add(GRANULE - 1) && addr.saturating_add(len - 1) >= start {
                    return Some(Some(index));
                }
                if desc.flags.get() & F_NEXT == 0 {
                    break;
                }
                index = desc.next.get();
            }
        }
        None
    }

    /// A guest write to QueueNum: refused while the queue is ready, because every
    /// index hyp takes from the rings is bounded by the size they were enabled with.
    pub fn set_size(&mut self, queue: u32, value: u32) -> Result<(), AccessError> {
        if self.is_enabled() {
            return Err(AccessError::Violation(Violation {
                ipa: Ipa(0),
                queue,
                descriptor: None,
                buffer: None,
                what: "queue size changed while the queue is ready",
            }));
        }
        self.size = value.min(u16::MAX as u32) as u16;
        Ok(())
    }

    /// QueueReady = 1: checks the guest's rings (size, alignment, every page shared),
    /// pins them for as long as the queue is ready, and readies the shadow.
    pub fn enable<R: GuestRam>(
        &mut self,
        queue: u32,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadow: &mut ShadowQueue,
    ) -> Result<(), AccessError> {
        let violation =
            |ipa, what| AccessError::Violation(Violation { ipa, queue, descriptor: None, buffer: None, what });
        if self.is_enabled() {
            return Err(violation(Ipa(0), "queue enabled twice"));
        }
        if self.chains_in_flight > 0 {
            return Err(violation(Ipa(0), "queue enabled while the device still holds its buffers (reset the device)"));
        }
        let size = self.size;
        if size == 0 || !size.is_power_of_two() || size as usize > MAX_QUEUE_SIZE {
            return Err(violation(Ipa(0), "queue size is not a power of two up to 256"));
        }
        let addresses = [self.guest_desc, self.guest_avail, self.guest_used];
        let lens = ring_sizes(size);
        {
            let access = SharedAccess::new(&*ownership, ram);
            for ((ipa, len), align) in addresses.into_iter().zip(lens).zip([16, 2, 4]) {
                if !ipa.is_multiple_of(align) {
                    return Err(violation(Ipa(ipa), "ring is misaligned"));
                }
                if let Some(page) = access.ownership().first_unshared(Ipa(ipa), len) {
                    return Err(violation(page.ipa(), "ring page not shared"));
                }
            }
        }
        let mut pins = [PinnedRange { first: Page::FIRST, pages: 0 }; 3];
        for (i, (ipa, len)) in addresses.into_iter().zip(lens).enumerate() {
            match ownership.pin_range(Ipa(ipa), len) {
                Ok(range) => pins[i] = range,
                Err(_) => {
                    for &range in &pins[..i] {
                        unpin(ownership, range)?;
                    }
                    return Err(hyp_bug(Ipa(ipa), "could not pin a ring it found shared"));
                }
            }
        }
        if self.cursor.size == 0 {
            // First use since a reset: the device starts its indices at zero too.
            shadow.reset();
            self.cursor = ShadowCursor::default();
        }
        self.cursor.size = size;
        let [desc, avail, used] = addresses;
        self.rings = Some(GuestRings { size, desc, avail, used, pins, last_avail: 0, used_idx: 0 });
        Ok(())
    }

    /// QueueReady = 0: the guest stops using the rings, so their pins go. The device may
    /// still hold buffers (QEMU does not stop a queue on QueueReady=0): those stay
    /// pinned until it completes them or is reset.
    pub fn disable(&mut self, ownership: &mut Ownership<'_>) -> Result<(), AccessError> {
        if let Some(rings) = self.rings.take() {
            for range in rings.pins {
                unpin(ownership, range)?;
            }
        }
        Ok(())
    }

    /// The device finished a reset (hyp read STATUS back as 0): it holds nothing any
    /// more, so every pin goes and the queue starts afresh.
    pub fn device_reset(&mut self, ownership: &mut Ownership<'_>) -> Result<(), AccessError> {
        self.disable(ownership)?;
        for desc in self.descs.iter().flatten() {
            unpin(ownership, desc.pinned)?;
        }
        *self = Self::new();
        Ok(())
    }

    /// QueueNotify: takes every new entry of the guest's available ring, validates its
    /// chain, pins its buffers and publishes it in the shadow. Returns how many chains
    /// were published. Nothing of a chain that fails reaches the device. `device_id`
    /// (the virtio device ID, 0 if unknown) names the part of a request a refused buffer
    /// is.
    pub fn notify<R: GuestRam>(
        &mut self,
        queue: u32,
        device_id: u32,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadow: &mut ShadowQueue,
    ) -> Result<u16, AccessError> {
        let violation =
            |ipa, what| AccessError::Violation(Violation { ipa, queue, descriptor: None, buffer: None, what });
        let Some(rings) = self.rings else {
            return Err(violation(Ipa(0), "notify of a queue that is not ready"));
        };
        let avail_idx = SharedAccess::new(&*ownership, ram)
            .read_obj::<U16>(ring::avail_idx(rings.avail))
            .map_err(|e| violation(e.0.ipa(), "available ring not shared"))?
            .get();
        let pending = avail_idx.wrapping_sub(rings.last_avail);
        if pending > rings.size {
            return Err(violation(Ipa(rings.avail + 2), "available index ran ahead of the queue size"));
        }
        for _ in 0..pending {
            let Some(rings) = self.rings.as_mut() else { break };
            let slot = (rings.last_avail % rings.size) as u64;
            let head = SharedAccess::new(&*ownership, ram)
                .read_obj::<U16>(ring::avail_entry(rings.avail, slot))
                .map_err(|e| violation(e.0.ipa(), "available ring not shared"))?
                .get();
            rings.last_avail = rings.last_avail.wrapping_add(1);
            let rings = *rings;
            self.take_chain(queue, device_id, &rings, head, ownership, ram, shadow)?;
        }
        Ok(pending)
    }

    #[allow(clippy::too_many_arguments)]
    fn take_chain<R: GuestRam>(
        &mut self,
        queue: u32,
        device_id: u32,
        rings: &GuestRings,
        head: u16,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadow: &mut ShadowQueue,
    ) -> Result<(), AccessError> {
        let size = rings.size;
        let mut chain = [0u16; MAX_QUEUE_SIZE];
        let mut descs = [Desc::default(); MAX_QUEUE_SIZE];
        let mut count = 0usize;
        let mut index = head;
        let mut writable = 0u32;
        {
            let access = SharedAccess::new(&*ownership, ram);
            loop {
                let violation = |ipa, what| {
                    AccessError::Violation(Violation { ipa, queue, descriptor: Some(index), buffer: None, what })
                };
                if index >= size {
                    return Err(violation(Ipa(0), "descriptor index out of range"));
                }
                if count == size as usize || chain[..count].contains(&index) {
                    return Err(violation(Ipa(0), "descriptor chain loops"));
                }
                if self.descs.get(index as usize).is_none_or(Option::is_some) {
                    return Err(violation(Ipa(0), "descriptor already in flight"));
                }
                let desc: Desc = access
                    .read_obj::<GuestDesc>(ring::desc(rings.desc, index))
                    .map_err(|e| violation(e.0.ipa(), "descriptor table not shared"))?
                    .into();
                if desc.flags & F_INDIRECT != 0 {
                    return Err(violation(Ipa(desc.addr), "indirect descriptor (not negotiated)"));
                }
                if desc.addr.checked_add(desc.len as u64).is_none() {
                    return Err(violation(Ipa(desc.addr), "buffer wraps around the address space"));
                }
                // A zero-length buffer still hands the device an address: its page
                // must be shared like any other.
                if let Some(page) = access.ownership().first_unshared(Ipa(desc.addr), (desc.len as u64).max(1)) {
                    let buffer = BufferRole::of(device_id, count, desc.flags & F_NEXT == 0);
                    let what = "buffer page not shared";
                    return Err(AccessError::Violation(Violation {
                        ipa: page.ipa(),
                        queue,
                        descriptor: Some(index),
                        buffer,
                        what,
                    }));
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
        let mut pinned = [PinnedRange { first: Page::FIRST, pages: 0 }; MAX_QUEUE_SIZE];
        for i in 0..count {
            match ownership.pin_range(Ipa(descs[i].addr), (descs[i].len as u64).max(1)) {
                Ok(range) => pinned[i] = range,
                Err(_) => {
                    for &range in &pinned[..i] {
                        unpin(ownership, range)?;
                    }
                    return Err(hyp_bug(Ipa(descs[i].addr), "could not pin a buffer it found shared"));
                }
            }
        }
        for i in 0..count {
            let index = chain[i] as usize;
            let (Some(slot), Some(shadow_desc)) = (self.descs.get_mut(index), shadow.desc.get_mut(index)) else {
                return Err(hyp_bug(Ipa(0), "descriptor index beyond the queue"));
            };
            *slot = Some(InFlight {
                pinned: pinned[i],
                next: if i + 1 < count { chain[i + 1] } else { NONE },
                head_writable: (i == 0).then_some(writable),
            });
            *shadow_desc = descs[i];
        }
        self.chains_in_flight += 1;
        let slot = (self.cursor.avail_idx % size) as usize;
        self.cursor.avail_idx = self.cursor.avail_idx.wrapping_add(1);
        shadow
            .publish_avail(slot, head, self.cursor.avail_idx)
            .ok_or(hyp_bug(Ipa(0), "shadow ring slot beyond the queue"))
    }

    /// Copies the device's new completions to the guest's used ring (while the queue
    /// is ready) and unpins their buffers (always: the device gave them back). Entries
    /// naming no chain in flight are dropped (a device fault that must not unpin
    /// anything). Returns how many completions reached the guest.
    pub fn collect<R: GuestRam>(
        &mut self,
        queue: u32,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadow: &ShadowQueue,
    ) -> Result<u16, AccessError> {
        // Entries are consumed even with nothing in flight (and dropped): left in the
        // ring, a device's stray entry would later be read as completing a new chain.
        let size = self.cursor.size;
        if size == 0 {
            return Ok(0);
        }
        fence(Ordering::SeqCst);
        let new = shadow.used_idx().wrapping_sub(self.cursor.last_used).min(size);
        let mut delivered = 0;
        for _ in 0..new {
            let elem = shadow
                .used_elem((self.cursor.last_used % size) as usize)
                .ok_or(hyp_bug(Ipa(0), "shadow used slot beyond the queue"))?;
            self.cursor.last_used = self.cursor.last_used.wrapping_add(1);
            let head = elem.id as usize;
            let writable = match self.descs.get(head) {
                Some(Some(InFlight { head_writable: Some(w), .. })) => *w,
                _ => continue,
            };
            self.release_chain(head as u16, ownership)?;
            let Some(rings) = self.rings.as_mut() else {
                // QueueReady=0 came first: the guest no longer has a used ring.
                continue;
            };
            let slot = (rings.used_idx % rings.size) as u64;
            let entry = GuestUsedElem { id: U32::new(head as u32), len: U32::new(elem.len.min(writable)) };
            let mut access = SharedAccess::new(&*ownership, ram);
            let violation = |e: super::NotShared| {
                AccessError::Violation(Violation {
                    ipa: e.0.ipa(),
                    queue,
                    descriptor: None,
                    buffer: None,
                    what: "used ring not shared",
                })
            };
            access.write_obj(ring::used_entry(rings.used, slot), &entry).map_err(violation)?;
            fence(Ordering::SeqCst);
            rings.used_idx = rings.used_idx.wrapping_add(1);
            access.write_obj(ring::used_idx(rings.used), &U16::new(rings.used_idx)).map_err(violation)?;
            delivered += 1;
        }
        Ok(delivered)
    }

    /// Unpins a completed chain, descriptor by descriptor, exactly as it was pinned.
    fn release_chain(&mut self, head: u16, ownership: &mut Ownership<'_>) -> Result<(), AccessError> {
        let mut index = head;
        for _ in 0..MAX_QUEUE_SIZE {
            let Some(desc) = self.descs.get_mut(index as usize).and_then(Option::take) else {
                return Err(hyp_bug(Ipa(0), "a chain in flight lost a descriptor"));
            };
            unpin(ownership, desc.pinned)?;
            if desc.next == NONE {
                self.chains_in_flight -= 1;
                return Ok(());
            }
            index = desc.next;
        }
        Err(hyp_bug(Ipa(0), "a chain in flight loops"))
    }
}
