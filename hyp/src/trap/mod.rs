//! The trap path's decisions: a guest exit decoded once ([`guest_exit`]), an access
//! emulated or refused ([`mmio`]), an external abort injected ([`inject`]), and the
//! exit line that ends the run ([`exit`]).

pub mod exit;
pub mod guest_exit;
pub mod inject;
pub mod mmio;
