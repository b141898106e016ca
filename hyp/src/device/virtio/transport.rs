//! One virtio-mmio transport as the guest sees it through hyp: register accesses are
//! forwarded to QEMU's device, except those that carry an address (the queue
//! registers, which hyp keeps and replaces with its shadow rings) and the feature bits
//! hyp hides.

use super::queue::{QueueState, ShadowQueue, MAX_QUEUE_SIZE};
use super::{regs, DeviceRegs, GuestRam, Ipa, Page, Violation, ACCESS_PLATFORM, HIDDEN_FEATURES};
use crate::pkvm::ownership::Ownership;

/// The most queues hyp shadows per device (virtio-drivers' block, console and entropy
/// drivers use at most two).
pub const MAX_QUEUES: usize = 4;

/// An access hyp will not perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// virtio-mmio registers below the config space are 32 bits wide.
    BadWidth,
    /// hyp serves no transport at this device slot.
    NoTransport,
    /// The access broke a rule: the VM stops.
    Violation(Violation),
    /// hyp's own bookkeeping is inconsistent (a pin dropped that was never taken): the
    /// VM stops with `hyp_error`, never carries on.
    HypBug {
        /// The IPA involved (0 when none is).
        ipa: Ipa,
        /// What went wrong.
        what: &'static str,
    },
}

/// How many times hyp polls the used rings after a notify before the guest goes on
/// ([`VirtioDevice::waits_after`]). Requests that take longer (a console read waiting
/// for input) complete at a later exit or tick.
pub const NOTIFY_WAIT_POLLS: u32 = 50_000;

/// The transport at QEMU's `slot` among a VM's transports, with its index; a slot hyp
/// serves no transport for is [`AccessError::NoTransport`], named as such.
pub fn find_transport(
    transports: &mut [Option<VirtioDevice>],
    slot: u32,
) -> Result<(usize, &mut VirtioDevice), AccessError> {
    transports
        .iter_mut()
        .enumerate()
        .find_map(|(i, t)| t.as_mut().filter(|t| t.slot == slot).map(|t| (i, t)))
        .ok_or(AccessError::NoTransport)
}

/// One transport.
pub struct VirtioDevice {
    /// QEMU's transport index.
    pub slot: u32,
    protected: bool,
    access_platform: bool,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    /// The device's virtio ID, read from it when a queue is first made ready (0 until
    /// then): violations name the part of a request a buffer is by it.
    device_id: u32,
    queues: [QueueState; MAX_QUEUES],
}

impl VirtioDevice {
    /// A transport; `protected` says whether hyp shadows it or passes it through. A
    /// protected one offers [`ACCESS_PLATFORM`].
    pub const fn new(slot: u32, protected: bool) -> Self {
        Self {
            slot,
            protected,
            access_platform: protected,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            device_id: 0,
            queues: [const { QueueState::new() }; MAX_QUEUES],
        }
    }

    /// The same transport, not offering [`ACCESS_PLATFORM`] (the negative control:
    /// a Linux guest then gives the device guest-physical addresses of private memory).
    pub const fn withholding_access_platform(mut self) -> Self {
        self.access_platform = false;
        self
    }

    /// Whether hyp shadows this transport's queues.
    pub fn is_protected(&self) -> bool {
        self.protected
    }

    /// A queue's state.
    pub fn queue(&self, index: usize) -> Option<&QueueState> {
        self.queues.get(index)
    }

    fn hidden(&self, sel: u32) -> u32 {
        match sel {
            0 => HIDDEN_FEATURES as u32,
            1 => (HIDDEN_FEATURES >> 32) as u32,
            _ => 0,
        }
    }

    /// Feature bits hyp offers on the device's behalf: ACCESS_PLATFORM, since hyp's
    /// shadow rings are the platform's DMA restriction (QEMU's virtio-mmio devices
    /// cannot offer it themselves).
    fn added(&self, sel: u32) -> u32 {
        match sel {
            1 if self.access_platform => (ACCESS_PLATFORM >> 32) as u32,
            _ => 0,
        }
    }

    /// A guest read of `width` bytes at `offset`.
    pub fn read<D: DeviceRegs>(&mut self, dev: &mut D, offset: u64, width: u8) -> Result<u64, AccessError> {
        if !self.protected || offset >= regs::CONFIG {
            return Ok(dev.read(offset, width));
        }
        if width != 4 {
            return Err(AccessError::BadWidth);
        }
        let value = dev.read(offset, 4);
        Ok(match offset {
            regs::DEVICE_FEATURES => {
                let offered = value & !(self.hidden(self.device_features_sel) as u64);
                offered | self.added(self.device_features_sel) as u64
            }
            regs::QUEUE_NUM_MAX => value.min(MAX_QUEUE_SIZE as u64),
            _ => value,
        })
    }

    /// A guest write of `width` bytes at `offset`.
    #[allow(clippy::too_many_arguments)]
    pub fn write<D: DeviceRegs, R: GuestRam>(
        &mut self,
        dev: &mut D,
        offset: u64,
        width: u8,
        value: u64,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadows: &mut [ShadowQueue; MAX_QUEUES],
    ) -> Result<(), AccessError> {
        if !self.protected || offset >= regs::CONFIG {
            dev.write(offset, width, value);
            return Ok(());
        }
        if width != 4 {
            return Err(AccessError::BadWidth);
        }
        let value32 = value as u32;
        let sel = self.queue_sel as usize;
        let queue_sel = self.queue_sel;
        let violation = |what| {
            AccessError::Violation(Violation { ipa: Ipa(0), queue: queue_sel, descriptor: None, buffer: None, what })
        };
        match offset {
            regs::DEVICE_FEATURES_SEL => {
                self.device_features_sel = value32;
                dev.write(offset, 4, value);
            }
            regs::DRIVER_FEATURES_SEL => {
                self.driver_features_sel = value32;
                dev.write(offset, 4, value);
            }
            regs::DRIVER_FEATURES => {
                // What hyp added is hyp's to honour: QEMU never offered it.
                let masked = value32 & !self.hidden(self.driver_features_sel) & !self.added(self.driver_features_sel);
                dev.write(offset, 4, masked as u64);
            }
            regs::QUEUE_SEL => {
                self.queue_sel = value32;
                dev.write(offset, 4, value);
            }
            regs::QUEUE_NUM => {
                let queue = self.queues.get_mut(sel).ok_or(violation("queue beyond what hyp shadows"))?;
                queue.set_size(sel as u32, value32)?;
                dev.write(offset, 4, value);
            }
            regs::QUEUE_DESC_LOW
            | regs::QUEUE_DESC_HIGH
            | regs::QUEUE_DRIVER_LOW
            | regs::QUEUE_DRIVER_HIGH
            | regs::QUEUE_DEVICE_LOW
            | regs::QUEUE_DEVICE_HIGH => {
                let queue = self.queues.get_mut(sel).ok_or(violation("queue beyond what hyp shadows"))?;
                if queue.is_enabled() {
                    return Err(violation("queue address changed while the queue is ready"));
                }
                let field = match offset & !0xf {
                    regs::QUEUE_DESC_LOW => &mut queue.guest_desc,
                    regs::QUEUE_DRIVER_LOW => &mut queue.guest_avail,
                    _ => &mut queue.guest_used,
                };
                *field = if offset & 4 == 0 {
                    (*field & !0xffff_ffff) | value32 as u64
                } else {
                    (*field & 0xffff_ffff) | (value32 as u64) << 32
                };
                // Not forwarded: the device only ever sees the shadow rings.
            }
            regs::QUEUE_READY => {
                let (Some(queue), Some(shadow)) = (self.queues.get_mut(sel), shadows.get_mut(sel)) else {
                    return Err(violation("queue beyond what hyp shadows"));
                };
                if value32 & 1 == 1 {
                    if self.device_id == 0 {
                        self.device_id = dev.read(regs::DEVICE_ID, 4) as u32;
                    }
                    queue.enable(sel as u32, ownership, ram, shadow)?;
                    let (desc, avail, used) = shadow.addresses();
                    for (low, addr) in
                        [(regs::QUEUE_DESC_LOW, desc), (regs::QUEUE_DRIVER_LOW, avail), (regs::QUEUE_DEVICE_LOW, used)]
                    {
                        dev.write(low, 4, addr & 0xffff_ffff);
                        dev.write(low + 4, 4, addr >> 32);
                    }
                    dev.write(offset, 4, 1);
                } else {
                    dev.write(offset, 4, 0);
                    queue.disable(ownership)?;
                }
            }
            regs::QUEUE_NOTIFY => {
                let index = value32 as usize;
                let (Some(queue), Some(shadow)) = (self.queues.get_mut(index), shadows.get_mut(index)) else {
                    return Err(AccessError::Violation(Violation {
                        ipa: Ipa(0),
                        queue: value32,
                        descriptor: None,
                        buffer: None,
                        what: "notify of a queue beyond what hyp shadows",
                    }));
                };
                if queue.notify(value32, self.device_id, ownership, ram, shadow)? > 0 {
                    dev.write(offset, 4, value);
                }
            }
            regs::STATUS => {
                dev.write(offset, 4, value);
                // A reset has finished only when STATUS reads back 0 (virtio 1.x,
                // 4.2.2.1): then, and only then, the device holds no buffer. Until
                // then every pin stays.
                if value32 == 0 && dev.read(regs::STATUS, 4) == 0 {
                    for queue in &mut self.queues {
                        queue.device_reset(ownership)?;
                    }
                }
            }
            regs::LEGACY_GUEST_PAGE_SIZE | regs::LEGACY_QUEUE_ALIGN | regs::LEGACY_QUEUE_PFN => {
                return Err(violation("legacy queue registers on a modern transport"));
            }
            _ => dev.write(offset, 4, value),
        }
        Ok(())
    }

    /// Copies completions of every ready queue back to the guest.
    pub fn collect<R: GuestRam>(
        &mut self,
        ownership: &mut Ownership<'_>,
        ram: &mut R,
        shadows: &[ShadowQueue; MAX_QUEUES],
    ) -> Result<u16, AccessError> {
        let mut done = 0;
        if self.protected {
            for (i, (queue, shadow)) in self.queues.iter_mut().zip(shadows.iter()).enumerate() {
                done += queue.collect(i as u32, ownership, ram, shadow)?;
            }
        }
        Ok(done)
    }

    /// Whether the device holds guest page `page`: the queue, and the descriptor
    /// (`None`: a ring page) ([`QueueState::holds`]).
    pub fn holds<R: GuestRam>(&self, page: Page, ownership: &Ownership<'_>, ram: &mut R) -> Option<(u32, Option<u16>)> {
        if !self.protected {
            return None;
        }
        self.queues.iter().enumerate().find_map(|(i, q)| q.holds(page, ownership, ram).map(|d| (i as u32, d)))
    }

    /// Whether hyp waits for the device after the guest's write at `offset`: after a
    /// notify in a protected VM whose driver polls (its interrupt not enabled), so that
    /// short requests complete before the guest resumes (it would otherwise spin until
    /// hyp's next tick brought the completion). A driver that takes the device's
    /// interrupt is told of completions by it instead. At most [`NOTIFY_WAIT_POLLS`]
    /// polls of the used rings, until nothing is in flight.
    pub fn waits_after(&self, offset: u64, interrupt_driven: bool) -> bool {
        offset == regs::QUEUE_NOTIFY && self.protected && !interrupt_driven
    }

    /// Chains in flight on every queue.
    pub fn in_flight(&self) -> usize {
        self.queues.iter().map(|q| q.in_flight_chains()).sum()
    }
}
