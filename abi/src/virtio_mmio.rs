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
