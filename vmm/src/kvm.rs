//! The VM on KVM (rust-vmm's `kvm-ioctls`, `vm-memory`): created protected
//! (`KVM_VM_TYPE_ARM_PROTECTED`) or ordinary, guest RAM in one memslot laid out as the
//! bundle says, the bundle's vCPUs with PSCI 0.2 (vCPU 0 at the entry, the others
//! powered off until the guest's CPU_ON, which KVM handles), an in-kernel GICv3 at QEMU
//! `virt`'s addresses with a redistributor per vCPU, and the run loop, one thread per
//! vCPU, that answers MMIO and ends the VM.

use pvmkit_abi::address::Ipa;
use std::io::Write;
use std::sync::{mpsc, Mutex};

use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, kvm_userspace_memory_region,
    kvm_vcpu_events, kvm_vcpu_init, KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI, KVM_ARM_VCPU_POWER_OFF,
    KVM_ARM_VCPU_PSCI_0_2, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
    KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_MP_STATE_STOPPED, KVM_REG_ARM64, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
};
use kvm_ioctls::{DeviceFd, Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use pvmkit_abi::gic::spi_intid;
use pvmkit_abi::memory_map::{virtio_mmio_slot_at, virtio_mmio_spi};
use pvmkit_abi::profile::teardown::{self, Found, Page, Survey};

use crate::exit::ExitReason;
use crate::kick;
use crate::machine::Plan;
use crate::mmio::{self, Route};
use crate::pl011::Pl011;
use crate::power;
use crate::stats::{Counted, ExitStats};
use crate::virtio::block::{Block, Disk};
use crate::virtio::console::Console;
use crate::virtio::entropy::Entropy;
use crate::virtio::transport::{Signal, Transport};
use crate::virtio::Device;
use crate::watch;

/// The disk a guest gets: 8 MiB, fresh each run (as under hyp).
const DISK_SIZE: usize = 8 << 20;

/// `KVM_CREATE_VM` type of a protected VM.
const VM_TYPE_PROTECTED: u64 = 1 << 31;
/// QEMU `virt`'s GICv3 distributor and redistributor, where a guest expects them.
const GICD: u64 = pvmkit_abi::memory_map::GICD_BASE;
const GICR: u64 = pvmkit_abi::memory_map::GICR_BASE;
/// Interrupts the vGIC provides (SGIs, PPIs and 96 SPIs).
const GIC_IRQS: u32 = 128;

/// A core register's `KVM_{GET,SET}_ONE_REG` id, by its byte offset in `kvm_regs`.
const fn core_reg(offset: u64) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE as u64 | (offset / 4)
}
const X0: u64 = core_reg(0);
const PC: u64 = core_reg(32 * 8);
const PSTATE: u64 = core_reg(33 * 8);
/// EL1h with D, A, I and F masked: how a guest is entered.
const PSTATE_EL1H_MASKED: u64 = 0x3c5;

/// What the run loop does after an exit.
enum Step {
    Go,
    Print(u8),
    Abort,
    End(ExitReason),
}

/// How the VM is made.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// A protected VM (else an ordinary one).
    pub protected: bool,
    /// Append the exits seen to the guest's `bench ` lines.
    pub stats: bool,
    /// The devices offer VIRTIO_F_ACCESS_PLATFORM (a protected VM's do, unless a
    /// negative control turns it off).
    pub access_platform: bool,
}

/// A built VM, ready to run.
pub struct Vm {
    _kvm: Kvm,
    vm: VmFd,
    _gic: DeviceFd,
    memory: GuestMemoryMmap,
    vcpus: Vec<VcpuFd>,
    /// What every vCPU's exits reach, one vCPU at a time.
    devices: Mutex<Devices>,
    virtio_bases: Vec<u64>,
}

/// The VM's devices and what the run keeps of them.
struct Devices {
    console: Pl011,
    line: Vec<u8>,
    virtio: Vec<Transport<GuestMemoryMmap>>,
    /// The exits seen, appended to the guest's `bench ` lines when asked for.
    stats: Option<ExitStats>,
}

/// Builds the VM `plan` describes and runs it to its end; `console_input` is what the
/// host sends on the virtio console, `disk` the block device's disk (default: a fresh
/// one in memory), `instance` pvmfw's instance disk (a fourth transport, when given).
pub fn run(
    plan: &Plan<'_>,
    options: Options,
    console_input: &[u8],
    disk: Option<Disk>,
    instance: Option<Disk>,
) -> ExitReason {
    match build(plan, options, console_input, disk, instance) {
        Ok(mut vm) => {
            let reason = vm.run();
            let devices = vm.devices.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
            for transport in &devices.virtio {
                if let Some(bytes) = transport.device().received() {
                    crate::vmm_println!("virtio-console received {:?}", String::from_utf8_lossy(bytes));
                    let dropped = transport.device().dropped();
                    if dropped > 0 {
                        crate::vmm_println!(
                            "virtio-console dropped {dropped} more bytes (it keeps {} KiB)",
                            crate::virtio::console::RECEIVED_LIMIT / 1024
                        );
                    }
                }
            }
            let memory = vm.tear_down();
            let (holding, pages, marks) = survey(&memory);
            crate::vmm_println!("after teardown: {holding} of {pages} guest RAM pages still hold data");
            for (page, mark) in [Page::Private, Page::Shared].into_iter().zip(marks) {
                if let Some(ipa) = mark {
                    crate::vmm_println!("{} mark still at IPA {ipa:#x} after teardown", page.probe());
                }
                let found = if mark.is_some() { Found::Kept } else { Found::Gone };
                crate::vmm_println!("probe {} = {found}", page.probe());
            }
            reason
        }
        Err(e) => ExitReason::VmmError(e),
    }
}

fn build(
    plan: &Plan<'_>,
    options: Options,
    console_input: &[u8],
    disk: Option<Disk>,
    instance: Option<Disk>,
) -> Result<Vm, String> {
    let protected = options.protected;
    watch::install()?;
    let kvm = Kvm::new().map_err(|e| format!("opening /dev/kvm: {e}"))?;
    let kind = if protected { "protected" } else { "ordinary" };
    let vm = kvm
        .create_vm_with_type(if protected { VM_TYPE_PROTECTED } else { 0 })
        .map_err(|e| format!("creating a {kind} VM: {e} (is the host booted with kvm-arm.mode=protected?)"))?;
    let size = usize::try_from(plan.ram.end - plan.ram.start).map_err(|_| "guest RAM too large")?;
    let memory = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(plan.ram.start), size)])
        .map_err(|e| format!("mapping guest RAM: {e}"))?;
    for &(ipa, bytes) in &plan.loads {
        memory.write_slice(bytes, GuestAddress(ipa)).map_err(|e| format!("loading {ipa:#x}: {e}"))?;
    }
    for (slot, region) in memory.iter().enumerate() {
        let host = memory.get_host_address(region.start_addr()).map_err(|e| format!("guest RAM: {e}"))?;
        let region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        watch::map(host as u64, Ipa(region.guest_phys_addr), region.memory_size);
        // SAFETY: the mapping lives in `memory`, which the VM owns until it is dropped.
        unsafe { vm.set_user_memory_region(region) }.map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
    }
    // The transports, highest slot first: block, entropy, console, and pvmfw's instance
    // disk (as under hyp).
    let virtio_bases = mmio::transports(plan.virtio_slots);
    let mut devices: Vec<Box<dyn Device<GuestMemoryMmap>>> = vec![
        Box::new(Block::on(disk.unwrap_or(Disk::Memory(vec![0; DISK_SIZE])))),
        Box::new(Entropy),
        Box::new(Console::new(console_input)),
    ];
    devices.extend(instance.map(|disk| Box::new(Block::on(disk)) as Box<dyn Device<GuestMemoryMmap>>));
    let virtio = virtio_bases
        .iter()
        .zip(devices)
        .map(|(&base, device)| Transport::new(base, device, options.access_platform))
        .collect();
    // Every vCPU before the vGIC is initialised (it sizes its redistributors by them).
    let mut target = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut target).map_err(|e| format!("KVM_ARM_PREFERRED_TARGET: {e}"))?;
    let mut vcpus = Vec::new();
    for id in 0..plan.vcpus {
        let vcpu = vm.create_vcpu(id.into()).map_err(|e| format!("creating vCPU {id}: {e}"))?;
        let mut init = target;
        init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
        if id > 0 {
            // A secondary waits, off, for the guest's PSCI CPU_ON (KVM answers it).
            init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        vcpu.vcpu_init(&init).map_err(|e| format!("KVM_ARM_VCPU_INIT of vCPU {id}: {e}"))?;
        vcpus.push(vcpu);
    }
    let boot = vcpus.first().ok_or("the bundle asks for no vCPU")?;
    for (reg, value) in [(PC, plan.entry), (X0, plan.dt), (PSTATE, PSTATE_EL1H_MASKED)] {
        boot.set_one_reg(reg, &value.to_le_bytes()).map_err(|e| format!("KVM_SET_ONE_REG {reg:#x}: {e}"))?;
    }
    let gic = gic(&vm)?;
    let stats = options.stats.then(ExitStats::default);
    let devices = Devices { console: Pl011::default(), line: Vec::new(), virtio, stats };
    Ok(Vm { _kvm: kvm, vm, _gic: gic, memory, vcpus, devices: Mutex::new(devices), virtio_bases })
}

fn gic(vm: &VmFd) -> Result<DeviceFd, String> {
    let mut device = kvm_create_device { type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, fd: 0, flags: 0 };
    let gic = vm.create_device(&mut device).map_err(|e| format!("creating the vGICv3: {e}"))?;
    let set = |group: u32, attr: u64, value: Option<&u64>| {
        let request = kvm_device_attr { group, attr, addr: value.map_or(0, |v| v as *const u64 as u64), flags: 0 };
        gic.set_device_attr(&request).map_err(|e| format!("vGICv3 attribute {group}/{attr:#x}: {e}"))
    };
    set(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST as u64, Some(&GICD))?;
    set(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST as u64, Some(&GICR))?;
    let irqs = GIC_IRQS as u64;
    set(KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, Some(&irqs))?;
    set(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT as u64, None)?;
    Ok(gic)
}

/// One pass over guest RAM once the VM is gone (`pvmkit_abi::profile::teardown`): how many
/// pages still hold data, of how many, and the IPA of the first page holding each
/// mark. On the real pKVM the guest's pages went back to the host at teardown, wiped
/// or not as the release decides, and read without a fault.
fn survey(memory: &GuestMemoryMmap) -> (usize, usize, [Option<u64>; 2]) {
    let (mut holding, mut pages, mut marks) = (0, 0, [None; 2]);
    for region in memory.iter() {
        let Ok(host) = memory.get_host_address(region.start_addr()) else { continue };
        // SAFETY: the region's whole mapping, page-aligned and owned by `memory`; no
        // vCPU runs any more, so nothing writes it while it is read.
        let ram = unsafe { std::slice::from_raw_parts(host as *const u64, region.len() as usize / 8) };
        let survey = Survey::of(ram);
        (holding, pages) = (holding + survey.holding, pages + survey.pages);
        for (mark, page) in marks.iter_mut().zip([Page::Private, Page::Shared]) {
            let ipa = survey.at(page).map(|i| region.start_addr().0 + (i * teardown::PAGE_WORDS * 8) as u64);
            *mark = mark.or(ipa);
        }
    }
    (holding, pages, marks)
}

impl Vm {
    /// Closes the vCPUs, the vGIC, the VM and /dev/kvm, so that KVM tears the VM down and
    /// hands its pages back; returns guest RAM's mapping, still the VMM's.
    fn tear_down(self) -> GuestMemoryMmap {
        let Vm { _kvm, vm, _gic, memory, vcpus, devices, .. } = self;
        drop((vcpus, devices, _gic, vm, _kvm));
        memory
    }

    /// Runs every vCPU to the VM's end, each on its own thread (one vCPU too: this
    /// thread watches for a VM whose vCPUs are all off), the first to end the VM
    /// stopping the others.
    fn run(&mut self) -> ExitReason {
        let mut vcpus = std::mem::take(&mut self.vcpus);
        let reason = self.run_all(&mut vcpus);
        self.vcpus = vcpus;
        self.devices.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).flush();
        reason
    }

    fn run_all(&self, vcpus: &mut [VcpuFd]) -> ExitReason {
        if let Err(e) = kick::install() {
            return ExitReason::VmmError(e);
        }
        let stop = kick::Stop::default();
        let census = power::Census::new(vcpus.len());
        let (ended, first) = mpsc::channel();
        std::thread::scope(|scope| {
            let threads: Vec<_> = vcpus
                .iter_mut()
                .enumerate()
                .map(|(index, vcpu)| {
                    let (stop, census, ended) = (&stop, &census, ended.clone());
                    scope.spawn(move || {
                        watch::vcpu(index as u32);
                        let reason = self.run_vcpu(vcpu, index, stop, census);
                        let _ = ended.send(reason);
                    })
                })
                .collect();
            // The first vCPU to end the VM decides its end; the others are stopped. A VM
            // quiet for a while is asked whether every vCPU is off.
            let reason = loop {
                let exits = census.exits();
                match first.recv_timeout(power::QUIET) {
                    Ok(reason) => break reason,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        break ExitReason::VmmError("every vCPU thread vanished".into())
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) if census.exits() == exits => {
                        stop.poke_all();
                        std::thread::sleep(power::ANSWER);
                        if census.all_stopped_since(exits) {
                            break ExitReason::AllVcpusOff;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            };
            stop.all(|| threads.iter().all(|t| t.is_finished()));
            reason
        })
    }

    /// One vCPU's run loop, until it ends the VM or `stop` says another did.
    fn run_vcpu(&self, vcpu: &mut VcpuFd, index: usize, stop: &kick::Stop, census: &power::Census) -> ExitReason {
        stop.enter();
        // The fault handler's map of guest RAM is per thread.
        for region in self.memory.iter() {
            if let Ok(host) = self.memory.get_host_address(region.start_addr()) {
                watch::map(host as u64, Ipa(region.start_addr().0), region.len());
            }
        }
        loop {
            if stop.stopped() {
                return ExitReason::SystemOff;
            }
            let exit = vcpu.run();
            if matches!(&exit, Err(e) if e.errno() == libc::EINTR) {
                // Woken out of KVM_RUN: say whether KVM has this vCPU powered off.
                drop(exit);
                let stopped = vcpu.get_mp_state().is_ok_and(|s| s.mp_state == KVM_MP_STATE_STOPPED);
                census.woken(index, stopped);
                continue;
            }
            census.exited(index);
            let mut devices = self.devices.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let (Some(stats), Ok(exit)) = (devices.stats.as_mut(), &exit) {
                let ipa = match exit {
                    VcpuExit::MmioRead(ipa, _) | VcpuExit::MmioWrite(ipa, _) => Some(*ipa),
                    _ => None,
                };
                stats.count(match ipa.map(|ipa| mmio::route(ipa, 1, &self.virtio_bases)) {
                    Some(Route::Console(_)) => Counted::Console,
                    Some(Route::Virtio(..)) => Counted::Virtio,
                    _ => Counted::Other,
                });
            }
            let step = match exit {
                Ok(VcpuExit::MmioRead(ipa, data)) => match mmio::route(ipa, data.len(), &self.virtio_bases) {
                    Route::Console(offset) => {
                        let value = devices.console.read(offset).to_le_bytes();
                        data.copy_from_slice(&value[..data.len()]);
                        Step::Go
                    }
                    Route::Virtio(i, offset) => {
                        devices.virtio[i].read(offset, data);
                        Step::Go
                    }
                    Route::Abort => Step::Abort,
                },
                Ok(VcpuExit::MmioWrite(ipa, data)) => match mmio::route(ipa, data.len(), &self.virtio_bases) {
                    Route::Console(offset) => {
                        let mut value = [0u8; 4];
                        value[..data.len()].copy_from_slice(data);
                        devices.console.write(offset, u32::from_le_bytes(value)).map_or(Step::Go, Step::Print)
                    }
                    Route::Virtio(i, offset) => match devices.virtio[i].write(offset, data, &self.memory) {
                        Signal::Interrupt => self.interrupt(&devices, i),
                        Signal::None => Step::Go,
                        Signal::Refused(r) => Step::End(ExitReason::Violation {
                            page: pvmkit_abi::address::Page::FIRST,
                            vcpu: Some(index as u32),
                            device: devices.virtio[i].base(),
                            queue: r.queue,
                            descriptor: r.descriptor,
                            buffer: None,
                            what: r.what,
                        }),
                    },
                    Route::Abort => Step::Abort,
                },
                Ok(VcpuExit::SystemEvent(kind, _)) => Step::End(match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => ExitReason::SystemOff,
                    KVM_SYSTEM_EVENT_RESET => ExitReason::Reset,
                    other => ExitReason::GuestCrash(format!("system event {other}")),
                }),
                Ok(other) => Step::End(ExitReason::GuestCrash(format!("unexpected exit {other:?}"))),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Step::Go,
                Err(e) => Step::End(ExitReason::GuestCrash(format!("KVM_RUN: {e}"))),
            };
            match step {
                Step::Go => {}
                Step::Print(byte) => devices.print(byte),
                Step::Abort => {
                    // No device there: the guest takes a synchronous external abort, as
                    // under hyp (real upstream pKVM leaves this to the VMM).
                    let mut events = kvm_vcpu_events::default();
                    events.exception.ext_dabt_pending = 1;
                    if let Err(e) = vcpu.set_vcpu_events(&events) {
                        return ExitReason::VmmError(format!("injecting an external abort: {e}"));
                    }
                }
                Step::End(reason) => return reason,
            }
        }
    }

    /// Raises transport `i`'s interrupt: a rising edge on its SPI (QEMU `virt`'s for
    /// that slot, as the DT says).
    fn interrupt(&self, devices: &Devices, i: usize) -> Step {
        let Some(slot) = devices.virtio.get(i).and_then(|t| virtio_mmio_slot_at(t.base())) else { return Step::Go };
        let irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | spi_intid(virtio_mmio_spi(slot));
        for level in [true, false] {
            if let Err(e) = self.vm.set_irq_line(irq, level) {
                return Step::End(ExitReason::VmmError(format!("raising SPI {}: {e}", virtio_mmio_spi(slot))));
            }
        }
        Step::Go
    }
}

/// The longest console line the VMM holds before printing it.
const LINE_LIMIT: usize = 4096;

impl Devices {
    /// The guest's console, a line at a time.
    fn print(&mut self, byte: u8) {
        if byte == b'\n' {
            self.flush();
        } else if byte != b'\r' {
            self.line.push(byte);
            // A line without end is printed in pieces, never held whole.
            if self.line.len() >= LINE_LIMIT {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if !self.line.is_empty() {
            if let Some(note) = self.stats.and_then(|s| s.annotation(&self.line)) {
                self.line.extend_from_slice(note.as_bytes());
            }
            let mut line = crate::pl011::shown(&self.line);
            line.push(b'\n');
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&line);
            let _ = out.flush();
            self.line.clear();
        }
    }
}
