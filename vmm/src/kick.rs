//! Stopping a VM's other vCPU threads when one of them ends it. A vCPU thread spends
//! its time inside KVM_RUN (a powered-off vCPU waits there for CPU_ON), so a flag
//! alone would not reach it: it is also sent a signal whose handler does nothing, which
//! makes KVM_RUN return EINTR; the thread then sees the flag. The signal is sent again
//! until every thread has left, so one that was between its check and KVM_RUN when the
//! first signal came is caught by the next.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The signal that wakes a vCPU thread.
const WAKE: libc::c_int = libc::SIGUSR1;
/// How long [`Stop::all`] waits between rounds of signals.
const ROUND: Duration = Duration::from_millis(1);

/// The run's stop flag and the threads it must reach.
#[derive(Default)]
pub struct Stop {
    stopped: AtomicBool,
    threads: Mutex<Vec<Thread>>,
}

/// A thread's id (a pointer on musl, which is not `Send` by itself).
struct Thread(libc::pthread_t);

// SAFETY: a thread id is only compared and passed to pthread_kill, from any thread.
unsafe impl Send for Thread {}

impl Stop {
    /// Called by each vCPU thread before its first KVM_RUN.
    pub fn enter(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Thread(me));
    }

    /// Whether the VM has ended: the thread leaves its run loop.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Wakes every thread that [`Stop::enter`]ed out of KVM_RUN once, without stopping
    /// it ([`crate::power`] asks them whether they are powered off).
    pub fn poke_all(&self) {
        for thread in self.threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
            // SAFETY: a thread of this scope, not yet joined (the scope outlives every
            // call); a thread between KVM_RUNs ignores the signal.
            unsafe { libc::pthread_kill(thread.0, WAKE) };
        }
    }

    /// Stops every thread that [`Stop::enter`]ed, until `finished` says all have left.
    /// The threads are scoped and joined only after this returns, so their ids stay
    /// valid while they are signalled.
    pub fn all(&self, finished: impl Fn() -> bool) {
        self.stopped.store(true, Ordering::Release);
        while !finished() {
            for thread in self.threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
                // SAFETY: a thread of this scope, not yet joined; a thread that has
                // already left its loop ignores the signal.
                unsafe { libc::pthread_kill(thread.0, WAKE) };
            }
            std::thread::sleep(ROUND);
        }
    }
}

extern "C" fn wake(_: libc::c_int) {}

/// Installs the do-nothing handler for the wake signal (SIGUSR1), without SA_RESTART so that KVM_RUN
/// returns EINTR instead of being restarted.
pub fn install() -> Result<(), String> {
    // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
    unsafe {
        let mut action: libc::sigaction = core::mem::zeroed();
        action.sa_sigaction = wake as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(WAKE, &action, core::ptr::null_mut()) != 0 {
            return Err(format!("installing the vCPU wake handler: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Threads blocked in a system call (as in KVM_RUN) are woken and leave.
    #[test]
    fn every_blocked_thread_is_stopped() {
        install().unwrap();
        let stop = Stop::default();
        let left = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        stop.enter();
                        while !stop.stopped() {
                            // Blocks until a signal interrupts it (EINTR).
                            // SAFETY: pause has no preconditions.
                            unsafe { libc::pause() };
                        }
                        left.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            while stop.threads.lock().unwrap().len() < 3 {
                std::thread::yield_now();
            }
            stop.all(|| threads.iter().all(|t| t.is_finished()));
        });
        assert_eq!(left.load(Ordering::Relaxed), 3);
    }
}
