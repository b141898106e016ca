//! virtio-console (one port, no features): what the guest transmits is collected for
//! the host, up to [`RECEIVED_LIMIT`] bytes (the rest is counted and dropped: a guest
//! cannot make the VMM hold more of the host's memory than that), and the host's input
//! waits for the guest's receive buffers.

use std::collections::VecDeque;

use vm_memory::GuestMemory;

use super::{Buffer, Device};

const RECEIVE: usize = 0;

/// The most the console keeps of what the guest sends.
pub const RECEIVED_LIMIT: usize = 64 * 1024;

/// The console.
#[derive(Default)]
pub struct Console {
    input: VecDeque<u8>,
    received: Vec<u8>,
    dropped: u64,
}

impl Console {
    /// A console whose host end sends `input`.
    pub fn new(input: &[u8]) -> Self {
        Self { input: input.iter().copied().collect(), received: Vec::new(), dropped: 0 }
    }
}

impl<M: GuestMemory> Device<M> for Console {
    fn device_id(&self) -> u32 {
        3
    }
    fn features(&self) -> u64 {
        0
    }
    fn queues(&self) -> usize {
        2
    }
    fn read_config(&self, _: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn received(&self) -> Option<&[u8]> {
        Some(&self.received)
    }
    fn dropped(&self) -> u64 {
        self.dropped
    }
    fn takes(&self, queue: usize) -> bool {
        queue != RECEIVE || !self.input.is_empty()
    }
    fn serve(&mut self, queue: usize, chain: &[Buffer], mem: &M) -> u32 {
        let mut written = 0;
        for buffer in chain {
            if queue == RECEIVE && buffer.write {
                let n = self.input.len().min(buffer.len as usize);
                let bytes: Vec<u8> = self.input.drain(..n).collect();
                written += buffer.write(mem, &bytes);
            } else if !buffer.write {
                // Only what fits is read at all: nothing is allocated for the rest.
                let room = RECEIVED_LIMIT - self.received.len();
                let keep = room.min(buffer.len as usize);
                if keep > 0 {
                    if let Some(bytes) = buffer.read_prefix(mem, keep) {
                        self.received.extend_from_slice(&bytes);
                    }
                }
                self.dropped += u64::from(buffer.len) - keep as u64;
            }
        }
        written
    }
}
