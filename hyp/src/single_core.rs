//! hyp's global state: one CPU, trap handlers that never nest.

use core::cell::UnsafeCell;

/// State only touched by the single CPU, with EL2 exceptions never nesting.
pub struct SingleCore<T>(UnsafeCell<T>);
// SAFETY: hyp runs on one CPU and its trap handlers do not nest.
unsafe impl<T> Sync for SingleCore<T> {}

impl<T> SingleCore<T> {
    /// For the exit path only, which may run from inside a handler that holds the
    /// reference: it reads, and the run ends right after.
    pub fn try_get(&self) -> Option<&T> {
        // SAFETY: see `get`; the exit path only reads and never returns.
        Some(unsafe { &*self.0.get() })
    }

    #[allow(clippy::mut_from_ref)]
    pub fn get(&self) -> &mut T {
        // SAFETY: see the Sync impl: there is never a second live reference, because
        // each trap handler takes the reference once and drops it before returning.
        unsafe { &mut *self.0.get() }
    }
}

impl<T> SingleCore<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }
}
