//! virtio-console (one port, no features): what the guest transmits is collected for
//! the host, and the host's input waits for the guest's receive buffers.

use std::collections::VecDeque;

use vm_memory::GuestMemoryMmap;

use super::{Buffer, Device};

const RECEIVE: usize = 0;

/// The console.
#[derive(Default)]
pub struct Console {
    input: VecDeque<u8>,
    received: Vec<u8>,
}

impl Console {
    /// A console whose host end sends `input`.
    pub fn new(input: &[u8]) -> Self {
        Self { input: input.iter().copied().collect(), received: Vec::new() }
    }
}

impl Device for Console {
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
    fn takes(&self, queue: usize) -> bool {
        queue != RECEIVE || !self.input.is_empty()
    }
    fn serve(&mut self, queue: usize, chain: &[Buffer], mem: &GuestMemoryMmap) -> u32 {
        let mut written = 0;
        for buffer in chain {
            if queue == RECEIVE && buffer.write {
                let n = self.input.len().min(buffer.len as usize);
                let bytes: Vec<u8> = self.input.drain(..n).collect();
                written += buffer.write(mem, &bytes);
            } else if !buffer.write {
                if let Some(bytes) = buffer.read(mem) {
                    self.received.extend_from_slice(&bytes);
                }
            }
        }
        written
    }
}
