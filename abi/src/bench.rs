//! What `pvmkit bench`'s guests write to the disk and read back: every 512-byte block
//! starts with a stamp of its own, so that a device that returns nothing, or another
//! block's data, fails the bench (test-guest's and the Linux guest's alike).
//!
//! ```
//! use pvmkit_abi::bench::{block_stamp, BLOCK};
//!
//! assert_ne!(block_stamp(0, 4096), block_stamp(1, 4096));
//! assert_ne!(block_stamp(8, 4096), block_stamp(8, 65536), "each phase its own");
//! assert_eq!(BLOCK, 512);
//! ```

/// The unit stamped: a virtio-blk sector.
pub const BLOCK: usize = 512;

/// The stamp (the block's first 8 bytes, little-endian) of the block at `sector` in the
/// phase of `request_size`-byte requests.
pub const fn block_stamp(sector: u64, request_size: u64) -> u64 {
    0x5eed_b10c_0000_0000 ^ (request_size << 24) ^ sector
}

/// Stamps each block of `buf`, which holds the blocks from `sector` on.
pub fn stamp_blocks(buf: &mut [u8], sector: u64, request_size: u64) {
    for (k, block) in buf.chunks_mut(BLOCK).enumerate() {
        let stamp = block_stamp(sector + k as u64, request_size).to_le_bytes();
        let n = block.len().min(8);
        block[..n].copy_from_slice(&stamp[..n]);
    }
}

/// Clears the stamps of `buf`'s blocks, so that a read that delivers nothing fails.
pub fn clear_stamps(buf: &mut [u8]) {
    for block in buf.chunks_mut(BLOCK) {
        let n = block.len().min(8);
        block[..n].fill(0);
    }
}

/// The first block of `buf` (from `sector` on) whose stamp is wrong: its sector, the
/// stamp found and the one expected.
pub fn wrong_stamp(buf: &[u8], sector: u64, request_size: u64) -> Option<(u64, u64, u64)> {
    buf.chunks(BLOCK).enumerate().find_map(|(k, block)| {
        let mut found = [0u8; 8];
        let n = block.len().min(8);
        found[..n].copy_from_slice(&block[..n]);
        let (at, found) = (sector + k as u64, u64::from_le_bytes(found));
        let expected = block_stamp(at, request_size);
        (found != expected).then_some((at, found, expected))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_buffer_checks_and_a_cleared_or_shifted_one_does_not() {
        let mut buf = [0u8; 4 * BLOCK];
        stamp_blocks(&mut buf, 16, 2048);
        assert_eq!(wrong_stamp(&buf, 16, 2048), None);
        assert_eq!(wrong_stamp(&buf, 17, 2048).map(|w| w.0), Some(17), "another block's data");
        assert_eq!(wrong_stamp(&buf, 16, 4096).map(|w| w.0), Some(16), "another phase's data");
        clear_stamps(&mut buf);
        assert_eq!(wrong_stamp(&buf, 16, 2048), Some((16, 0, block_stamp(16, 2048))), "nothing delivered");
    }
}
