//! Why pvmfw refuses to hand over, typed: every error of its checks maps to one of
//! abi's stable [`Refusal`] codes, with its detail in words for the console.

use alloc::string::{String, ToString};
use core::fmt;

use abi::arm64_image::ImageError;
use abi::pvmfw::Refusal;
use abi::signed_payload::HeaderError;

use crate::host_dt::DtError;
use crate::layout::LayoutError;
use crate::placement::PlacementError;
use crate::verify::VerifyError;

/// A refusal and its detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The stable code.
    pub reason: Refusal,
    /// What exactly was wrong, for a reader.
    pub detail: String,
}

impl Refused {
    /// A refusal with a detail.
    pub fn new(reason: Refusal, detail: impl fmt::Display) -> Self {
        Self { reason, detail: detail.to_string() }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.reason.line_start(), self.detail)
    }
}

impl From<DtError> for Refused {
    fn from(e: DtError) -> Self {
        let reason = match e {
            DtError::NotADt | DtError::BadSize(_) | DtError::Malformed | DtError::BadProperty(_) => {
                Refusal::HostDtMalformed
            }
            DtError::Memory | DtError::MemoryOutsideLimits(_) => Refusal::HostDtMemory,
            DtError::BadGic | DtError::DeviceNotExposed(..) | DtError::NoConsole => Refusal::HostDtDevice,
            DtError::NoPayload | DtError::PayloadOutsideRam(_) => Refusal::HostDtPayload,
            DtError::BadBootargs => Refusal::HostDtBootargs,
            DtError::BadBouncePool(_) => Refusal::HostDtBouncePool,
        };
        Self::new(reason, e)
    }
}

impl From<LayoutError> for Refused {
    fn from(e: LayoutError) -> Self {
        let reason = match e {
            LayoutError::HostDtOutsideSlot { .. } => Refusal::HostDtSlot,
            LayoutError::NewDtTooLarge(_) => Refusal::NewDt,
        };
        Self::new(reason, e)
    }
}

impl From<HeaderError> for Refused {
    fn from(e: HeaderError) -> Self {
        Self::new(Refusal::PayloadHeader, e)
    }
}

impl From<PlacementError> for Refused {
    fn from(e: PlacementError) -> Self {
        Self::new(Refusal::PayloadPlacement, e)
    }
}

impl From<ImageError> for Refused {
    fn from(e: ImageError) -> Self {
        let reason = match e {
            ImageError::DoesNotFit { .. } => Refusal::PayloadPlacement,
            _ => Refusal::ImageHeader,
        };
        Self::new(reason, e)
    }
}

impl From<VerifyError> for Refused {
    fn from(e: VerifyError) -> Self {
        let reason = match e {
            VerifyError::Header(_) => Refusal::PayloadHeader,
            VerifyError::BadTrustedKey => Refusal::TrustedKeyInvalid,
            VerifyError::HashMismatch => Refusal::PayloadHash,
            VerifyError::BadSignature => Refusal::PayloadSignature,
        };
        Self::new(reason, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_code_and_keeps_its_words() {
        let r = Refused::from(VerifyError::BadSignature);
        assert_eq!(r.reason, Refusal::PayloadSignature);
        assert_eq!(
            r.to_string(),
            "[pvmfw] error E15 payload-signature: payload signature does not verify with the trusted key"
        );
        assert_eq!(Refused::from(DtError::Malformed).reason, Refusal::HostDtMalformed);
        assert_eq!(Refused::from(DtError::NoConsole).reason, Refusal::HostDtDevice);
        assert_eq!(Refused::from(LayoutError::NewDtTooLarge(1)).reason, Refusal::NewDt);
        let fit = ImageError::DoesNotFit { needs: 1, ram: abi::memory_map::Region { start: 0, end: 0 } };
        assert_eq!(Refused::from(fit).reason, Refusal::PayloadPlacement);
        assert_eq!(Refused::from(ImageError::BadMagic).reason, Refusal::ImageHeader);
    }
}
