//! The device-tree vocabulary every part speaks: the compatibles, node names and
//! property names that hyp's platform reader, guest-lib, pvmfw (reader and writer) and
//! `pvmkit` (writer) use, declared once.
//!
//! ```
//! assert_eq!(pvmkit_abi::dt::VIRTIO_MMIO, "virtio,mmio");
//! assert_eq!(pvmkit_abi::dt::BOUNCE_POOL, pvmkit_abi::memory_map::BOUNCE_POOL_COMPATIBLE);
//! ```

/// A PL011 UART.
pub const PL011: &str = "arm,pl011";
/// The AMBA PrimeCell compatible a PL011 node also carries.
pub const PRIMECELL: &str = "arm,primecell";
/// A virtio-mmio transport.
pub const VIRTIO_MMIO: &str = "virtio,mmio";
/// A GICv3.
pub const GIC_V3: &str = "arm,gic-v3";
/// PSCI 1.0 (what pvmkit's DTs say).
pub const PSCI_1_0: &str = "arm,psci-1.0";
/// PSCI 0.2 (listed beside 1.0).
pub const PSCI_0_2: &str = "arm,psci-0.2";
/// The reserved region every DMA buffer of a protected VM bounces through.
pub const BOUNCE_POOL: &str = crate::memory_map::BOUNCE_POOL_COMPATIBLE;
/// pvmfw's mark on the DT it hands over.
pub const VERIFIED_BOOT: &str = "pvmkit,verified-boot";
/// `/chosen` property pvmfw adds when the ramdisk matched `initrd_debug`: the payload
/// is debuggable.
pub const DEBUGGABLE: &str = "pvmkit,debuggable";
/// The compatible of the `/reserved-memory` node holding the DICE handover (open-dice's
/// Linux driver and AVF's payloads look for it).
pub const OPEN_DICE: &str = "google,open-dice";
/// The node name of that region.
pub const DICE_NODE: &str = "dice";
/// The host's AVF node for what it may say of the VM (AVF's DT: `/avf/untrusted`).
pub const AVF_UNTRUSTED: &str = "untrusted";
/// Its VM instance id (bytes): the instance hash and the DICE salt derive from it.
pub const INSTANCE_ID: &str = "instance-id";
/// Present when the host asks for rollback protection to be deferred to the payload.
pub const DEFER_ROLLBACK_PROTECTION: &str = "defer-rollback-protection";

/// `/chosen`.
pub const CHOSEN: &str = "chosen";
/// `/config` (where the host puts the payload's location).
pub const CONFIG: &str = "config";
/// `/psci`.
pub const PSCI: &str = "psci";
/// `/memory`.
pub const MEMORY: &str = "memory";
/// `/reserved-memory`.
pub const RESERVED_MEMORY: &str = "reserved-memory";

/// `#address-cells`.
pub const ADDRESS_CELLS: &str = "#address-cells";
/// `#size-cells`.
pub const SIZE_CELLS: &str = "#size-cells";
/// `/chosen/bootargs`: the command line.
pub const BOOTARGS: &str = "bootargs";
/// `/chosen/stdout-path`: the console.
pub const STDOUT_PATH: &str = "stdout-path";
/// `/config/kernel-address`: where the host staged the signed payload.
pub const KERNEL_ADDRESS: &str = "kernel-address";
/// `/config/kernel-size`: its size.
pub const KERNEL_SIZE: &str = "kernel-size";
/// `/chosen/linux,initrd-start` (QEMU's bundle for hyp).
pub const INITRD_START: &str = "linux,initrd-start";
/// `/chosen/linux,initrd-end`.
pub const INITRD_END: &str = "linux,initrd-end";
/// A device's DMA is cache-coherent.
pub const DMA_COHERENT: &str = "dma-coherent";
/// The node is an interrupt controller.
pub const INTERRUPT_CONTROLLER: &str = "interrupt-controller";
/// A node's handle, for other nodes to refer to it.
pub const PHANDLE: &str = "phandle";
/// Which controller a node's interrupts go to.
pub const INTERRUPT_PARENT: &str = "interrupt-parent";
/// A node's interrupts (three GIC cells each: type, number, flags).
pub const INTERRUPTS: &str = "interrupts";
/// The type cell of a GIC interrupt specifier: an SPI (its number counts from INTID 32).
pub const GIC_SPI: u32 = 0;
/// The type cell of a GIC interrupt specifier: a PPI (its number counts from INTID 16).
pub const GIC_PPI: u32 = 1;
/// A device's input clocks, by handle, and their names.
pub const CLOCKS: &str = "clocks";
/// See [`CLOCKS`].
pub const CLOCK_NAMES: &str = "clock-names";
/// The reserved memory a device's DMA must use (its `restricted-dma-pool`).
pub const MEMORY_REGION: &str = "memory-region";
/// The architected timer.
pub const ARMV8_TIMER: &str = "arm,armv8-timer";
/// A clock of fixed rate.
pub const FIXED_CLOCK: &str = "fixed-clock";

/// The handles pvmkit's trees give: the GICv3, the PL011's clock, the bounce pool.
pub const GIC_PHANDLE: u32 = 1;
/// See [`GIC_PHANDLE`].
pub const UART_CLOCK_PHANDLE: u32 = 2;
/// See [`GIC_PHANDLE`].
pub const BOUNCE_POOL_PHANDLE: u32 = 3;
