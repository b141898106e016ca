//! Links the firmware image at hyp's address; host builds (unit tests) are left alone.
fn main() {
    println!("cargo:rerun-if-changed=hyp.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/hyp.ld");
    }
}
