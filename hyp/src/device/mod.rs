//! The device side: the device windows a VM is given ([`devices`]) and the virtio
//! transports hyp stands in front of, with their checked shared-memory accessor and
//! shadow rings ([`virtio`]).

pub mod devices;
pub mod virtio;
