//! The virtio-mmio transport's register offsets (virtio 1.x, "MMIO Device Register
//! Layout"): hyp's device side and test-guest's hand-driven queue both use them.
//!
//! ```
//! // Register offsets from a transport's base: a driver reads "virt" at MAGIC.
//! assert_eq!(pvmkit_abi::virtio_mmio::MAGIC, 0);
//! assert_eq!(pvmkit_abi::virtio_mmio::QUEUE_NUM, 0x38);
//! ```

/// MagicValue ("virt").
pub const MAGIC: u64 = 0x000;
/// Version (2 = modern).
pub const VERSION: u64 = 0x004;
/// DeviceID.
pub const DEVICE_ID: u64 = 0x008;
/// DeviceFeatures (32 bits selected by DeviceFeaturesSel).
pub const DEVICE_FEATURES: u64 = 0x010;
/// DeviceFeaturesSel.
pub const DEVICE_FEATURES_SEL: u64 = 0x014;
/// DriverFeatures.
pub const DRIVER_FEATURES: u64 = 0x020;
/// DriverFeaturesSel.
pub const DRIVER_FEATURES_SEL: u64 = 0x024;
/// Legacy GuestPageSize.
pub const LEGACY_GUEST_PAGE_SIZE: u64 = 0x028;
/// QueueSel.
pub const QUEUE_SEL: u64 = 0x030;
/// QueueNumMax.
pub const QUEUE_NUM_MAX: u64 = 0x034;
/// QueueNum.
pub const QUEUE_NUM: u64 = 0x038;
/// Legacy QueueAlign.
pub const LEGACY_QUEUE_ALIGN: u64 = 0x03c;
/// Legacy QueuePFN: an address.
pub const LEGACY_QUEUE_PFN: u64 = 0x040;
/// QueueReady.
pub const QUEUE_READY: u64 = 0x044;
/// QueueNotify.
pub const QUEUE_NOTIFY: u64 = 0x050;
/// Which interrupts are pending (bit 0: used buffers; bit 1: configuration change).
pub const INTERRUPT_STATUS: u64 = 0x060;
/// The driver acknowledges pending interrupts.
pub const INTERRUPT_ACK: u64 = 0x064;
/// Status.
pub const STATUS: u64 = 0x070;
/// QueueDescLow (then High at +4).
pub const QUEUE_DESC_LOW: u64 = 0x080;
/// QueueDescHigh.
pub const QUEUE_DESC_HIGH: u64 = 0x084;
/// QueueDriverLow (the available ring).
pub const QUEUE_DRIVER_LOW: u64 = 0x090;
/// QueueDriverHigh.
pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
/// QueueDeviceLow (the used ring).
pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
/// QueueDeviceHigh.
pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
/// Start of the device-specific configuration space.
pub const CONFIG: u64 = 0x100;
/// SHMLen, low word (its region selected by SHMSel at 0x0ac): all ones when no such
/// shared-memory region exists, as for every device here.
pub const SHM_LEN_LOW: u64 = 0x0b0;
/// SHMLen, high word.
pub const SHM_LEN_HIGH: u64 = 0x0b4;

/// The virtio device IDs pvmkit's devices have (virtio 1.2, §5).
pub mod device_id {
    /// A block device.
    pub const BLOCK: u32 = 2;
    /// A console.
    pub const CONSOLE: u32 = 3;
    /// An entropy source.
    pub const ENTROPY: u32 = 4;
}

/// What a buffer of a request is, by its place in the chain: the part of a request a
/// violation names beside the descriptor's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferRole {
    /// A block request's header (type, sector): its first buffer.
    Header,
    /// The data: a block request's middle buffers, every console or entropy buffer.
    Data,
    /// A block request's status byte: its last buffer.
    Status,
}

impl BufferRole {
    /// The buffer at `position` (from 0) of a chain, `last` if no buffer follows it, on
    /// a device of `device_id` (virtio 1.2 §5.2.6: a block request is a header, its
    /// data and a status byte; §5.3, §5.4: a console's and an entropy source's buffers
    /// are all data). `None` for a device whose requests pvmkit knows no layout of.
    pub const fn of(device_id: u32, position: usize, last: bool) -> Option<Self> {
        match device_id {
            device_id::BLOCK if position == 0 => Some(Self::Header),
            device_id::BLOCK if last => Some(Self::Status),
            device_id::BLOCK | device_id::CONSOLE | device_id::ENTROPY => Some(Self::Data),
            _ => None,
        }
    }

    /// Its name in an exit line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Data => "data",
            Self::Status => "status",
        }
    }
}

#[cfg(test)]
mod buffer_role_tests {
    use super::*;

    /// A block read as virtio-drivers and Linux send it: header, data, status.
    #[test]
    fn a_block_request_is_a_header_its_data_and_a_status() {
        let roles: [Option<BufferRole>; 3] = [0, 1, 2].map(|p| BufferRole::of(device_id::BLOCK, p, p == 2));
        assert_eq!(roles, [Some(BufferRole::Header), Some(BufferRole::Data), Some(BufferRole::Status)]);
        // A flush: header and status only.
        assert_eq!(BufferRole::of(device_id::BLOCK, 1, true), Some(BufferRole::Status));
        assert_eq!(BufferRole::of(device_id::CONSOLE, 0, true), Some(BufferRole::Data));
        assert_eq!(BufferRole::of(device_id::ENTROPY, 0, true).map(BufferRole::name), Some("data"));
        assert_eq!(BufferRole::of(1, 0, true), None, "a network device: no layout known");
    }
}
