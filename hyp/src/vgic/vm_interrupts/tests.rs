//! The interrupt path's decisions against a fake physical GIC. Expectations follow the
//! GICv3 architecture (list registers, ICC_SGI1R_EL1's fields, GICD/GICR frames) as a
//! guest sees it, not this module's code.

use super::*;
use crate::device::devices::VIRTUAL_TIMER_INTID;
use crate::vgic::list_register::ListRegister;
use pvmkit_abi::gic::{CTLR_ARE, CTLR_ENABLE_GRP1, GICD_CTLR, GICD_IGROUPR, GICD_ISENABLER};
use pvmkit_abi::memory_map::{Region, GICR_SIZE};
use std::collections::BTreeSet;

const D: Frame = Frame::Distributor;
const R: Frame = Frame::Redistributor;
const SGI_FRAME: u64 = pvmkit_abi::gic::GICR_SGI_FRAME;
/// The console's SPI as QEMU's virt board wires it (SPI 1).
const CONSOLE: u32 = 33;

/// A physical GIC of `lrs` list registers, seen from CPU `cpu`.
struct FakeGic {
    cpu: usize,
    lrs: Vec<ListRegister>,
    enabled: BTreeSet<u32>,
    asserted: BTreeSet<u32>,
    deactivated: Vec<u32>,
    kicked: Vec<usize>,
}

impl FakeGic {
    fn new(cpu: usize, lrs: usize) -> Self {
        let (enabled, asserted) = (BTreeSet::new(), BTreeSet::new());
        Self { cpu, lrs: vec![ListRegister(0); lrs], enabled, asserted, deactivated: Vec::new(), kicked: Vec::new() }
    }
}

impl CpuInterface for FakeGic {
    fn list_registers(&self) -> usize {
        self.lrs.len()
    }
    fn read_list_register(&self, n: usize) -> ListRegister {
        self.lrs[n]
    }
    fn write_list_register(&mut self, n: usize, lr: ListRegister) {
        self.lrs[n] = lr;
    }
    fn deactivate_physical(&mut self, intid: u32) {
        self.deactivated.push(intid);
    }
}

impl PhysicalEnables for FakeGic {
    fn set_enabled(&mut self, intid: u32, enabled: bool) {
        if enabled {
            self.enabled.insert(intid);
        } else {
            self.enabled.remove(&intid);
        }
    }
}

impl PhysicalGic for FakeGic {
    fn this_cpu(&self) -> usize {
        self.cpu
    }
    fn asserted(&self, physical: u32) -> bool {
        self.asserted.contains(&physical)
    }
    fn kick(&mut self, cpu: usize) {
        self.kicked.push(cpu);
    }
}

/// A VM of `vcpus` vCPUs with the console and no transport, as boot sets it up.
struct Vm {
    vgics: Vec<Vgic>,
    forwarded: Vec<ForwardedSources>,
    devices: DeviceList,
}

impl Vm {
    fn new(vcpus: usize) -> Self {
        let uart = Region { start: 0x0900_0000, end: 0x0900_1000 };
        Self {
            vgics: (0..vcpus).map(|c| Vgic::for_vcpu(c, vcpus)).collect(),
            forwarded: vec![ForwardedSources::default(); vcpus],
            devices: DeviceList::new(uart, &[], 0, vcpus as u32).unwrap(),
        }
    }

    fn on(&mut self, gic: FakeGic) -> VmInterrupts<'_, FakeGic> {
        VmInterrupts { vgics: &mut self.vgics, forwarded: &mut self.forwarded, devices: &self.devices, gic }
    }
}

/// Group 1 on and every SGI/PPI in group 1 on vCPU `cpu`, as a guest's GIC driver
/// sets them up; then `enable` (PPIs/SGIs) enabled in its redistributor.
fn set_up(irqs: &mut VmInterrupts<'_, FakeGic>, cpu: usize, enable: u32) {
    irqs.write(D, GICD_CTLR, 4, u64::from(CTLR_ARE | CTLR_ENABLE_GRP1)).unwrap();
    let frame = cpu as u64 * GICR_SIZE + SGI_FRAME;
    irqs.write(R, frame + GICD_IGROUPR, 4, !0).unwrap();
    irqs.write(R, frame + GICD_ISENABLER, 4, u64::from(enable)).unwrap();
}

#[test]
fn a_forwarded_interrupt_the_guest_enabled_goes_to_a_list_register_with_its_source() {
    let mut vm = Vm::new(1);
    // Disabled: dropped, deactivated, and its source physically off.
    let mut irqs = vm.on(FakeGic::new(0, 4));
    irqs.forward(VIRTUAL_TIMER_INTID);
    assert_eq!(irqs.gic.deactivated, [VIRTUAL_TIMER_INTID]);
    assert!(irqs.gic.lrs.iter().all(|lr| !lr.in_use()));
    assert!(!irqs.gic.enabled.contains(&VIRTUAL_TIMER_INTID));

    let mut irqs = vm.on(FakeGic::new(0, 4));
    set_up(&mut irqs, 0, 1 << VIRTUAL_TIMER_INTID);
    assert!(irqs.gic.enabled.contains(&VIRTUAL_TIMER_INTID), "the guest's enable reaches the source");
    irqs.forward(VIRTUAL_TIMER_INTID);
    let lr = irqs.gic.lrs[0];
    assert!(lr.is_pending() && lr.vintid() == VIRTUAL_TIMER_INTID);
    assert_eq!(lr.physical(), Some(VIRTUAL_TIMER_INTID), "the hardware bit: the guest's EOI ends it");
    assert!(irqs.gic.deactivated.is_empty());
    // A physical interrupt hyp does not forward (the maintenance interrupt, 25) is never
    // the guest's, whatever the guest enabled.
    irqs.forward(25);
    assert_eq!(irqs.gic.deactivated, [25]);
}

#[test]
fn with_every_list_register_busy_a_source_is_held_back_until_one_frees() {
    let mut vm = Vm::new(1);
    let mut irqs = vm.on(FakeGic::new(0, 2));
    set_up(&mut irqs, 0, (1 << VIRTUAL_TIMER_INTID) | (1 << 5) | (1 << 6));
    irqs.gic.lrs = vec![ListRegister::pending(5, true, 0, None), ListRegister::pending(6, true, 0, None)];
    irqs.forward(VIRTUAL_TIMER_INTID);
    assert_eq!(irqs.gic.deactivated, [VIRTUAL_TIMER_INTID]);
    assert!(!irqs.gic.enabled.contains(&VIRTUAL_TIMER_INTID), "held back: physically off");
    irqs.flush();
    assert!(!irqs.gic.enabled.contains(&VIRTUAL_TIMER_INTID), "still no free list register");
    // The guest took SGI 5: its list register is free again.
    irqs.gic.lrs[0] = ListRegister(0);
    irqs.flush();
    assert!(irqs.gic.enabled.contains(&VIRTUAL_TIMER_INTID), "another chance");
}

#[test]
fn a_quiet_or_disabled_source_is_withdrawn_before_the_guest_runs() {
    let mut vm = Vm::new(1);
    let mut irqs = vm.on(FakeGic::new(0, 4));
    set_up(&mut irqs, 0, 1 << VIRTUAL_TIMER_INTID);
    irqs.gic.asserted.insert(VIRTUAL_TIMER_INTID);
    irqs.forward(VIRTUAL_TIMER_INTID);
    irqs.flush();
    assert!(irqs.gic.lrs[0].is_pending(), "still asserted: it stays");
    // The guest reprogrammed its timer: the level went down before it took the interrupt.
    irqs.gic.asserted.clear();
    irqs.flush();
    assert!(!irqs.gic.lrs[0].in_use());
    assert_eq!(irqs.gic.deactivated, [VIRTUAL_TIMER_INTID]);
}

#[test]
fn an_sgi_to_another_vcpu_is_pended_in_its_model_and_its_cpu_kicked() {
    let mut vm = Vm::new(4);
    // ICC_SGI1R_EL1: INTID 3 (bits 27:24), target list vCPUs 0 and 2 (bits 15:0).
    let mut irqs = vm.on(FakeGic::new(0, 4));
    for cpu in 0..4 {
        set_up(&mut irqs, cpu, 1 << 3);
    }
    irqs.send_sgi((3 << 24) | 0b101, true);
    assert_eq!(irqs.gic.kicked, [2]);
    assert!(irqs.vgics[2].is_pending(3) && !irqs.vgics[1].is_pending(3));
    irqs.flush();
    assert_eq!(irqs.gic.lrs[0].vintid(), 3, "to itself: into its own list registers");
    assert_eq!(irqs.gic.lrs[0].physical(), None);
    // IRM: every vCPU but the sender.
    let mut irqs = vm.on(FakeGic::new(1, 4));
    irqs.send_sgi((3 << 24) | (1 << 40), true);
    assert_eq!(irqs.gic.kicked, [0, 2, 3]);
    assert!(irqs.vgics[0].is_pending(3) && irqs.vgics[3].is_pending(3) && !irqs.vgics[1].is_pending(3));
}

#[test]
fn a_kick_is_taken_and_never_forwarded() {
    let mut vm = Vm::new(2);
    let mut irqs = vm.on(FakeGic::new(1, 4));
    set_up(&mut irqs, 1, 1 << KICK_SGI);
    irqs.forward(KICK_SGI);
    assert_eq!(irqs.gic.deactivated, [KICK_SGI]);
    assert!(irqs.gic.lrs.iter().all(|lr| !lr.in_use()));
}

#[test]
fn a_distributor_write_reaches_every_vcpu_and_a_redistributor_write_its_own() {
    let mut vm = Vm::new(2);
    let mut irqs = vm.on(FakeGic::new(1, 4));
    irqs.write(D, GICD_CTLR, 4, u64::from(CTLR_ARE | CTLR_ENABLE_GRP1)).unwrap();
    irqs.write(D, GICD_IGROUPR + 4, 4, !0).unwrap();
    irqs.write(D, GICD_ISENABLER + 4, 4, 1 << (CONSOLE - 32)).unwrap();
    assert!(irqs.vgics[0].enabled(CONSOLE), "SPIs are vCPU 0's: its model follows vCPU 1's write");
    assert!(irqs.gic.enabled.contains(&CONSOLE), "its source follows, from whichever CPU wrote it");
    // vCPU 1 writes vCPU 0's redistributor: vCPU 0's model only.
    irqs.write(R, SGI_FRAME + GICD_IGROUPR, 4, !0).unwrap();
    irqs.write(R, SGI_FRAME + GICD_ISENABLER, 4, 1 << 7).unwrap();
    assert!(irqs.vgics[0].enabled(7) && !irqs.vgics[1].enabled(7));
    // Past the last vCPU's redistributor there is nothing.
    assert!(irqs.write(R, 2 * GICR_SIZE + SGI_FRAME + GICD_ISENABLER, 4, 1).is_err());
    assert!(irqs.read(R, 2 * GICR_SIZE, 4).is_err());
    assert!(irqs.read(R, GICR_SIZE + SGI_FRAME + GICD_ISENABLER, 4).is_ok());
}

#[test]
fn a_wfi_waits_only_for_an_interrupt_that_could_come() {
    let mut vm = Vm::new(1);
    assert!(!vm.on(FakeGic::new(0, 4)).should_wait(), "nothing enabled: a polling guest yields");
    set_up(&mut vm.on(FakeGic::new(0, 4)), 0, 1 << VIRTUAL_TIMER_INTID);
    assert!(vm.on(FakeGic::new(0, 4)).should_wait());
    let mut gic = FakeGic::new(0, 4);
    gic.lrs[2] = ListRegister::pending(VIRTUAL_TIMER_INTID, true, 0, Some(VIRTUAL_TIMER_INTID));
    assert!(!vm.on(gic).should_wait(), "one is pending already");
    vm.vgics[0].pend(VIRTUAL_TIMER_INTID);
    assert!(!vm.on(FakeGic::new(0, 4)).should_wait(), "one is pending in software");
}

#[test]
fn the_empty_list_registers_default_follows_their_state() {
    let mut gic = FakeGic::new(0, 3);
    gic.lrs[1] = ListRegister::pending(3, true, 0, None);
    assert_eq!(gic.empty_list_registers(), 0b101);
}
