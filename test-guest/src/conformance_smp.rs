//! The vCPU power probes (`--scenario conformance --cpus 2`): CPU_ON and AFFINITY_INFO
//! on a target of each kind, in an order that makes every kind arise (vCPU 1 off, then
//! started, then on), each printed as `probe smp-<call>@<kind> = RESULT` and checked
//! against [`pvmkit_abi::profile::vcpu_power`]. `pvmkit conformance --record` keeps the real
//! pKVM's answers as the table's measurement.

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use guest_lib::conduit::Conduit;
use guest_lib::harness::CaseResult;
use guest_lib::smp::{self, CpuStack};
use guest_lib::{println, BootInfo};
use pvmkit_abi::profile::recording::{ProbeCall, ShownRegs};
use pvmkit_abi::profile::vcpu_power::{self, PowerCall, Target};
use pvmkit_abi::profile::{Conduit as Via, Pages};
use pvmkit_abi::psci;

use crate::clock::{counter, frequency};

static STACK: CpuStack = CpuStack::new();
static ARRIVED: AtomicBool = AtomicBool::new(false);
/// Set once the probes are done: vCPU 1 may power itself off.
static RELEASED: AtomicBool = AtomicBool::new(false);

/// Probes every kind of target; fails on any answer the table does not give.
pub fn probe_all(boot: &BootInfo) -> CaseResult {
    let c = boot.conduit;
    let mut wrong = Vec::new();
    let mut check = |name: &str, call: PowerCall, target: Target, x0: i64| {
        println!("probe smp-{name}@{} = {}", target.word(), ShownRegs([x0 as u64, 0, 0, 0]));
        let want = vcpu_power::answer(vcpu_power::LINUX_7_3, call, target);
        if want != Some(x0) {
            wrong.push(format!("{name}@{}: {x0}, the table says {want:?}", target.word()));
        }
    };
    let raw = |name: &str, function: u32, args: [u64; 3]| -> i64 {
        println!("probe-call smp-{name} = {}", ProbeCall { conduit: Via::Hvc, function, args, pages: Pages::Private });
        c.call(function, args)[0] as i64
    };
    let missing = boot.dt.cpus().len() as u64;
    let (on, aff) = (PowerCall::CpuOn, PowerCall::AffinityInfo);
    check("affinity-info", aff, Target::Off, raw("affinity-info@off", psci::AFFINITY_INFO_64, [1, 0, 0]));
    check("affinity-info", aff, Target::On, raw("affinity-info@on", psci::AFFINITY_INFO_64, [0, 0, 0]));
    check("affinity-info", aff, Target::NoVcpu, raw("affinity-info@no-vcpu", psci::AFFINITY_INFO_64, [missing, 0, 0]));
    check("affinity-info", aff, Target::BadLevel, raw("affinity-info@bad-level", psci::AFFINITY_INFO_64, [1, 4, 0]));
    let outside = 1 << 41;
    check(
        "affinity-info",
        aff,
        Target::OutsideMpidr,
        raw("affinity-info@outside-mpidr", psci::AFFINITY_INFO_64, [outside, 0, 0]),
    );
    // Level 1 matches every vCPU here (all in cluster 0): on, since vCPU 0 is.
    check("affinity-info-level-1", aff, Target::On, raw("affinity-info-level-1@on", psci::AFFINITY_INFO_64, [1, 1, 0]));
    check("cpu-on", on, Target::NoVcpu, raw("cpu-on@no-vcpu", psci::CPU_ON_64, [missing, 0, 0]));
    check("cpu-on", on, Target::OutsideMpidr, raw("cpu-on@outside-mpidr", psci::CPU_ON_64, [outside, 0, 0]));
    check("cpu-on", on, Target::On, raw("cpu-on@on", psci::CPU_ON_64, [0, 0, 0]));
    // A real start of vCPU 1 (the one call whose arguments are addresses of this
    // build: not printed as a call).
    // SAFETY: STACK is given to vCPU 1 only, which is off (probed above).
    let started = unsafe { smp::start(&c, 1, &STACK, arrived, 0) };
    check("cpu-on", on, Target::Off, started.map_or_else(|e| e.0, |()| psci::SUCCESS));
    check(
        "affinity-info-after-cpu-on",
        aff,
        Target::On,
        raw("affinity-info-after-cpu-on@on", psci::AFFINITY_INFO_64, [1, 0, 0]),
    );
    check("cpu-on-again", on, Target::On, raw("cpu-on-again@on", psci::CPU_ON_64, [1, 0, 0]));
    let start = counter();
    while !ARRIVED.load(Ordering::Acquire) {
        if counter() - start > frequency() {
            wrong.push(String::from("vCPU 1 did not arrive within a second"));
            break;
        }
        core::hint::spin_loop();
    }
    RELEASED.store(true, Ordering::Release);
    let start = counter();
    while guest_lib::psci::affinity_info(&c, 1) != Ok(guest_lib::psci::AffinityState::Off) {
        if counter() - start > frequency() {
            wrong.push(String::from("vCPU 1 did not power itself off within a second"));
            break;
        }
        core::hint::spin_loop();
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// vCPU 1: says it arrived and, once the probes are done, powers itself off.
extern "C" fn arrived(_: u64) -> ! {
    ARRIVED.store(true, Ordering::Release);
    while !RELEASED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let _ = guest_lib::psci::cpu_off(&guest_lib::conduit::SystemConduit::Hvc);
    loop {
        core::hint::spin_loop();
    }
}
