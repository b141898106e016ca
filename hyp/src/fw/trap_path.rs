//! The trap path: every guest exit comes here from `vectors.S` with its vector's
//! [`TrapKind`], is decoded once into a [`GuestExit`] (hyp's host-tested library) and
//! served by one `match`.

use hyp::device::virtio::AccessError;
use hyp::esr::{self, DataAbort, Esr};
use hyp::pkvm::hypercall::{self, Clock, ExitCounters, Inconsistency, Outcome, VmState};
use hyp::trap::exit::ExitReason;
use hyp::trap::guest_exit::{GuestExit, TrapKind};
use hyp::trap::inject::{self, AbortKind, TrapState};
use hyp::trap::mmio::{self, Access, Decision, Refusal};
use hyp::trap::sysreg::{self, RegisterReply, SysregAccess};
use pvmkit_abi::address::Ipa;
use pvmkit_abi::profile::cpu::{self, IdRegister};
use pvmkit_abi::profile::Conduit;

use crate::arch::{gic, registers, tick, GuestRegs};
use crate::boot::TICK_PERIOD;
use crate::device_access::{collect_completions, device_side_stop, load, store};
use crate::exit_path::{exit, fail};
use crate::exit_summary::{note_policy, note_refused};
use crate::virtio_transports;
use crate::virtual_interrupts;
use crate::vm_state::{vm, IdentityMemory, Vm};
use crate::work_meter;
use aarch64_cpu::registers::{
    Readable, Writeable, CNTFRQ_EL0, CNTPCT_EL0, CNTVOFF_EL2, ELR_EL1, ELR_EL2, ESR_EL1, ESR_EL2, FAR_EL1, FAR_EL2,
    HPFAR_EL2, SPSR_EL1, SPSR_EL2, VBAR_EL1,
};

#[unsafe(no_mangle)]
extern "C" fn handle_guest_exit(regs: &mut GuestRegs, kind: u64) {
    let Some(kind) = TrapKind::from_raw(kind) else { fail!("vectors.S passed an unknown trap kind {kind}") };
    let physical = if kind == TrapKind::Irq { acknowledge_interrupt() } else { None };
    work_meter::exit_begins();
    // One lock of the VM for the whole exit: everything below works on it. A wait (WFI)
    // and a vCPU that powered itself off go on with it unlocked.
    let mut locked = vm();
    let vm = &mut *locked;
    // Completions first: a device's interrupt reaches the guest with its used ring
    // already written.
    collect_completions(vm);
    if let Some(intid) = physical {
        virtual_interrupts::forward(vm, intid);
    }
    let esr = Esr(ESR_EL2.get());
    let exit_kind = GuestExit::decode(kind, esr);
    let exits = &mut vm.exits;
    exits.total += 1;
    match exit_kind {
        GuestExit::Interrupt => exits.interrupts += 1,
        GuestExit::Wfi | GuestExit::Wfe => exits.wfx += 1,
        e if e.is_data_abort() => exits.data_aborts += 1,
        _ => {}
    }
    let mut then = Then::Resume;
    match exit_kind {
        GuestExit::Hvc => then = hypercall(vm, regs, Conduit::Hvc),
        GuestExit::Smc => then = hypercall(vm, regs, Conduit::Smc),
        GuestExit::Wfi => {
            if virtual_interrupts::should_wait(vm) {
                then = Then::Wait;
            }
            ELR_EL2.set(ELR_EL2.get() + 4)
        }
        // A yield: nothing else runs.
        GuestExit::Wfe => ELR_EL2.set(ELR_EL2.get() + 4),
        GuestExit::SystemRegister(access) => system_register(vm, regs, access, esr),
        GuestExit::DataAbort(abort) => data_abort(vm, regs, esr, &abort),
        // The guest ran off guest RAM: it sees the abort a real pVM would.
        GuestExit::InstructionAbort => inject_abort(AbortKind::Instruction),
        // Physical interrupts are routed to EL2 (IMO/FMO): hyp's tick, or a forwarded
        // one, already handed to the guest's list registers above; the guest resumes.
        GuestExit::Interrupt => {}
        GuestExit::Crash(esr) => exit(ExitReason::GuestCrash { esr, far: FAR_EL2.get(), elr: ELR_EL2.get() }),
        GuestExit::AArch32 => fail("the guest switched to AArch32, which hyp does not run"),
    }
    match then {
        Then::Resume => virtual_interrupts::flush(vm),
        Then::Wait => {
            drop(locked);
            gic::wait_for_interrupt();
            virtual_interrupts::flush(&mut crate::vm_state::vm());
        }
        Then::Park => {
            drop(locked);
            crate::boot::park()
        }
    }
    work_meter::exit_ends(!matches!(exit_kind, GuestExit::Interrupt | GuestExit::Wfi | GuestExit::Wfe));
}

/// What a vCPU does once its exit is served.
enum Then {
    /// Run the guest again.
    Resume,
    /// Wait for an interrupt first (WFI), the VM unlocked.
    Wait,
    /// Nothing: the vCPU powered itself off (PSCI CPU_OFF).
    Park,
}

/// A trapped MSR or MRS: an ID register read (the release's view of the CPU), a PMU
/// or debug register the release refuses or hides, or the GIC's SGI registers.
fn system_register(vm: &mut Vm, regs: &mut GuestRegs, access: SysregAccess, esr: Esr) {
    if let Some((crm, op2)) = access.id_register_read() {
        // The release's view of the CPU: capped fields, the rest as it is.
        let hardware = registers::read_id_register(crm, op2);
        let value = match IdRegister::from_encoding(crm, op2) {
            Some(register) => cpu::capped(register, hardware, vm.services.id_caps()),
            None => hardware,
        };
        if access.rt != 31 {
            regs.x[access.rt as usize] = value;
        }
    } else if let Some(reply) = sysreg::register_reply(&access, vm.services.profile().register_access.as_ref()) {
        match reply {
            RegisterReply::Undefined => {
                let state = TrapState { spsr: SPSR_EL2.get(), elr: ELR_EL2.get(), far: 0, vbar_el1: VBAR_EL1.get() };
                // FAR_EL1 is UNKNOWN for EC 0: left as it is, as pKVM leaves it.
                enter_exception(&inject::undefined(state));
                return;
            }
            RegisterReply::ReadsZero if access.read && access.rt != 31 => regs.x[access.rt as usize] = 0,
            RegisterReply::ReadsZero => {}
            RegisterReply::Inconsistent => {
                fail!("register {:?} trapped, but the profile leaves it to the VM", access.encoding)
            }
        }
    } else if !virtual_interrupts::system_register(vm, regs, access) {
        exit(ExitReason::GuestCrash { esr, far: FAR_EL2.get(), elr: ELR_EL2.get() });
    }
    ELR_EL2.set(ELR_EL2.get() + 4)
}

/// Acknowledges the interrupt at the GIC and drops its priority. hyp's tick is
/// re-armed and ended; any other is returned, still active, for the guest.
fn acknowledge_interrupt() -> Option<u32> {
    let intid = gic::acknowledge();
    // 1020..1023 are special INTIDs (spurious): nothing to end.
    if intid >= 1020 {
        return None;
    }
    gic::drop_priority(intid);
    if intid == tick::HYP_TIMER_INTID {
        tick::rearm(TICK_PERIOD);
        gic::deactivate(intid);
        return None;
    }
    Some(intid)
}

fn hypercall(vm: &mut Vm, regs: &mut GuestRegs, conduit: Conduit) -> Then {
    if vm.vcpus.count() > 1 {
        if let Some(then) = vcpu_power(vm, regs, conduit) {
            return then;
        }
    }
    // An HVC returns past itself (ELR is the next instruction); a trapped SMC leaves
    // ELR at the SMC, so hyp steps over it on return.
    let elr = ELR_EL2.get();
    let (call_at, resume_at) = match conduit {
        Conduit::Hvc => (elr - 4, elr),
        Conduit::Smc => (elr, elr + 4),
    };
    // The first call from outside pvmfw is the handover (for the MMIO guard's policy).
    vm.guard.note_pc(call_at);
    let state = VmState {
        ownership: &mut vm.ownership,
        memory: &mut IdentityMemory,
        guard: &mut vm.guard,
        devices: &mut virtio_transports::Holders,
        exits: ExitCounters { hyp_work: work_meter::total(), ..vm.exits },
        clock,
        short: &mut vm.short,
    };
    let regs_out = match hypercall::dispatch(&vm.services, state, conduit, regs.x[0], [regs.x[1], regs.x[2], regs.x[3]])
    {
        Outcome::Return(out) => out,
        Outcome::Refused { regs: out, policy, ipa } => {
            // Summed up before the exit line, like refused accesses (a line now would
            // split the guest's own).
            note_policy(policy, ipa);
            out
        }
        Outcome::ExternalAbortAtCall => {
            // The real pKVM's answer to MEM_SHARE of an IPA no memslot holds: the
            // guest takes an external abort at the call itself, with FAR = 0.
            inject_abort_at(AbortKind::Data, call_at, 0);
            return Then::Resume;
        }
        Outcome::DeviceHeld(held) => exit(ExitReason::Violation {
            ipa: held.page.ipa(),
            vcpu: Some(crate::arch::this_cpu() as u32),
            device: held.holder.map(|h| h.device),
            queue: held.holder.map(|h| h.queue),
            descriptor: held.holder.and_then(|h| h.descriptor),
            buffer: None,
            what: held.what(),
        }),
        Outcome::SystemOff => exit(ExitReason::SystemOff),
        Outcome::SystemReset => exit(ExitReason::Reset),
        Outcome::Inconsistent(Inconsistency { ipa, what }) => fail!("hyp's bookkeeping disagrees: {what} at {ipa:#x}"),
    };
    regs.x[..4].copy_from_slice(&regs_out);
    ELR_EL2.set(resume_at);
    Then::Resume
}

/// PSCI CPU_ON, CPU_OFF and AFFINITY_INFO in a VM of several vCPUs (`hyp::vcpus`,
/// upstream KVM's answers); `None` for any other call. (With one vCPU the profile's
/// table answers them, as before.) Both conduits, both calling conventions: a 32-bit
/// call's arguments are taken as 32-bit values, as KVM narrows them.
fn vcpu_power(vm: &mut Vm, regs: &mut GuestRegs, conduit: Conduit) -> Option<Then> {
    use pvmkit_abi::psci;
    let function = regs.x[0] as u32;
    let narrow = |x: u64| if function & (1 << 30) == 0 { x & 0xffff_ffff } else { x };
    let (a1, a2, a3) = (narrow(regs.x[1]), narrow(regs.x[2]), narrow(regs.x[3]));
    let me = crate::arch::this_cpu();
    let answer = match function {
        psci::CPU_ON | psci::CPU_ON_64 => {
            let answer = vm.vcpus.cpu_on(a1, a2, a3);
            if answer == 0 {
                crate::arch::send_event();
            }
            answer
        }
        psci::AFFINITY_INFO | psci::AFFINITY_INFO_64 => vm.vcpus.affinity_info(a1, a2),
        psci::CPU_OFF => {
            vm.vcpus.cpu_off(me);
            if vm.vcpus.running() == 0 {
                exit(ExitReason::AllVcpusOff);
            }
            return Some(Then::Park);
        }
        _ => return None,
    };
    regs.x[0] = answer as u64;
    regs.x[1..4].fill(0);
    // Past the call (an SMC traps with ELR at itself).
    if conduit == Conduit::Smc {
        ELR_EL2.set(ELR_EL2.get() + 4);
    }
    Some(Then::Resume)
}

/// The counters KVM PTP reports.
fn clock() -> Clock {
    Clock::from_counters(CNTPCT_EL0.get(), CNTFRQ_EL0.get(), CNTVOFF_EL2.get())
}

fn data_abort(vm: &mut Vm, regs: &mut GuestRegs, esr: Esr, abort: &DataAbort) {
    let ipa = esr::fault_ipa(HPFAR_EL2.get(), FAR_EL2.get());
    if vm.ram.start <= ipa && ipa < vm.ram.end {
        // Guest RAM is mapped whole; a fault there means hyp's tables are wrong.
        fail!("stage-2 fault inside guest RAM at {ipa:#x} ({esr})");
    }
    vm.guard.note_pc(ELR_EL2.get());
    match mmio::decide(abort, Ipa(ipa), vm.devices.windows(), &vm.guard) {
        Decision::Emulate { pa, access, device } => {
            let result = match access {
                Access::Store { reg, width } => {
                    let value = if reg == 31 { 0 } else { mmio::store_value(regs.x[reg as usize], width) };
                    store(vm, &device, pa, width, value)
                }
                Access::Load { reg, width, sign_extend, sixty_four } => load(vm, &device, pa, width).map(|raw| {
                    if reg != 31 {
                        regs.x[reg as usize] = mmio::load_result(raw, width, sign_extend, sixty_four);
                    }
                }),
            };
            match result {
                Ok(()) => ELR_EL2.set(ELR_EL2.get() + 4),
                Err(AccessError::BadWidth) => {
                    note_refused(Ipa(ipa), Refusal::DeviceRefused);
                    inject_abort(AbortKind::Data)
                }
                Err(e) => device_side_stop(device.base, e),
            }
        }
        Decision::Refuse(Refusal::InheritedGuard) => {
            let device = vm.devices.windows().iter().find(|w| w.base <= ipa && ipa - w.base < w.size).map(|w| w.base);
            exit(ExitReason::Violation {
                ipa: Ipa(ipa),
                vcpu: Some(crate::arch::this_cpu() as u32),
                device: device.filter(|_| ipa >= pvmkit_abi::memory_map::VIRTIO_MMIO_BASE),
                queue: None,
                descriptor: None,
                buffer: None,
                what: Refusal::InheritedGuard.describe(),
            })
        }
        Decision::Refuse(why) => {
            note_refused(Ipa(ipa), why);
            inject_abort(AbortKind::Data)
        }
    }
}

fn inject_abort(kind: AbortKind) {
    inject_abort_at(kind, ELR_EL2.get(), FAR_EL2.get());
}

/// Delivers a synchronous external abort taken at `elr` with FAR = `far`.
fn inject_abort_at(kind: AbortKind, elr: u64, far: u64) {
    let state = TrapState { spsr: SPSR_EL2.get(), elr, far, vbar_el1: VBAR_EL1.get() };
    let injection = inject::external_abort(kind, state);
    FAR_EL1.set(injection.far_el1);
    enter_exception(&injection);
}

/// Takes the guest into the exception `injection` describes: its EL1 syndrome, return
/// address and state, and hyp's return to its vector (FAR_EL1 is the caller's).
fn enter_exception(injection: &inject::Injection) {
    ESR_EL1.set(injection.esr_el1);
    ELR_EL1.set(injection.elr_el1);
    SPSR_EL1.set(injection.spsr_el1);
    ELR_EL2.set(injection.elr_el2);
    SPSR_EL2.set(injection.spsr_el2);
}

#[unsafe(no_mangle)]
extern "C" fn hyp_exception(_regs: &mut GuestRegs, kind: u64) -> ! {
    let esr = Esr(ESR_EL2.get());
    fail!("hyp took an exception at EL2 (kind {kind}): ESR {esr}, ELR {:#x}, FAR {:#x}", ELR_EL2.get(), FAR_EL2.get())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fail!("hyp panicked: {}", info.message())
}
