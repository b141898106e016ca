//! Sequences of guest accesses to hyp's virtual GIC (any frame, offset, width and
//! value), SGIs and software pends, and list-register fills, with its invariants
//! checked after each step:
//! - nothing panics;
//! - an interrupt is reported enabled only if its enable register reads so;
//! - only enabled interrupts are ever handed out for a list register, each once;
//! - GICD_CTLR always reads with affinity routing and security disabled.
#![no_main]

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
    while let Some(op) = input.byte() {
        let frame = if op & 0x10 == 0 { Frame::Distributor } else { Frame::Redistributor };
        match op % 4 {
            0 | 1 => {
                let Some(offset) = input.u64() else { break };
                let width = [1, 2, 4, 8][(op >> 2) as usize % 4];
                // Offsets near the registers that matter, and anywhere.
                let offset = if op & 0x20 == 0 { offset % 0x2_0000 } else { offset };
                if op % 4 == 0 {
                    let Some(value) = input.u64() else { break };
                    let _ = gic.write(frame, offset, width, value);
                } else {
                    let _ = gic.read(frame, offset, width);
                }
            }
            2 => {
                let Some(intid) = input.u16() else { break };
                gic.pend(u32::from(intid));
            }
            _ => {
                let mut taken = Vec::new();
                while let Some(d) = gic.take_deliverable(|i| !taken.contains(&i)) {
                    assert!(gic.enabled(d.intid), "INTID {} handed out while disabled", d.intid);
                    assert!(!taken.contains(&d.intid));
                    taken.push(d.intid);
                }
            }
        }
        for intid in 0..INTIDS as u32 {
            if gic.enabled(intid) {
                assert!(enable_register_says(&gic, intid), "INTID {intid} enabled behind its register");
            }
        }
        assert_eq!(gic.read(Frame::Distributor, 0, 4).unwrap() & 0x50, 0x50);
    }
});
