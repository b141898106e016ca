//! A modern virtio-mmio transport (virtio 1.x, "MMIO Device Register Layout") in front
//! of one [`Device`]: the registers the guest's driver reads and writes, the queues'
//! setup, and serving a queue when the guest notifies it.

use pvmkit_abi::virtio_mmio as reg;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemory;

use super::{serve_queue, Device, Refused, ACCESS_PLATFORM, VERSION_1};
use crate::watch;

/// "virt".
const MAGIC: u32 = 0x7472_6976;
/// The vendor ID the transport reports ("PVMK").
const VENDOR: u32 = 0x4b4d_5650;
/// The largest queue offered.
pub const QUEUE_MAX: u16 = 256;
/// Status: the driver is ready.
const DRIVER_OK: u32 = 4;
/// Status: the driver accepted a set of features the device offered.
const FEATURES_OK: u32 = 8;
/// InterruptStatus: the device used buffers.
const USED_BUFFER: u32 = 1;

/// One transport, in front of a device that works in guest memory of type `M`.
pub struct Transport<M: GuestMemory> {
    base: u64,
    device: Box<dyn Device<M>>,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    /// Feature bits the transport adds to the device's (VERSION_1, and ACCESS_PLATFORM
    /// for a protected VM).
    transport_features: u64,
    interrupt_status: u32,
}

/// What a guest write asks of the VMM besides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Nothing.
    None,
    /// The device used buffers: raise the transport's interrupt.
    Interrupt,
    /// The device refused a chain: the VM ends, naming it.
    Refused(Refused),
}

impl<M: GuestMemory> Transport<M> {
    /// `device`'s transport at guest address `base`; `access_platform`: offer
    /// VIRTIO_F_ACCESS_PLATFORM (to a protected VM).
    pub fn new(base: u64, device: Box<dyn Device<M>>, access_platform: bool) -> Self {
        let queues = (0..device.queues()).filter_map(|_| Queue::new(QUEUE_MAX).ok()).collect();
        Self {
            base,
            device,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            transport_features: VERSION_1 | if access_platform { ACCESS_PLATFORM } else { 0 },
            interrupt_status: 0,
        }
    }

    /// The register base.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The device.
    pub fn device(&self) -> &dyn Device<M> {
        self.device.as_ref()
    }

    fn selected(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    fn selected_mut(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// A guest read of `data.len()` bytes at `offset`.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            return self.device.read_config(offset - reg::CONFIG, data);
        }
        let features = self.device.features() | self.transport_features;
        let value: u32 = match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => 2,
            reg::DEVICE_ID => self.device.device_id(),
            0x00c => VENDOR,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => features as u32,
                1 => (features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected().map_or(0, |q| q.max_size().into()),
            reg::QUEUE_READY => self.selected().map_or(0, |q| q.ready().into()),
            reg::STATUS => self.status,
            reg::INTERRUPT_STATUS => self.interrupt_status,
            // No shared-memory regions: SHMLen of any is all ones.
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH => u32::MAX,
            _ => 0,
        };
        // A wider access than the 32-bit registers reads zeroes above them, never what
        // the buffer held.
        data.fill(0);
        let bytes = value.to_le_bytes();
        let n = data.len().min(4);
        data[..n].copy_from_slice(&bytes[..n]);
    }

    /// A guest write of `data` at `offset`; says whether to raise the interrupt.
    pub fn write(&mut self, offset: u64, data: &[u8], mem: &M) -> Signal {
        if offset >= reg::CONFIG {
            return Signal::None;
        }
        let mut bytes = [0u8; 4];
        let n = data.len().min(4);
        bytes[..n].copy_from_slice(&data[..n]);
        let value = u32::from_le_bytes(bytes);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => match self.driver_features_sel {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
                1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32),
                _ => {}
            },
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM => {
                // A size the queue cannot take is the driver's error, never quietly
                // truncated to 16 bits or left at the old size. (0 is how a driver
                // unsets a queue: virtio-drivers writes it when a driver is dropped.)
                if value != 0 && (value > u32::from(QUEUE_MAX) || !value.is_power_of_two()) {
                    return Signal::Refused(Refused {
                        queue: self.queue_sel,
                        descriptor: None,
                        what: "queue size not a power of two up to QueueNumMax",
                    });
                }
                if let (Some(q), true) = (self.selected_mut(), value != 0) {
                    q.set_size(value as u16);
                }
            }
            reg::QUEUE_READY => {
                if let Some(q) = self.selected_mut() {
                    q.set_ready(value == 1);
                }
            }
            reg::QUEUE_DESC_LOW | reg::QUEUE_DESC_HIGH => {
                self.set_address(offset, value, Queue::set_desc_table_address)
            }
            reg::QUEUE_DRIVER_LOW | reg::QUEUE_DRIVER_HIGH => {
                self.set_address(offset, value, Queue::set_avail_ring_address)
            }
            reg::QUEUE_DEVICE_LOW | reg::QUEUE_DEVICE_HIGH => {
                self.set_address(offset, value, Queue::set_used_ring_address)
            }
            reg::QUEUE_NOTIFY => return self.serve(value as usize, mem),
            reg::INTERRUPT_ACK => self.interrupt_status &= !value,
            reg::STATUS if value == 0 => self.reset(),
            reg::STATUS => {
                // FEATURES_OK holds only for features the device offered.
                let offered = self.device.features() | self.transport_features;
                let accepted = self.driver_features & !offered == 0;
                self.status = if accepted { value } else { value & !FEATURES_OK };
                if value & DRIVER_OK != 0 {
                    let served: Vec<Signal> = (0..self.queues.len()).map(|q| self.serve(q, mem)).collect();
                    if let Some(refused) = served.iter().find(|s| matches!(s, Signal::Refused(_))) {
                        return *refused;
                    }
                    if served.contains(&Signal::Interrupt) {
                        return Signal::Interrupt;
                    }
                }
            }
            _ => {}
        }
        Signal::None
    }

    fn set_address(&mut self, offset: u64, value: u32, set: fn(&mut Queue, Option<u32>, Option<u32>)) {
        if let Some(q) = self.selected_mut() {
            if offset & 4 == 0 {
                set(q, Some(value), None);
            } else {
                set(q, None, Some(value));
            }
        }
    }

    /// Serves `queue` if it is live; every guest-memory access meanwhile is watched.
    /// Completions set InterruptStatus and ask for the interrupt.
    pub fn serve(&mut self, queue: usize, mem: &M) -> Signal {
        let live = self.status & DRIVER_OK != 0;
        let Some(q) = self.queues.get_mut(queue).filter(|q| live && q.is_valid(mem)) else { return Signal::None };
        watch::device(self.base, queue as u32);
        let completed = serve_queue(self.device.as_mut(), queue, q, mem);
        watch::device(0, 0);
        match completed {
            Err(refused) => return Signal::Refused(refused),
            Ok(0) => return Signal::None,
            Ok(_) => {}
        }
        self.interrupt_status |= USED_BUFFER;
        Signal::Interrupt
    }

    fn reset(&mut self) {
        self.queues.iter_mut().for_each(Queue::reset);
        self.status = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
    }
}
