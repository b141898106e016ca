//! The PL011 console the VM sees: transmit only, always ready. Reads of the identity
//! registers answer as QEMU's PL011 does, so a guest cannot tell the two apart.

/// The data register.
const DR: u64 = 0x000;
/// The flag register.
const FR: u64 = 0x018;
/// FR: transmit FIFO empty, receive FIFO empty.
const FR_IDLE: u32 = (1 << 7) | (1 << 4);
/// Peripheral and PrimeCell identification, 0xfe0..0xffc.
const ID: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
/// The registers a driver writes and may read back (control, baud, line, interrupts).
const PLAIN: [u64; 7] = [0x024, 0x028, 0x02c, 0x030, 0x034, 0x038, 0x048];

/// The console's register state.
#[derive(Clone, Debug, Default)]
pub struct Pl011 {
    plain: [u32; PLAIN.len()],
}

impl Pl011 {
    /// A guest read at `offset`.
    pub fn read(&self, offset: u64) -> u32 {
        match offset {
            FR => FR_IDLE,
            0xfe0..=0xffc if offset.is_multiple_of(4) => ID[((offset - 0xfe0) / 4) as usize],
            _ => PLAIN.iter().position(|&r| r == offset).map_or(0, |i| self.plain[i]),
        }
    }

    /// A guest write at `offset`; returns the byte to print for a write to the data
    /// register.
    pub fn write(&mut self, offset: u64, value: u32) -> Option<u8> {
        if offset == DR {
            return Some(value as u8);
        }
        if let Some(i) = PLAIN.iter().position(|&r| r == offset) {
            self.plain[i] = value;
        }
        None
    }
}

/// A guest's console line as the host's terminal gets it: control bytes (NUL, ESC of
/// an escape sequence, DEL, …) shown escaped (`\x1b`), never acted on; tabs and every
/// other byte as they are.
pub fn shown(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    for &byte in line {
        if (byte < 0x20 && byte != b'\t') || byte == 0x7f {
            out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
        } else {
            out.push(byte);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_shown_escaped() {
        assert_eq!(shown(b"\x1b[31mred\x00\tok\x7f"), b"\\x1b[31mred\\x00\tok\\x7f".to_vec());
        assert_eq!(shown("plain é".as_bytes()), "plain é".as_bytes());
    }

    #[test]
    fn transmits_and_answers_like_qemus() {
        let mut uart = Pl011::default();
        assert_eq!(uart.write(DR, u32::from(b'x') | 0x100), Some(b'x'));
        assert_eq!(uart.read(FR), FR_IDLE);
        assert_eq!(uart.read(0xfe0), 0x11);
        assert_eq!(uart.read(0xffc), 0xb1);
        assert_eq!(uart.write(0x030, 0x301), None);
        assert_eq!(uart.read(0x030), 0x301);
        assert_eq!(uart.read(0x100), 0);
    }
}
