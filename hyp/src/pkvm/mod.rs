//! The pKVM services hyp gives a protected VM: the hypercall dispatcher that answers
//! from the release's profile ([`hypercall`]), page ownership ([`ownership`]) and the
//! memory actions a row allows ([`memory_calls`]), the MMIO guard table
//! ([`mmio_guard`]) and its actions ([`guard_calls`]).

pub mod action_error;
pub mod guard_calls;
pub mod hypercall;
pub mod memory_calls;
pub mod mmio_guard;
pub mod ownership;
