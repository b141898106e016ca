//! The backends a guest runs on, behind one call: hyp and bare QEMU (`qemu`), the real
//! pKVM (`pkvm`). Each run gets its own folder; the backend builds the rest.

use crate::firmware::Firmware;
use crate::run_config::{run_dir, RunConfig};
use crate::verdict::{RunOutput, Verdict};
use crate::{pkvm, qemu, Backend, Workspace};

/// Builds the run's files, runs the guest and judges the result.
pub fn run(ws: &Workspace, fw: &Firmware, config: &RunConfig) -> Result<Verdict, String> {
    run_collect(ws, fw, config).map(|(verdict, _)| verdict)
}

/// Like [`run`], also returning the console lines.
pub fn run_collect(ws: &Workspace, fw: &Firmware, config: &RunConfig) -> Result<(Verdict, RunOutput), String> {
    let dir = run_dir(ws, config)?;
    match config.backend {
        Backend::Pkvm => pkvm::run_collect(ws, fw, config, &dir),
        Backend::Hyp => qemu::run_collect(ws, fw, config, &dir),
    }
}
