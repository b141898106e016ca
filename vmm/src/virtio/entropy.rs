//! virtio-rng: every writable buffer is filled with random bytes from the host.

use vm_memory::GuestMemory;

use super::{Buffer, Device};

/// The entropy source.
#[derive(Default)]
pub struct Entropy;

impl<M: GuestMemory> Device<M> for Entropy {
    fn device_id(&self) -> u32 {
        4
    }
    fn features(&self) -> u64 {
        0
    }
    fn queues(&self) -> usize {
        1
    }
    fn read_config(&self, _: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn serve(&mut self, _: usize, chain: &[Buffer], mem: &M) -> u32 {
        let mut written = 0;
        for buffer in chain.iter().filter(|b| b.write && b.in_memory(mem)) {
            let mut random = vec![0u8; buffer.len as usize];
            fill_random(&mut random);
            written += buffer.write(mem, &random);
        }
        written
    }
}

/// Random bytes from the kernel's `getrandom`, asked not to wait (GRND_INSECURE): at
/// `/init` time the host's pool may not count as initialised yet. (Made as a raw
/// system call: the static musl wrapper returned success without filling the buffer.)
pub fn fill_random(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: getrandom writes at most `rest.len()` bytes at `rest`.
        let n = unsafe { libc::syscall(libc::SYS_getrandom, rest.as_mut_ptr(), rest.len(), libc::GRND_INSECURE) };
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}
