//! The pkvm backend's VMM device side, driven by a hostile guest: any register write
//! to a virtio-mmio transport in front of each device (block, entropy, console), any
//! guest memory for its rings and descriptors. It must never panic, and never allocate
//! what the guest merely asks for (a 4 GiB descriptor): libFuzzer's memory limit turns
//! that into a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmkit_abi::virtio_mmio as reg;
use pvmkit_fuzz::Input;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::virtio::block::Block;
use vmm::virtio::console::Console;
use vmm::virtio::entropy::Entropy;
use vmm::virtio::transport::Transport;
use vmm::virtio::Device;

const RAM: u64 = 0x8000_0000;
const SIZE: usize = 64 << 10;

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
    let device: Box<dyn Device> = match kind % 3 {
        0 => Box::new(Block::new(vec![0; 16 * 512])),
        1 => Box::new(Entropy),
        _ => Box::new(Console::new(b"hello\n")),
    };
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM), SIZE)]).unwrap();
    let mut transport = Transport::new(0xa00_3e00, device, kind & 0x80 != 0);
    while let Some(op) = input.byte() {
        match op % 4 {
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
            _ => {
                let Some(pick) = input.byte() else { return };
                let mut out = [0u8; 4];
                transport.read(OFFSETS[pick as usize % OFFSETS.len()], &mut out);
            }
        }
    }
});
