//! The exits the VMM sees, for `pvmkit bench --backend pkvm` (the VMM's `stats=on`).
//!
//! A protected VM cannot ask the VMM for them: pKVM refuses the SMCCC filter that would
//! forward a call (KVM_SET_DEVICE_ATTR on a protected VM is EINVAL). So the VMM writes
//! them where the bench already looks: at the end of every guest console line that
//! starts with `bench `, it appends its counts so far. The console's own accesses are
//! left out, so that printing the lines does not count.

/// Exits to the VMM so far, the console's left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// Every exit the VMM handled but the console's.
    pub exits: u64,
    /// Of those, accesses to the virtio transports.
    pub virtio: u64,
}

/// What an exit was, as far as the counts go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// An access to the guest's console (not counted).
    Console,
    /// An access to a virtio transport.
    Virtio,
    /// Anything else the VMM handled.
    Other,
}

impl ExitStats {
    /// Counts one exit.
    pub fn count(&mut self, exit: Counted) {
        match exit {
            Counted::Console => {}
            Counted::Virtio => {
                self.exits += 1;
                self.virtio += 1;
            }
            Counted::Other => self.exits += 1,
        }
    }

    /// The suffix for a guest console line, if it is one the bench reads.
    pub fn annotation(&self, line: &[u8]) -> Option<String> {
        line.starts_with(b"bench ").then(|| format!(" vmm_exits={} vmm_virtio={}", self.exits, self.virtio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_all_but_the_console_and_annotates_bench_lines_only() {
        let mut s = ExitStats::default();
        for exit in [Counted::Virtio, Counted::Console, Counted::Other, Counted::Virtio, Counted::Console] {
            s.count(exit);
        }
        assert_eq!(s, ExitStats { exits: 3, virtio: 2 });
        assert_eq!(s.annotation(b"bench op=read size=4096"), Some(" vmm_exits=3 vmm_virtio=2".into()));
        assert_eq!(s.annotation(b"test bench ... ok"), None);
    }
}
