//! Each case is a GIC behaviour the architecture states (GICv3 and GICv4 Architecture
//! Specification, IHI 0069: ICPENDR clears the pending state wherever it is held, one
//! pending state per interrupt, the highest-priority pending interrupt signalled
//! first), played against a fake CPU interface that acknowledges as ICC_IAR1 does.

use super::*;
use crate::testing::FakeCpuInterface;
use crate::vgic::{FIRST_SPI, INTIDS, SGI_FRAME};
use pvmkit_abi::gic::{
    GICD_CTLR, GICD_ICPENDR, GICD_IGROUPR, GICD_IPRIORITYR, GICD_ISACTIVER, GICD_ISENABLER, GICD_ISPENDR,
};

const R: Frame = Frame::Redistributor;
const D: Frame = Frame::Distributor;
const SPURIOUS: u32 = 1023;

/// Every SGI and PPI enabled in group 1 at priority 0xa0, group 1 enabled.
fn gic() -> Vgic {
    let mut gic = Vgic::new();
    gic.write(D, GICD_CTLR, 4, 0x12).unwrap();
    gic.write(R, SGI_FRAME + GICD_IGROUPR, 4, !0).unwrap();
    gic.write(R, SGI_FRAME + GICD_ISENABLER, 4, !0).unwrap();
    for intid in (0..FIRST_SPI as u64).step_by(4) {
        gic.write(R, SGI_FRAME + GICD_IPRIORITYR + intid, 4, 0xa0a0_a0a0).unwrap();
    }
    gic
}

#[test]
fn a_burst_of_one_sgi_is_delivered_once() {
    let (mut gic, mut cpu) = (gic(), FakeCpuInterface::new(4));
    send_sgi(&mut gic, &cpu, 3, true);
    assert_eq!(deliver(&mut gic, &mut cpu), 1);
    // Sent twice more before the guest takes it: still one pending state.
    send_sgi(&mut gic, &cpu, 3, true);
    send_sgi(&mut gic, &cpu, 3, true);
    deliver(&mut gic, &mut cpu);
    assert_eq!(cpu.acknowledge(), 3);
    cpu.deactivate(3);
    deliver(&mut gic, &mut cpu);
    assert_eq!(cpu.acknowledge(), SPURIOUS, "the burst arrived twice");
    // Sent again once the guest acknowledged it: pending again, delivered after.
    send_sgi(&mut gic, &cpu, 3, true);
    deliver(&mut gic, &mut cpu);
    assert_eq!(cpu.acknowledge(), 3);
    send_sgi(&mut gic, &cpu, 3, true);
    assert_eq!(deliver(&mut gic, &mut cpu), 0, "not into a second list register while active");
    cpu.deactivate(3);
    deliver(&mut gic, &mut cpu);
    assert_eq!(cpu.acknowledge(), 3, "sent while active: pending again");
}

#[test]
fn icpendr_takes_back_an_interrupt_already_in_a_list_register() {
    let (mut gic, mut cpu) = (gic(), FakeCpuInterface::new(4));
    send_sgi(&mut gic, &cpu, 5, true);
    deliver(&mut gic, &mut cpu);
    assert_eq!(read(&gic, &cpu, R, SGI_FRAME + GICD_ISPENDR, 4).unwrap(), 1 << 5, "pending, in a list register");
    assert_eq!(read(&gic, &cpu, R, SGI_FRAME + GICD_ICPENDR, 4).unwrap(), 1 << 5);
    write(&mut gic, &mut cpu, R, SGI_FRAME + GICD_ICPENDR, 4, 1 << 5).unwrap();
    assert_eq!(read(&gic, &cpu, R, SGI_FRAME + GICD_ISPENDR, 4).unwrap(), 0);
    assert_eq!(cpu.acknowledge(), SPURIOUS);
    assert!(cpu.deactivated.is_empty(), "a software interrupt has no physical side");
}

#[test]
fn icpendr_of_a_forwarded_interrupt_deactivates_its_source_and_keeps_an_active_one() {
    let (mut gic, mut cpu) = (gic(), FakeCpuInterface::new(4));
    let spi = FIRST_SPI + 16;
    cpu.list_registers[0] = ListRegister::pending(27, true, 0xa0, Some(27));
    cpu.list_registers[1] = ListRegister::pending(spi, true, 0xa0, Some(spi));
    write(&mut gic, &mut cpu, R, SGI_FRAME + GICD_ICPENDR, 4, 1 << 27).unwrap();
    assert_eq!(cpu.deactivated, [27]);
    assert!(!cpu.list_registers[0].in_use());
    // An SPI the guest already acknowledged: active stays, the guest will end it.
    assert_eq!(cpu.acknowledge(), spi);
    write(&mut gic, &mut cpu, D, GICD_ICPENDR + 4, 4, 1 << 16).unwrap();
    assert!(cpu.list_registers[1].is_active());
    assert_eq!(cpu.deactivated, [27]);
    assert_eq!(read(&gic, &cpu, D, GICD_ISACTIVER + 4, 4).unwrap(), 1 << 16, "active in its list register");
}

#[test]
fn ispendr_of_an_interrupt_pending_in_a_list_register_changes_nothing() {
    let (mut gic, mut cpu) = (gic(), FakeCpuInterface::new(4));
    send_sgi(&mut gic, &cpu, 2, true);
    deliver(&mut gic, &mut cpu);
    write(&mut gic, &mut cpu, R, SGI_FRAME + GICD_ISPENDR, 4, 1 << 2).unwrap();
    assert!(!gic.is_pending(2));
    assert_eq!(deliver(&mut gic, &mut cpu), 0);
}

#[test]
fn the_highest_priority_pending_interrupt_is_delivered_first() {
    let (mut gic, mut cpu) = (gic(), FakeCpuInterface::new(2));
    // SGI n at priority 0xf0 - 0x10 n: the later INTID, the higher priority.
    for n in 0..6u64 {
        gic.write(R, SGI_FRAME + GICD_IPRIORITYR + n, 1, 0xf0 - 0x10 * n).unwrap();
        send_sgi(&mut gic, &cpu, n as u32, true);
    }
    let mut taken = Vec::new();
    loop {
        deliver(&mut gic, &mut cpu);
        match cpu.acknowledge() {
            SPURIOUS => break,
            intid => {
                taken.push(intid);
                cpu.deactivate(intid);
            }
        }
    }
    assert_eq!(taken, [5, 4, 3, 2, 1, 0]);
}

#[test]
fn a_higher_priority_interrupt_displaces_a_waiting_lower_one() {
    let (mut gic, mut cpu) = (gic(), FakeCpuInterface::new(2));
    gic.write(R, SGI_FRAME + GICD_IPRIORITYR + 7, 1, 0x10).unwrap();
    send_sgi(&mut gic, &cpu, 1, true);
    send_sgi(&mut gic, &cpu, 2, true);
    deliver(&mut gic, &mut cpu);
    send_sgi(&mut gic, &cpu, 7, true);
    assert_eq!(deliver(&mut gic, &mut cpu), 1);
    assert_eq!(cpu.acknowledge(), 7);
    assert!(gic.is_pending(2), "the displaced one waits in the vGIC");
    // A forwarded interrupt is never displaced.
    let (mut gic2, mut cpu) = (gic2_all_low(), FakeCpuInterface::new(1));
    cpu.list_registers[0] = ListRegister::pending(27, true, 0xf0, Some(27));
    send_sgi(&mut gic2, &cpu, 7, true);
    assert_eq!(deliver(&mut gic2, &mut cpu), 0);
    assert!(gic2.is_pending(7));
}

fn gic2_all_low() -> Vgic {
    let mut g = gic();
    g.write(R, SGI_FRAME + GICD_IPRIORITYR + 4, 4, 0x1010_1010).unwrap();
    g
}

#[test]
fn sgi0r_and_asgi1r_send_only_group_0_sgis() {
    let (mut gic, cpu) = (gic(), FakeCpuInterface::new(4));
    send_sgi(&mut gic, &cpu, 4, false);
    assert!(!gic.is_pending(4), "SGI 4 is group 1");
    gic.write(R, SGI_FRAME + GICD_IGROUPR, 4, !(1 << 4)).unwrap();
    send_sgi(&mut gic, &cpu, 4, false);
    assert!(gic.is_pending(4));
    // ICC_SGI1R sends either group.
    send_sgi(&mut gic, &cpu, 6, true);
    send_sgi(&mut gic, &cpu, 9, true);
    assert!(gic.is_pending(6) && gic.is_pending(9));
    assert!(!gic.is_pending(INTIDS as u32));
}

/// ICPENDR takes back exactly the interrupts its bits name, in its own word.
#[test]
fn icpendr_takes_back_only_what_it_names() {
    let (mut gic, mut cpu) = (gic(), FakeCpuInterface::new(4));
    cpu.list_registers[0] = ListRegister::pending(5, true, 0xa0, None);
    cpu.list_registers[1] = ListRegister::pending(3, true, 0xa0, None);
    // SPI 37 is bit 5 of word 1: not the SGI frame's ICPENDR0.
    cpu.list_registers[2] = ListRegister::pending(FIRST_SPI + 5, true, 0xa0, None);
    write(&mut gic, &mut cpu, R, SGI_FRAME + GICD_ICPENDR, 4, 1 << 5).unwrap();
    assert!(!cpu.list_registers[0].in_use());
    assert!(cpu.list_registers[1].is_pending() && cpu.list_registers[2].is_pending());
}

/// A list register holding an INTID the model does not implement (never one hyp
/// writes) is passed over, not indexed.
#[test]
fn a_list_register_beyond_the_model_is_passed_over() {
    let (gic, mut cpu) = (gic(), FakeCpuInterface::new(2));
    cpu.list_registers[0] = ListRegister::pending(INTIDS as u32, true, 0xa0, None);
    assert_eq!(read(&gic, &cpu, D, GICD_ISPENDR + 8, 4), Ok(0));
}
