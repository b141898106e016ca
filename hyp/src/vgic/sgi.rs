//! SGIs a guest sends by writing ICC_SGI1R_EL1 (or ICC_ASGI1R_EL1, ICC_SGI0R_EL1),
//! which trap to hyp while it routes interrupts (HCR_EL2.IMO).

/// ICC_SGI1R_EL1's fields.
const TARGET_LIST: u64 = 0xffff;
const AFF1_SHIFT: u32 = 16;
const INTID_SHIFT: u32 = 24;
const AFF2_SHIFT: u32 = 32;
const IRM: u64 = 1 << 40;
const RS_SHIFT: u32 = 44;
const AFF3_SHIFT: u32 = 48;

/// The SGI a write of `value` by vCPU `sender` sends, and the vCPUs it goes to (bit
/// `i`: vCPU `i`, MPIDR affinity `i`) among the VM's `count`: IRM sends it to every
/// other vCPU; a target list names vCPUs of cluster 0 (Aff3 = Aff2 = Aff1 = 0, range
/// selector 0); targets the VM does not have are ignored.
pub fn targets(value: u64, sender: usize, count: usize) -> (u32, u16) {
    let intid = ((value >> INTID_SHIFT) & 0xf) as u32;
    let all = if count >= 16 { 0xffff } else { (1u16 << count) - 1 };
    if value & IRM != 0 {
        return (intid, all & !(1u16.checked_shl(sender as u32).unwrap_or(0)));
    }
    let affinity = [AFF1_SHIFT, AFF2_SHIFT, AFF3_SHIFT].iter().any(|&s| (value >> s) & 0xff != 0);
    if affinity || (value >> RS_SHIFT) & 0xf != 0 {
        return (intid, 0);
    }
    (intid, (value & TARGET_LIST) as u16 & all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ICC_SGI1R_EL1's fields as the GICv3 architecture lays them out: TargetList 15:0,
    /// Aff1 23:16, INTID 27:24, Aff2 39:32, IRM 40, RS 47:44, Aff3 55:48.
    #[test]
    fn sgis_reach_the_vcpus_they_name() {
        assert_eq!(targets(0b1010 | (3 << 24), 0, 4), (3, 0b1010));
        assert_eq!(targets(0xffff | (1 << 24), 1, 4), (1, 0b1111), "vCPUs the VM lacks are ignored");
        assert_eq!(targets(IRM | (7 << 24), 2, 4), (7, 0b1011), "every other vCPU");
        assert_eq!(targets(IRM, 0, 1), (0, 0), "no other vCPU");
        assert_eq!(targets(0b1 | (1 << 16), 0, 4), (0, 0), "cluster 1");
        assert_eq!(targets(0b1 | (1 << 44), 0, 4), (0, 0), "range selector 1");
        assert_eq!(targets(0b1 | (1 << 32), 0, 4), (0, 0), "Aff2");
        assert_eq!(targets(0b1 | (1 << 48), 0, 4), (0, 0), "Aff3");
    }

    /// With one vCPU, only an SGI naming CPU 0 of cluster 0 arrives.
    #[test]
    fn only_sgis_for_cpu_0_arrive() {
        let to_self = |value: u64| {
            let (intid, mask) = targets(value, 0, 1);
            (mask == 1).then_some(intid)
        };
        assert_eq!(to_self(1 | (5 << 24)), Some(5));
        assert_eq!(to_self(0b11 | (15 << 24)), Some(15));
        assert_eq!(to_self(0b10 | (5 << 24)), None, "another CPU of the cluster");
        assert_eq!(to_self(1 | (5 << 24) | (1 << 16)), None, "cluster 1");
        assert_eq!(to_self(1 | (1 << 32)), None);
        assert_eq!(to_self(1 | (1 << 48)), None);
        assert_eq!(to_self(1 | (1 << 44)), None, "range selector 1");
        assert_eq!(to_self(1 | IRM), None, "every PE but the sender");
    }
}
