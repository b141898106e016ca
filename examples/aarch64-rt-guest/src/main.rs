//! A protected-VM guest that brings its own runtime and links guest-lib as a library.
//!
//! The runtime is aarch64-rt's (entry point, boot stack, `.bss`, the initial page table
//! that turns the MMU on before any Rust runs, exception vectors); the page tables it
//! then runs on are aarch64-paging's; the heap, the console and the panic handler are
//! its own. guest-lib (default features off: no runtime) gives it what a pVM needs:
//! hypervisor discovery, the MMIO guard, MEM_SHARE/UNSHARE, a bounce pool over the DT's
//! `restricted-dma-pool`, and virtio-blk through the bouncing `PvmHal`.
//!
//! `cargo run` in this directory boots it with pvmkit (see `.cargo/config.toml`); it
//! prints one line per check and `N passed, M failed`, as pvmkit's verdict expects.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod cases;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod paging;
#[cfg(target_os = "none")]
mod platform;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("aarch64-rt-guest is an aarch64-unknown-none guest; `cargo run` in its directory boots it with pvmkit");
    std::process::exit(2);
}
