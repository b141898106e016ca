//! Counters a guest can read to see what sharing costs: every hypercall made through
//! guest-lib's conduit, the pages currently shared with the host, and the bytes copied
//! through bounce buffers.
//!
//! ```
//! let before = guest_lib::stats::snapshot();
//! // ... share pages, run devices ...
//! let after = guest_lib::stats::snapshot();
//! assert!(after.hypercalls >= before.hypercalls);
//! ```

use core::sync::atomic::{AtomicU64, Ordering};

static HYPERCALLS: AtomicU64 = AtomicU64::new(0);
static PAGES_SHARED: AtomicU64 = AtomicU64::new(0);
static BYTES_BOUNCED: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// SMCCC calls made through guest-lib since boot.
    pub hypercalls: u64,
    /// Granules shared with the host right now (by guest-lib's sharing API).
    pub pages_shared: u64,
    /// Bytes copied into or out of bounce buffers.
    pub bytes_bounced: u64,
}

/// The counters now.
pub fn snapshot() -> Stats {
    Stats {
        hypercalls: HYPERCALLS.load(Ordering::Relaxed),
        pages_shared: PAGES_SHARED.load(Ordering::Relaxed),
        bytes_bounced: BYTES_BOUNCED.load(Ordering::Relaxed),
    }
}

#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
pub(crate) fn count_hypercall() {
    HYPERCALLS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn pages_shared_add(pages: u64) {
    PAGES_SHARED.fetch_add(pages, Ordering::Relaxed);
}

pub(crate) fn pages_shared_sub(pages: u64) {
    PAGES_SHARED.fetch_sub(pages, Ordering::Relaxed);
}

pub(crate) fn bytes_bounced_add(bytes: u64) {
    BYTES_BOUNCED.fetch_add(bytes, Ordering::Relaxed);
}
