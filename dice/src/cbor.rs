//! The little CBOR a certificate needs, written deterministically (RFC 8949's
//! preferred serialization: definite lengths, the shortest head for every number).

use alloc::vec::Vec;

/// A CBOR item being written.
#[derive(Default)]
pub struct Writer {
    /// The bytes so far.
    pub out: Vec<u8>,
}

impl Writer {
    /// A head: major type `major`, argument `value` in the fewest bytes.
    fn head(&mut self, major: u8, value: u64) {
        let major = major << 5;
        match value {
            0..=23 => self.out.push(major | value as u8),
            24..=0xff => self.out.extend([major | 24, value as u8]),
            0x100..=0xffff => {
                self.out.push(major | 25);
                self.out.extend((value as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(major | 26);
                self.out.extend((value as u32).to_be_bytes());
            }
            _ => {
                self.out.push(major | 27);
                self.out.extend(value.to_be_bytes());
            }
        }
    }

    /// An integer (major type 0, or 1 for a negative one: -1 - n).
    pub fn int(&mut self, value: i64) -> &mut Self {
        match u64::try_from(value) {
            Ok(n) => self.head(0, n),
            Err(_) => self.head(1, !(value as u64)),
        }
        self
    }

    /// A byte string.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.head(2, value.len() as u64);
        self.out.extend_from_slice(value);
        self
    }

    /// A text string.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.head(3, value.len() as u64);
        self.out.extend_from_slice(value.as_bytes());
        self
    }

    /// An array of `len` items, which follow.
    pub fn array(&mut self, len: u64) -> &mut Self {
        self.head(4, len);
        self
    }

    /// `null`.
    pub fn null(&mut self) -> &mut Self {
        self.out.push(0xf6);
        self
    }

    /// An unsigned integer (major type 0).
    pub fn uint(&mut self, value: u64) -> &mut Self {
        self.head(0, value);
        self
    }

    /// A map of `pairs` key-value pairs, which follow.
    pub fn map(&mut self, pairs: u64) -> &mut Self {
        self.head(5, pairs);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8949's Appendix A examples.
    #[test]
    fn heads_are_the_shortest() {
        let encoded = |f: &dyn Fn(&mut Writer)| {
            let mut w = Writer::default();
            f(&mut w);
            w.out
        };
        let int = |n: i64| encoded(&|w| _ = w.int(n));
        assert_eq!(int(23), [0x17]);
        assert_eq!(int(24), [0x18, 0x18]);
        assert_eq!(int(1000), [0x19, 0x03, 0xe8]);
        assert_eq!(int(1_000_000), [0x1a, 0x00, 0x0f, 0x42, 0x40]);
        assert_eq!(int(1_000_000_000_000), [0x1b, 0, 0, 0, 0xe8, 0xd4, 0xa5, 0x10, 0]);
        assert_eq!(int(-1), [0x20]);
        assert_eq!(int(-1000), [0x39, 0x03, 0xe7]);
        assert_eq!(int(i64::MIN), [0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(encoded(&|w| _ = w.text("IETF")), [0x64, 0x49, 0x45, 0x54, 0x46]);
        assert_eq!(encoded(&|w| _ = w.bytes(&[1, 2, 3, 4])), [0x44, 1, 2, 3, 4]);
        assert_eq!(encoded(&|w| _ = w.array(2).int(1).int(2)), [0x82, 1, 2]);
        assert_eq!(encoded(&|w| _ = w.map(1).int(1).int(2)), [0xa1, 1, 2]);
        assert_eq!(encoded(&|w| _ = w.uint(u64::MAX)), [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(encoded(&|w| _ = w.null()), [0xf6]);
    }
}
