use super::*;
use crate::pkvm::ownership::PageState;
use crate::testing::{pg, TestOwnership};
use pvmkit_abi::address::Ipa;
use std::collections::BTreeMap;

const BASE: u64 = 0x8000_0000;
const PAGES: usize = 64;
const DESC: u64 = BASE + 0x1000;
const AVAIL: u64 = BASE + 0x2000;
const USED: u64 = BASE + 0x3000;
const BUF: u64 = BASE + 0x8000;
const PRIVATE: u64 = BASE + 0x20000;

use crate::testing::VecRam as Ram;

/// Writing and reading the ring fields the tests set up and check.
trait RamFields {
    fn put(&mut self, ipa: u64, bytes: &[u8]);
    fn u16_at(&self, ipa: u64) -> u16;
    fn u32_at(&self, ipa: u64) -> u32;
    fn desc(&mut self, index: u16, addr: u64, len: u32, flags: u16, next: u16);
    fn avail(&mut self, from: u16, heads: &[u16], size: u16);
}

impl RamFields for Ram {
    fn put(&mut self, ipa: u64, bytes: &[u8]) {
        self.write(Ipa(ipa), bytes);
    }
    fn u16_at(&self, ipa: u64) -> u16 {
        let mut b = [0; 2];
        self.read(Ipa(ipa), &mut b);
        u16::from_le_bytes(b)
    }
    fn u32_at(&self, ipa: u64) -> u32 {
        let mut b = [0; 4];
        self.read(Ipa(ipa), &mut b);
        u32::from_le_bytes(b)
    }
    fn desc(&mut self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        self.put(DESC + 16 * index as u64, &d);
    }
    /// Adds heads to the available ring (starting at slot `from`) and publishes the index.
    fn avail(&mut self, from: u16, heads: &[u16], size: u16) {
        for (i, h) in heads.iter().enumerate() {
            let slot = (from as usize + i) % size as usize;
            self.put(AVAIL + 4 + 2 * slot as u64, &h.to_le_bytes());
        }
        self.put(AVAIL + 2, &(from + heads.len() as u16).to_le_bytes());
    }
}

#[derive(Default)]
struct FakeDevice {
    regs: BTreeMap<u64, u64>,
    writes: Vec<(u64, u64)>,
}

impl DeviceRegs for FakeDevice {
    fn read(&mut self, offset: u64, _: u8) -> u64 {
        self.regs.get(&offset).copied().unwrap_or(0)
    }
    fn write(&mut self, offset: u64, _: u8, value: u64) {
        self.writes.push((offset, value));
    }
}

struct World {
    ownership: TestOwnership,
    ram: Ram,
    dev: FakeDevice,
    shadows: Box<[ShadowQueue; MAX_QUEUES]>,
    transport: VirtioDevice,
}

impl World {
    fn new(protected: bool) -> Self {
        let mut ownership = TestOwnership::new(BASE, PAGES);
        for page in [DESC, AVAIL, USED, BUF, BUF + 0x1000] {
            ownership.share(pg(page)).unwrap();
        }
        let shadows = Box::new([const { ShadowQueue::EMPTY }; MAX_QUEUES]);
        Self {
            ownership,
            ram: Ram::new(BASE, PAGES * 4096),
            dev: FakeDevice::default(),
            shadows,
            transport: VirtioDevice::new(31, protected),
        }
    }

    fn write(&mut self, offset: u64, value: u64) -> Result<(), AccessError> {
        self.transport.write(&mut self.dev, offset, 4, value, &mut self.ownership, &mut self.ram, &mut self.shadows)
    }

    fn setup_queue(&mut self, size: u16) -> Result<(), AccessError> {
        self.write(regs::QUEUE_SEL, 0)?;
        self.write(regs::QUEUE_NUM, size as u64)?;
        for (low, addr) in
            [(regs::QUEUE_DESC_LOW, DESC), (regs::QUEUE_DRIVER_LOW, AVAIL), (regs::QUEUE_DEVICE_LOW, USED)]
        {
            self.write(low, addr & 0xffff_ffff)?;
            self.write(low + 4, addr >> 32)?;
        }
        self.write(regs::QUEUE_READY, 1)
    }

    fn notify(&mut self) -> Result<(), AccessError> {
        self.write(regs::QUEUE_NOTIFY, 0)
    }

    fn violation(&mut self) -> Violation {
        match self.notify() {
            Err(AccessError::Violation(v)) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn collect(&mut self) -> u16 {
        self.transport.collect(&mut self.ownership, &mut self.ram, &self.shadows).unwrap()
    }

    /// The device completes `id` having written `len` bytes.
    fn complete(&mut self, id: u32, len: u32) {
        let used = &mut self.shadows[0].used;
        let slot = used.idx as usize % MAX_QUEUE_SIZE;
        used.ring[slot] = queue::UsedElem { id, len };
        used.idx = used.idx.wrapping_add(1);
    }

    fn pins(&self, page: u64) -> u16 {
        match self.ownership.state(pg(page)).unwrap() {
            PageState::Shared { pins } => pins,
            PageState::Private => panic!("page {page:#x} is private"),
        }
    }
}

#[test]
fn a_valid_request_goes_through_the_shadow_and_back() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    // The device was given the shadow rings, never the guest's: the addresses of the
    // shadow's own fields.
    let shadow = &w.shadows[0];
    let (desc, avail, used) = (
        core::ptr::addr_of!(shadow.desc) as u64,
        core::ptr::addr_of!(shadow.avail) as u64,
        core::ptr::addr_of!(shadow.used) as u64,
    );
    assert_eq!(shadow.addresses(), (desc, avail, used));
    let given: Vec<u64> = w.dev.writes.iter().filter(|(o, _)| (0x80..=0xa4).contains(o)).map(|&(_, v)| v).collect();
    assert_eq!(
        given,
        vec![desc & 0xffff_ffff, desc >> 32, avail & 0xffff_ffff, avail >> 32, used & 0xffff_ffff, used >> 32]
    );
    assert!(w.dev.writes.contains(&(regs::QUEUE_READY, 1)));
    assert_eq!(w.pins(DESC), 1, "rings are pinned while the queue is ready");
    assert_eq!(w.ownership.unshare(pg(USED)), Err(crate::pkvm::ownership::OwnershipError::Pinned(pg(USED))));

    // A request: 16 bytes out, 512 bytes in, across the two buffer pages.
    w.ram.desc(3, BUF, 16, 1, 5);
    w.ram.desc(5, BUF + 0xf00, 512, 2, 0);
    w.ram.avail(0, &[3], 8);
    w.notify().unwrap();
    assert!(w.dev.writes.contains(&(regs::QUEUE_NOTIFY, 0)));
    let shadow = &w.shadows[0];
    assert_eq!(shadow.avail.idx, 1);
    assert_eq!(shadow.avail.ring[0], 3);
    assert_eq!(shadow.desc[3], Desc { addr: BUF, len: 16, flags: 1, next: 5 });
    assert_eq!(shadow.desc[5], Desc { addr: BUF + 0xf00, len: 512, flags: 2, next: 0 });
    assert_eq!((w.pins(BUF), w.pins(BUF + 0x1000)), (2, 1));
    assert_eq!(
        w.ownership.unshare(pg(BUF + 0x1000)),
        Err(crate::pkvm::ownership::OwnershipError::Pinned(pg(BUF + 0x1000))),
        "in flight: unshare fails"
    );
    assert_eq!(w.transport.in_flight(), 1);

    // Completion: the device claims more than the chain can hold; the guest sees the clamp.
    w.complete(3, 4096);
    assert_eq!(w.collect(), 1);
    assert_eq!(w.ram.u16_at(USED + 2), 1);
    assert_eq!(w.ram.u32_at(USED + 4), 3);
    assert_eq!(w.ram.u32_at(USED + 8), 512);
    assert_eq!((w.pins(BUF), w.pins(BUF + 0x1000)), (0, 0));
    assert_eq!(w.transport.in_flight(), 0);
    w.ownership.unshare(pg(BUF + 0x1000)).unwrap();

    // Reset drops the ring pins.
    w.write(regs::STATUS, 0).unwrap();
    assert_eq!(w.pins(DESC), 0);
}

/// A block read whose data buffer is private: the violation names the page, the
/// descriptor and that it is the request's data (virtio 1.2 §5.2.6: header, data,
/// status), the device's ID read from the device when the queue was made ready.
#[test]
fn a_private_buffer_is_a_violation_that_names_the_page() {
    let mut w = World::new(true);
    w.dev.regs.insert(regs::DEVICE_ID, 2);
    w.setup_queue(8).unwrap();
    w.ram.desc(0, BUF, 16, 1, 1);
    w.ram.desc(1, PRIVATE + 0x10, 64, 3, 2);
    w.ram.desc(2, BUF + 0x100, 1, 2, 0);
    w.ram.avail(0, &[0], 8);
    let v = w.violation();
    let data = Some(BufferRole::Data);
    let what = "buffer page not shared";
    assert_eq!(v, Violation { ipa: Ipa(PRIVATE), queue: 0, descriptor: Some(1), buffer: data, what });
    assert_eq!(v.to_string(), format!("ipa={PRIVATE:#x} queue=0 desc=1 buffer=data what=\"buffer page not shared\""));
    // A device whose requests hyp knows no layout of: the descriptor alone.
    let mut unknown = World::new(true);
    unknown.dev.regs.insert(regs::DEVICE_ID, 1);
    unknown.setup_queue(8).unwrap();
    unknown.ram.desc(0, PRIVATE, 16, 0, 0);
    unknown.ram.avail(0, &[0], 8);
    assert_eq!(unknown.violation().buffer, None);
    assert_eq!(w.shadows[0].avail.idx, 0, "nothing reached the device");
    assert!(!w.dev.writes.contains(&(regs::QUEUE_NOTIFY, 0)));
    assert_eq!(w.pins(BUF), 0, "nothing pinned");
    // A buffer that starts shared but runs into a private page.
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(0, BUF + 0x1000, 0x1001, 2, 0);
    w.ram.avail(0, &[0], 8);
    assert_eq!(w.violation().ipa, Ipa(BUF + 0x2000));
}

#[test]
fn hostile_rings_are_violations() {
    type Build = fn(&mut Ram);
    let cases: [(&str, Build); 7] = [
        ("descriptor index out of range", |r| r.avail(0, &[9], 8)),
        ("descriptor chain loops", |r| {
            r.desc(0, BUF, 1, 1, 1);
            r.desc(1, BUF, 1, 1, 0);
            r.avail(0, &[0], 8);
        }),
        ("descriptor index out of range", |r| {
            r.desc(0, BUF, 1, 1, 200);
            r.avail(0, &[0], 8);
        }),
        ("buffer wraps around the address space", |r| {
            r.desc(0, u64::MAX - 8, 64, 0, 0);
            r.avail(0, &[0], 8);
        }),
        ("available index ran ahead of the queue size", |r| r.put(AVAIL + 2, &100u16.to_le_bytes())),
        ("indirect descriptor (not negotiated)", |r| {
            r.desc(0, BUF, 64, 4, 0);
            r.avail(0, &[0], 8);
        }),
        ("buffer page not shared", |r| {
            r.desc(0, 0x4000_0000, 64, 0, 0); // hyp's own memory, outside guest RAM
            r.avail(0, &[0], 8);
        }),
    ];
    for (what, build) in cases {
        let mut w = World::new(true);
        w.setup_queue(8).unwrap();
        build(&mut w.ram);
        let v = w.violation();
        assert_eq!(v.what, what);
        assert_eq!(w.shadows[0].avail.idx, 0, "{what}: nothing published");
        assert_eq!(w.pins(BUF), 0, "{what}: nothing pinned");
    }
}

#[test]
fn a_descriptor_in_flight_cannot_be_posted_again() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(2, BUF, 64, 0, 0);
    w.ram.avail(0, &[2], 8);
    w.notify().unwrap();
    w.ram.avail(1, &[2], 8);
    assert_eq!(w.violation().what, "descriptor already in flight");
    assert_eq!(w.pins(BUF), 1);
}

#[test]
fn bogus_completions_unpin_nothing() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(2, BUF, 64, 0, 0);
    w.ram.avail(0, &[2], 8);
    w.notify().unwrap();
    w.complete(7, 1); // never posted
    w.complete(2000, 1); // out of range
    assert_eq!(w.collect(), 0);
    assert_eq!(w.pins(BUF), 1);
    assert_eq!(w.ram.u16_at(USED + 2), 0);
    w.complete(2, 1);
    assert_eq!(w.collect(), 1);
    assert_eq!(w.pins(BUF), 0);
}

#[test]
fn rings_must_be_shared_aligned_and_sized() {
    let mut w = World::new(true);
    w.ownership.unshare(pg(USED)).unwrap();
    match w.setup_queue(8) {
        Err(AccessError::Violation(v)) => {
            assert_eq!((v.ipa, v.what), (Ipa(USED), "ring page not shared"))
        }
        other => panic!("{other:?}"),
    }
    assert!(!w.dev.writes.contains(&(regs::QUEUE_READY, 1)), "the device never saw a ready queue");
    let mut w = World::new(true);
    assert!(matches!(
        w.setup_queue(6),
        Err(AccessError::Violation(Violation { what: "queue size is not a power of two up to 256", .. }))
    ));
    let mut w = World::new(true);
    w.write(regs::QUEUE_NUM, 8).unwrap();
    w.write(regs::QUEUE_DESC_LOW, (DESC + 8) & 0xffff_ffff).unwrap();
    w.write(regs::QUEUE_DESC_HIGH, DESC >> 32).unwrap();
    assert!(matches!(
        w.write(regs::QUEUE_READY, 1),
        Err(AccessError::Violation(Violation { what: "ring is misaligned", .. }))
    ));
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    assert!(matches!(
        w.write(regs::QUEUE_DESC_LOW, 0),
        Err(AccessError::Violation(Violation { what: "queue address changed while the queue is ready", .. }))
    ));
    assert!(matches!(w.write(regs::LEGACY_QUEUE_PFN, 1), Err(AccessError::Violation(_))));
}

#[test]
fn features_are_masked_and_queue_size_capped() {
    let mut w = World::new(true);
    w.dev.regs.insert(regs::DEVICE_FEATURES, 0xffff_ffff);
    w.dev.regs.insert(regs::QUEUE_NUM_MAX, 1024);
    assert_eq!(w.transport.read(&mut w.dev, regs::DEVICE_FEATURES, 4), Ok(0xcfff_ffff));
    w.write(regs::DEVICE_FEATURES_SEL, 1).unwrap();
    assert_eq!(w.transport.read(&mut w.dev, regs::DEVICE_FEATURES, 4), Ok(0xffff_fffb));
    assert_eq!(w.transport.read(&mut w.dev, regs::QUEUE_NUM_MAX, 4), Ok(256));
    w.write(regs::DRIVER_FEATURES, 0xffff_ffff).unwrap();
    assert_eq!(w.dev.writes.last(), Some(&(regs::DRIVER_FEATURES, 0xcfff_ffff)));
    assert_eq!(w.transport.read(&mut w.dev, regs::MAGIC, 2), Err(AccessError::BadWidth));
    assert_eq!(w.transport.read(&mut w.dev, regs::CONFIG + 1, 1), Ok(0), "config space takes any width");
}

#[test]
fn protected_transports_offer_access_platform_on_the_devices_behalf() {
    for (withhold, offered, forwarded) in [(false, 0b11, 0b01), (true, 0b01, 0b11)] {
        let mut w = World::new(true);
        if withhold {
            w.transport = VirtioDevice::new(31, true).withholding_access_platform();
        }
        // QEMU's device offers VERSION_1 (bit 32) but cannot offer ACCESS_PLATFORM (33).
        w.dev.regs.insert(regs::DEVICE_FEATURES, 0b01);
        w.write(regs::DEVICE_FEATURES_SEL, 1).unwrap();
        assert_eq!(w.transport.read(&mut w.dev, regs::DEVICE_FEATURES, 4), Ok(offered));
        // The driver's acceptance of it is hyp's: QEMU sees only what it offered (a
        // driver that accepts what nobody offered is QEMU's to refuse).
        w.write(regs::DRIVER_FEATURES_SEL, 1).unwrap();
        w.write(regs::DRIVER_FEATURES, 0b11).unwrap();
        assert_eq!(w.dev.writes.last(), Some(&(regs::DRIVER_FEATURES, forwarded)));
    }
    let mut w = World::new(false);
    w.dev.regs.insert(regs::DEVICE_FEATURES, 0b01);
    w.write(regs::DEVICE_FEATURES_SEL, 1).unwrap();
    assert_eq!(w.transport.read(&mut w.dev, regs::DEVICE_FEATURES, 4), Ok(0b01), "an ordinary VM's device is QEMU's");
}

#[test]
fn unprotected_transports_pass_everything_through() {
    let mut w = World::new(false);
    w.dev.regs.insert(regs::DEVICE_FEATURES, 0xffff_ffff);
    w.setup_queue(8).unwrap();
    assert!(
        w.dev.writes.contains(&(regs::QUEUE_DESC_LOW, DESC & 0xffff_ffff)),
        "guest addresses go straight to the device"
    );
    assert_eq!(w.transport.read(&mut w.dev, regs::DEVICE_FEATURES, 4), Ok(0xffff_ffff));
    w.ram.desc(0, PRIVATE, 64, 0, 0);
    w.ram.avail(0, &[0], 8);
    w.notify().unwrap();
}

#[test]
fn checked_access_refuses_private_pages() {
    let mut w = World::new(true);
    let access = SharedAccess::new(&w.ownership, &mut w.ram);
    let mut buf = [0u8; 8];
    assert_eq!(access.read(Ipa(BUF + 0x1ffc), &mut buf), Err(NotShared(pg(BUF + 0x2000))));
    assert_eq!(access.read(Ipa(PRIVATE), &mut buf), Err(NotShared(pg(PRIVATE))));
    assert_eq!(access.read(Ipa(BUF), &mut buf), Ok(()));
    assert_eq!(access.read_obj::<u64>(Ipa(BUF + 0x1ffc)), Err(NotShared(pg(BUF + 0x2000))), "typed reads too");
}

fn violation_of(result: Result<(), AccessError>) -> Violation {
    match result {
        Err(AccessError::Violation(v)) => v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn the_queue_size_is_fixed_while_the_queue_is_ready() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    let v = violation_of(w.write(regs::QUEUE_NUM, 1024));
    assert_eq!((v.queue, v.what), (0, "queue size changed while the queue is ready"));
    assert!(!w.dev.writes.contains(&(regs::QUEUE_NUM, 1024)), "the device never saw the new size");
    // The attack that panicked hyp: a head beyond the size the queue was enabled with.
    w.ram.avail(0, &[300], 8);
    let v = w.violation();
    assert_eq!((v.descriptor, v.what), (Some(300), "descriptor index out of range"));
    // Once not ready, the size may change again.
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.write(regs::QUEUE_READY, 0).unwrap();
    w.write(regs::QUEUE_NUM, 16).unwrap();
}

/// A writable buffer posted, then QueueReady=0: QEMU keeps serving the queue, so the
/// buffer's page must stay pinned (not unshareable) until the device gives it back.
#[test]
fn queue_ready_zero_keeps_the_pins_of_buffers_the_device_holds() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(0, BUF, 512, 2, 0);
    w.ram.avail(0, &[0], 8);
    w.notify().unwrap();
    w.write(regs::QUEUE_READY, 0).unwrap();
    assert_eq!(w.pins(DESC), 0, "the guest's ring pins go with QueueReady=0");
    assert_eq!(w.pins(BUF), 1, "the device still holds the buffer");
    assert_eq!(w.ownership.unshare(pg(BUF)), Err(crate::pkvm::ownership::OwnershipError::Pinned(pg(BUF))));
    // Enabling again while the device holds buffers is refused.
    let v = violation_of(w.write(regs::QUEUE_READY, 1));
    assert_eq!(v.what, "queue enabled while the device still holds its buffers (reset the device)");
    // The device completes it: unpinned, but the guest (no ring any more) is not written.
    w.complete(0, 512);
    assert_eq!(w.collect(), 0);
    assert_eq!(w.pins(BUF), 0);
    assert_eq!(w.ram.u16_at(USED + 2), 0);
    w.ownership.unshare(pg(BUF)).unwrap();
}

#[test]
fn a_reset_releases_pins_only_once_status_reads_back_zero() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(0, BUF, 512, 2, 0);
    w.ram.avail(0, &[0], 8);
    w.notify().unwrap();
    // The device has not finished its reset: STATUS still reads non-zero.
    w.dev.regs.insert(regs::STATUS, 0x40);
    w.write(regs::STATUS, 0).unwrap();
    assert_eq!((w.pins(DESC), w.pins(BUF)), (1, 1), "nothing released on an unfinished reset");
    w.dev.regs.insert(regs::STATUS, 0);
    w.write(regs::STATUS, 0).unwrap();
    assert_eq!((w.pins(DESC), w.pins(BUF)), (0, 0), "a finished reset releases everything");
    assert_eq!(w.transport.in_flight(), 0);
    // And the queue starts afresh.
    w.setup_queue(8).unwrap();
}

/// Queue 1 enabled small beside queue 0's in-flight buffer; resizing it cannot make
/// its disable unpin pages it never pinned.
#[test]
fn disable_unpins_exactly_what_enable_pinned() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(0, BUF, 64, 2, 0);
    w.ram.avail(0, &[0], 8);
    w.notify().unwrap();
    // Queue 1: one descriptor at the very end of the page before BUF.
    w.write(regs::QUEUE_SEL, 1).unwrap();
    w.write(regs::QUEUE_NUM, 1).unwrap();
    for (low, addr) in [
        (regs::QUEUE_DESC_LOW, BUF - 16),
        (regs::QUEUE_DRIVER_LOW, AVAIL + 0x800),
        (regs::QUEUE_DEVICE_LOW, USED + 0x800),
    ] {
        w.write(low, addr & 0xffff_ffff).unwrap();
        w.write(low + 4, addr >> 32).unwrap();
    }
    w.ownership.share(pg(BUF - 0x1000)).unwrap();
    w.write(regs::QUEUE_READY, 1).unwrap();
    assert_eq!(violation_of(w.write(regs::QUEUE_NUM, 256)).what, "queue size changed while the queue is ready");
    w.write(regs::QUEUE_READY, 0).unwrap();
    assert_eq!(w.pins(BUF), 1, "queue 0's buffer keeps its pin");
    assert_eq!(w.pins(BUF - 0x1000), 0);
}

#[test]
fn an_unpin_without_its_pin_is_a_hyp_bug() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    // Something behind the queue's back dropped the ring's pin.
    w.ownership.unpin(pg(DESC)).unwrap();
    match w.write(regs::QUEUE_READY, 0) {
        Err(AccessError::HypBug { ipa, what }) => {
            assert_eq!((ipa, what), (Ipa(DESC), "unpin of a page hyp had not pinned"))
        }
        other => panic!("expected a hyp bug, got {other:?}"),
    }
}

#[test]
fn zero_length_descriptors_are_checked_and_pinned() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(0, 0x4000_0000, 0, 0, 0); // hyp's own image, outside guest RAM
    w.ram.avail(0, &[0], 8);
    let v = w.violation();
    assert_eq!((v.ipa, v.what), (Ipa(0x4000_0000), "buffer page not shared"));
    assert_eq!(w.shadows[0].avail.idx, 0, "nothing reached the device");
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(0, PRIVATE, 0, 0, 0);
    w.ram.avail(0, &[0], 8);
    assert_eq!(w.violation().ipa, Ipa(PRIVATE));
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(0, BUF + 0x10, 0, 0, 0);
    w.ram.avail(0, &[0], 8);
    w.notify().unwrap();
    assert_eq!(w.pins(BUF), 1, "a zero-length buffer's page is held like any other");
}

#[test]
fn violations_name_the_queue_they_concern() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    let v = violation_of(w.write(regs::QUEUE_NOTIFY, 7));
    assert_eq!((v.queue, v.what), (7, "notify of a queue beyond what hyp shadows"));
    w.write(regs::QUEUE_SEL, 70_000).unwrap();
    let v = violation_of(w.write(regs::QUEUE_NUM, 8));
    assert_eq!((v.queue, v.what), (70_000, "queue beyond what hyp shadows"));
}

#[test]
fn a_missing_transport_is_named_as_such() {
    let mut transports = [None, Some(VirtioDevice::new(31, true)), None];
    assert_eq!(find_transport(&mut transports, 31).map(|(i, t)| (i, t.slot)), Ok((1, 31)));
    assert!(matches!(find_transport(&mut transports, 30), Err(AccessError::NoTransport)));
}

/// A device's stray used entries, written while nothing is in flight, are consumed at
/// once: they must not later be read as completing a chain posted after them.
#[test]
fn stray_completions_never_complete_a_later_chain() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    for _ in 0..3 {
        w.complete(0, 1); // nothing was posted
    }
    assert_eq!(w.collect(), 0);
    w.ram.desc(0, BUF, 64, 2, 0);
    w.ram.avail(0, &[0], 8);
    w.notify().unwrap();
    assert_eq!(w.collect(), 0, "the stray entries do not complete head 0");
    assert_eq!(w.pins(BUF), 1, "the device still holds the buffer");
}

impl World {
    /// Queue 0 of `size` with its rings at the given IPAs.
    fn setup_at(&mut self, size: u16, rings: [u64; 3]) -> Result<(), AccessError> {
        self.write(regs::QUEUE_SEL, 0)?;
        self.write(regs::QUEUE_NUM, size as u64)?;
        for (low, addr) in [regs::QUEUE_DESC_LOW, regs::QUEUE_DRIVER_LOW, regs::QUEUE_DEVICE_LOW].into_iter().zip(rings)
        {
            self.write(low, addr & 0xffff_ffff)?;
            self.write(low + 4, addr >> 32)?;
        }
        self.write(regs::QUEUE_READY, 1)
    }
}

/// Each ring's extent is the virtio 1.x split ring's (2.7): descriptors 16 bytes
/// each; the available ring 6 + 2 * size bytes; the used ring 6 + 8 * size. A ring
/// that ends in the last byte of a shared page needs nothing more; one that reaches
/// two bytes into the next, private page is refused, naming that page. Size 256, the
/// largest, is accepted.
#[test]
fn rings_extend_exactly_as_the_virtio_spec_sizes_them() {
    let page = |n: u64| BASE + n * 0x1000;
    let (desc, avail, used) = (page(0x10), page(0x12), page(0x14));
    let fits = [desc, avail + 0x1000 - (6 + 2 * 256), used + 0x1000 - (6 + 8 * 256) - 2];
    let over = [desc + 0x800, avail + 0x1000 - (6 + 2 * 256) + 2, used + 0x1000 - (6 + 8 * 256) + 2];
    let share = |w: &mut World| {
        for p in [desc, avail, used] {
            w.ownership.share(pg(p)).unwrap();
        }
    };
    let mut w = World::new(true);
    share(&mut w);
    w.setup_at(256, fits).unwrap();
    assert_eq!((w.pins(desc), w.pins(avail), w.pins(used)), (1, 1, 1));
    for (ring, private) in [(0, desc + 0x1000), (1, avail + 0x1000), (2, used + 0x1000)] {
        let mut w = World::new(true);
        share(&mut w);
        let mut rings = fits;
        rings[ring] = over[ring];
        match w.setup_at(256, rings) {
            Err(AccessError::Violation(v)) => {
                assert_eq!((v.ipa, v.what), (Ipa(private), "ring page not shared"), "ring {ring}")
            }
            other => panic!("ring {ring}: {other:?}"),
        }
    }
}

/// Requests posted in later slots of the available ring go through, and their
/// completions land in the matching slots of the guest's used ring (entries 4 + 2 * n
/// and 4 + 8 * n bytes in).
#[test]
fn later_ring_slots_are_read_and_written_where_the_spec_puts_them() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(1, BUF, 16, 0, 0);
    w.ram.desc(2, BUF + 0x100, 16, 0, 0);
    w.ram.avail(0, &[1, 2], 8);
    w.notify().unwrap();
    assert_eq!((w.shadows[0].avail.ring[0], w.shadows[0].avail.ring[1]), (1, 2));
    w.complete(1, 0);
    w.complete(2, 0);
    assert_eq!(w.collect(), 2);
    assert_eq!((w.ram.u32_at(USED + 4), w.ram.u32_at(USED + 12)), (1, 2));
}

/// A device reset and a new setup start the shadow afresh: no descriptor and no index
/// of the last life survive into the next.
#[test]
fn a_reset_queue_starts_its_shadow_afresh() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(3, BUF, 16, 0, 0);
    w.ram.avail(0, &[3], 8);
    w.notify().unwrap();
    w.complete(3, 0);
    assert_eq!(w.collect(), 1);
    w.write(regs::STATUS, 0).unwrap();
    w.setup_queue(8).unwrap();
    let shadow = &w.shadows[0];
    assert_eq!((shadow.avail.idx, shadow.used.idx), (0, 0));
    assert_eq!(shadow.desc[3], Desc::default());
}

/// A full ring (as many new entries as the queue has slots) is taken; one more than
/// that is the named violation at the available index's IPA. Past the ring's end
/// the slots wrap (slot = index % size).
#[test]
fn a_full_ring_is_taken_and_the_slots_wrap() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    for i in 0..8u16 {
        w.ram.desc(i, BUF + 0x100 * i as u64, 16, 0, 0);
    }
    w.ram.avail(0, &[0, 1, 2, 3, 4, 5, 6, 7], 8);
    w.notify().unwrap();
    assert_eq!(w.transport.in_flight(), 8);
    for i in 0..8 {
        w.complete(i, 0);
    }
    assert_eq!(w.collect(), 8);
    // The next two requests sit in slots 0 and 1 again.
    w.ram.avail(8, &[5, 6], 8);
    w.notify().unwrap();
    assert_eq!((w.shadows[0].avail.ring[0], w.shadows[0].avail.ring[1]), (5, 6));
    // Ten more than were taken: the index ran ahead.
    w.ram.put(AVAIL + 2, &20u16.to_le_bytes());
    let v = w.violation();
    assert_eq!((v.ipa, v.what), (Ipa(AVAIL + 2), "available index ran ahead of the queue size"));
}

/// The device sees only the flags it may act on (NEXT, WRITE): undefined flag bits
/// the guest sets go no further than hyp.
#[test]
fn undefined_descriptor_flags_are_not_passed_on() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(2, BUF, 16, 0xfff0 | 2, 0);
    w.ram.avail(0, &[2], 8);
    w.notify().unwrap();
    assert_eq!(w.shadows[0].desc[2].flags, 2);
}

/// A ring address is two 32-bit halves: each write replaces its own half and keeps the
/// other. A protected transport says it is one.
#[test]
fn ring_addresses_are_assembled_from_their_halves() {
    let mut w = World::new(true);
    assert!(w.transport.is_protected() && !World::new(false).transport.is_protected());
    w.write(regs::QUEUE_SEL, 0).unwrap();
    w.write(regs::QUEUE_DESC_HIGH, 0x12).unwrap();
    w.write(regs::QUEUE_DESC_LOW, 0x3456_7000).unwrap();
    w.write(regs::QUEUE_DRIVER_LOW, 0x8000_2000).unwrap();
    w.write(regs::QUEUE_DEVICE_HIGH, 0x1).unwrap();
    let queue = w.transport.queue(0).unwrap();
    assert_eq!((queue.guest_desc, queue.guest_avail, queue.guest_used), (0x12_3456_7000, 0x8000_2000, 0x1_0000_0000));
    w.write(regs::QUEUE_DESC_HIGH, 0).unwrap();
    assert_eq!(w.transport.queue(0).unwrap().guest_desc, 0x3456_7000, "the low half kept");
    assert!(w.transport.queue(99).is_none());
}

/// A notify that finds nothing new is not passed to the device; one that does is.
#[test]
fn an_empty_notify_does_not_reach_the_device() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.notify().unwrap();
    assert!(!w.dev.writes.contains(&(regs::QUEUE_NOTIFY, 0)));
    w.ram.desc(0, BUF, 16, 0, 0);
    w.ram.avail(0, &[0], 8);
    w.notify().unwrap();
    assert!(w.dev.writes.contains(&(regs::QUEUE_NOTIFY, 0)));
}

/// The pins the queue holds, as hyp's teardown reads them: the rings' while ready, and
/// each descriptor's in flight, named by its index.
#[test]
fn the_pins_held_are_reported_exactly() {
    let mut w = World::new(true);
    w.setup_queue(8).unwrap();
    w.ram.desc(4, BUF + 0xf00, 512, 0, 0);
    w.ram.avail(0, &[4], 8);
    w.notify().unwrap();
    let queue = w.transport.queue(0).unwrap();
    let firsts: Vec<u64> = queue.pinned_ranges().map(|r| r.first.ipa().get()).collect();
    for page in [DESC, AVAIL, USED, BUF] {
        assert!(firsts.contains(&page), "{page:#x} in {firsts:x?}");
    }
    let in_flight: Vec<(usize, u64, u64)> =
        queue.in_flight_descriptors().map(|(i, r)| (i, r.first.ipa().get(), r.pages)).collect();
    assert_eq!(in_flight, [(4, BUF, 2)], "descriptor 4 pins both pages it spans");
}

/// The device holds a buffer from its chain's publication in the available ring (no
/// notify needed), through its flight (pinned), until its completion is collected;
/// a ready queue holds its ring pages. Each holder is named by queue and descriptor.
#[test]
fn what_the_device_holds_is_named_from_publication_to_completion() {
    let mut w = World::new(true);
    let holds = |w: &mut World, page| w.transport.holds(page, &w.ownership, &mut w.ram);
    assert_eq!(holds(&mut w, pg(AVAIL)), None, "no queue is ready");
    w.setup_queue(8).unwrap();
    assert_eq!(holds(&mut w, pg(AVAIL)), Some((0, None)), "a ring page");
    // Written but not published: still the guest's.
    w.ram.desc(2, BUF, 16, 1, 6);
    w.ram.desc(6, BUF + 0xff0, 0x20, 2, 0);
    assert_eq!(holds(&mut w, pg(BUF + 0x1000)), None);
    // Published: the device's, each page by the descriptor that reaches it.
    w.ram.avail(0, &[2], 8);
    assert_eq!(holds(&mut w, pg(BUF)), Some((0, Some(2))));
    assert_eq!(holds(&mut w, pg(BUF + 0x1000)), Some((0, Some(6))), "the buffer runs into the next page");
    assert_eq!(holds(&mut w, pg(BUF + 0x2000)), None);
    // Taken at the notify: pinned, the same holders.
    w.notify().unwrap();
    assert_eq!(holds(&mut w, pg(BUF + 0x1000)), Some((0, Some(6))));
    // Completed and collected: the guest's again.
    w.complete(2, 0);
    assert_eq!(w.collect(), 1);
    assert_eq!(holds(&mut w, pg(BUF)), None);
    assert_eq!(holds(&mut w, pg(BUF + 0x1000)), None);
    // A hostile published chain (a loop, an index beyond the queue) ends the walk.
    w.ram.desc(0, BUF + 0x3000, 8, 1, 0);
    w.ram.desc(1, BUF, 8, 1, 9);
    w.ram.avail(1, &[0, 1], 8);
    assert_eq!(holds(&mut w, pg(BUF)), Some((0, Some(1))));
    assert_eq!(holds(&mut w, pg(BUF + 0x2000)), None, "the loop was walked a bounded number of times");
    // An unprotected transport shadows nothing and holds nothing for hyp.
    let mut w = World::new(false);
    w.setup_queue(8).unwrap();
    assert_eq!(holds(&mut w, pg(AVAIL)), None);
}

/// hyp waits for the device only after a notify, only in a protected VM, and only for
/// a driver that polls.
#[test]
fn hyp_waits_after_a_polling_drivers_notify_only() {
    let w = World::new(true);
    assert!(w.transport.waits_after(regs::QUEUE_NOTIFY, false));
    assert!(!w.transport.waits_after(regs::QUEUE_NOTIFY, true), "the interrupt tells the driver");
    assert!(!w.transport.waits_after(regs::QUEUE_READY, false), "not a notify");
    assert!(!World::new(false).transport.waits_after(regs::QUEUE_NOTIFY, false), "no shadow rings to wait on");
}
