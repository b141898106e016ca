//! Puts guest-lib's linker scripts on the link search path of every guest that depends
//! on guest-lib; the guest's own build script picks one (see the README):
//! `-Tguest.ld` links an ELF where pvmkit loads it, `-Tguest-image.ld -pie` a
//! position-independent arm64 `Image`.
fn main() {
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    for script in ["guest.ld", "guest-image.ld"] {
        println!("cargo:rerun-if-changed={script}");
        if let Err(e) = std::fs::copy(format!("{dir}/{script}"), format!("{out}/{script}")) {
            panic!("copying {script} to {out}: {e}");
        }
    }
    println!("cargo:rustc-link-search=native={out}");
}
