use super::*;
use vm_fdt::FdtWriter;

pub const VIRTIO: [Region; 2] =
    [Region { start: 0x0a00_3c00, end: 0x0a00_3e00 }, Region { start: 0x0a00_3e00, end: 0x0a00_4000 }];

pub fn limits() -> Limits<'static> {
    Limits {
        ram_window: Region { start: 0x8000_0000, end: 0xc000_0000 },
        console: Region { start: 0x0900_0000, end: 0x0900_1000 },
        virtio: &VIRTIO,
        pvmfw: Region { start: 0x7fc0_0000, end: 0x8000_0000 },
        dt_area: Region { start: 0x8000_0000, end: 0x8020_0000 },
        gicd: Limits::qemu_virt().gicd,
        max_cpus: 8,
    }
}

/// A host DT like pvmkit's, with knobs to make it hostile.
pub struct Spec {
    pub memory: (u64, u64),
    pub console: u64,
    pub virtio: Vec<u64>,
    pub payload: Option<(u64, u64)>,
    pub bootargs: &'static str,
    /// `linux,initrd-start` and `-end` (an end of 0: no `-end` property).
    pub ramdisk: Option<(u64, u64)>,
    pub pool: Option<(u64, u64)>,
    /// The GICv3's two windows, if the tree names one.
    pub gic: Option<[u64; 4]>,
    /// `/avf/untrusted`'s instance id, and whether it asks to defer rollback protection.
    pub avf: Option<(&'static [u8], bool)>,
    /// The `reg` of each `/cpus/cpu@…` (no `/cpus` when empty).
    pub cpus: Vec<u32>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            memory: (0x8000_0000, 256 << 20),
            console: 0x0900_0000,
            virtio: vec![0x0a00_3e00],
            payload: Some((0x8800_0000, 0x4_0000)),
            bootargs: "pvmkit.mode=protected",
            ramdisk: None,
            pool: Some((0x8fc0_0000, 0x40_0000)),
            gic: Some([0x0800_0000, 0x1_0000, 0x080a_0000, 0x2_0000]),
            avf: None,
            cpus: vec![0],
        }
    }
}

pub fn build(s: &Spec) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", s.bootargs).unwrap();
    if let Some((start, end)) = s.ramdisk {
        w.property_u64("linux,initrd-start", start).unwrap();
        if end != 0 {
            w.property_u64("linux,initrd-end", end).unwrap();
        }
    }
    w.end_node(chosen).unwrap();
    if let Some(reg) = s.gic {
        let gic = w.begin_node("intc@8000000").unwrap();
        w.property_string("compatible", "arm,gic-v3").unwrap();
        w.property_array_u64("reg", &reg).unwrap();
        w.end_node(gic).unwrap();
    }
    if let Some((addr, size)) = s.payload {
        let config = w.begin_node("config").unwrap();
        w.property_u64("kernel-address", addr).unwrap();
        w.property_u64("kernel-size", size).unwrap();
        w.end_node(config).unwrap();
    }
    if let Some((base, size)) = s.pool {
        let reserved = w.begin_node("reserved-memory").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let node = w.begin_node("restricted_dma_reserved").unwrap();
        w.property_string("compatible", "restricted-dma-pool").unwrap();
        w.property_array_u64("reg", &[base, size]).unwrap();
        w.end_node(node).unwrap();
        w.end_node(reserved).unwrap();
    }
    if let Some((id, defer)) = s.avf {
        let avf = w.begin_node("avf").unwrap();
        let untrusted = w.begin_node("untrusted").unwrap();
        w.property("instance-id", id).unwrap();
        if defer {
            w.property_null("defer-rollback-protection").unwrap();
        }
        w.end_node(untrusted).unwrap();
        w.end_node(avf).unwrap();
    }
    if !s.cpus.is_empty() {
        let cpus = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        for (i, reg) in s.cpus.iter().enumerate() {
            let cpu = w.begin_node(&format!("cpu@{i}")).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_u32("reg", *reg).unwrap();
            w.end_node(cpu).unwrap();
        }
        w.end_node(cpus).unwrap();
    }
    let mem = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[s.memory.0, s.memory.1]).unwrap();
    w.end_node(mem).unwrap();
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u64("reg", &[s.console, 0x1000]).unwrap();
    w.end_node(uart).unwrap();
    for base in &s.virtio {
        let node = w.begin_node(&format!("virtio_mmio@{base:x}")).unwrap();
        w.property_string("compatible", "virtio,mmio").unwrap();
        w.property_array_u64("reg", &[*base, 0x200]).unwrap();
        w.end_node(node).unwrap();
    }
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn accepts_what_pvmkit_writes() {
    let blob = build(&Spec::default());
    assert_eq!(dt_size(blob[..8].try_into().unwrap()), Ok(blob.len()));
    let c = check(&blob, &limits()).unwrap();
    assert_eq!(c.memory, Region { start: 0x8000_0000, end: 0x9000_0000 });
    assert_eq!(c.console.start, 0x0900_0000);
    assert_eq!(c.virtio, vec![Region { start: 0x0a00_3e00, end: 0x0a00_4000 }]);
    assert_eq!(c.payload, Region { start: 0x8800_0000, end: 0x8804_0000 });
    assert_eq!(c.bootargs, "pvmkit.mode=protected");
    assert_eq!(c.bounce_pool, Some(Region { start: 0x8fc0_0000, end: 0x9000_0000 }));
    assert!(c.gic, "the platform's GICv3 is passed on");
    let blob = build(&Spec { pool: None, gic: None, ..Spec::default() });
    let c = check(&blob, &limits()).unwrap();
    assert_eq!((c.bounce_pool, c.gic), (None, false));
    assert_eq!((c.instance_id, c.defer_rollback_protection), (None, false));
}

#[test]
fn reads_the_hosts_avf_instance_and_rollback_wishes() {
    let c = |avf: (&'static [u8], bool)| {
        let blob = build(&Spec { avf: Some(avf), ..Spec::default() });
        check(&blob, &limits()).map(|c| (c.instance_id.map(|id: &[u8]| id.to_vec()), c.defer_rollback_protection))
    };
    assert_eq!(c((&[7; 64], true)), Ok((Some(vec![7u8; 64]), true)));
    assert_eq!(c((b"vm-1", false)), Ok((Some(b"vm-1".to_vec()), false)));
    // An empty id, or one longer than AVF's, is refused by name.
    assert_eq!(c((b"", false)), Err(DtError::BadProperty("instance-id")));
    assert_eq!(c((&[7; 65], false)), Err(DtError::BadProperty("instance-id")));
}

#[test]
fn refuses_what_the_platform_does_not_have() {
    let check_spec = |s: Spec| {
        let blob = build(&s);
        check(&blob, &limits()).map(|_| ())
    };
    assert_eq!(
        check_spec(Spec { memory: (0x8000_0000, 4 << 30), ..Spec::default() }),
        Err(DtError::MemoryOutsideLimits(Region { start: 0x8000_0000, end: 0x1_8000_0000 }))
    );
    assert!(
        matches!(
            check_spec(Spec { memory: (0x7fe0_0000, 256 << 20), ..Spec::default() }),
            Err(DtError::MemoryOutsideLimits(_))
        ),
        "over pvmfw"
    );
    assert_eq!(
        check_spec(Spec { console: 0x0901_0000, ..Spec::default() }),
        Err(DtError::DeviceNotExposed("console", 0x0901_0000))
    );
    assert_eq!(
        check_spec(Spec { virtio: vec![0x0a00_0000], ..Spec::default() }),
        Err(DtError::DeviceNotExposed("virtio-mmio transport", 0x0a00_0000))
    );
    assert_eq!(check_spec(Spec { payload: None, ..Spec::default() }), Err(DtError::NoPayload));
    assert!(
        matches!(
            check_spec(Spec { payload: Some((0x8000_0000, 0x1000)), ..Spec::default() }),
            Err(DtError::PayloadOutsideRam(_))
        ),
        "over the DT area"
    );
    assert!(matches!(
        check_spec(Spec { payload: Some((0x8fff_f000, 0x2000)), ..Spec::default() }),
        Err(DtError::PayloadOutsideRam(_))
    ));
    assert_eq!(check_spec(Spec { bootargs: "evil\u{7}bell", ..Spec::default() }), Err(DtError::BadBootargs));
    // A GIC elsewhere (say, a redistributor over RAM) is not the platform's.
    let moved = Spec { gic: Some([0x0800_0000, 0x1_0000, 0x8000_0000, 0x2_0000]), ..Spec::default() };
    assert_eq!(check_spec(moved), Err(DtError::BadGic));
    // Redistributors for one CPU where the tree has two.
    assert_eq!(check_spec(Spec { cpus: vec![0, 1], ..Spec::default() }), Err(DtError::BadGic));
    // Bounce pools outside RAM, over the DT area, over the payload, unaligned.
    for pool in [(0x9000_0000, 0x1000), (0x8000_0000, 0x1000), (0x8800_0000, 0x1000), (0x8fc0_0100, 0x1000)] {
        let want = Err(DtError::BadBouncePool(Region { start: pool.0, end: pool.0 + pool.1 }));
        assert_eq!(check_spec(Spec { pool: Some(pool), ..Spec::default() }), want, "{pool:x?}");
    }
}

#[test]
fn malformed_blobs_are_errors_never_panics() {
    let blob = build(&Spec::default());
    assert_eq!(check(&blob[..blob.len() - 8], &limits()), Err(DtError::Malformed), "truncated");
    let mut bad = blob.clone();
    bad[8..12].copy_from_slice(&0x00f0_0000u32.to_be_bytes()); // off_dt_struct outside
    assert_eq!(check(&bad, &limits()), Err(DtError::Malformed));
    assert_eq!(dt_size([0; 8]), Err(DtError::NotADt));
    assert_eq!(dt_size([0xd0, 0x0d, 0xfe, 0xed, 0xff, 0, 0, 0]), Err(DtError::BadSize(0xff00_0000)));
    let mut seed = 0x9e37_79b9u64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = blob.clone();
        let at = seed as usize % b.len();
        b[at] ^= (seed >> 32) as u8 | 1;
        let _ = check(&b, &limits());
    }
}

/// pvmfw's own limits are QEMU `virt`'s memory map (QEMU's hw/arm/virt.c: the PL011 at
/// 0x0900_0000, 32 virtio-mmio transports of 0x200 from 0x0a00_0000, the GICv3's
/// distributor at 0x0800_0000 and one redistributor frame pair at 0x080a_0000) and
/// pvmkit's (pvmfw's 2 MiB below guest RAM at 0x8000_0000, the DT's 2 MiB at its start).
#[test]
fn the_platform_limits_are_qemu_virts_memory_map() {
    let l = Limits::qemu_virt();
    assert_eq!(l.console, Region { start: 0x0900_0000, end: 0x0900_1000 });
    assert_eq!(l.virtio.len(), 32);
    assert_eq!(l.virtio[0], Region { start: 0x0a00_0000, end: 0x0a00_0200 });
    assert_eq!(l.virtio[31], Region { start: 0x0a00_3e00, end: 0x0a00_4000 });
    assert_eq!(l.gicd, Region { start: 0x0800_0000, end: 0x0801_0000 });
    assert_eq!(redistributors(1), Region { start: 0x080a_0000, end: 0x080c_0000 });
    // Eight fit in QEMU virt's redistributor region (0x080a_0000, size 0xf6_0000).
    assert_eq!(redistributors(8), Region { start: 0x080a_0000, end: 0x081a_0000 });
    assert!(redistributors(8).end <= 0x080a_0000 + 0xf6_0000);
    assert_eq!(l.max_cpus, 8);
    assert_eq!(l.pvmfw, Region { start: 0x7fc0_0000, end: 0x8000_0000 });
    assert_eq!(l.dt_area, Region { start: 0x8000_0000, end: 0x8020_0000 });
    assert_eq!(l.ram_window, Region { start: 0x8000_0000, end: 0xc000_0000 });
}

/// The edges of each refusal (cargo-mutants found these unpinned).
#[test]
fn refusals_at_their_edges() {
    let check_spec = |s: Spec| check(&build(&s), &limits()).map(|_| ());
    // RAM that leaves out the DT area (pvmfw writes the handover DT there).
    assert_eq!(
        check_spec(Spec { memory: (0x8040_0000, 256 << 20), payload: Some((0x8800_0000, 0x1000)), ..Spec::default() }),
        Err(DtError::MemoryOutsideLimits(Region { start: 0x8040_0000, end: 0x9040_0000 }))
    );
    // Bootargs: exactly MAX_BOOTARGS pass, one more does not.
    let longest: &'static str = Box::leak("a".repeat(MAX_BOOTARGS).into_boxed_str());
    assert_eq!(check_spec(Spec { bootargs: longest, ..Spec::default() }), Ok(()));
    let too_long: &'static str = Box::leak("a".repeat(MAX_BOOTARGS + 1).into_boxed_str());
    assert_eq!(check_spec(Spec { bootargs: too_long, ..Spec::default() }), Err(DtError::BadBootargs));
    // An empty bounce pool is no pool.
    assert_eq!(
        check_spec(Spec { pool: Some((0x8fc0_0000, 0)), ..Spec::default() }),
        Err(DtError::BadBouncePool(Region { start: 0x8fc0_0000, end: 0x8fc0_0000 }))
    );
    assert_eq!(DtError::Memory.to_string(), "host device tree must describe exactly one memory region");
}

/// A ramdisk is taken from `/chosen` only inside RAM, clear of the DT area, the kernel
/// and the bounce pool, and both of its properties or neither.
#[test]
fn the_ramdisk_is_read_and_checked() {
    let check_spec = |ramdisk| check(&build(&Spec { ramdisk, ..Spec::default() }), &limits()).map(|c| c.ramdisk);
    assert_eq!(check_spec(None), Ok(None));
    let good = Region { start: 0x8900_0000, end: 0x8912_3000 };
    assert_eq!(check_spec(Some((good.start, good.end))), Ok(Some(good)));
    for (start, end) in [
        (0x8900_0000, 0x8900_0000), // empty
        (0x8912_3000, 0x8900_0000), // backwards
        (0x8000_0000, 0x8001_0000), // over the DT area
        (0x8800_0000, 0x8801_0000), // over the kernel
        (0x8ff0_0000, 0x9010_0000), // past RAM
    ] {
        assert_eq!(
            check_spec(Some((start, end))),
            Err(DtError::RamdiskOutsideRam(Region { start, end })),
            "{start:#x}..{end:#x}"
        );
    }
    // Over the bounce pool: the pool is the one refused (it is checked against the rest).
    assert!(matches!(check_spec(Some((0x8fc0_0000, 0x8fc1_0000))), Err(DtError::BadBouncePool(_))));
    // One property without the other.
    assert_eq!(check_spec(Some((0x8900_0000, 0))), Err(DtError::BadProperty("linux,initrd-end")));
}

/// `/cpus`: 1 to the platform's most CPUs, their MPIDRs 0 to count − 1 (in any order),
/// the GIC's redistributors one per CPU; anything else refused.
#[test]
fn the_cpus_are_read_and_checked() {
    let gic_for = |n: u64| Some([0x0800_0000, 0x1_0000, 0x080a_0000, n * 0x2_0000]);
    let with = |cpus: Vec<u32>| {
        let gic = gic_for(cpus.len().max(1) as u64);
        check(&build(&Spec { cpus, gic, ..Spec::default() }), &limits()).map(|c| (c.cpus, c.gic))
    };
    assert_eq!(with(vec![0]), Ok((1, true)));
    assert_eq!(with(vec![0, 1, 2, 3]), Ok((4, true)));
    assert_eq!(with(vec![3, 1, 0, 2]), Ok((4, true)));
    assert_eq!(with((0..8).collect()), Ok((8, true)));
    assert_eq!(with((0..9).collect()), Err(DtError::BadCpus(9)));
    assert_eq!(with(vec![]), Err(DtError::BadCpus(0)));
    assert_eq!(with(vec![0, 0]), Err(DtError::BadCpus(2)));
    assert_eq!(with(vec![0, 2]), Err(DtError::BadCpus(2)));
    assert_eq!(with(vec![0x100]), Err(DtError::BadCpus(1)));
    // Without a GIC the CPUs are still counted.
    let blob = build(&Spec { cpus: vec![0, 1], gic: None, ..Spec::default() });
    let c = check(&blob, &limits()).unwrap();
    assert_eq!((c.cpus, c.gic), (2, false));
}
