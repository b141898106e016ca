//! What this guest learns at boot and keeps: the conduit for SMCCC calls (the panic
//! handler needs it to reset the VM).

use guest_lib::conduit::SystemConduit;
use guest_lib::set_once::SetOnce;

static CONDUIT: SetOnce<SystemConduit> = SetOnce::new();

/// Records the conduit the DT names.
pub fn set_conduit(conduit: SystemConduit) {
    let _ = CONDUIT.set(conduit);
}

/// The conduit (HVC until the DT was read).
pub fn conduit() -> SystemConduit {
    CONDUIT.get().copied().unwrap_or(SystemConduit::Hvc)
}

/// Ends the VM as a failure (SYSTEM_RESET): the host sees a reset, not a power-off.
pub fn fail() -> ! {
    let _ = guest_lib::psci::system_reset(&conduit());
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::say!("[guest] panic: {info}");
    fail()
}
