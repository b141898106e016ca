use super::*;

const D: Frame = Frame::Distributor;
const R: Frame = Frame::Redistributor;

/// What Linux's GICv3 driver does at boot, in its order (dist, then the redistributor).
fn as_linux_sets_it_up(gic: &mut Vgic) {
    gic.write(D, GICD_CTLR, 4, 0).unwrap();
    for word in 1..WORDS as u64 {
        gic.write(D, GICD_IGROUPR + 4 * word, 4, !0).unwrap();
        gic.write(D, GICD_ICENABLER + 4 * word, 4, !0).unwrap();
        gic.write(D, GICD_ICACTIVER + 4 * word, 4, !0).unwrap();
    }
    for intid in (FIRST_SPI as u64..INTIDS as u64).step_by(4) {
        gic.write(D, GICD_IPRIORITYR + intid, 4, 0xa0a0_a0a0).unwrap();
    }
    gic.write(D, GICD_CTLR, 4, 0x12).unwrap();
    for intid in FIRST_SPI as u64..INTIDS as u64 {
        gic.write(D, GICD_IROUTER + 8 * intid, 8, 0).unwrap();
    }
    gic.write(R, GICR_WAKER, 4, 0).unwrap();
    gic.write(R, SGI_FRAME + GICD_IGROUPR, 4, !0).unwrap();
    gic.write(R, SGI_FRAME + GICD_ICENABLER, 4, !0).unwrap();
    for intid in (0..32).step_by(4) {
        gic.write(R, SGI_FRAME + GICD_IPRIORITYR + intid, 4, 0xa0a0_a0a0).unwrap();
    }
}

#[test]
fn identifies_as_a_gicv3_with_one_redistributor() {
    let gic = Vgic::new();
    assert_eq!(gic.read(D, PIDR2, 4).unwrap() & 0xf0, 0x30);
    assert_eq!(gic.read(R, PIDR2, 4).unwrap() & 0xf0, 0x30);
    let typer = gic.read(D, GICD_TYPER, 4).unwrap();
    assert_eq!(32 * ((typer & 0x1f) + 1), INTIDS as u64);
    assert_eq!(typer & (1 << 17), 0, "no LPIs");
    assert_eq!(gic.read(R, GICR_TYPER, 8).unwrap(), 1 << 4, "affinity 0, the last one");
    assert_eq!(gic.read(R, GICR_TYPER + 4, 4).unwrap(), 0);
    // With four vCPUs, vCPU 2's redistributor: affinity 2 (bits 63:32), processor 2
    // (23:8), not the last; vCPU 3's is the last (GICv3 architecture, GICR_TYPER).
    let second = Vgic::for_vcpu(2, 4);
    assert_eq!(second.read(R, GICR_TYPER, 8).unwrap(), (2 << 32) | (2 << 8));
    assert_eq!(second.read(R, GICR_TYPER + 4, 4).unwrap(), 2);
    assert_eq!(Vgic::for_vcpu(3, 4).read(R, GICR_TYPER, 4).unwrap(), (3 << 8) | (1 << 4));
    // Security disabled, affinity routing on, whatever is written.
    assert_eq!(gic.read(D, GICD_CTLR, 4).unwrap(), 0x50);
}

#[test]
fn the_redistributor_wakes_when_asked() {
    let mut gic = Vgic::new();
    assert_eq!(gic.read(R, GICR_WAKER, 4).unwrap(), 0b110);
    gic.write(R, GICR_WAKER, 4, 0).unwrap();
    assert_eq!(gic.read(R, GICR_WAKER, 4).unwrap(), 0);
}

#[test]
fn enables_follow_set_and_clear_and_the_group_enable() {
    let mut gic = Vgic::new();
    as_linux_sets_it_up(&mut gic);
    assert!(!gic.enabled(27) && !gic.enabled(48) && !gic.any_enabled());
    assert_eq!(gic.write(R, SGI_FRAME + GICD_ISENABLER, 4, 1 << 27).unwrap(), Effect::EnablesChanged);
    assert_eq!(gic.write(D, GICD_ISENABLER + 4, 4, 1 << 16).unwrap(), Effect::EnablesChanged);
    assert!(gic.enabled(27) && gic.enabled(48) && !gic.enabled(49));
    assert_eq!(gic.read(D, GICD_ISENABLER + 4, 4).unwrap(), 1 << 16);
    assert_eq!(gic.read(R, SGI_FRAME + GICD_ICENABLER, 4).unwrap(), 1 << 27);
    // The distributor's own word 0 is the redistributor's business.
    assert_eq!(gic.read(D, GICD_ISENABLER, 4).unwrap(), 0);
    // Group 1 disabled at the distributor: nothing is.
    gic.write(D, GICD_CTLR, 4, 0).unwrap();
    assert!(!gic.enabled(27) && !gic.any_enabled());
    gic.write(D, GICD_CTLR, 4, 2).unwrap();
    gic.write(D, GICD_ICENABLER + 4, 4, 1 << 16).unwrap();
    assert!(!gic.enabled(48) && gic.enabled(27));
    assert!(!gic.enabled(INTIDS as u32) && !gic.enabled(u32::MAX));
}

#[test]
fn priorities_are_bytes_kept_per_frame() {
    let mut gic = Vgic::new();
    as_linux_sets_it_up(&mut gic);
    gic.write(D, GICD_IPRIORITYR + 49, 1, 0x80).unwrap();
    assert_eq!(gic.read(D, GICD_IPRIORITYR + 48, 4).unwrap(), 0xa0a0_80a0);
    assert_eq!(gic.deliverable(49), None, "not enabled");
    gic.write(D, GICD_ISENABLER + 4, 4, 1 << 17).unwrap();
    assert_eq!(gic.deliverable(49), Some(Deliverable { intid: 49, group1: true, priority: 0x80 }));
    // SGI/PPI priorities are the redistributor's: the distributor's bytes read 0.
    assert_eq!(gic.read(D, GICD_IPRIORITYR + 24, 4).unwrap(), 0);
    assert_eq!(gic.read(R, SGI_FRAME + GICD_IPRIORITYR + 24, 4).unwrap(), 0xa0a0_a0a0);
    // Unaligned or odd widths are refused, by name.
    assert_eq!(gic.read(D, GICD_IPRIORITYR + 49, 4), Err(BadAccess { offset: GICD_IPRIORITYR + 49, width: 4 }));
    assert!(gic.write(D, GICD_IPRIORITYR + 48, 2, 0).is_err());
    // Beyond the implemented INTIDs: zero, writes ignored.
    gic.write(D, GICD_IPRIORITYR + 200, 4, !0).unwrap();
    assert_eq!(gic.read(D, GICD_IPRIORITYR + 200, 4).unwrap(), 0);
}

#[test]
fn routes_are_64_bit_and_masked() {
    let mut gic = Vgic::new();
    let at = GICD_IROUTER + 8 * 48;
    gic.write(D, at, 8, u64::MAX).unwrap();
    assert_eq!(gic.read(D, at, 8).unwrap(), IROUTER_MASK);
    gic.write(D, at + 4, 4, 0).unwrap();
    assert_eq!(gic.read(D, at, 4).unwrap(), 0x80ff_ffff);
    assert_eq!(gic.read(D, at + 4, 4).unwrap(), 0);
    // SGIs and PPIs have none; unimplemented SPIs read 0.
    assert_eq!(gic.read(D, GICD_IROUTER + 8 * 16, 8).unwrap(), 0);
    gic.write(D, GICD_IROUTER + 8 * 500, 8, 1).unwrap();
    assert_eq!(gic.read(D, GICD_IROUTER + 8 * 500, 8).unwrap(), 0);
    assert!(gic.read(D, at, 2).is_err());
}

#[test]
fn trigger_modes_keep_only_their_defined_bits() {
    let mut gic = Vgic::new();
    gic.write(D, GICD_ICFGR + 12, 4, !0).unwrap();
    assert_eq!(gic.read(D, GICD_ICFGR + 12, 4).unwrap(), 0xaaaa_aaaa);
    assert_eq!(gic.read(R, SGI_FRAME + GICD_ICFGR, 4).unwrap(), 0xaaaa_aaaa, "SGIs are edge");
    gic.write(R, SGI_FRAME + GICD_ICFGR, 4, 0).unwrap();
    assert_eq!(gic.read(R, SGI_FRAME + GICD_ICFGR, 4).unwrap(), 0xaaaa_aaaa, "and read-only");
}

#[test]
fn software_pending_interrupts_are_delivered_once_when_enabled() {
    let mut gic = Vgic::new();
    as_linux_sets_it_up(&mut gic);
    assert!(!gic.any_pending());
    gic.pend(1);
    assert!(gic.any_pending());
    assert_eq!(gic.take_deliverable(|_| true), None, "SGI 1 is not enabled yet");
    assert_eq!(gic.read(R, SGI_FRAME + GICD_ISPENDR, 4).unwrap(), 0b10);
    gic.write(R, SGI_FRAME + GICD_ISENABLER, 4, 0b10).unwrap();
    assert_eq!(gic.take_deliverable(|i| i != 1), None, "SGI 1 already has a list register");
    assert_eq!(gic.take_deliverable(|_| true), Some(Deliverable { intid: 1, group1: true, priority: 0xa0 }));
    assert_eq!(gic.take_deliverable(|_| true), None);
    // An ISPENDR write pends; ICPENDR takes it back.
    assert_eq!(gic.write(R, SGI_FRAME + GICD_ISPENDR, 4, 0b10).unwrap(), Effect::Pended);
    gic.write(R, SGI_FRAME + GICD_ICPENDR, 4, 0b10).unwrap();
    assert_eq!(gic.take_deliverable(|_| true), None);
    gic.pend(INTIDS as u32);
    assert_eq!(gic.take_deliverable(|_| true), None);
}

#[test]
fn reserved_registers_read_zero_and_bad_widths_are_named() {
    let mut gic = Vgic::new();
    assert_eq!(gic.read(D, 0x8000, 4).unwrap(), 0);
    assert_eq!(gic.write(D, 0x8000, 4, 1).unwrap(), Effect::None);
    assert_eq!(gic.read(R, SGI_FRAME + 0x84, 4).unwrap(), 0);
    assert_eq!(gic.read(D, GICD_CTLR, 1), Err(BadAccess { offset: 0, width: 1 }));
    assert!(gic.write(R, GICR_WAKER, 2, 0).is_err());
    assert_eq!(gic.read(R, 0x70, 8).unwrap(), 0, "PROPBASER without LPIs");
}

#[test]
fn reserved_locations_take_every_width_a_gic_register_has() {
    let mut gic = Vgic::new();
    // The SGI frame's priorities end at INTID 31 (GICR_IPRIORITYR7): beyond is reserved,
    // and a byte store there (a driver looping over priority bytes) is ignored.
    for offset in [SGI_FRAME + GICD_IPRIORITYR + 32, SGI_FRAME + GICD_IPRIORITYR + 0x3ff] {
        assert_eq!(gic.write(R, offset, 1, 0xff), Ok(Effect::None));
        assert_eq!(gic.read(R, offset, 1), Ok(0));
    }
    // The distributor's priorities past the implemented INTIDs, and its SGI/PPI ones.
    for offset in [GICD_IPRIORITYR + INTIDS as u64, GICD_IPRIORITYR + 1020, GICD_IPRIORITYR + 3] {
        assert_eq!(gic.write(D, offset, 1, 0xff), Ok(Effect::None));
        assert_eq!(gic.read(D, offset, 1), Ok(0));
    }
    // Words and doublewords anywhere reserved, naturally aligned.
    assert_eq!(gic.write(D, 0x8000, 8, !0), Ok(Effect::None));
    assert_eq!(gic.read(R, SGI_FRAME + 0x88, 8), Ok(0));
    assert_eq!(gic.read(D, GICD_ISENABLER, 1), Ok(0), "word 0 is RES0 with affinity routing");
    // No GIC register is 16 bits wide, and nothing takes an unaligned access.
    assert!(gic.write(D, 0x8000, 2, 0).is_err());
    assert!(gic.read(D, 0x8001, 1).is_ok() && gic.read(D, 0x8002, 4).is_err());
    // A register the model keeps still takes only its own widths.
    assert!(gic.write(D, GICD_ISENABLER + 4, 1, 1).is_err());
    assert!(gic.write(R, SGI_FRAME + GICD_IPRIORITYR + 4, 8, 0).is_err());
    assert!(!gic.enabled(32));
}

#[test]
fn nothing_a_guest_writes_panics_the_model() {
    let mut gic = Vgic::new();
    let mut x = 0x1234_5678_9abc_def1u64;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let frame = if x & 1 == 0 { D } else { R };
        let offset = (x >> 8) % 0x2_0000;
        let width = [1, 2, 4, 8][((x >> 40) & 3) as usize];
        let _ = gic.write(frame, offset, width, x);
        let _ = gic.read(frame, offset, width);
    }
    while gic.take_deliverable(|_| true).is_some() {}
}

/// GICD_TYPER as IHI 0069 lays it out: ITLinesNumber (4:0), IDbits (23:19) = 9 for
/// 10-bit INTIDs, No1N (25); the IIDRs name the same implementation in both frames,
/// ProductID (31:24) 'p'.
#[test]
fn identification_registers_have_the_architected_fields() {
    let gic = Vgic::new();
    let typer = gic.read(D, GICD_TYPER, 4).unwrap();
    assert_eq!(((typer >> 19) & 0x1f, (typer >> 25) & 1), (9, 1));
    let iidr = gic.read(D, GICD_IIDR, 4).unwrap();
    assert_eq!((iidr >> 24, gic.read(R, GICR_IIDR, 4).unwrap()), (u64::from(b'p'), iidr));
    assert_eq!(gic.read(R, GICR_TYPER, 4).unwrap(), 1 << 4, "the low half alone: Last");
}

/// GICD_CTLR keeps ARE and DS set whatever the guest writes, beside its enables.
#[test]
fn ctlr_keeps_affinity_routing_and_single_security_with_the_enables() {
    let mut gic = Vgic::new();
    gic.write(D, GICD_CTLR, 4, (CTLR_ARE | CTLR_ENABLE_GRP1) as u64).unwrap();
    assert_eq!(gic.read(D, GICD_CTLR, 4).unwrap(), (CTLR_ARE | CTLR_DS | CTLR_ENABLE_GRP1) as u64);
}

/// An interrupt is enabled only with its own group's enable: a group 0 one is not
/// with Grp1 alone; and deliverable says which group it is in.
#[test]
fn the_group_enable_is_the_interrupts_own_groups() {
    let mut gic = Vgic::new();
    gic.write(D, GICD_CTLR, 4, CTLR_ENABLE_GRP1 as u64).unwrap();
    gic.write(D, GICD_ISENABLER + 4, 4, 0b11).unwrap();
    gic.write(D, GICD_IGROUPR + 4, 4, 0b10).unwrap();
    assert!(!gic.enabled(32), "group 0, only group 1 enabled");
    assert!(gic.enabled(33) && gic.any_enabled());
    assert_eq!(gic.deliverable(33).map(|d| d.group1), Some(true));
    gic.write(D, GICD_CTLR, 4, CTLR_ENABLE_GRP0 as u64).unwrap();
    assert_eq!(gic.deliverable(32).map(|d| d.group1), Some(false));
    assert!(!gic.is_group0(INTIDS as u32), "an INTID beyond the model is in no group");
    assert!(gic.is_group0(32) && !gic.is_group0(33));
}

/// The redistributor's own words: IGROUPR0 reads back, ISPENDR0 of 0 pends nothing,
/// ICFGR1 (the PPIs) keeps only the edge bits; the distributor's ICFGR0/1 are the
/// redistributor's and read 0 there; 64-bit redistributor registers take writes.
#[test]
fn redistributor_words_are_kept_and_the_distributors_copies_read_zero() {
    let mut gic = Vgic::new();
    gic.write(R, SGI_FRAME + GICD_IGROUPR, 4, 0x8000_0001).unwrap();
    assert_eq!(gic.read(R, SGI_FRAME + GICD_IGROUPR, 4).unwrap(), 0x8000_0001);
    assert_eq!(gic.write(R, SGI_FRAME + GICD_ISPENDR, 4, 0).unwrap(), Effect::None, "nothing pended");
    assert!(!gic.any_pending());
    gic.write(R, SGI_FRAME + GICD_ICFGR + 4, 4, !0).unwrap();
    assert_eq!(gic.read(R, SGI_FRAME + GICD_ICFGR + 4, 4).unwrap(), 0xaaaa_aaaa);
    gic.write(R, SGI_FRAME + GICD_ICFGR + 4, 4, 0x5555_5555).unwrap();
    assert_eq!(gic.read(R, SGI_FRAME + GICD_ICFGR + 4, 4).unwrap(), 0, "level bits are not kept");
    gic.write(R, SGI_FRAME + GICD_ICFGR + 4, 4, 0x8000_0002).unwrap();
    assert_eq!(gic.read(D, GICD_ICFGR + 4, 4).unwrap(), 0, "the PPIs' word is the redistributor's");
    assert_eq!(gic.read(D, GICD_ICFGR, 4).unwrap(), 0);
    assert_eq!(gic.write(R, GICR_PROPBASER, 8, u64::MAX), Ok(Effect::None));
    assert_eq!(gic.read(R, GICR_PROPBASER, 8).unwrap(), 0, "no LPIs");
}

/// A route's low half written alone keeps the high half; priorities read back whole
/// words and single bytes in INTID order.
#[test]
fn halves_and_bytes_land_where_they_belong() {
    let mut gic = Vgic::new();
    let at = GICD_IROUTER + 8 * 40;
    gic.write(D, at, 8, 0x12_0000_0000).unwrap();
    gic.write(D, at, 4, 0x0003_0201).unwrap();
    assert_eq!(gic.read(D, at, 8).unwrap(), 0x12_0003_0201);
    gic.write(D, at + 4, 4, 0x34).unwrap();
    assert_eq!(gic.read(D, at, 8).unwrap(), 0x34_0003_0201, "the high half alone keeps the low");
    assert_eq!(gic.read(D, GICD_IROUTER + 8 * 41, 8).unwrap(), 0, "the next route untouched");
    gic.write(D, GICD_IPRIORITYR + 40, 4, 0x4030_2010).unwrap();
    assert_eq!(gic.read(D, GICD_IPRIORITYR + 41, 1).unwrap(), 0x20);
    assert_eq!(gic.read(D, GICD_IPRIORITYR + 40, 4).unwrap(), 0x4030_2010);
    assert_eq!(gic.deliverable(41), None);
    gic.write(R, SGI_FRAME + GICD_IPRIORITYR + 28, 4, 0xa0b0_c0d0).unwrap();
    assert_eq!(gic.read(R, SGI_FRAME + GICD_IPRIORITYR + 31, 1).unwrap(), 0xa0, "the last PPI");
    assert_eq!(gic.read(D, GICD_IPRIORITYR + 28, 4).unwrap(), 0, "SGI/PPI priorities are the redistributor's");
}

/// The state registers: each names its word, ICACTIVER too; the redistributor has
/// word 0 only, the distributor the rest.
#[test]
fn state_registers_name_their_word() {
    let gic = Vgic::new();
    assert_eq!(gic.state_register(D, GICD_ICACTIVER + 8), Some((StateRegister::ClearActive, 2)));
    assert_eq!(gic.state_register(D, GICD_ISACTIVER + 4), Some((StateRegister::SetActive, 1)));
    assert_eq!(gic.state_register(R, SGI_FRAME + GICD_ICACTIVER), Some((StateRegister::ClearActive, 0)));
    assert_eq!(gic.state_register(D, GICD_ICACTIVER), None, "word 0 is the redistributor's");
    assert_eq!(gic.state_register(R, SGI_FRAME + GICD_ICACTIVER + 4), None);
}
