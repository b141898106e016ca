//! Fakes the host tests and the fuzz targets share (feature `testing`): guest RAM as a
//! host buffer that starts at a guest address.

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use crate::device::virtio::GuestRam;

/// Guest RAM from `base`, `bytes.len()` long, in a host buffer.
pub struct VecRam {
    /// The guest address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: Vec<u8>,
}

impl VecRam {
    /// `len` zero bytes from `base`.
    pub fn new(base: u64, len: usize) -> Self {
        Self { base, bytes: vec![0; len] }
    }

    /// Whether `[ipa, ipa + len)` lies inside.
    pub fn holds(&self, ipa: u64, len: u64) -> bool {
        ipa >= self.base && ipa.checked_add(len).is_some_and(|end| end <= self.base + self.bytes.len() as u64)
    }
}

impl GuestRam for VecRam {
    fn read(&self, ipa: pvmkit_abi::address::Ipa, buf: &mut [u8]) {
        let at = (ipa.get() - self.base) as usize;
        buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
    }

    fn write(&mut self, ipa: pvmkit_abi::address::Ipa, buf: &[u8]) {
        let at = (ipa.get() - self.base) as usize;
        self.bytes[at..at + buf.len()].copy_from_slice(buf);
    }
}

/// A CPU interface of `n` list registers in memory, recording the physical interrupts
/// deactivated.
#[derive(Clone, Debug, Default)]
pub struct FakeCpuInterface {
    /// The list registers.
    pub list_registers: Vec<crate::vgic::list_register::ListRegister>,
    /// Physical INTIDs deactivated, in order.
    pub deactivated: Vec<u32>,
}

impl FakeCpuInterface {
    /// `n` empty list registers.
    pub fn new(n: usize) -> Self {
        Self { list_registers: vec![crate::vgic::list_register::ListRegister(0); n], deactivated: Vec::new() }
    }

    /// What the guest's ICC_IAR1_EL1 read would return: the highest-priority pending
    /// group 1 interrupt, made active (1023, the spurious INTID, if there is none).
    pub fn acknowledge(&mut self) -> u32 {
        let best = self
            .list_registers
            .iter()
            .enumerate()
            .filter(|(_, lr)| lr.pending_only())
            .min_by_key(|(n, lr)| (lr.priority(), *n))
            .map(|(n, _)| n);
        let Some(n) = best else { return 1023 };
        let lr = &mut self.list_registers[n];
        *lr = crate::vgic::list_register::ListRegister(lr.0 ^ (3 << 62));
        lr.vintid()
    }

    /// The guest's deactivation of `intid` (ICC_EOIR1/DIR): its list register empties.
    pub fn deactivate(&mut self, intid: u32) {
        for lr in &mut self.list_registers {
            if lr.in_use() && lr.vintid() == intid && lr.is_active() {
                *lr = lr.deactivated();
            }
        }
    }
}

impl crate::vgic::delivery::CpuInterface for FakeCpuInterface {
    fn list_registers(&self) -> usize {
        self.list_registers.len()
    }
    fn read_list_register(&self, n: usize) -> crate::vgic::list_register::ListRegister {
        self.list_registers[n]
    }
    fn write_list_register(&mut self, n: usize, lr: crate::vgic::list_register::ListRegister) {
        self.list_registers[n] = lr;
    }
    fn deactivate_physical(&mut self, intid: u32) {
        self.deactivated.push(intid);
    }
}

/// The page starting at `ipa` (tests name pages by their address).
///
/// # Panics
///
/// If `ipa` does not start a page.
pub fn pg(ipa: u64) -> pvmkit_abi::address::Page {
    pvmkit_abi::address::Page::at(pvmkit_abi::address::Ipa(ipa)).expect("a page-aligned address")
}

/// An ownership table over words of its own, for tests that keep one in a struct: an
/// `Ownership<'static>` whose words are given back when this is dropped (so that Miri
/// finds nothing leaked).
pub struct TestOwnership {
    table: core::mem::ManuallyDrop<crate::pkvm::ownership::Ownership<'static>>,
    words: *mut [u16],
}

impl TestOwnership {
    /// `pages` pages of guest RAM from `base`, all private.
    pub fn new(base: u64, pages: usize) -> Self {
        let words = alloc::boxed::Box::into_raw(vec![0u16; pages].into_boxed_slice());
        // SAFETY: `words` is a live allocation of this value alone until `drop`, which
        // drops the table before freeing it.
        let table = crate::pkvm::ownership::Ownership::new(base, unsafe { &mut *words });
        Self { table: core::mem::ManuallyDrop::new(table), words }
    }
}

impl core::ops::Deref for TestOwnership {
    type Target = crate::pkvm::ownership::Ownership<'static>;
    fn deref(&self) -> &Self::Target {
        &self.table
    }
}

impl core::ops::DerefMut for TestOwnership {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.table
    }
}

impl Drop for TestOwnership {
    fn drop(&mut self) {
        // SAFETY: the table is dropped once, here, and never used again; then its words,
        // allocated by `new` with `Box::into_raw` and borrowed by nothing else, are freed.
        unsafe {
            core::mem::ManuallyDrop::drop(&mut self.table);
            drop(alloc::boxed::Box::from_raw(self.words));
        }
    }
}
