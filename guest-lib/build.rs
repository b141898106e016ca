//! Puts `guest.ld` on the link search path of every guest that depends on guest-lib;
//! the guest's own build script adds `-Tguest.ld` (see the README).
fn main() {
    println!("cargo:rerun-if-changed=guest.ld");
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    if let Err(e) = std::fs::copy(format!("{dir}/guest.ld"), format!("{out}/guest.ld")) {
        panic!("copying guest.ld to {out}: {e}");
    }
    println!("cargo:rustc-link-search=native={out}");
}
