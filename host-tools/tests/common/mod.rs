//! Running `pvmkit` from the end-to-end tests.

use std::process::{Command, Output};
use std::sync::Mutex;

/// Runs are serialised: each builds firmware first (cargo serialises that anyway) and
/// QEMU under TCG wants a core of its own on a two-core machine.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn pvmkit(args: &[&str]) -> (bool, String) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Output { status, stdout, stderr } =
        Command::new(env!("CARGO_BIN_EXE_pvmkit")).args(args).output().expect("pvmkit runs");
    let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    (status.success(), text)
}
