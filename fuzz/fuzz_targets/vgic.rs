//! Sequences of guest accesses to hyp's virtual GIC (any frame, offset, width and
//! value), SGIs from any SGI register, list-register fills, and the guest's
//! acknowledgements and deactivations on a fake CPU interface of 1 to 4 list
//! registers, with its invariants checked after each step:
//! - nothing panics;
//! - an interrupt is reported enabled only if its enable register reads so;
//! - only enabled interrupts are ever handed to a list register;
//! - no INTID is in two list registers, and none is pending both in the vGIC and in a
//!   list register (one pending state per interrupt);
//! - GICD_CTLR always reads with affinity routing and security disabled.
#![no_main]

use hyp::testing::FakeCpuInterface;
use hyp::vgic::delivery;
use hyp::vgic::{Frame, Vgic, INTIDS, SGI_FRAME};
use libfuzzer_sys::fuzz_target;
use pvmkit_fuzz::Input;

const ISENABLER: u64 = 0x100;

fn enable_register_says(gic: &Vgic, intid: u32) -> bool {
    let word = if intid < 32 {
        gic.read(Frame::Redistributor, SGI_FRAME + ISENABLER, 4)
    } else {
        gic.read(Frame::Distributor, ISENABLER + 4 * u64::from(intid / 32), 4)
    };
    word.unwrap() & (1 << (intid % 32)) != 0
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut gic = Vgic::new();
    let Some(list_registers) = input.byte() else { return };
    let mut cpu = FakeCpuInterface::new(1 + usize::from(list_registers % 4));
    while let Some(op) = input.byte() {
        let frame = if op & 0x10 == 0 { Frame::Distributor } else { Frame::Redistributor };
        match op % 6 {
            0 | 1 => {
                let Some(offset) = input.u64() else { break };
                let width = [1, 2, 4, 8][(op >> 2) as usize % 4];
                // Offsets near the registers that matter, and anywhere.
                let offset = if op & 0x20 == 0 { offset % 0x2_0000 } else { offset };
                if op % 6 == 0 {
                    let Some(value) = input.u64() else { break };
                    let _ = delivery::write(&mut gic, &mut cpu, frame, offset, width, value);
                } else {
                    let _ = delivery::read(&gic, &cpu, frame, offset, width);
                }
            }
            2 => {
                let Some(intid) = input.u16() else { break };
                delivery::send_sgi(&mut gic, &cpu, u32::from(intid % 20), op & 0x40 != 0);
            }
            3 => {
                let before = cpu.list_registers.clone();
                delivery::deliver(&mut gic, &mut cpu);
                for (lr, old) in cpu.list_registers.iter().zip(&before) {
                    if lr != old {
                        assert!(gic.enabled(lr.vintid()), "INTID {} handed out while disabled", lr.vintid());
                    }
                }
            }
            4 => {
                let _ = cpu.acknowledge();
            }
            _ => {
                let Some(intid) = input.byte() else { break };
                cpu.deactivate(u32::from(intid % 20));
            }
        }
        let held: Vec<u32> = cpu.list_registers.iter().filter(|lr| lr.in_use()).map(|lr| lr.vintid()).collect();
        for (i, intid) in held.iter().enumerate() {
            assert!(!held[i + 1..].contains(intid), "INTID {intid} in two list registers");
        }
        for lr in cpu.list_registers.iter().filter(|lr| lr.is_pending()) {
            assert!(!gic.is_pending(lr.vintid()), "INTID {} pending twice", lr.vintid());
        }
        for intid in 0..INTIDS as u32 {
            if gic.enabled(intid) {
                assert!(enable_register_says(&gic, intid), "INTID {intid} enabled behind its register");
            }
        }
        assert_eq!(gic.read(Frame::Distributor, 0, 4).unwrap() & 0x50, 0x50);
    }
});
