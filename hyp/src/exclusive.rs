//! hyp's global state: cells that hand out one exclusive borrow at a time, checked,
//! so that no safe call can produce two `&mut` to one static. hyp's trap handlers do
//! not nest: a second borrow on the same CPU while one is live is a bug of hyp's, and
//! the caller stops the VM rather than alias. With several vCPUs (one per physical
//! CPU), [`Exclusive::lock`] waits while another CPU holds the value: a lock, which
//! still names a nested borrow on its own CPU instead of waiting for ever.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
#[cfg(not(loom))]
use core::sync::atomic::{AtomicU8, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const FREE: u8 = 1;
const BORROWED: u8 = 2;
/// Handed out for the rest of the run (`take_forever`): never borrowed again.
const GONE: u8 = 3;

/// A static's value, borrowed exclusively at most once at a time.
pub struct Exclusive<T> {
    value: UnsafeCell<Option<T>>,
    state: AtomicU8,
    /// The CPU holding a [`Exclusive::lock`] (+1; 0: none or a plain borrow).
    holder: AtomicU8,
}

/// Why [`Exclusive::lock`] gave nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockError {
    /// The cell is empty or handed out for good.
    Unavailable,
    /// This CPU holds it already: a nested borrow, hyp's bug.
    Nested,
}

// SAFETY: the state's compare-exchange admits one borrower at a time, and only a
// borrower (or `set`, on an empty cell) touches the value.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    /// A cell with nothing in it yet: [`Exclusive::set`] fills it, once.
    #[cfg(not(loom))]
    pub const fn empty() -> Self {
        Self { value: UnsafeCell::new(None), state: AtomicU8::new(EMPTY), holder: AtomicU8::new(0) }
    }

    /// A cell holding `value` from the start.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self { value: UnsafeCell::new(Some(value)), state: AtomicU8::new(FREE), holder: AtomicU8::new(0) }
    }

    /// A cell holding `value` (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self { value: UnsafeCell::new(Some(value)), state: AtomicU8::new(FREE), holder: AtomicU8::new(0) }
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
            Some(value) => Some(Borrowed { value, state: &self.state, holder: &self.holder }),
            None => {
                self.state.store(FREE, Ordering::Release);
                None
            }
        }
    }

    /// The value, exclusively, once no other CPU holds it (waiting meanwhile): CPU
    /// `cpu` (below 255) holds it until the returned borrow is dropped. A second lock
    /// on the same CPU is [`LockError::Nested`], never a wait.
    pub fn lock(&self, cpu: u8) -> Result<Borrowed<'_, T>, LockError> {
        let me = cpu.wrapping_add(1);
        loop {
            if let Some(borrowed) = self.borrow() {
                self.holder.store(me, Ordering::Relaxed);
                return Ok(borrowed);
            }
            match self.state.load(Ordering::Acquire) {
                EMPTY | GONE => return Err(LockError::Unavailable),
                _ if self.holder.load(Ordering::Relaxed) == me => return Err(LockError::Nested),
                // Under loom, a wait that lets the model schedule the holder.
                #[cfg(loom)]
                _ => loom::thread::yield_now(),
                #[cfg(not(loom))]
                _ => core::hint::spin_loop(),
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
    holder: &'a AtomicU8,
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
        self.holder.store(0, Ordering::Relaxed);
        self.state.store(FREE, Ordering::Release);
    }
}

/// Every interleaving loom finds of two CPUs locking the cell, each checking that it is
/// alone inside (a counter of holders, its own atomic) and that the value it reads is
/// what the other left: mutual exclusion, no lost update, and no false "nested".
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;

    #[test]
    fn two_cpus_exclude_each_other() {
        loom::model(|| {
            let cell = Arc::new(Exclusive::new(0u32));
            let inside = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..2u8)
                .map(|cpu| {
                    let (cell, inside) = (cell.clone(), inside.clone());
                    loom::thread::spawn(move || {
                        let mut value = cell.lock(cpu).expect("no false nesting, never unavailable");
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two CPUs inside");
                        *value += 1;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(*cell.lock(0).unwrap(), 2, "an update lost");
        });
    }
}

#[cfg(all(test, not(loom)))]
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
        {
            let _held = CELL.lock(3).unwrap();
            assert_eq!(CELL.lock(3).err(), Some(LockError::Nested), "the same CPU again");
        }
        assert_eq!(*CELL.lock(3).unwrap(), 2, "free again once dropped");
        let forever = CELL.take_forever().unwrap();
        *forever = 7;
        assert!(CELL.borrow().is_none() && CELL.take_forever().is_none(), "gone for good");
        assert_eq!(CELL.lock(0).err(), Some(LockError::Unavailable));
    }

    /// Several threads (as CPUs) incrementing through `lock`: none is lost, none waits
    /// for ever.
    #[test]
    fn the_lock_serialises_cpus() {
        // Under Miri, which interprets every step (and explores thread interleavings),
        // fewer rounds.
        const ROUNDS: u64 = if cfg!(miri) { 50 } else { 10_000 };
        static COUNTER: Exclusive<u64> = Exclusive::new(0);
        std::thread::scope(|s| {
            for cpu in 0..4u8 {
                s.spawn(move || {
                    for _ in 0..ROUNDS {
                        *COUNTER.lock(cpu).unwrap() += 1;
                    }
                });
            }
        });
        assert_eq!(*COUNTER.lock(0).unwrap(), 4 * ROUNDS);
    }
}
