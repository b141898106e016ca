//! Links pvmfw at its region (see `pvmkit_abi::pvmfw`); host builds are left alone.
fn main() {
    println!("cargo:rerun-if-changed=pvmfw.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/pvmfw.ld");
    }
}
