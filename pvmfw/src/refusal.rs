//! Why pvmfw refuses to hand over, typed: every error of its checks maps to one of
//! abi's stable [`Refusal`] codes, with its detail in words for the console.

use alloc::string::{String, ToString};
use core::fmt;

use pvmkit_abi::arm64_image::ImageError;
use pvmkit_abi::avf_config::ConfigError;
use pvmkit_abi::pvmfw::Refusal;

use crate::avb_properties::PropertyError;
use crate::avb_verify::AvbVerifyError;
use crate::host_dt::DtError;
use crate::instance::InstanceError;
use crate::layout::LayoutError;
use crate::placement::PlacementError;
use crate::reference_dt::ReferenceDtError;
use crate::rollback::RollbackError;
use pvmkit_dice::handover::ChainError;

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
            DtError::BadGic | DtError::BadCpus(_) | DtError::DeviceNotExposed(..) | DtError::NoConsole => {
                Refusal::HostDtDevice
            }
            DtError::NoPayload | DtError::PayloadOutsideRam(_) | DtError::RamdiskOutsideRam(_) => {
                Refusal::HostDtPayload
            }
            DtError::BadBootargs => Refusal::HostDtBootargs,
            DtError::BadBouncePool(_) => Refusal::HostDtBouncePool,
        };
        Self::new(reason, e)
    }
}

impl From<RollbackError> for Refused {
    fn from(e: RollbackError) -> Self {
        Self::new(Refusal::Rollback, e)
    }
}

impl From<InstanceError> for Refused {
    fn from(e: InstanceError) -> Self {
        match e {
            InstanceError::RolledBack { .. } => Self::new(Refusal::Rollback, e),
            _ => Self::new(Refusal::Instance, e),
        }
    }
}

impl From<ChainError> for Refused {
    fn from(e: ChainError) -> Self {
        Self::new(Refusal::Dice, format_args!("deriving the payload's DICE layer: {e}"))
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

impl From<AvbVerifyError> for Refused {
    fn from(e: AvbVerifyError) -> Self {
        use AvbVerifyError as E;
        let reason = match e {
            E::Format(_) => Refusal::PayloadFormat,
            E::VerificationDisabled(_) => Refusal::VerificationDisabled,
            E::UntrustedKey => Refusal::UntrustedKey,
            E::BadTrustedKey => Refusal::TrustedKeyInvalid,
            E::VbmetaHashMismatch | E::BadSignature => Refusal::PayloadSignature,
            E::NoBootDescriptor | E::UnsupportedHash | E::UnexpectedPartition | E::DuplicatePartition => {
                Refusal::PayloadDescriptors
            }
            E::ImageSizeMismatch | E::DigestMismatch => Refusal::PayloadHash,
            E::NoInitrdDescriptor | E::InitrdMissing | E::InitrdMismatch => Refusal::Ramdisk,
        };
        Self::new(reason, format_args!("payload: {e}"))
    }
}

impl From<PropertyError<'_>> for Refused {
    fn from(e: PropertyError<'_>) -> Self {
        Self::new(Refusal::PayloadProperties, format_args!("payload: {e}"))
    }
}

impl From<ConfigError> for Refused {
    fn from(e: ConfigError) -> Self {
        Self::new(Refusal::ConfigData, e)
    }
}

impl From<ReferenceDtError> for Refused {
    fn from(e: ReferenceDtError) -> Self {
        Self::new(Refusal::ReferenceDt, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_code_and_keeps_its_words() {
        let r = Refused::from(AvbVerifyError::BadSignature);
        assert_eq!(r.reason, Refusal::PayloadSignature);
        assert_eq!(
            r.to_string(),
            "[pvmfw] error E15 payload-signature: payload: the vbmeta signature does not verify with the trusted key"
        );
        // Each kind of AVB refusal has its own code.
        let codes = [
            (AvbVerifyError::Format(pvmkit_abi::avb::AvbError::BadMagic("footer")), Refusal::PayloadFormat),
            (AvbVerifyError::VerificationDisabled(1), Refusal::VerificationDisabled),
            (AvbVerifyError::UntrustedKey, Refusal::UntrustedKey),
            (AvbVerifyError::BadTrustedKey, Refusal::TrustedKeyInvalid),
            (AvbVerifyError::VbmetaHashMismatch, Refusal::PayloadSignature),
            (AvbVerifyError::UnexpectedPartition, Refusal::PayloadDescriptors),
            (AvbVerifyError::DigestMismatch, Refusal::PayloadHash),
            (AvbVerifyError::InitrdMismatch, Refusal::Ramdisk),
        ];
        for (error, code) in codes {
            assert_eq!(Refused::from(error).reason, code, "{error:?}");
        }
        assert_eq!(Refused::from(ConfigError::BadMagic(0)).reason, Refusal::ConfigData);
        assert_eq!(Refused::from(PropertyError::BadName).reason, Refusal::PayloadProperties);
        assert_eq!(Refused::from(ReferenceDtError::Malformed("VM")).reason, Refusal::ReferenceDt);
        assert_eq!(
            Refused::from(DtError::RamdiskOutsideRam(pvmkit_abi::memory_map::Region { start: 0, end: 0 })).reason,
            Refusal::HostDtPayload
        );
        assert_eq!(Refused::from(DtError::Malformed).reason, Refusal::HostDtMalformed);
        assert_eq!(Refused::from(DtError::NoConsole).reason, Refusal::HostDtDevice);
        assert_eq!(Refused::from(LayoutError::NewDtTooLarge(1)).reason, Refusal::NewDt);
        let fit = ImageError::DoesNotFit { needs: 1, ram: pvmkit_abi::memory_map::Region { start: 0, end: 0 } };
        assert_eq!(Refused::from(fit).reason, Refusal::PayloadPlacement);
        assert_eq!(Refused::from(ImageError::BadMagic).reason, Refusal::ImageHeader);
    }
}
