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
    fn read(&self, ipa: u64, buf: &mut [u8]) {
        let at = (ipa - self.base) as usize;
        buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
    }

    fn write(&mut self, ipa: u64, buf: &[u8]) {
        let at = (ipa - self.base) as usize;
        self.bytes[at..at + buf.len()].copy_from_slice(buf);
    }
}
