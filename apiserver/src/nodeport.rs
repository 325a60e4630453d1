//! The NodePort allocator: which ports of the NodePort range are taken.
//!
//! A Service of type NodePort (or LoadBalancer) is also reachable on every
//! node's own IP at a port from `--service-node-port-range`, 30000-32767 by
//! default. kube-proxy on each node answers that port, whichever node the
//! Pods run on, so the port must be unique in the whole cluster: this
//! allocator makes sure no two Services share one.
//!
//! It follows upstream's `pkg/registry/core/service/portallocator`: random
//! ports come from the upper band of the range first, leaving the lower
//! band (KEP-3668) for Services that ask for a fixed `nodePort`.
//! Like the ClusterIP allocator it is rebuilt from the stored Services at
//! start-up (see [`crate::services`]).

use std::fmt;

use crate::clusterip::{static_band_size, BandedOffsets};

/// The range kube-lite uses unless told otherwise (Kubernetes' default).
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

/// Why an allocation (or the allocator itself) failed. The messages are
/// upstream's, because they end up in `422 Invalid` answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The port range flag could not be used.
    #[error("invalid port range {range:?}: {reason}")]
    InvalidRange { range: String, reason: String },
    /// A requested port lies outside the range.
    #[error("provided port is not in the valid range. The range of valid ports is {range}")]
    NotInRange { port: u16, range: PortRange },
    /// A requested port belongs to another Service already.
    #[error("provided port is already allocated")]
    AlreadyAllocated,
    /// Every port of the range is taken.
    #[error("range is full")]
    Full,
}

/// A contiguous range of ports, `base` to `base + size - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub base: u16,
    /// How many ports the range holds (at least one).
    pub size: u16,
}

impl PortRange {
    pub fn last(&self) -> u16 {
        self.base + (self.size - 1)
    }

    pub fn contains(&self, port: u16) -> bool {
        port >= self.base && port <= self.last()
    }
}

impl fmt::Display for PortRange {
    /// `30000-32767`, as upstream prints a range in its messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.base, self.last())
    }
}

/// Parses a port range the way kube-apiserver's flag does: `30000-32767`,
/// `30000+2767` (a base and how many more ports) or a single port `30000`.
pub fn parse_range(range: &str) -> Result<PortRange, AllocError> {
    let invalid = |reason: &str| AllocError::InvalidRange {
        range: range.to_string(),
        reason: reason.to_string(),
    };
    let port = |s: &str| -> Result<u16, AllocError> {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid("ports must be numbers from 1 to 65535"))
    };
    let (low, high) = if let Some((low, high)) = range.split_once('-') {
        (port(low)?, port(high)?)
    } else if let Some((low, extra)) = range.split_once('+') {
        let low = port(low)?;
        let extra: u16 = extra
            .trim()
            .parse()
            .map_err(|_| invalid("the part after '+' must be a number of ports"))?;
        let high = low
            .checked_add(extra)
            .ok_or_else(|| invalid("the range goes past port 65535"))?;
        (low, high)
    } else {
        let single = port(range)?;
        (single, single)
    };
    if high < low {
        return Err(invalid("the end of the range is below its start"));
    }
    Ok(PortRange {
        base: low,
        size: high - low + 1,
    })
}

/// Hands out NodePorts from one port range.
#[derive(Debug, Clone)]
pub struct NodePortAllocator {
    range: PortRange,
    /// Offset `n` is port `range.base + n`.
    offsets: BandedOffsets,
}

impl NodePortAllocator {
    /// An allocator over a range such as `30000-32767`.
    pub fn new(range: &str) -> Result<Self, AllocError> {
        Ok(Self::with_range(parse_range(range)?))
    }

    pub fn with_range(range: PortRange) -> Self {
        let size = u32::from(range.size);
        Self {
            range,
            // KEP-3668: min(max(16, size/32), 128) ports kept for requests.
            offsets: BandedOffsets::new(size, static_band_size(size, 16, 128, 32)),
        }
    }

    /// Takes a random free port, from the dynamic band first.
    pub fn allocate(&mut self) -> Result<u16, AllocError> {
        let offset = self.offsets.take_random().ok_or(AllocError::Full)?;
        Ok(self.range.base + offset as u16)
    }

    /// Takes the port a Service asked for in `spec.ports[].nodePort`.
    pub fn allocate_specific(&mut self, port: u16) -> Result<(), AllocError> {
        if !self.range.contains(port) {
            return Err(AllocError::NotInRange {
                port,
                range: self.range,
            });
        }
        if self.offsets.take(u32::from(port - self.range.base)) {
            Ok(())
        } else {
            Err(AllocError::AlreadyAllocated)
        }
    }

    /// Gives `port` back; releasing a free or out-of-range port does nothing.
    pub fn release(&mut self, port: u16) {
        if self.range.contains(port) {
            self.offsets.free(u32::from(port - self.range.base));
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.range.contains(port)
    }

    pub fn is_allocated(&self, port: u16) -> bool {
        self.range.contains(port) && self.offsets.is_taken(u32::from(port - self.range.base))
    }

    /// How many ports are taken.
    pub fn allocated_count(&self) -> usize {
        self.offsets.taken_count()
    }

    /// Frees every port (used before rebuilding from storage).
    pub fn clear(&mut self) {
        self.offsets.clear();
    }

    pub fn range(&self) -> PortRange {
        self.range
    }

    /// The range as the flag spells it, `30000-32767`.
    pub fn range_string(&self) -> String {
        self.range.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_five_port_range_is_exhausted_then_reused_after_release() {
        let mut alloc = NodePortAllocator::new("30000-30004").unwrap();
        let mut got: Vec<u16> = (0..5).map(|_| alloc.allocate().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![30000, 30001, 30002, 30003, 30004]);
        assert_eq!(alloc.allocate(), Err(AllocError::Full));
        alloc.release(30002);
        assert!(!alloc.is_allocated(30002));
        assert_eq!(alloc.allocate(), Ok(30002));
        assert_eq!(alloc.allocated_count(), 5);
    }

    #[test]
    fn specific_ports_are_checked_with_upstream_messages() {
        let mut alloc = NodePortAllocator::new(DEFAULT_NODE_PORT_RANGE).unwrap();
        assert_eq!(alloc.allocate_specific(30080), Ok(()));
        let taken = alloc.allocate_specific(30080).unwrap_err();
        assert_eq!(taken.to_string(), "provided port is already allocated");
        let outside = alloc.allocate_specific(40000).unwrap_err();
        assert_eq!(
            outside.to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        assert!(alloc.is_allocated(30080));
        alloc.release(30080);
        alloc.release(30080);
        alloc.release(80);
        assert_eq!(alloc.allocated_count(), 0);
    }

    #[test]
    fn random_ports_prefer_the_dynamic_band() {
        // 2768 ports: a static band of 2768/32 = 86 ports, 30000-30085.
        let mut alloc = NodePortAllocator::new(DEFAULT_NODE_PORT_RANGE).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..(2768 - 86) {
            let port = alloc.allocate().unwrap();
            assert!(port >= 30086, "{port} came from the static band");
            assert!(seen.insert(port));
        }
        let spill = alloc.allocate().unwrap();
        assert!(spill < 30086);
    }

    #[test]
    fn ranges_parse_like_the_kube_apiserver_flag() {
        assert_eq!(
            parse_range("30000-32767"),
            Ok(PortRange {
                base: 30000,
                size: 2768
            })
        );
        assert_eq!(parse_range("30000+4").unwrap().to_string(), "30000-30004");
        assert_eq!(parse_range("31000").unwrap().size, 1);
        for bad in ["", "a-b", "32767-30000", "0-10", "65535+1", "30000-70000"] {
            assert!(
                matches!(parse_range(bad), Err(AllocError::InvalidRange { .. })),
                "{bad}"
            );
        }
    }
}
