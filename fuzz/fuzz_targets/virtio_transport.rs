//! hyp's virtio device side, driven by a hostile guest and a faulty device: arbitrary
//! register writes and reads (any offset, width, value, queue), ring and descriptor
//! contents, sharing and unsharing, device completions (bogus ones included) and
//! resets that do or do not finish. After each step:
//! - nothing panicked, and hyp found no inconsistency of its own (`HypBug`);
//! - every page's pin count is exactly what the queues hold for the device, so a page
//!   the device may still use was never unshared;
//! - every buffer the device holds — by the device's own account: what it took from
//!   the shadow rings and has not given back, across QueueReady=0, until a reset that
//!   finished — lies in shared, pinned pages;
//! - every descriptor hyp thinks in flight points only at shared pages, inside its pins;
//! - the device was never given an address register value other than hyp's shadows.
//!
//! A violation ends the VM, as in hyp: the run stops there.
#![no_main]

use hyp::device::virtio::{regs, AccessError, DeviceRegs, GuestRam, ShadowQueue, VirtioDevice, MAX_QUEUES};
use hyp::pkvm::ownership::{Ownership, PageState, GRANULE};
use libfuzzer_sys::fuzz_target;
use pvmkit_fuzz::Input;

const BASE: u64 = 0x8000_0000;
const PAGES: usize = 48;

use hyp::testing::{pg, VecRam as Ram};
use pvmkit_abi::address::Ipa;

/// One queue as the device sees it: like QEMU's, it keeps serving a queue after
/// QueueReady=0 and forgets it only at a reset.
struct DeviceQueue {
    size: u16,
    running: bool,
    last_avail: u16,
    /// Heads taken from the shadow available ring and not completed.
    held: Vec<u16>,
}

impl Default for DeviceQueue {
    fn default() -> Self {
        // QEMU gives every queue its maximum size when the device is created or reset.
        Self { size: 1024, running: false, last_avail: 0, held: Vec::new() }
    }
}

#[derive(Default)]
struct Device {
    /// What STATUS reads back (0: a reset has finished).
    status: u64,
    writes: Vec<(u64, u64)>,
    seen: usize,
    sel: usize,
    queues: [DeviceQueue; MAX_QUEUES],
}

impl Device {
    /// Acts on the register writes hyp forwarded, then takes every chain hyp published.
    fn step(&mut self, shadows: &[ShadowQueue; MAX_QUEUES]) {
        for &(offset, value) in &self.writes[self.seen..] {
            let queue = self.queues.get_mut(self.sel);
            match (offset, queue) {
                (regs::QUEUE_SEL, _) => self.sel = value as usize,
                // As QEMU's virtio_queue_set_num: a queue never changes to or from size
                // 0, nor beyond its maximum.
                (regs::QUEUE_NUM, Some(q)) if value != 0 && value <= 1024 => q.size = value as u16,
                (regs::QUEUE_READY, Some(q)) if value == 1 => q.running = true,
                (regs::STATUS, _) if value == 0 && self.status == 0 => {
                    self.queues = Default::default();
                }
                _ => {}
            }
        }
        self.seen = self.writes.len();
        for (q, dq) in self.queues.iter_mut().enumerate() {
            if !dq.running || dq.size == 0 {
                continue;
            }
            let avail = &shadows[q].avail;
            for _ in 0..256 {
                if dq.last_avail == avail.idx {
                    break;
                }
                dq.held.push(avail.ring[(dq.last_avail % dq.size) as usize % avail.ring.len()]);
                dq.last_avail = dq.last_avail.wrapping_add(1);
            }
        }
    }
}

impl DeviceRegs for Device {
    fn read(&mut self, offset: u64, _: u8) -> u64 {
        match offset {
            regs::STATUS => self.status,
            regs::QUEUE_NUM_MAX => 1024,
            regs::MAGIC => 0x7472_6976,
            _ => 0,
        }
    }
    fn write(&mut self, offset: u64, _: u8, value: u64) {
        self.writes.push((offset, value));
    }
}

/// An address in (or just outside) guest RAM, sometimes anything.
fn addr(input: &mut Input<'_>) -> Option<u64> {
    Some(match input.byte()? {
        0..=199 => {
            let page = input.byte()? as u64 % (PAGES as u64 + 2);
            BASE.wrapping_add(page * GRANULE).wrapping_add(input.u16()? as u64 % GRANULE)
        }
        200..=229 => BASE + (input.byte()? as u64 % PAGES as u64) * GRANULE,
        _ => input.u64()?,
    })
}

/// A register value: small numbers, the halves of an address, or anything.
fn value(input: &mut Input<'_>) -> Option<u64> {
    Some(match input.byte()? {
        0..=99 => input.byte()? as u64 % 12,
        100..=149 => 1u64 << (input.byte()? % 11),
        150..=219 => addr(input)? & 0xffff_ffff,
        _ => u32::from_le_bytes(input.bytes()?) as u64,
    })
}

const OFFSETS: [u64; 20] = [
    regs::QUEUE_SEL,
    regs::QUEUE_NUM,
    regs::QUEUE_READY,
    regs::QUEUE_NOTIFY,
    regs::STATUS,
    regs::QUEUE_DESC_LOW,
    regs::QUEUE_DESC_HIGH,
    regs::QUEUE_DRIVER_LOW,
    regs::QUEUE_DRIVER_HIGH,
    regs::QUEUE_DEVICE_LOW,
    regs::QUEUE_DEVICE_HIGH,
    regs::DEVICE_FEATURES_SEL,
    regs::DRIVER_FEATURES,
    regs::DRIVER_FEATURES_SEL,
    regs::LEGACY_QUEUE_PFN,
    regs::QUEUE_NUM_MAX,
    regs::MAGIC,
    regs::CONFIG,
    0x060,
    0x064,
];

fn is_address_register(offset: u64) -> bool {
    (regs::QUEUE_DESC_LOW..=regs::QUEUE_DEVICE_HIGH).contains(&offset) && offset & 0xf < 8
}

fn check(transport: &VirtioDevice, ownership: &Ownership<'_>, shadows: &[ShadowQueue; MAX_QUEUES], dev: &Device) {
    for (q, dq) in dev.queues.iter().enumerate() {
        for &head in &dq.held {
            let mut index = head as usize;
            for _ in 0..256 {
                let Some(desc) = shadows[q].desc.get(index) else { break };
                let len = (desc.len as u64).max(1);
                for page in (desc.addr & !(GRANULE - 1)..desc.addr + len).step_by(GRANULE as usize) {
                    let pinned = matches!(ownership.state(pg(page)), Ok(PageState::Shared { pins }) if pins > 0);
                    assert!(pinned, "queue {q}: the device holds page {page:#x}, which is not pinned");
                }
                if desc.flags & 1 == 0 {
                    break;
                }
                index = desc.next as usize;
            }
        }
    }
    let mut expected = [0u32; PAGES];
    for (q, shadow) in shadows.iter().enumerate() {
        let queue = transport.queue(q).unwrap();
        for range in queue.pinned_ranges() {
            for page in range.pages() {
                expected[((page.ipa().get() - BASE) / GRANULE) as usize] += 1;
            }
        }
        for (index, pinned) in queue.in_flight_descriptors() {
            let desc = shadow.desc[index];
            let len = (desc.len as u64).max(1);
            assert_eq!(ownership.first_unshared(Ipa(desc.addr), len), None, "the device holds an unshared page");
            let first = pinned.first.ipa().get();
            let end = first + pinned.pages * GRANULE;
            assert!(first <= desc.addr && desc.addr + len <= end, "a held buffer outside its pins");
        }
    }
    for (i, &want) in expected.iter().enumerate() {
        let page = BASE + i as u64 * GRANULE;
        let pins = match ownership.state(pg(page)).unwrap() {
            PageState::Shared { pins } => pins as u32,
            PageState::Private => 0,
        };
        assert_eq!(pins, want, "page {page:#x}: {pins} pins, the queues hold {want}");
    }
    let shadow_halves: Vec<u64> = shadows
        .iter()
        .flat_map(|s| {
            let (d, a, u) = s.addresses();
            [d, a, u].into_iter().flat_map(|x| [x & 0xffff_ffff, x >> 32])
        })
        .collect();
    for &(offset, value) in &dev.writes {
        if is_address_register(offset) {
            assert!(shadow_halves.contains(&value), "the device was given {value:#x} at {offset:#x}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut words = vec![0u16; PAGES];
    let mut ownership = Ownership::new(BASE, &mut words);
    let mut ram = Ram::new(BASE, PAGES * GRANULE as usize);
    let mut dev = Device::default();
    let mut shadows = Box::new([const { ShadowQueue::EMPTY }; MAX_QUEUES]);
    let mut transport = VirtioDevice::new(31, true);
    while let Some(op) = input.byte() {
        let result = match op % 9 {
            0 | 1 => {
                let Some(pick) = input.byte() else { return };
                let offset = if pick < 240 { OFFSETS[pick as usize % OFFSETS.len()] } else { pick as u64 & 0x1fc };
                let width = if input.byte().unwrap_or(0) < 240 { 4 } else { 2 };
                let Some(value) = value(&mut input) else { return };
                transport.write(&mut dev, offset, width, value, &mut ownership, &mut ram, &mut shadows)
            }
            2 => {
                let Some(pick) = input.byte() else { return };
                transport.read(&mut dev, OFFSETS[pick as usize % OFFSETS.len()], 4).map(|_| ())
            }
            3 => {
                // A descriptor: addr, len, flags, next, at a guest address.
                let (Some(at), Some(addr), Some(len), Some(flags), Some(next)) =
                    (addr(&mut input), addr(&mut input), input.u16(), input.byte(), input.u16())
                else {
                    return;
                };
                let mut d = [0u8; 16];
                d[0..8].copy_from_slice(&addr.to_le_bytes());
                d[8..12].copy_from_slice(&(len as u32).to_le_bytes());
                d[12..14].copy_from_slice(&(flags as u16 & 7).to_le_bytes());
                d[14..16].copy_from_slice(&(next % 300).to_le_bytes());
                if ram.holds(at, 16) {
                    ram.write(Ipa(at), &d);
                }
                Ok(())
            }
            4 => {
                let (Some(at), Some(v)) = (addr(&mut input), input.u16()) else { return };
                if ram.holds(at, 2) {
                    ram.write(Ipa(at), &v.to_le_bytes());
                }
                Ok(())
            }
            5 => {
                let Some(page) = input.byte() else { return };
                let page = BASE + (page as u64 % PAGES as u64) * GRANULE;
                if input.byte().unwrap_or(0) % 2 == 0 {
                    let _ = ownership.share(pg(page));
                } else {
                    let _ = ownership.unshare(pg(page));
                }
                Ok(())
            }
            6 => {
                // The device completes a chain it holds (any length), or names a head no
                // queue can have. (A used entry naming a head is the device's word that
                // it is done with that head, whenever hyp reads it: a device that names
                // heads it does not hold breaks the contract pins rely on, so the model
                // does not.)
                let (Some(q), Some(pick), Some(len)) = (input.byte(), input.u16(), input.u16()) else { return };
                let q = q as usize % MAX_QUEUES;
                let held = &mut dev.queues[q].held;
                let id = match pick {
                    0..=0xefff if !held.is_empty() => held.remove(pick as usize % held.len()),
                    _ => 256 + pick % 0x1000,
                };
                let size = dev.queues[q].size as usize;
                let used = &mut shadows[q].used;
                let slot = used.idx as usize % size % used.ring.len();
                used.ring[slot].id = id as u32;
                used.ring[slot].len = len as u32;
                used.idx = used.idx.wrapping_add(1);
                Ok(())
            }
            7 => transport.collect(&mut ownership, &mut ram, &shadows).map(|_| ()),
            _ => {
                // Whether a reset has finished when STATUS is read back.
                dev.status = if input.byte().unwrap_or(0) % 2 == 0 { 0 } else { 0x40 };
                Ok(())
            }
        };
        dev.step(&shadows);
        match result {
            Ok(()) | Err(AccessError::BadWidth) => {}
            Err(AccessError::Violation(_)) => return,
            Err(e) => panic!("hyp stopped on its own inconsistency: {e:?}"),
        }
        check(&transport, &ownership, &shadows, &dev);
    }
});
