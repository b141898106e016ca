//! test-guest: the in-VM test suite. It runs in every mode `pvmkit` offers and checks
//! what the hypervisor below it does against what that mode promises.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod cases;
#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod conformance;
#[cfg(target_os = "none")]
mod expect;
#[cfg(target_os = "none")]
mod guard_cases;
#[cfg(target_os = "none")]
mod hals;
#[cfg(target_os = "none")]
mod pvmfw_cases;
#[cfg(target_os = "none")]
mod raw_queue;
#[cfg(target_os = "none")]
mod sharing_cases;
#[cfg(target_os = "none")]
mod virtio_cases;

#[cfg(target_os = "none")]
guest_lib::entry!(cases::main);

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("test-guest is an aarch64-unknown-none guest; run it with `cargo pvmkit run`");
    std::process::exit(2);
}
