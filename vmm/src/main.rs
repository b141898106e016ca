//! The VMM binary: `/init` of the pKVM host (see the library).

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn main() {
    vmm::init::main()
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn main() {
    eprintln!("vmm runs as /init of an arm64 Linux pKVM host; `cargo pvmkit run --backend pkvm` builds and boots it");
    std::process::exit(2);
}
