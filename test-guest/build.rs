//! Links the guest with guest-lib's layout (`guest.ld`, on the search path that
//! guest-lib's build script sets); host builds are left alone.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tguest.ld");
    }
}
