//! The trap path's decisions: a guest exit decoded once ([`guest_exit`]), an access
//! emulated or refused ([`mmio`]), an external abort injected ([`inject`]), a trapped system register
//! ([`sysreg`]), the
//! exit line that ends the run ([`exit`]), and hyp's own work, counted ([`work`]).

pub mod exit;
pub mod guest_exit;
pub mod inject;
pub mod mmio;
pub mod sysreg;
pub mod work;
