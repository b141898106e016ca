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

/// The SGI a write of `value` sends to the only vCPU (affinity 0.0.0.0), if it does:
/// one routed to every *other* PE, or to a list without it, sends nothing.
pub fn to_self(value: u64) -> Option<u32> {
    let intid = ((value >> INTID_SHIFT) & 0xf) as u32;
    let affinity = [AFF1_SHIFT, AFF2_SHIFT, AFF3_SHIFT].iter().any(|&s| (value >> s) & 0xff != 0);
    let range = (value >> RS_SHIFT) & 0xf;
    let targeted = value & IRM == 0 && !affinity && range == 0 && value & TARGET_LIST & 1 != 0;
    targeted.then_some(intid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sgis_for_cpu_0_arrive() {
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
