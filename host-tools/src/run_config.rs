//! One run's configuration, as the commands build it and the backends read it, and
//! the folder its files go in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Backend, Mode, Workspace};

/// One run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// How the guest runs.
    pub mode: Mode,
    /// The guest ELF.
    pub payload: PathBuf,
    /// A bundle to hand hyp exactly as it is, instead of packing `payload`.
    pub bundle: Option<PathBuf>,
    /// The test-guest scenario word.
    pub scenario: String,
    /// More words for the guest's command line.
    pub guest_args: Vec<String>,
    /// A disk image to use (and keep); by default each run gets a fresh one.
    pub disk: Option<PathBuf>,
    /// Boot through pvmfw (hyp modes; the default) rather than enter the payload directly.
    pub pvmfw: bool,
    /// A signed payload to boot exactly as given (instead of signing `payload`).
    pub signed_payload: Option<PathBuf>,
    /// The public key pvmfw trusts, a `.avbpubkey` (default: the development key's).
    pub trusted_key: Option<PathBuf>,
    /// A ramdisk, loaded where the host DT's `/chosen` says (signed with the payload as
    /// `initrd_name` unless the payload comes signed).
    pub initrd: Option<PathBuf>,
    /// The ramdisk's partition name when pvmkit signs it: `initrd_normal` or `initrd_debug`.
    pub initrd_name: String,
    /// The files of pvmfw's configuration data (a test DICE handover by default).
    pub config_files: crate::avf_config::ConfigFiles,
    /// A host device tree to hand over exactly as given.
    pub host_dt: Option<PathBuf>,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Extra QEMU arguments.
    pub extra_args: Vec<String>,
    /// Print the console as it arrives.
    pub echo: bool,
    /// Turn on hyp's `HYP_STATS` call (for `pvmkit bench`).
    pub hyp_stats: bool,
    /// Have pvmkit's VMM append the exits it sees to the guest's `bench ` lines (for
    /// `pvmkit bench --backend pkvm`).
    pub vmm_stats: bool,
    /// The devices offer VIRTIO_F_ACCESS_PLATFORM to a protected VM (off: the negative
    /// control of `--no-access-platform`).
    pub access_platform: bool,
    /// hyp lets the payload use MMIO granules only pvmfw registered (its policy
    /// `guard-inherited-from-pvmfw` off: `--allow-inherited-guard`).
    pub allow_inherited_guard: bool,
    /// Bind the virtio transports to the restricted DMA pool in the guest's DT (off:
    /// `--no-restricted-pool`, with `--no-pvmfw`, since pvmfw binds them itself).
    pub restricted_pool: bool,
    /// Let hyp's Android profile stop ranged calls short (hyp option `short-counts=on`).
    pub short_counts: bool,
    /// hyp, or the real pKVM.
    pub backend: Backend,
    /// The pKVM host's kernel (default: Debian's, fetched and cached).
    pub kernel: Option<PathBuf>,
    /// What the host DT's `/avf/untrusted` says (instance id, deferral).
    pub avf: crate::guest_dt::AvfUntrusted,
    /// The instance disk to keep across runs (pvmfw's record); a fresh one by default.
    pub instance: Option<PathBuf>,
    /// The guest's vCPUs (1 to [`pvmkit_abi::bundle::MAX_VCPUS`]); 1 is the fast path.
    pub cpus: u32,
}

impl RunConfig {
    /// The guest's command line (`/chosen/bootargs`): the mode, the scenario and any
    /// extra words.
    pub fn guest_cmdline(&self) -> String {
        use pvmkit_abi::guest_console::{BACKEND, SCENARIO};
        let mut words = vec![self.mode.guest_args(), format!("{SCENARIO}={}", self.scenario)];
        if self.backend == Backend::Pkvm {
            words.push(format!("{BACKEND}=pkvm"));
        }
        words.extend(self.guest_args.iter().cloned());
        words.join(" ")
    }
}

/// Where the folders of runs of `payload` go: a guest crate keeps them in the cargo
/// target directory it was built in (`<target>/pvmkit/runs`), so that its `cargo clean`
/// takes them away; pvmkit's own guests (built in the repository's `target/` or
/// `target/firmware/`) and a payload outside any cargo target directory keep theirs in
/// the repository's `target/pvmkit/runs`. Cargo puts a binary at
/// `<target>/<triple>/<profile>/` (or `<target>/<profile>/` without `--target`) and
/// marks the target directory, and each triple's, with a `CACHEDIR.TAG`.
pub(crate) fn runs_root(ws: &Workspace, payload: &Path) -> PathBuf {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let payload = canonical(payload);
    let own = [canonical(&ws.root.join("target")), canonical(&ws.firmware_target_dir())];
    let target = [3, 2].into_iter().find_map(|up| {
        let dir = payload.ancestors().nth(up)?;
        dir.join("CACHEDIR.TAG").is_file().then_some(dir)
    });
    match target {
        Some(target) if !own.iter().any(|own| own == target) => target.join("pvmkit").join("runs"),
        _ => ws.out_dir().join("runs"),
    }
}

/// A fresh folder for a run's files, under [`runs_root`].
pub(crate) fn run_dir(ws: &Workspace, config: &RunConfig) -> Result<PathBuf, String> {
    let mode = config.mode;
    use std::sync::atomic::{AtomicU32, Ordering};
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{}-{}-{}",
        mode.guest_args().replace([' ', '=', '.'], "_"),
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let runs = runs_root(ws, &config.payload);
    prune(&runs, KEEP_RUNS, STALE_AFTER);
    let dir = runs.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Run folders kept whatever their age (each holds a disk image of several MiB).
const KEEP_RUNS: usize = 16;
/// An older folder is removed once nothing has written to it for this long (a run in
/// progress elsewhere writes its folder at its start and its end).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the run folders in `runs` beyond the `keep` newest that are older than
/// `stale`. What cannot be read or removed is left alone.
fn prune(runs: &std::path::Path, keep: usize, stale: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(runs) else { return };
    let mut folders: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, path)| path.is_dir())
        .collect();
    folders.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    let now = std::time::SystemTime::now();
    for (modified, path) in folders.into_iter().skip(keep) {
        if now.duration_since(modified).is_ok_and(|age| age > stale) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest crate keeps its runs in the cargo target directory it was built in;
    /// pvmkit's own guests (test-guest, built into `target/firmware`) and a payload
    /// outside any cargo target directory keep theirs in `target/pvmkit`.
    #[test]
    fn a_crates_runs_live_in_its_own_target_directory() {
        let ws = Workspace::locate().unwrap();
        let outside = std::env::temp_dir().join(format!("pvmkit-runs-root-{}", std::process::id()));
        let release = outside.join("target").join("aarch64-unknown-none").join("release");
        std::fs::create_dir_all(&release).unwrap();
        std::fs::write(release.join("guest"), b"").unwrap();
        assert_eq!(runs_root(&ws, &release.join("guest")), ws.out_dir().join("runs"), "no CACHEDIR.TAG: not cargo's");
        std::fs::write(outside.join("target").join("CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55\n")
            .unwrap();
        let own = std::fs::canonicalize(outside.join("target")).unwrap().join("pvmkit").join("runs");
        assert_eq!(runs_root(&ws, &release.join("guest")), own);
        std::fs::remove_dir_all(&outside).unwrap();
        // pvmkit's own builds: the firmware's target directory and the repository's.
        for own in [ws.firmware_target_dir(), ws.root.join("target")] {
            std::fs::create_dir_all(&own).unwrap();
            if !own.join("CACHEDIR.TAG").exists() {
                std::fs::write(own.join("CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
            }
            let guest = own.join("aarch64-unknown-none").join("release").join("test-guest");
            assert_eq!(runs_root(&ws, &guest), ws.out_dir().join("runs"), "{}", own.display());
        }
    }

    /// Old folders beyond the newest few go; the newest stay, and so does anything
    /// written to lately (another run's, still going).
    #[test]
    fn old_run_folders_are_pruned() {
        let runs = std::env::temp_dir().join(format!("pvmkit-prune-{}", std::process::id()));
        for i in 0..5 {
            std::fs::create_dir_all(runs.join(format!("run-{i}"))).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // All are fresh: nothing goes.
        prune(&runs, 2, std::time::Duration::from_secs(3600));
        assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 5);
        // All count as stale: only the two newest stay.
        prune(&runs, 2, std::time::Duration::ZERO);
        let mut left: Vec<String> =
            std::fs::read_dir(&runs).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, ["run-3", "run-4"]);
        std::fs::remove_dir_all(&runs).unwrap();
    }
}
