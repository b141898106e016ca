//! Rollback protection: which kind a payload gets, chosen as AOSP's pvmfw `rollback.rs`
//! chooses it, first rule that applies:
//!
//! 1. **Deferred** — the host's DT asks for it (`/avf/untrusted/defer-rollback-protection`)
//!    *and* the payload can do it (`secretkeeper_protection`): the payload protects
//!    itself (Secretkeeper). Its rollback index must be above 0 (so that no payload
//!    defers by accident), and the deferral enters the hidden input, so its sealing CDI
//!    differs from a non-deferred boot's (an old image cannot be made to leak secrets
//!    by asking to defer).
//! 2. **RKP VM** — the payload asks for `remote_attest`: its rollback index must be
//!    exactly [`RKP_VM_ROLLBACK_INDEX`], and its key is pvmfw's embedded one (which every
//!    payload's is here: pvmfw verifies no other). No instance storage.
//! 3. **Trusty security VM** — `trusty_security_vm`: none here; such a VM protects
//!    itself (AOSP: its AuthMgr does).
//! 4. **Instance storage** — everything else: pvmfw keeps a record of the payload per
//!    VM instance and refuses a different or older one.
//!
//! The DICE salt: the instance hash when the host named an instance, else the instance
//! record's salt in case 4, else 64 zero bytes.

use core::fmt;

use pvmkit_abi::pvmfw::RKP_VM_ROLLBACK_INDEX;
use pvmkit_dice::HASH_SIZE;

use crate::avb_properties::Capabilities;

/// The kinds of rollback protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Deferred to the payload.
    Deferred,
    /// The RKP VM's fixed rollback index.
    RkpVm,
    /// A Trusty security VM: none by pvmfw.
    TrustySecurityVm,
    /// pvmfw's instance storage.
    InstanceStorage,
}

impl Protection {
    /// The kind for a payload with `capabilities`, when the host asks (or not) to defer.
    pub fn choose(capabilities: Capabilities, host_asks_to_defer: bool) -> Self {
        if host_asks_to_defer && capabilities.secretkeeper_protection {
            Self::Deferred
        } else if capabilities.remote_attest {
            Self::RkpVm
        } else if capabilities.trusty_security_vm {
            Self::TrustySecurityVm
        } else {
            Self::InstanceStorage
        }
    }

    /// Whether the payload's rollback index is acceptable for this kind (instance
    /// storage judges its own against the record).
    pub fn check(self, rollback_index: u64) -> Result<(), RollbackError> {
        match self {
            Self::Deferred if rollback_index == 0 => Err(RollbackError::DeferredWithIndexZero),
            Self::RkpVm if rollback_index != RKP_VM_ROLLBACK_INDEX => {
                Err(RollbackError::RkpVmIndex { found: rollback_index })
            }
            _ => Ok(()),
        }
    }

    /// Whether the hidden input says rollback protection was deferred.
    pub fn deferred(self) -> bool {
        self == Self::Deferred
    }

    /// Its name, for the console.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deferred => "deferred to the payload (secretkeeper_protection)",
            Self::RkpVm => "the RKP VM's fixed rollback index",
            Self::TrustySecurityVm => "none by pvmfw (trusty_security_vm)",
            Self::InstanceStorage => "instance storage",
        }
    }
}

/// The salt of the hidden input: the instance hash when there is one, else the
/// instance record's salt, else zeroes.
pub fn salt(instance_hash: Option<&[u8; HASH_SIZE]>, recorded: Option<&[u8; HASH_SIZE]>) -> [u8; HASH_SIZE] {
    *instance_hash.or(recorded).unwrap_or(&[0; HASH_SIZE])
}

/// Why rollback protection refused a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackError {
    /// Deferred protection with a rollback index of 0.
    DeferredWithIndexZero,
    /// An RKP VM whose rollback index is not pvmfw's.
    RkpVmIndex {
        /// The payload's.
        found: u64,
    },
}

impl fmt::Display for RollbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeferredWithIndexZero => {
                write!(f, "rollback protection deferred to the payload needs a rollback index above 0, not 0")
            }
            Self::RkpVmIndex { found } => write!(
                f,
                "an RKP VM (remote_attest) must carry rollback index {RKP_VM_ROLLBACK_INDEX}, this one carries {found}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Capabilities =
        Capabilities { remote_attest: false, secretkeeper_protection: false, trusty_security_vm: false };
    const SK: Capabilities = Capabilities { secretkeeper_protection: true, ..NONE };
    const RKP: Capabilities = Capabilities { remote_attest: true, ..NONE };
    const TRUSTY: Capabilities = Capabilities { trusty_security_vm: true, ..NONE };

    /// AOSP's order: deferral (asked and able) first, then remote_attest, then
    /// trusty_security_vm, then instance storage.
    #[test]
    fn the_kind_is_chosen_in_aosps_order() {
        use Protection::*;
        assert_eq!(Protection::choose(NONE, false), InstanceStorage);
        assert_eq!(Protection::choose(NONE, true), InstanceStorage, "asked, but the payload cannot");
        assert_eq!(Protection::choose(SK, false), InstanceStorage, "able, but not asked");
        assert_eq!(Protection::choose(SK, true), Deferred);
        let all = Capabilities { remote_attest: true, secretkeeper_protection: true, trusty_security_vm: true };
        assert_eq!(Protection::choose(all, true), Deferred);
        assert_eq!(Protection::choose(all, false), RkpVm);
        assert_eq!(Protection::choose(RKP, true), RkpVm);
        assert_eq!(Protection::choose(TRUSTY, true), TrustySecurityVm);
        assert!(Deferred.deferred() && !RkpVm.deferred() && !InstanceStorage.deferred());
        // Each kind names itself (the console line `pvmkit` tests read).
        assert!(Deferred.name().contains("deferred") && RkpVm.name().contains("RKP VM"));
        assert!(TrustySecurityVm.name().contains("trusty_security_vm") && InstanceStorage.name() == "instance storage");
    }

    #[test]
    fn each_kind_checks_the_rollback_index_its_way() {
        use Protection::*;
        assert_eq!(Deferred.check(0), Err(RollbackError::DeferredWithIndexZero));
        assert_eq!(Deferred.check(1), Ok(()));
        // AOSP's service VM version is 1.
        assert_eq!(RkpVm.check(1), Ok(()));
        assert_eq!(RkpVm.check(2), Err(RollbackError::RkpVmIndex { found: 2 }));
        assert_eq!(RkpVm.check(0), Err(RollbackError::RkpVmIndex { found: 0 }));
        assert_eq!(TrustySecurityVm.check(0), Ok(()));
        assert_eq!(InstanceStorage.check(0), Ok(()));
        assert!(RollbackError::RkpVmIndex { found: 2 }.to_string().contains("rollback index 1"));
    }

    #[test]
    fn the_salt_prefers_the_instance_hash() {
        assert_eq!(salt(Some(&[1; 64]), Some(&[2; 64])), [1; 64]);
        assert_eq!(salt(None, Some(&[2; 64])), [2; 64]);
        assert_eq!(salt(None, None), [0; 64]);
    }
}
