//! A cell written once and read ever after: the shape of every piece of state guest-lib
//! keeps, so that none can be replaced under a reader's feet.
//!
//! ```
//! use guest_lib::set_once::SetOnce;
//!
//! static GRANULE: SetOnce<u64> = SetOnce::new();
//! assert_eq!(GRANULE.set(4096), Ok(&4096));
//! assert_eq!(GRANULE.set(16384), Err(16384)); // refused: the first value stays
//! assert_eq!(GRANULE.get(), Some(&4096));
//! ```

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

/// A value set once; a second `set` is refused and hands its value back.
pub struct SetOnce<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    state: AtomicU8,
}

// SAFETY: the value is written by the one `set` that wins the state's compare-exchange,
// before READY is published; afterwards it is only read (shared references).
unsafe impl<T: Sync + Send> Sync for SetOnce<T> {}

impl<T> SetOnce<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Self { value: UnsafeCell::new(MaybeUninit::uninit()), state: AtomicU8::new(EMPTY) }
    }

    /// Sets the value, or returns it when the cell is already set (or being set).
    pub fn set(&self, value: T) -> Result<&T, T> {
        if self.state.compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return Err(value);
        }
        // SAFETY: this call alone moved the state from EMPTY: nothing else writes or
        // reads the value until READY is stored.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(READY, Ordering::Release);
        self.get().ok_or(()).map_err(|()| unreachable!())
    }

    /// The value, once set.
    pub fn get(&self) -> Option<&T> {
        // SAFETY: READY is stored only after the value was written, and never changes.
        (self.state.load(Ordering::Acquire) == READY).then(|| unsafe { (*self.value.get()).assume_init_ref() })
    }
}

impl<T> Default for SetOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_second_set() {
        let cell = SetOnce::new();
        assert_eq!(cell.get(), None);
        assert_eq!(cell.set(1), Ok(&1));
        assert_eq!(cell.set(2), Err(2));
        assert_eq!(cell.get(), Some(&1));
    }
}
