//! The devices over real guest memory, driven as a guest's driver would.

use pvmkit_abi::virtio_mmio as reg;
use vm_memory::bitmap::{AtomicBitmap, Bitmap, NewBitmap};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::block::Block;
use super::console::Console;
use super::entropy::Entropy;
use super::transport::{Signal, Transport};
use super::Device;

const RAM: u64 = 0x8000_0000;
const DESC: u64 = RAM;
const AVAIL: u64 = RAM + 0x1000;
const USED: u64 = RAM + 0x2000;
const BUF: u64 = RAM + 0x10_000;

fn memory<B: NewBitmap>() -> GuestMemoryMmap<B> {
    GuestMemoryMmap::<B>::from_ranges(&[(GuestAddress(RAM), 1 << 20)]).unwrap()
}

/// A guest's driver over guest memory whose writes `B` tracks (`()`: none).
struct Driver<B: Bitmap + 'static = ()> {
    mem: GuestMemoryMmap<B>,
    transport: Transport<GuestMemoryMmap<B>>,
    posted: u16,
}

impl<B: NewBitmap + Bitmap + Send + 'static> Driver<B> {
    fn new(device: Box<dyn Device<GuestMemoryMmap<B>>>, queue: u32) -> Self {
        let mut d = Driver { mem: memory(), transport: Transport::new(0xa00_3e00, device, false), posted: 0 };
        d.write(reg::STATUS, 3);
        d.write(reg::DRIVER_FEATURES_SEL, 1);
        d.write(reg::DRIVER_FEATURES, 1);
        d.write(reg::STATUS, 11);
        d.write(reg::QUEUE_SEL, queue);
        d.write(reg::QUEUE_NUM, 8);
        for (low, addr) in [(reg::QUEUE_DESC_LOW, DESC), (reg::QUEUE_DRIVER_LOW, AVAIL), (reg::QUEUE_DEVICE_LOW, USED)]
        {
            d.write(low, addr as u32);
            d.write(low + 4, (addr >> 32) as u32);
        }
        d.write(reg::QUEUE_READY, 1);
        d.write(reg::STATUS, 15);
        d
    }

    fn write(&mut self, offset: u64, value: u32) -> Signal {
        self.transport.write(offset, &value.to_le_bytes(), &self.mem)
    }

    fn read(&self, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        self.transport.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Posts a chain of (addr, len, device-writes) at descriptors 0.. and notifies `queue`.
    fn post(&mut self, queue: u32, chain: &[(u64, u32, bool)]) {
        self.publish(chain);
        self.write(reg::QUEUE_NOTIFY, queue);
    }

    /// Writes a chain at descriptors 0.. and makes it available, without a notify.
    fn publish(&mut self, chain: &[(u64, u32, bool)]) {
        for (i, &(addr, len, write)) in chain.iter().enumerate() {
            let next = i + 1 < chain.len();
            let flags = u16::from(next) | if write { 2 } else { 0 };
            let at = GuestAddress(DESC + 16 * i as u64);
            self.mem.write_obj(addr, at).unwrap();
            self.mem.write_obj(len, at.unchecked_add(8)).unwrap();
            self.mem.write_obj(flags, at.unchecked_add(12)).unwrap();
            self.mem.write_obj(if next { i as u16 + 1 } else { 0 }, at.unchecked_add(14)).unwrap();
        }
        self.mem.write_obj(0u16, GuestAddress(AVAIL + 4 + 2 * u64::from(self.posted % 8))).unwrap();
        self.posted += 1;
        self.mem.write_obj(self.posted, GuestAddress(AVAIL + 2)).unwrap();
    }

    /// The used ring's index and its last entry's length.
    fn used(&self) -> (u16, u32) {
        let idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        let slot = u64::from(idx.wrapping_sub(1) % 8);
        let head: u32 = self.mem.read_obj(GuestAddress(USED + 4 + 8 * slot)).unwrap();
        assert_eq!(head, 0, "every chain here starts at descriptor 0");
        (idx, self.mem.read_obj(GuestAddress(USED + 8 + 8 * slot)).unwrap())
    }

    fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

fn block_request<B: NewBitmap + Bitmap + Send>(
    d: &mut Driver<B>,
    kind: u32,
    sector: u64,
    data: (u64, u32),
    device_writes: bool,
) -> u8 {
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&kind.to_le_bytes());
    header[8..].copy_from_slice(&sector.to_le_bytes());
    d.mem.write_slice(&header, GuestAddress(BUF)).unwrap();
    d.mem.write_obj(0xffu8, GuestAddress(BUF + 0x100)).unwrap();
    d.post(0, &[(BUF, 16, false), (data.0, data.1, device_writes), (BUF + 0x100, 1, true)]);
    d.bytes(BUF + 0x100, 1)[0]
}

#[test]
fn a_block_device_writes_and_reads_back_sectors() {
    let mut d = Driver::<()>::new(Box::new(Block::new(vec![0; 64 * 512])), 0);
    assert_eq!((d.read(reg::MAGIC), d.read(reg::VERSION), d.read(reg::DEVICE_ID)), (0x7472_6976, 2, 2));
    d.write(reg::DEVICE_FEATURES_SEL, 1);
    assert_eq!(d.read(reg::DEVICE_FEATURES), 1, "VERSION_1");
    let mut capacity = [0u8; 8];
    d.transport.read(reg::CONFIG, &mut capacity);
    assert_eq!(u64::from_le_bytes(capacity), 64);
    d.write(reg::DEVICE_FEATURES_SEL, 0);
    assert_eq!(d.read(reg::DEVICE_FEATURES), 1 << 9 | 1 << 2, "FLUSH and SEG_MAX");
    let mut seg_max = [0u8; 4];
    d.transport.read(reg::CONFIG + 12, &mut seg_max);
    assert_eq!(u32::from_le_bytes(seg_max), 254);

    let pattern: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    d.mem.write_slice(&pattern, GuestAddress(BUF + 0x1000)).unwrap();
    assert_eq!(block_request(&mut d, 1, 3, (BUF + 0x1000, 1024), false), 0, "write OK");
    assert_eq!(d.used(), (1, 1), "only the status byte was written");
    assert_eq!(block_request(&mut d, 0, 3, (BUF + 0x2000, 1024), true), 0, "read OK");
    assert_eq!(d.used(), (2, 1025));
    assert_eq!(d.bytes(BUF + 0x2000, 1024), pattern);
    assert_eq!(block_request(&mut d, 0, 63, (BUF + 0x2000, 1024), true), 1, "past the end: IOERR");
    assert_eq!(block_request(&mut d, 4, 0, (BUF + 0x2000, 0), false), 0, "flush");
    assert_eq!(block_request(&mut d, 99, 0, (BUF + 0x2000, 8), true), 2, "unsupported");
    // A reset forgets the queue: a notify then serves nothing.
    d.write(reg::STATUS, 0);
    assert_eq!(d.read(reg::STATUS), 0);
    d.write(reg::QUEUE_NOTIFY, 0);
    assert_eq!(d.used().0, 5);
}

/// A protected VM's devices offer ACCESS_PLATFORM besides VERSION_1 (Linux then uses
/// its restricted pool for rings and buffers); an ordinary VM's do not.
#[test]
fn a_protected_vms_devices_offer_access_platform() {
    for (access_platform, high) in [(true, 3), (false, 1)] {
        let t = Transport::new(0xa00_3e00, Box::new(Block::new(vec![0; 512])), access_platform);
        let mut d = Driver::<()> { mem: memory(), transport: t, posted: 0 };
        d.write(reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(d.read(reg::DEVICE_FEATURES), high);
    }
}

/// A completed request sets InterruptStatus and asks for the interrupt; the driver's
/// acknowledgement clears it; a notify that completes nothing asks for nothing.
#[test]
fn completions_raise_the_interrupt_until_acknowledged() {
    let mut d = Driver::<()>::new(Box::new(Block::new(vec![0; 64 * 512])), 0);
    assert_eq!(d.read(reg::INTERRUPT_STATUS), 0);
    assert_eq!(block_request(&mut d, 4, 0, (BUF, 0), false), 0, "a flush completes");
    assert_eq!(d.read(reg::INTERRUPT_STATUS), 1);
    assert_eq!(d.write(reg::INTERRUPT_ACK, 1), Signal::None);
    assert_eq!(d.read(reg::INTERRUPT_STATUS), 0);
    assert_eq!(d.write(reg::QUEUE_NOTIFY, 0), Signal::None, "nothing new to serve");
}

#[test]
fn entropy_fills_what_it_is_given() {
    let mut d = Driver::<()>::new(Box::new(Entropy), 0);
    d.post(0, &[(BUF, 64, true)]);
    assert_eq!(d.used().0, 1);
    assert!(d.bytes(BUF, 64).iter().any(|&b| b != 0));
}

#[test]
fn a_console_holds_receive_buffers_until_input_and_collects_what_it_is_sent() {
    let mut d = Driver::<()>::new(Box::new(Console::new(b"hello\n")), 1);
    d.mem.write_slice(b"from the guest", GuestAddress(BUF)).unwrap();
    d.post(1, &[(BUF, 14, false)]);
    assert_eq!(d.transport.device().received(), Some(&b"from the guest"[..]));
    let mut d = Driver::<()>::new(Box::new(Console::new(b"")), 0);
    d.post(0, &[(BUF, 64, true)]);
    assert_eq!(d.used().0, 0, "no input: the buffer stays with the device");
    let mut d = Driver::<()>::new(Box::new(Console::new(b"hello\n")), 0);
    d.post(0, &[(BUF, 64, true)]);
    assert_eq!(d.used(), (1, 6));
    assert_eq!(d.bytes(BUF, 6), b"hello\n");
}

#[test]
#[cfg_attr(miri, ignore = "a host file: Miri keeps the host out")]
fn a_block_device_on_a_file_writes_through_to_it() {
    let path = std::env::temp_dir().join(format!("pvmkit-vmm-disk-{}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    file.set_len(16 * 512).unwrap();
    let disk = super::block::Disk::File(file, 16 * 512);
    let mut d = Driver::<()>::new(Box::new(Block::on(disk)), 0);
    d.mem.write_slice(&[0x5a; 512], GuestAddress(BUF + 0x1000)).unwrap();
    assert_eq!(block_request(&mut d, 1, 2, (BUF + 0x1000, 512), false), 0);
    assert_eq!(block_request(&mut d, 4, 0, (BUF, 0), false), 0, "flush syncs the file");
    let on_disk = std::fs::read(&path).unwrap();
    assert!(on_disk[1024..1536].iter().all(|&b| b == 0x5a) && on_disk[..1024].iter().all(|&b| b == 0));
    assert_eq!(block_request(&mut d, 0, 15, (BUF, 1024), true), 1, "past the file's end: IOERR");
    std::fs::remove_file(path).unwrap();
}

/// A descriptor's length is the guest's to choose: one of 4 GiB gets an error, not an
/// allocation of 4 GiB in the VMM.
#[test]
fn huge_descriptors_are_refused_before_anything_is_allocated() {
    let mut d = Driver::<()>::new(Box::new(Block::new(vec![0; 64 * 512])), 0);
    // Never OK (IOERR, or no status at all where the queue ends the chain there), and
    // the request is completed.
    assert_ne!(block_request(&mut d, 1, 0, (BUF + 0x1000, u32::MAX), false), 0);
    assert_ne!(block_request(&mut d, 0, 0, (BUF + 0x1000, u32::MAX), true), 0);
    assert_eq!(d.used().0, 2);
    let mut d = Driver::<()>::new(Box::new(Entropy), 0);
    d.post(0, &[(BUF, u32::MAX, true)]);
    assert_eq!(d.used(), (1, 0), "nothing written");
    let mut d = Driver::<()>::new(Box::new(Console::new(b"")), 1);
    d.post(1, &[(BUF, u32::MAX, false)]);
    assert_eq!(d.transport.device().received(), Some(&b""[..]));
}

/// A descriptor naming an indirect table is refused by name (the feature is never
/// offered; virtio-queue would follow it, letting one chain hold 65 535 descriptors),
/// and so is a chain longer than the queue (here a loop), rather than served cut short.
#[test]
fn unoffered_indirect_descriptors_and_overlong_chains_are_refused() {
    let mut d = Driver::<()>::new(Box::new(Entropy), 0);
    let at = GuestAddress(DESC);
    d.mem.write_obj(BUF, at).unwrap();
    d.mem.write_obj(64u32, at.unchecked_add(8)).unwrap();
    d.mem.write_obj(4u16, at.unchecked_add(12)).unwrap(); // INDIRECT
    d.mem.write_obj(0u16, GuestAddress(AVAIL + 4)).unwrap();
    d.mem.write_obj(1u16, GuestAddress(AVAIL + 2)).unwrap();
    let signal = d.write(reg::QUEUE_NOTIFY, 0);
    let Signal::Refused(refused) = signal else { panic!("{signal:?}") };
    assert_eq!((refused.queue, refused.descriptor), (0, Some(0)));
    assert_eq!(refused.what, "indirect descriptor (VIRTIO_F_INDIRECT_DESC not offered)");
    assert_eq!(d.used().0, 0, "nothing served");

    // Descriptors 0 and 1 point at each other: the chain never ends.
    let mut d = Driver::<()>::new(Box::new(Entropy), 0);
    for (i, next) in [(0u64, 1u16), (1, 0)] {
        let at = GuestAddress(DESC + 16 * i);
        d.mem.write_obj(BUF, at).unwrap();
        d.mem.write_obj(16u32, at.unchecked_add(8)).unwrap();
        d.mem.write_obj(3u16, at.unchecked_add(12)).unwrap(); // NEXT | WRITE
        d.mem.write_obj(next, at.unchecked_add(14)).unwrap();
    }
    d.mem.write_obj(0u16, GuestAddress(AVAIL + 4)).unwrap();
    d.mem.write_obj(1u16, GuestAddress(AVAIL + 2)).unwrap();
    let signal = d.write(reg::QUEUE_NOTIFY, 0);
    let Signal::Refused(refused) = signal else { panic!("{signal:?}") };
    assert_eq!(refused.what, "descriptor chain longer than the queue");
    // A next index beyond the queue (of 8).
    let mut d = Driver::<()>::new(Box::new(Entropy), 0);
    d.mem.write_obj(BUF, GuestAddress(DESC)).unwrap();
    d.mem.write_obj(16u32, GuestAddress(DESC + 8)).unwrap();
    d.mem.write_obj(3u16, GuestAddress(DESC + 12)).unwrap();
    d.mem.write_obj(9u16, GuestAddress(DESC + 14)).unwrap();
    d.mem.write_obj(0u16, GuestAddress(AVAIL + 4)).unwrap();
    d.mem.write_obj(1u16, GuestAddress(AVAIL + 2)).unwrap();
    let signal = d.write(reg::QUEUE_NOTIFY, 0);
    let Signal::Refused(refused) = signal else { panic!("{signal:?}") };
    assert_eq!((refused.descriptor, refused.what), (Some(9), "descriptor index beyond the queue"));
}

/// What a guest sends on the console is kept up to a bound; the rest is counted and
/// dropped, never read into the VMM's memory (a flood of large transmit chains once
/// took the host down).
#[test]
fn the_console_keeps_a_bounded_amount_of_what_it_is_sent() {
    use super::console::RECEIVED_LIMIT;
    let mut d = Driver::<()>::new(Box::new(Console::new(b"")), 1);
    let big = 200 * 1024;
    d.post(1, &[(BUF, big, false)]);
    d.post(1, &[(BUF, 16, false)]);
    let device = d.transport.device();
    assert_eq!(device.received().map(<[u8]>::len), Some(RECEIVED_LIMIT));
    assert_eq!(device.dropped(), u64::from(big) - RECEIVED_LIMIT as u64 + 16);
}

/// The smaller holes a hostile driver found, each closed: a wide read of a 32-bit
/// register reads zeroes above it; a queue size the queue cannot take is refused by
/// name (not truncated to 16 bits or left at 256); FEATURES_OK does not stick to
/// features never offered; SHMLen reads all ones (no shared-memory regions); a block
/// request whose header the device may write is an error, not read.
#[test]
fn a_hostile_drivers_smaller_tricks_are_answered_as_the_spec_says() {
    let mut d = Driver::<()>::new(Box::new(Entropy), 0);
    let mut wide = [0xaau8; 8];
    d.transport.read(reg::MAGIC, &mut wide);
    assert_eq!(wide, [0x76, 0x69, 0x72, 0x74, 0, 0, 0, 0]);
    for size in [0x1_0010u32, 12, 512] {
        let signal = d.write(reg::QUEUE_NUM, size);
        assert!(
            matches!(signal, Signal::Refused(r) if r.what == "queue size not a power of two up to QueueNumMax"),
            "{size:#x}: {signal:?}"
        );
    }
    assert_eq!(d.write(reg::QUEUE_NUM, 0), Signal::None, "0 unsets a queue (virtio-drivers, dropping a driver)");
    assert_eq!(d.read(reg::SHM_LEN_LOW), u32::MAX);
    assert_eq!(d.read(reg::SHM_LEN_HIGH), u32::MAX);
    // Features never offered (bit 0 of the high word is VERSION_1; bit 5 is not offered).
    let mut d = Driver::<()>::new(Box::new(Entropy), 0);
    d.write(reg::STATUS, 0);
    d.write(reg::STATUS, 3);
    d.write(reg::DRIVER_FEATURES_SEL, 1);
    d.write(reg::DRIVER_FEATURES, 1 | 1 << 5);
    d.write(reg::STATUS, 11);
    assert_eq!(d.read(reg::STATUS) & 8, 0, "FEATURES_OK refused");
    // A block request whose header is device-writable.
    let mut d = Driver::<()>::new(Box::new(Block::new(vec![0; 64 * 512])), 0);
    d.mem.write_obj(0xffu8, GuestAddress(BUF + 0x2000)).unwrap();
    d.post(0, &[(BUF, 16, true), (BUF + 0x1000, 512, true), (BUF + 0x2000, 1, true)]);
    assert_eq!(d.bytes(BUF + 0x2000, 1), [1], "VIRTIO_BLK_S_IOERR");
}

/// The devices take any `GuestMemory`, as rust-vmm's do: here one that tracks every
/// page written (vm-memory's dirty bitmap). A block read writes the data and status
/// buffers and the used ring, and no other page: not the request header, not the
/// descriptor table or the available ring, not a page beside the buffers.
#[test]
fn devices_take_any_guest_memory_and_write_only_what_the_chain_lets_them() {
    let mut d = Driver::<AtomicBitmap>::new(Box::new(Block::new(vec![0x5a; 64 * 512])), 0);
    let (data, status) = (BUF + 0x3000, BUF + 0x5000);
    let mut header = [0u8; 16];
    header[8..].copy_from_slice(&2u64.to_le_bytes());
    d.mem.write_slice(&header, GuestAddress(BUF)).unwrap();
    d.publish(&[(BUF, 16, false), (data, 1024, true), (status, 1, true)]);
    // The same mapping (its regions are shared), so that the driver stays free to notify.
    let mem = d.mem.clone();
    let written: &AtomicBitmap = vm_memory::MmapRegion::bitmap(mem.iter().next().unwrap());
    written.reset();
    assert_eq!(d.write(reg::QUEUE_NOTIFY, 0), Signal::Interrupt);
    let pages = 0..(1u64 << 20) / 4096;
    let dirty: Vec<u64> = pages.filter(|p| written.is_addr_set(*p as usize * 4096)).map(|p| RAM + p * 4096).collect();
    assert_eq!(dirty, [USED, data, status], "pages written by the device");
    assert_eq!(d.bytes(data, 1024), vec![0x5a; 1024]);
    assert_eq!(d.bytes(status, 1), [0]);
}

/// A block device that records the part of its request each buffer it is handed is.
struct RoleRecorder(std::sync::Arc<std::sync::Mutex<Vec<Option<pvmkit_abi::virtio_mmio::BufferRole>>>>);

impl<M: vm_memory::GuestMemory> Device<M> for RoleRecorder {
    fn device_id(&self) -> u32 {
        2
    }
    fn features(&self) -> u64 {
        0
    }
    fn queues(&self) -> usize {
        1
    }
    fn read_config(&self, _: u64, _: &mut [u8]) {}
    fn serve(&mut self, _: usize, chain: &[super::Buffer], _: &M) -> u32 {
        self.0.lock().unwrap().extend(chain.iter().map(|b| b.role));
        0
    }
}

/// Each buffer a device serves knows which part of its request it is (virtio 1.2
/// §5.2.6: header, data, status), so that a fault on it names that part.
#[test]
fn a_block_requests_buffers_are_its_header_data_and_status() {
    use pvmkit_abi::virtio_mmio::BufferRole;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut d = Driver::<()>::new(Box::new(RoleRecorder(seen.clone())), 0);
    d.post(0, &[(BUF, 16, false), (BUF + 0x1000, 512, true), (BUF + 0x2000, 512, true), (BUF + 0x100, 1, true)]);
    let roles = seen.lock().unwrap().clone();
    let (h, data, s) = (Some(BufferRole::Header), Some(BufferRole::Data), Some(BufferRole::Status));
    assert_eq!(roles, [h, data, data, s]);
}
