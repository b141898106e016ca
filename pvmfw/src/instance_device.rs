//! Instance storage on the real device: find the instance disk among the host's virtio
//! transports (a block device whose first sector is an instance disk's header), read
//! pvmfw's record, judge the boot ([`pvmfw::instance`]), write the record back, and
//! leave nothing behind: the bounce pool unshared and wiped, the transport reset and
//! unregistered from the MMIO guard. pvmfw's DMA goes through guest-lib's bouncing
//! virtio HAL, so hyp's validator watches it as it watches any guest's.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use pvmkit_abi::address::Ipa;

use guest_lib::bounce_pool::BouncePool;
use guest_lib::virtio::{set_dma, DmaSetup, PvmHal};
use guest_lib::{mmio_guard, BootInfo};
use pvmfw::host_dt::HostConfig;
use pvmfw::instance::{self, Keys, Record, Verdict};
use pvmfw::refusal::Refused;
use pvmkit_abi::instance_disk::{read_header, DISK_ID_SIZE, HEADER_SECTOR, RECORD_SECTOR, SECTOR_SIZE};
use pvmkit_abi::memory_map::Region;
use pvmkit_abi::pvmfw::Refusal;
use pvmkit_abi::smccc::{Conduit, TRNG_RND64, TRNG_VERSION};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

type Disk = VirtIOBlk<PvmHal, MmioTransport<'static>>;

fn refused(detail: impl core::fmt::Display) -> Refused {
    Refused::new(Refusal::Instance, detail)
}

/// What instance storage decided.
pub struct Outcome {
    /// The instance's record (its salt is the DICE salt unless an instance hash wins),
    /// when the payload's rollback protection is instance storage.
    pub verdict: Option<Verdict>,
    /// The instance disk's transport, which the payload's DT leaves out (the payload
    /// never gets the disk pvmfw keeps its records on).
    pub transport: Option<Region>,
}

/// Finds the instance disk and, when `storage` is given (the payload's rollback
/// protection is instance storage), judges the boot of the payload it measures against
/// the record and writes the record. Without `storage` a missing disk is no error.
pub fn run(
    boot: &BootInfo,
    host: &HostConfig<'_>,
    cdi_seal: &[u8; 32],
    storage: Option<impl FnOnce(&Keys) -> Record>,
) -> Result<Outcome, Refused> {
    if storage.is_none() && host.virtio.is_empty() {
        return Ok(Outcome { verdict: None, transport: None });
    }
    set_up_dma(boot, host)?;
    let needed = storage.is_some();
    let result = with_disk(host, |disk, disk_id, transport| {
        let Some(measured) = storage else { return Ok(Outcome { verdict: None, transport: Some(transport) }) };
        let keys = Keys::derive(cdi_seal, disk_id);
        let mut sector = [0u8; SECTOR_SIZE];
        disk.read_blocks(RECORD_SECTOR as usize, &mut sector)
            .map_err(|e| refused(format_args!("reading the instance record: {e}")))?;
        let recorded = instance::open(&sector, &keys, disk_id)?;
        let verdict = instance::judge(recorded, measured(&keys))?;
        if let Some(record) = verdict.to_write() {
            let sealed = instance::seal(record, &keys, disk_id);
            disk.write_blocks(RECORD_SECTOR as usize, &sealed)
                .and_then(|()| disk.flush())
                .map_err(|e| refused(format_args!("writing the instance record: {e}")))?;
        }
        Ok(Outcome { verdict: Some(verdict), transport: Some(transport) })
    });
    tear_down_dma(boot, host);
    match result {
        Ok(None) if needed => Err(refused("no instance disk among the VM's virtio devices (pvmkit run attaches one)")),
        Ok(None) => Ok(Outcome { verdict: None, transport: None }),
        Ok(Some(outcome)) => Ok(outcome),
        Err(e) => Err(e),
    }
}

/// 32 bytes from the hypervisor's TRNG (SMCCC TRNG 1.0 `TRNG_RND64`), if it offers one.
pub fn trng(conduit: &impl Conduit) -> Option<[u8; 32]> {
    let version = conduit.call(TRNG_VERSION, [0; 3])[0] as i64;
    if version < 0x1_0000 {
        return None;
    }
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(16) {
        // 128 bits per call: x2 and x3 hold them (x1's bits are not asked for).
        let r = conduit.call(TRNG_RND64, [128, 0, 0]);
        if r[0] != 0 {
            return None;
        }
        chunk[..8].copy_from_slice(&r[2].to_le_bytes());
        chunk[8..].copy_from_slice(&r[3].to_le_bytes());
    }
    Some(out)
}

/// Gives guest-lib's HAL the host's bounce pool (checked by [`pvmfw::host_dt`]) and
/// the transports, sharing the pool in a protected VM.
fn set_up_dma(boot: &BootInfo, host: &HostConfig<'_>) -> Result<(), Refused> {
    let pool = if boot.hypervisor.is_protected() {
        let region = host.bounce_pool.ok_or_else(|| refused("no bounce pool to reach the instance disk through"))?;
        let sharer = boot.sharer().map_err(|e| refused(format_args!("sharing the bounce pool: {e}")))?;
        // SAFETY: host_dt checked the pool lies in RAM clear of the DT area, the kernel
        // and the ramdisk; nothing else of pvmfw's uses it.
        let pool = unsafe { BouncePool::from_region(&sharer, region.start, region.size() as usize) }
            .map_err(|e| refused(format_args!("the bounce pool: {e}")))?;
        Some(&*Box::leak(Box::new(pool)))
    } else {
        None
    };
    let device_ranges: Vec<(u64, u64)> = host.virtio.iter().map(|r| (r.start, r.size())).collect();
    set_dma(DmaSetup { pool, device_ranges }).map_err(|_| refused("the virtio HAL was set up twice"))
}

/// Unshares and wipes the pool: the payload starts with it private, as the host gave it.
fn tear_down_dma(boot: &BootInfo, host: &HostConfig<'_>) {
    let Some(region) = host.bounce_pool else { return };
    if boot.hypervisor.is_protected() {
        if let Ok(sharer) = boot.sharer() {
            let _ = sharer.unshare(Ipa(region.start), region.size());
        }
    }
    // SAFETY: the pool's memory, which no driver uses any more.
    unsafe { core::ptr::write_bytes(region.start as *mut u8, 0, region.size() as usize) };
}

/// Calls `f` with the instance disk: the first block device whose sector 0 is an
/// instance disk's header (`None`: there is none). Every transport probed is reset and
/// unregistered after.
fn with_disk<T>(
    host: &HostConfig<'_>,
    f: impl FnOnce(&mut Disk, &[u8; DISK_ID_SIZE], Region) -> Result<T, Refused>,
) -> Result<Option<T>, Refused> {
    let mut f = Some(f);
    for &transport in &host.virtio {
        if mmio_guard().map(Ipa(transport.start), transport.size()).is_err() {
            continue;
        }
        let found = probe(transport);
        let result = match (found, f.take()) {
            (Some((mut disk, disk_id)), Some(f)) => Some(f(&mut disk, &disk_id, transport)),
            (_, unused) => {
                f = unused;
                None
            }
        };
        let _ = mmio_guard().unmap(Ipa(transport.start), transport.size());
        if let Some(result) = result {
            return result.map(Some);
        }
    }
    Ok(None)
}

/// The block device at `transport` and its disk id, if it is an instance disk.
fn probe(transport: Region) -> Option<(Disk, [u8; DISK_ID_SIZE])> {
    let header = NonNull::new(transport.start as *mut VirtIOHeader)?;
    // SAFETY: a transport the host DT names and host_dt checked against the platform,
    // registered with the MMIO guard; pvmfw builds one driver on it at a time.
    let mmio = unsafe { MmioTransport::new(header, transport.size() as usize) }.ok()?;
    if mmio.device_type() != DeviceType::Block {
        return None;
    }
    let mut disk = VirtIOBlk::<PvmHal, _>::new(mmio).ok()?;
    let mut sector = [0u8; SECTOR_SIZE];
    disk.read_blocks(HEADER_SECTOR as usize, &mut sector).ok()?;
    let id = read_header(&sector).ok()?;
    Some((disk, id))
}
