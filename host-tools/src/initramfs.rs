//! Initramfs archives: cpio in the "newc" format (what the Linux kernel unpacks),
//! uncompressed. The pKVM host's holds `/init` (pvmkit's VMM), `/dev/console` (or init
//! has no console) and the files the VMM reads; the Linux guest's holds its `/init`, the
//! console and the mount points.

/// An archive being written.
#[derive(Clone, Debug, Default)]
pub struct Cpio {
    out: Vec<u8>,
    inode: u32,
}

/// File-type bits of `mode`.
const DIR: u32 = 0o040000;
const CHAR_DEVICE: u32 = 0o020000;
const REGULAR: u32 = 0o100000;

impl Cpio {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.inode += 1;
        let fields = [self.inode, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, DIR | 0o755, (0, 0), &[]);
        self
    }

    /// A character device node.
    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        self.entry(name, CHAR_DEVICE | 0o600, (major, minor), &[]);
        self
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(name, REGULAR | (perm & 0o7777), (0, 0), data);
        self
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// The initramfs of a pkvm-backend run: the VMM as `/init`, and `files` (name, bytes)
/// under `/pvmkit`.
pub fn for_vmm(vmm: &[u8], files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut cpio = Cpio::new();
    cpio.dir("dev").char_device("dev/console", 5, 1).dir("pvmkit").dir("pvmkit/modules").file("init", 0o755, vmm);
    for (name, data) in files {
        cpio.file(&format!("pvmkit/{name}"), 0o644, data);
    }
    cpio.finish()
}

/// The Linux guest's ramdisk: `/dev/console`, the mount points `/proc` and `/sys`,
/// and `init` as `/init`.
pub fn for_linux_guest(init: &[u8]) -> Vec<u8> {
    let mut cpio = Cpio::new();
    cpio.dir("dev").char_device("dev/console", 5, 1).dir("proc").dir("sys").file("init", 0o755, init);
    cpio.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads an archive back: (name, mode, rdev major, rdev minor, data) per entry.
    fn read(mut b: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(&b[..6], b"070701", "entry at {at}");
            let field =
                |i: usize| u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap();
            let (mode, size, major, minor, namesize) =
                (field(1), field(6) as usize, field(9), field(10), field(11) as usize);
            let name = std::str::from_utf8(&b[110..110 + namesize - 1]).unwrap().to_string();
            assert_eq!(b[110 + namesize - 1], 0);
            let data_at = (110 + namesize).next_multiple_of(4);
            let data = b[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(4);
            at += next;
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty());
                return entries;
            }
            entries.push((name, mode, major, minor, data));
        }
    }

    #[test]
    fn writes_what_the_kernel_unpacks() {
        let archive = for_vmm(b"\x7fELF vmm", &[("bundle.bin", b"bundle"), ("args", b"mode=protected")]);
        assert_eq!(archive.len() % 4, 0);
        let entries = read(&archive);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["dev", "dev/console", "pvmkit", "pvmkit/modules", "init", "pvmkit/bundle.bin", "pvmkit/args"]
        );
        assert_eq!((entries[1].1, entries[1].2, entries[1].3), (0o020600, 5, 1), "/dev/console is 5:1");
        assert_eq!((entries[4].1, entries[4].4.as_slice()), (0o100755, &b"\x7fELF vmm"[..]));
        assert_eq!(entries[6].4, b"mode=protected");
    }

    #[test]
    fn the_linux_guests_ramdisk_has_a_console_mount_points_and_init() {
        let entries = read(&for_linux_guest(b"\x7fELF init"));
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "proc", "sys", "init"]);
        assert_eq!((entries[1].1, entries[1].2, entries[1].3), (0o020600, 5, 1));
        assert_eq!((entries[4].1, entries[4].4.as_slice()), (0o100755, &b"\x7fELF init"[..]));
    }
}
