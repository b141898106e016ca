//! A guest crate outside this repository, on another runtime: `cargo run` builds it and
//! boots it with pvmkit as its cargo runner (found on PATH, as after `cargo install
//! --path host-tools`), on hyp in both profiles and on the real pKVM. The crate is the
//! repository's `examples/aarch64-rt-guest`, copied out with its path dependencies
//! made absolute: it links guest-lib without guest-lib's runtime, so this is also the
//! proof that guest-lib is a library.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{pvmkit, ONE_AT_A_TIME};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The example guest as a crate of its own, outside the repository.
fn user_crate() -> PathBuf {
    let repo = std::fs::canonicalize(REPO).unwrap();
    let dir = std::env::temp_dir().join(format!("pvmkit-user-guest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&repo.join("examples/aarch64-rt-guest"), &dir);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let manifest = manifest.replace("path = \"../../", &format!("path = \"{}/", repo.display()));
    assert!(!manifest.contains("../"), "every path dependency made absolute:\n{manifest}");
    std::fs::write(dir.join("Cargo.toml"), manifest + "\n[workspace]\n").unwrap();
    // The repository's lock file pins the same versions the workspace builds with.
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    dir
}

/// `cargo run -- ARGS` in `dir`, with pvmkit on PATH.
fn cargo_run(dir: &Path, args: &[&str]) -> (bool, String) {
    cargo_run_in(dir, "user-guest", args)
}

/// [`cargo_run`] with the crate built in the repository's `target/<target>`.
fn cargo_run_in(dir: &Path, target: &str, args: &[&str]) -> (bool, String) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_pvmkit")).parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args(["run", "--quiet", "--"])
        .args(args)
        .env("PATH", path)
        // Its own target directory, kept across runs of the suite (a warm build is quick).
        .env("CARGO_TARGET_DIR", Path::new(REPO).join("target").join(target))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("cargo runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

const CASES: [&str; 6] = [
    "aarch64_paging_tables",
    "share_unshare_a_heap_page",
    "bounce_pool_over_the_dt_region",
    "console_registered_with_the_mmio_guard",
    "probe_nothing_aborts",
    "virtio_blk_round_trip",
];

#[test]
fn a_guest_crate_outside_the_repository_runs_with_cargo_run() {
    // The firmware targets, installed when missing, and pvmkit's own builds first.
    let (ok, out) = pvmkit(&["build"]);
    assert!(ok, "{out}");
    let dir = user_crate();
    for args in [&[][..], &["--abi", "upstream"][..], &["--backend", "pkvm", "--timeout", "600"][..]] {
        let (ok, out) = cargo_run(&dir, args);
        assert!(ok && out.contains("pvmkit: PASS (6 guest cases passed, clean power-off)"), "{args:?}:\n{out}");
        assert!(out.contains("[pvmfw] payload verified"), "{args:?}: booted through pvmfw:\n{out}");
        for case in CASES {
            assert!(out.contains(&format!("test {case} ... ok")), "{args:?}: {case} did not pass:\n{out}");
        }
    }
    // The runner's verdict is cargo's exit status: a failing run fails `cargo run`.
    let (ok, out) = cargo_run(&dir, &["--mode", "bare"]);
    assert!(
        !ok && out.contains("pvmkit: FAIL"),
        "bare QEMU passes no DT in x0 (this guest knows only the Linux boot protocol):\n{out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `pvmkit new PATH` writes a guest crate that builds and passes under `cargo run` as it
/// is, on hyp and on the real pKVM: a new user's first guest.
#[test]
fn a_new_guest_from_the_template_passes_on_both_backends() {
    let (ok, out) = pvmkit(&["build"]);
    assert!(ok, "{out}");
    let dir = std::env::temp_dir().join(format!("pvmkit-new-guest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (ok, out) = pvmkit(&["new", dir.to_str().unwrap()]);
    assert!(ok && out.contains("wrote the guest crate"), "{out}");
    let (ok, out) = pvmkit(&["new", dir.to_str().unwrap()]);
    assert!(!ok && out.contains("exists already"), "never over an existing path:\n{out}");
    // Its own target directory (kept warm across runs of the suite), whose run folders
    // are this test's alone.
    let runs = Path::new(REPO).join("target/new-guest/pvmkit/runs");
    let _ = std::fs::remove_dir_all(&runs);
    for args in [&[][..], &["--backend", "pkvm", "--timeout", "600"][..]] {
        let (ok, out) = cargo_run_in(&dir, "new-guest", args);
        assert!(ok && out.contains("pvmkit: PASS (3 guest cases passed, clean power-off)"), "{args:?}:\n{out}");
        for case in ["share_and_take_back_a_page", "read_block_0", "register_before_touching"] {
            assert!(out.contains(&format!("test {case} ... ok")), "{args:?}: {case} did not pass:\n{out}");
        }
    }
    // Each run's folder is in the crate's own target directory, not the checkout's.
    let runs = std::fs::read_dir(&runs).map(Iterator::count);
    assert_eq!(runs.ok(), Some(2), "one folder per run, under the crate's target/pvmkit/runs");
    std::fs::remove_dir_all(&dir).ok();
}
