//! Links the guest with guest-lib's layouts (on the search path that guest-lib's build
//! script sets): `test-guest` as an ELF where pvmkit loads it, `test-guest-image` as a
//! position-independent arm64 `Image` (linked at 0, relocating itself at boot). Host
//! builds are left alone.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bin=test-guest=-Tguest.ld");
        println!("cargo:rustc-link-arg-bin=test-guest-image=-Tguest-image.ld");
        println!("cargo:rustc-link-arg-bin=test-guest-image=-pie");
        println!("cargo:rustc-link-arg-bin=test-guest-image=-znotext");
    }
}
