//! The pkvm backend's VMM device side, driven by a hostile guest: any register write
//! to a virtio-mmio transport in front of each device (block, entropy, console), any
//! guest memory for its rings and descriptors, notifies repeated many times over (a
//! flood of chains republished in the available ring). It must never panic, never
//! allocate what the guest merely asks for (a 4 GiB descriptor: libFuzzer's memory
//! limit turns that into a crash), and never keep more of what the guest sends than the
//! console's bound, however many notifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmkit_abi::virtio_mmio as reg;
use pvmkit_fuzz::Input;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::virtio::block::Block;
use vmm::virtio::console::{Console, RECEIVED_LIMIT};
use vmm::virtio::entropy::Entropy;
use vmm::virtio::transport::Transport;
use vmm::virtio::Device;

const RAM: u64 = 0x8000_0000;
/// Room for descriptors of up to a MiB, so that a flood adds up.
const SIZE: usize = 1 << 20;

const OFFSETS: [u64; 15] = [
    reg::STATUS,
    reg::QUEUE_SEL,
    reg::QUEUE_NUM,
    reg::QUEUE_READY,
    reg::QUEUE_NOTIFY,
    reg::QUEUE_DESC_LOW,
    reg::QUEUE_DESC_HIGH,
    reg::QUEUE_DRIVER_LOW,
    reg::QUEUE_DRIVER_HIGH,
    reg::QUEUE_DEVICE_LOW,
    reg::QUEUE_DEVICE_HIGH,
    reg::DRIVER_FEATURES,
    reg::DRIVER_FEATURES_SEL,
    reg::INTERRUPT_ACK,
    reg::CONFIG,
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(kind) = input.byte() else { return };
    let device: Box<dyn Device<GuestMemoryMmap>> = match kind % 3 {
        0 => Box::new(Block::new(vec![0; 16 * 512])),
        1 => Box::new(Entropy),
        _ => Box::new(Console::new(b"hello\n")),
    };
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM), SIZE)]).unwrap();
    let mut transport = Transport::new(0xa00_3e00, device, kind & 0x80 != 0);
    while let Some(op) = input.byte() {
        match op % 5 {
            0 | 1 => {
                let (Some(pick), Some(value)) = (input.byte(), input.bytes::<4>()) else { return };
                let mut value = u32::from_le_bytes(value);
                // Addresses mostly inside guest RAM, so that queues come alive.
                if pick & 0x80 != 0 {
                    value = (RAM as u32).wrapping_add(value % SIZE as u32);
                }
                transport.write(OFFSETS[pick as usize % OFFSETS.len()], &value.to_le_bytes(), &mem);
            }
            2 => {
                let (Some(at), Some(bytes)) = (input.u16(), input.bytes::<16>()) else { return };
                let _ = mem.write_slice(&bytes, GuestAddress(RAM + u64::from(at) % SIZE as u64));
            }
            3 => {
                let Some(pick) = input.byte() else { return };
                let mut out = [0u8; 4];
                transport.read(OFFSETS[pick as usize % OFFSETS.len()], &mut out);
            }
            _ => {
                // The same queue notified again and again, its available index moved on
                // each time so that the same chains are served anew.
                let (Some(queue), Some(times), Some(avail)) = (input.byte(), input.byte(), input.u16()) else { return };
                let idx_at = GuestAddress(RAM + u64::from(avail) % SIZE as u64);
                for _ in 0..times {
                    let idx: u16 = mem.read_obj(idx_at).unwrap_or(0);
                    let _ = mem.write_obj(idx.wrapping_add(1), idx_at);
                    transport.write(reg::QUEUE_NOTIFY, &u32::from(queue % 3).to_le_bytes(), &mem);
                }
            }
        }
        let kept = transport.device().received().map_or(0, <[u8]>::len);
        assert!(kept <= RECEIVED_LIMIT, "the console keeps {kept} bytes of the guest's");
    }
});
