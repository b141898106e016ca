//! What pvmkit's fuzz targets share: reading structured values from the fuzzer's bytes.

/// The fuzzer's bytes, consumed front to back; every read is `None` once they run out.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    /// One byte.
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// `N` bytes.
    pub fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut v = [0u8; N];
        for b in &mut v {
            *b = self.byte()?;
        }
        Some(v)
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        self.bytes().map(u16::from_le_bytes)
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.bytes().map(u64::from_le_bytes)
    }
}
