//! The ClusterIP allocator: which virtual IPs of the service CIDR are taken.
//!
//! Every Service of type ClusterIP, NodePort or LoadBalancer gets a virtual
//! IP from the service CIDR (`--service-cluster-ip-range`, 10.96.0.0/12 on
//! the lab). No interface anywhere owns that address: kube-proxy's rules on
//! every node rewrite packets sent to it towards one of the Service's Pods.
//! The only thing that makes a ClusterIP "exist" is that the API server
//! handed it to exactly one Service, and this allocator is that bookkeeping.
//!
//! Two rules come from upstream (`pkg/registry/core/service/ipallocator`):
//!
//! - the network and broadcast addresses of the CIDR are never handed out;
//! - the range is split in two bands (KEP-3070). Random allocations take
//!   from the upper, *dynamic* band first, so that the lower, *static* band
//!   stays free for Services that ask for a fixed address, such as cluster
//!   DNS at 10.96.0.10. Only when the dynamic band is full do random
//!   allocations spill into the static band.
//!
//! The allocator is a set of taken offsets rather than upstream's bitmap:
//! a /12 has a million addresses but a cluster has thousands of Services,
//! so a set stays small and reads simply. The allocator itself is not
//! persisted: [`crate::services`] rebuilds it from the stored Services at
//! start-up, exactly as the objects are the source of truth upstream.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;

use rand::Rng;

/// The service CIDR kube-lite uses unless told otherwise (kubeadm's default).
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// The largest service CIDR accepted: 2^20 addresses, as kube-apiserver
/// refuses anything bigger than a /12 for IPv4.
const MIN_PREFIX_LEN: u8 = 12;

/// Why an allocation (or the allocator itself) failed. The messages are
/// upstream's, because they end up in `422 Invalid` answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The service CIDR flag could not be used.
    #[error("invalid service CIDR {cidr:?}: {reason}")]
    InvalidCidr { cidr: String, reason: String },
    /// A requested IP lies outside the range (or is its network or
    /// broadcast address).
    #[error("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    NotInRange { ip: Ipv4Addr, range: String },
    /// A requested IP belongs to another Service already.
    #[error("provided IP is already allocated")]
    AlreadyAllocated,
    /// Every address of the range is taken.
    #[error("range is full")]
    Full,
}

/// Which offsets of a range are taken, with KEP-3070's static and dynamic
/// bands. The NodePort allocator hands out ports the same way, so both
/// allocators share this (upstream shares `allocator.AllocationBitmap`).
#[derive(Debug, Clone)]
pub(crate) struct BandedOffsets {
    /// How many offsets the range has: `0..size`.
    size: u32,
    /// Offsets below this form the static band.
    static_band: u32,
    taken: HashSet<u32>,
    /// How many of `taken` are in the dynamic band, so a full band is
    /// recognised without scanning it.
    taken_dynamic: u32,
}

impl BandedOffsets {
    pub(crate) fn new(size: u32, static_band: u32) -> Self {
        Self {
            size,
            static_band: static_band.min(size),
            taken: HashSet::new(),
            taken_dynamic: 0,
        }
    }

    /// Takes a random free offset, from the dynamic band when it has room.
    pub(crate) fn take_random(&mut self) -> Option<u32> {
        let offset = self
            .free_in(self.static_band..self.size)
            .or_else(|| self.free_in(0..self.static_band))?;
        self.take(offset);
        Some(offset)
    }

    /// Marks `offset` taken; false when it already was.
    pub(crate) fn take(&mut self, offset: u32) -> bool {
        debug_assert!(offset < self.size);
        let inserted = self.taken.insert(offset);
        if inserted && offset >= self.static_band {
            self.taken_dynamic += 1;
        }
        inserted
    }

    /// Frees `offset`; false when it was not taken.
    pub(crate) fn free(&mut self, offset: u32) -> bool {
        let removed = self.taken.remove(&offset);
        if removed && offset >= self.static_band {
            self.taken_dynamic -= 1;
        }
        removed
    }

    pub(crate) fn is_taken(&self, offset: u32) -> bool {
        self.taken.contains(&offset)
    }

    pub(crate) fn taken_count(&self) -> usize {
        self.taken.len()
    }

    pub(crate) fn clear(&mut self) {
        self.taken.clear();
        self.taken_dynamic = 0;
    }

    /// A free offset in `band`, found by starting at a random point and
    /// walking forward (wrapping), as upstream's random-scan strategy does.
    fn free_in(&self, band: Range<u32>) -> Option<u32> {
        let band_len = band.end.saturating_sub(band.start);
        let taken_in_band = if band.start >= self.static_band {
            self.taken_dynamic
        } else {
            self.taken.len() as u32 - self.taken_dynamic
        };
        if band_len == 0 || taken_in_band >= band_len {
            return None;
        }
        let start = rand::rng().random_range(band.clone());
        (start..band.end)
            .chain(band.start..start)
            .find(|offset| !self.taken.contains(offset))
    }
}

/// The size of the static band for a range of `size` values:
/// `min(max(min, size / step), max)`, and no band at all for ranges of
/// `min` values or fewer (KEP-3070 for IPs, KEP-3668 for NodePorts).
pub(crate) fn static_band_size(size: u32, min: u32, max: u32, step: u32) -> u32 {
    if size <= min {
        0
    } else {
        (size / step).clamp(min, max)
    }
}

/// Hands out ClusterIPs from one IPv4 service CIDR.
#[derive(Debug, Clone)]
pub struct ClusterIpAllocator {
    /// The network address, masked (10.96.0.0 for 10.96.0.0/12).
    network: u32,
    prefix_len: u8,
    /// Offset `n` is address `network + 1 + n`: the network address itself
    /// is never in the range, and neither is the broadcast address, which
    /// is one past the last offset.
    offsets: BandedOffsets,
}

impl ClusterIpAllocator {
    /// An allocator over `cidr` (`10.96.0.0/12`). Host bits are ignored, as
    /// upstream's CIDR parsing does: `10.96.0.1/12` means `10.96.0.0/12`.
    pub fn new(cidr: &str) -> Result<Self, AllocError> {
        let invalid = |reason: &str| AllocError::InvalidCidr {
            cidr: cidr.to_string(),
            reason: reason.to_string(),
        };
        let net = api::cidr::parse_ipv4(cidr).map_err(|e| invalid(&e.to_string()))?;
        let prefix_len = net.prefix_len();
        if prefix_len < MIN_PREFIX_LEN {
            return Err(invalid(
                "the range is too large; for 32-bit addresses, the mask must be >= 12",
            ));
        }
        if prefix_len > 30 {
            return Err(invalid(
                "the range is too small; it needs at least two usable addresses (a /30)",
            ));
        }
        let host_bits = 32 - u32::from(prefix_len);
        let network = u32::from(net.network());
        // Every address but the network and broadcast ones.
        let usable = (1u32 << host_bits) - 2;
        Ok(Self {
            network,
            prefix_len,
            offsets: BandedOffsets::new(usable, static_band_size(usable + 2, 16, 256, 16)),
        })
    }

    /// Takes a random free IP, from the dynamic band first.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, AllocError> {
        let offset = self.offsets.take_random().ok_or(AllocError::Full)?;
        Ok(self.ip_at(offset))
    }

    /// Takes the IP a Service asked for in `spec.clusterIP`.
    pub fn allocate_specific(&mut self, ip: Ipv4Addr) -> Result<(), AllocError> {
        let offset = self.offset_of(ip).ok_or_else(|| AllocError::NotInRange {
            ip,
            range: self.range_string(),
        })?;
        if self.offsets.take(offset) {
            Ok(())
        } else {
            Err(AllocError::AlreadyAllocated)
        }
    }

    /// Gives `ip` back. Releasing an IP that is free or out of range does
    /// nothing, so a release can safely be repeated.
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(offset) = self.offset_of(ip) {
            self.offsets.free(offset);
        }
    }

    /// True when `ip` could be allocated here: inside the CIDR and neither
    /// its network nor its broadcast address.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.offset_of(ip).is_some()
    }

    pub fn is_allocated(&self, ip: Ipv4Addr) -> bool {
        self.offset_of(ip)
            .is_some_and(|offset| self.offsets.is_taken(offset))
    }

    /// How many IPs are taken.
    pub fn allocated_count(&self) -> usize {
        self.offsets.taken_count()
    }

    /// How many IPs the range has in all.
    pub fn capacity(&self) -> usize {
        self.offsets.size as usize
    }

    /// Frees every IP (used before rebuilding from storage).
    pub fn clear(&mut self) {
        self.offsets.clear();
    }

    /// The range as the flag spells it, `10.96.0.0/12`.
    pub fn range_string(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.network), self.prefix_len)
    }

    fn ip_at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1 + offset)
    }

    fn offset_of(&self, ip: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(ip).checked_sub(self.network + 1)?;
        (offset < self.offsets.size).then_some(offset)
    }
}

impl fmt::Display for ClusterIpAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.range_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_slash_29_hands_out_its_six_usable_addresses_then_is_full() {
        let mut alloc = ClusterIpAllocator::new("192.168.1.0/29").unwrap();
        assert_eq!(alloc.capacity(), 6);
        let mut got: Vec<Ipv4Addr> = (0..6).map(|_| alloc.allocate().unwrap()).collect();
        got.sort();
        let expected: Vec<Ipv4Addr> = (1..=6).map(|i| Ipv4Addr::new(192, 168, 1, i)).collect();
        // Never .0 (network) nor .7 (broadcast), never the same one twice.
        assert_eq!(got, expected);
        assert_eq!(alloc.allocate(), Err(AllocError::Full));
        assert_eq!(alloc.allocate().unwrap_err().to_string(), "range is full");
    }

    #[test]
    fn a_released_ip_is_handed_out_again() {
        let mut alloc = ClusterIpAllocator::new("192.168.1.0/29").unwrap();
        for _ in 0..6 {
            alloc.allocate().unwrap();
        }
        alloc.release(ip("192.168.1.4"));
        assert!(!alloc.is_allocated(ip("192.168.1.4")));
        assert_eq!(alloc.allocate(), Ok(ip("192.168.1.4")));
        assert!(alloc.is_allocated(ip("192.168.1.4")));
        // Releasing twice, or releasing what is outside the range, is harmless.
        alloc.release(ip("192.168.1.4"));
        alloc.release(ip("192.168.1.4"));
        alloc.release(ip("10.0.0.1"));
        assert_eq!(alloc.allocated_count(), 5);
    }

    #[test]
    fn specific_requests_are_checked_against_the_range_and_the_taken_set() {
        let mut alloc = ClusterIpAllocator::new(DEFAULT_SERVICE_CIDR).unwrap();
        assert_eq!(alloc.allocate_specific(ip("10.96.0.10")), Ok(()));
        assert_eq!(
            alloc.allocate_specific(ip("10.96.0.10")),
            Err(AllocError::AlreadyAllocated)
        );
        let err = alloc.allocate_specific(ip("10.0.0.1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        );
        // The network and broadcast addresses are outside the usable range.
        assert!(matches!(
            alloc.allocate_specific(ip("10.96.0.0")),
            Err(AllocError::NotInRange { .. })
        ));
        assert!(matches!(
            alloc.allocate_specific(ip("10.111.255.255")),
            Err(AllocError::NotInRange { .. })
        ));
        assert!(alloc.contains(ip("10.111.255.254")));
        assert!(!alloc.contains(ip("10.112.0.1")));
    }

    #[test]
    fn random_allocations_prefer_the_dynamic_band() {
        // A /24 has 256 addresses: a static band of max(16, 256/16) = 16,
        // so .1-.16 are kept for specific requests while others are free.
        let mut alloc = ClusterIpAllocator::new("10.0.0.0/24").unwrap();
        let dynamic = 254 - 16;
        for _ in 0..dynamic {
            let got = alloc.allocate().unwrap();
            assert!(got.octets()[3] > 16, "{got} came from the static band");
        }
        // Once the dynamic band is full, the static band is used.
        let got = alloc.allocate().unwrap();
        assert!(got.octets()[3] <= 16, "{got}");
    }

    #[test]
    fn the_static_band_follows_kep_3070() {
        assert_eq!(static_band_size(8, 16, 256, 16), 0);
        assert_eq!(static_band_size(16, 16, 256, 16), 0);
        assert_eq!(static_band_size(64, 16, 256, 16), 16);
        assert_eq!(static_band_size(1 << 20, 16, 256, 16), 256);
    }

    #[test]
    fn the_cidr_is_parsed_and_masked() {
        let alloc = ClusterIpAllocator::new("10.96.0.1/12").unwrap();
        assert_eq!(alloc.range_string(), "10.96.0.0/12");
        assert_eq!(alloc.to_string(), "10.96.0.0/12");
        assert_eq!(alloc.capacity(), (1 << 20) - 2);
        for bad in [
            "10.96.0.0",
            "10.96.0.0/33",
            "fd00::/108",
            "10.0.0.0/8",
            "10.0.0.0/31",
        ] {
            assert!(
                matches!(
                    ClusterIpAllocator::new(bad),
                    Err(AllocError::InvalidCidr { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn tens_of_thousands_of_services_fit_and_stay_distinct() {
        let mut alloc = ClusterIpAllocator::new(DEFAULT_SERVICE_CIDR).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..50_000 {
            let got = alloc.allocate().unwrap();
            assert!(alloc.contains(got));
            assert!(seen.insert(got), "{got} handed out twice");
        }
        assert_eq!(alloc.allocated_count(), 50_000);
    }
}
