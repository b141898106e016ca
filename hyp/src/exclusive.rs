//! hyp's global state: cells that hand out one exclusive borrow at a time, checked,
//! so that no safe call can produce two `&mut` to one static. hyp runs on one CPU and
//! its trap handlers do not nest; a second borrow while one is live is a bug of hyp's,
//! and the caller stops the VM with `hyp_error` rather than alias.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const FREE: u8 = 1;
const BORROWED: u8 = 2;
/// Handed out for the rest of the run (`take_forever`): never borrowed again.
const GONE: u8 = 3;

/// A static's value, borrowed exclusively at most once at a time.
pub struct Exclusive<T> {
    value: UnsafeCell<Option<T>>,
    state: AtomicU8,
}

// SAFETY: the state's compare-exchange admits one borrower at a time, and only a
// borrower (or `set`, on an empty cell) touches the value.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    /// A cell with nothing in it yet: [`Exclusive::set`] fills it, once.
    pub const fn empty() -> Self {
        Self { value: UnsafeCell::new(None), state: AtomicU8::new(EMPTY) }
    }

    /// A cell holding `value` from the start.
    pub const fn new(value: T) -> Self {
        Self { value: UnsafeCell::new(Some(value)), state: AtomicU8::new(FREE) }
    }

    /// Fills an empty cell; a second `set` is refused and hands the value back.
    pub fn set(&self, value: T) -> Result<(), T> {
        if self.state.compare_exchange(EMPTY, BORROWED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return Err(value);
        }
        // SAFETY: the state was EMPTY and is now BORROWED by this call alone.
        unsafe { *self.value.get() = Some(value) };
        self.state.store(FREE, Ordering::Release);
        Ok(())
    }

    /// The value, exclusively, until the returned borrow is dropped; `None` if the cell
    /// is empty, already borrowed, or handed out for good.
    pub fn borrow(&self) -> Option<Borrowed<'_, T>> {
        self.state.compare_exchange(FREE, BORROWED, Ordering::Acquire, Ordering::Relaxed).ok()?;
        // SAFETY: this call alone moved the state from FREE to BORROWED; the value is
        // `Some` in every state but EMPTY.
        match unsafe { (*self.value.get()).as_mut() } {
            Some(value) => Some(Borrowed { value, state: &self.state }),
            None => {
                self.state.store(FREE, Ordering::Release);
                None
            }
        }
    }

    /// The value, exclusively, for the rest of the run: every later borrow is refused.
    // A `&mut` from `&self`, made sound by the state: only the call that moves it to
    // GONE gets the reference, and no call moves it back.
    #[allow(clippy::mut_from_ref)]
    pub fn take_forever(&'static self) -> Option<&'static mut T> {
        self.state.compare_exchange(FREE, GONE, Ordering::Acquire, Ordering::Relaxed).ok()?;
        // SAFETY: this call alone moved the state to GONE, which no call leaves.
        unsafe { (*self.value.get()).as_mut() }
    }
}

/// An exclusive borrow of an [`Exclusive`]'s value.
pub struct Borrowed<'a, T> {
    value: &'a mut T,
    state: &'a AtomicU8,
}

impl<T> Deref for Borrowed<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value
    }
}

impl<T> DerefMut for Borrowed<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
    }
}

impl<T> Drop for Borrowed<'_, T> {
    fn drop(&mut self) {
        self.state.store(FREE, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_borrow_at_a_time_and_one_set() {
        static CELL: Exclusive<u32> = Exclusive::empty();
        assert!(CELL.borrow().is_none(), "nothing to borrow before set");
        assert_eq!(CELL.set(1), Ok(()));
        assert_eq!(CELL.set(2), Err(2), "a second set is refused");
        {
            let mut first = CELL.borrow().unwrap();
            *first += 1;
            assert!(CELL.borrow().is_none(), "no second borrow while one is live");
        }
        assert_eq!(*CELL.borrow().unwrap(), 2);
        let forever = CELL.take_forever().unwrap();
        *forever = 7;
        assert!(CELL.borrow().is_none() && CELL.take_forever().is_none(), "gone for good");
    }
}
