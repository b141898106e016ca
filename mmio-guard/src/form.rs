//! Which MMIO guard interface a hypervisor offers.

use pvmkit_abi::kvm::{func, Features};

/// Which MMIO guard interface a hypervisor offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Android: INFO, ENROLL, MAP and UNMAP (and the ranged calls when advertised).
    Android {
        /// Whether MMIO_RGUARD_MAP/UNMAP (ranged) are offered.
        ranged: bool,
    },
    /// Upstream Linux: the single MMIO_GUARD call (function 7), no enrolment or unmap.
    Upstream,
}

impl Form {
    /// The form advertised by a KVM features bitmap, or `None` when the hypervisor
    /// offers no MMIO guard (then nothing needs registering).
    pub fn detect(features: Features) -> Option<Self> {
        let android = [func::MMIO_GUARD_INFO, func::MMIO_GUARD_ENROLL, func::MMIO_GUARD_MAP, func::MMIO_GUARD_UNMAP];
        if android.iter().all(|&n| features.has(n)) {
            let ranged = features.has(func::MMIO_RGUARD_MAP) && features.has(func::MMIO_RGUARD_UNMAP);
            Some(Self::Android { ranged })
        } else if features.has(func::MMIO_GUARD_MAP) {
            Some(Self::Upstream)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_form_from_the_bitmap() {
        let older_ack = Features([0xffd, 0, 0, 0]);
        assert_eq!(Form::detect(older_ack), Some(Form::Android { ranged: true }));
        assert_eq!(Form::detect(Features([0x1fd, 0, 0, 0])), Some(Form::Android { ranged: false }));
        let upstream = Features::with(&[0, 2, 3, 4, 7]);
        assert_eq!(Form::detect(upstream), Some(Form::Upstream));
        assert_eq!(Form::detect(Features([0x1d, 0, 0, 0])), None);
        assert_eq!(Form::detect(Features::NONE), None);
    }
}
