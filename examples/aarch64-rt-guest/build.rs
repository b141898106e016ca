//! Links with aarch64-rt's layout (`image.ld`, on the search path aarch64-rt's build
//! script sets) and this guest's memory (`memory.ld`: where pvmkit loads an ELF payload).
fn main() {
    println!("cargo:rerun-if-changed=memory.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/memory.ld");
        println!("cargo:rustc-link-arg-bins=-Timage.ld");
    }
}
