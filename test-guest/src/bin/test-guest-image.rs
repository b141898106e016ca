//! test-guest as a position-independent arm64 `Image` (the suite is the library).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use test_guest as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("test-guest is an aarch64-unknown-none guest; run it with `cargo pvmkit run`");
    std::process::exit(2);
}
