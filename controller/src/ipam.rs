//! Node IPAM: each node gets its own slice of the Pod network.
//!
//! Pod IPs must be unique across the cluster, yet each node hands them out
//! on its own, without asking anyone. The trick is to split the cluster's
//! Pod range (`--cluster-cidr`, 10.244.0.0/16) into one block per node
//! (`--node-cidr-mask-size`, a /24) and write each node's block into its
//! `spec.podCIDR` (and `spec.podCIDRs`). The node's network plugin then
//! numbers its Pods from that block (10.244.1.2, 10.244.1.3, ...) and
//! routes the other nodes' blocks to those nodes.
//!
//! This is upstream's "range allocator" (`--allocate-node-cidrs` in
//! kube-controller-manager):
//!
//! - a Node without `podCIDR` gets the lowest block no other Node has;
//! - a block is never given to two Nodes. The Nodes themselves are the
//!   record of what is taken: the allocator keeps no state of its own
//!   beyond the blocks it has just written and not yet seen come back
//!   through its watch, so a restarted controller finds exactly the same
//!   blocks taken;
//! - a Node keeps its block for life (the apiserver refuses to change it);
//!   a deleted Node's block is free again;
//! - when no block is left, the Node gets none and a `CIDRNotAvailable`
//!   event says so.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::events::EventType;
use crate::{Context, Error, Result};

/// How often a Node left without a block is tried again (a deleted Node
/// may have freed one).
pub const FULL_RETRY: Duration = Duration::from_secs(30);

/// The cluster's Pod range, cut into equal per-node blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr {
    /// The range's first address.
    base: u32,
    prefix: u8,
    /// Prefix length of one node's block.
    node_prefix: u8,
}

impl ClusterCidr {
    /// `"10.244.0.0/16"` with node blocks of `/node_prefix`.
    pub fn parse(cidr: &str, node_prefix: u8) -> Result<ClusterCidr, String> {
        let (addr, prefix) = parse_cidr(cidr)?;
        if node_prefix < prefix || node_prefix > 32 {
            return Err(format!(
                "node CIDR mask size /{node_prefix} must be between the cluster CIDR's /{prefix} and /32"
            ));
        }
        if node_prefix - prefix > 24 {
            return Err(format!(
                "cluster CIDR {cidr} holds 2^{} node blocks of /{node_prefix}: too many (at most 2^24)",
                node_prefix - prefix
            ));
        }
        Ok(ClusterCidr {
            base: addr & mask(prefix),
            prefix,
            node_prefix,
        })
    }

    /// How many node blocks there are.
    pub fn blocks(&self) -> u32 {
        1 << (self.node_prefix - self.prefix)
    }

    /// Block number `index` as text, `10.244.<index>.0/24`.
    pub fn block(&self, index: u32) -> String {
        let addr = self.base + (index << (32 - u32::from(self.node_prefix)));
        format!("{}/{}", Ipv4Addr::from(addr), self.node_prefix)
    }

    /// The block numbers a CIDR overlaps (usually exactly one); None if it
    /// is not IPv4, not valid, or outside the range.
    pub fn overlapping(&self, cidr: &str) -> Option<RangeInclusive<u32>> {
        let (addr, prefix) = parse_cidr(cidr).ok()?;
        let first = addr & mask(prefix);
        let last = first | !mask(prefix);
        let range_last = self.base | !mask(self.prefix);
        if last < self.base || first > range_last {
            return None;
        }
        let shift = 32 - u32::from(self.node_prefix);
        let lo = (first.max(self.base) - self.base) >> shift;
        let hi = (last.min(range_last) - self.base) >> shift;
        Some(lo..=hi)
    }

    /// The lowest block number not in `used`.
    pub fn lowest_free(&self, used: &BTreeSet<u32>) -> Option<u32> {
        (0..self.blocks()).find(|i| !used.contains(i))
    }
}

/// The netmask of a prefix length, as a number.
fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn parse_cidr(cidr: &str) -> Result<(u32, u8), String> {
    let net = api::cidr::parse_ipv4(cidr).map_err(|e| format!("{cidr:?}: {e}"))?;
    Ok((u32::from(net.addr()), net.prefix_len()))
}

/// The CIDRs a Node holds (`podCIDRs`, or the older single `podCIDR`).
pub fn node_pod_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    match spec.pod_cidrs.as_ref().filter(|c| !c.is_empty()) {
        Some(cidrs) => cidrs.clone(),
        None => spec
            .pod_cidr
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect(),
    }
}

/// The allocator: the range, the Node cache, and the blocks written but not
/// yet seen in the cache.
pub struct Allocator {
    pub ctx: Arc<Context>,
    pub range: ClusterCidr,
    pub nodes: Store<Node>,
    /// Node name -> block we gave it, until the cache shows the Node with a
    /// `podCIDR`. The async lock is held for a whole allocation (read,
    /// choose, write), so two Nodes never get the same block.
    written: tokio::sync::Mutex<HashMap<String, u32>>,
}

impl Allocator {
    pub fn new(ctx: Arc<Context>, nodes: Store<Node>) -> anyhow::Result<Allocator> {
        let config = &ctx.config;
        let range = ClusterCidr::parse(&config.cluster_cidr, config.node_cidr_mask_size)
            .map_err(|e| anyhow::anyhow!("--cluster-cidr/--node-cidr-mask-size: {e}"))?;
        Ok(Allocator {
            ctx,
            range,
            nodes,
            written: tokio::sync::Mutex::new(HashMap::new()),
        })
    }
}

/// Runs the allocator over every Node.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let controller = Controller::new(nodes, watcher::Config::default());
    let allocator = Arc::new(Allocator::new(ctx, controller.store())?);
    controller
        .run(reconcile, error_policy, allocator)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "node ipam");
            }
            futures::future::ready(())
        })
        .await;
    Ok(())
}

pub fn error_policy(node: Arc<Node>, error: &Error, _allocator: Arc<Allocator>) -> Action {
    tracing::warn!(node = %node.name_any(), %error, "pod CIDR allocation");
    Action::requeue(Duration::from_secs(1))
}

/// Gives `node` a block if it has none. Idempotent: a Node with a
/// `podCIDR` is left alone.
pub async fn reconcile(node: Arc<Node>, allocator: Arc<Allocator>) -> Result<Action> {
    if !node_pod_cidrs(&node).is_empty() {
        return Ok(Action::await_change());
    }
    let name = node.name_any();
    let mut written = allocator.written.lock().await;
    if written.contains_key(&name) {
        // Written already; the watch has not shown it yet.
        return Ok(Action::await_change());
    }
    let used = blocks_in_use(&allocator.range, &allocator.nodes, &mut written);
    let Some(index) = allocator.range.lowest_free(&used) else {
        tracing::warn!(node = %name, range = %allocator.ctx.config.cluster_cidr, "no pod CIDR left");
        allocator
            .ctx
            .events
            .publish(
                "cidrAllocator",
                &node.object_ref(&()),
                EventType::Normal,
                "CIDRNotAvailable",
                &format!("Node {name} status is now: CIDRNotAvailable"),
            )
            .await;
        return Ok(Action::requeue(FULL_RETRY));
    };
    let cidr = allocator.range.block(index);
    // Conditional on the version we read: if the Node changed meanwhile
    // (someone set a podCIDR), the write fails and the next pass rereads.
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
    });
    let nodes: Api<Node> = Api::all(allocator.ctx.client.clone());
    match nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        // Our copy was stale; the watch brings the new one and a retry.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Ok(Action::requeue(Duration::from_millis(500)))
        }
        Err(e) => {
            allocator
                .ctx
                .events
                .publish(
                    "cidrAllocator",
                    &node.object_ref(&()),
                    EventType::Normal,
                    "CIDRAssignmentFailed",
                    &format!("Node {name} status is now: CIDRAssignmentFailed"),
                )
                .await;
            return Err(e.into());
        }
    }
    written.insert(name.clone(), index);
    tracing::info!(node = %name, %cidr, "assigned pod CIDR");
    Ok(Action::await_change())
}

/// The blocks held by Nodes in the cache plus those we wrote that the cache
/// does not show yet. Forgets written blocks the cache has caught up with,
/// or whose Node is gone.
fn blocks_in_use(
    range: &ClusterCidr,
    nodes: &Store<Node>,
    written: &mut HashMap<String, u32>,
) -> BTreeSet<u32> {
    // Forget first, then read the cache: the cache only moves forward, so
    // a block forgotten here (its Node is seen with it) is in the state
    // read below. The other order lost blocks: a state read just before
    // the Node's update arrived, then the written block forgotten because
    // of it, and the block given out twice.
    written.retain(|name, _| {
        nodes
            .get(&ObjectRef::new(name))
            .is_some_and(|n| node_pod_cidrs(&n).is_empty())
    });
    let mut used: BTreeSet<u32> = written.values().copied().collect();
    for node in nodes.state() {
        for cidr in node_pod_cidrs(&node) {
            if let Some(blocks) = range.overlapping(&cidr) {
                used.extend(blocks);
            }
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_the_cluster_range() {
        let range = ClusterCidr::parse("10.244.0.0/16", 24).unwrap();
        assert_eq!(range.blocks(), 256);
        assert_eq!(range.block(0), "10.244.0.0/24");
        assert_eq!(range.block(1), "10.244.1.0/24");
        assert_eq!(range.block(255), "10.244.255.0/24");
        assert_eq!(range.overlapping("10.244.7.0/24"), Some(7..=7));
        // A block of another size marks every block it touches.
        assert_eq!(range.overlapping("10.244.4.0/23"), Some(4..=5));
        assert_eq!(range.overlapping("10.244.9.128/25"), Some(9..=9));
        assert_eq!(range.overlapping("10.0.0.0/8"), Some(0..=255));
        assert_eq!(range.overlapping("10.245.0.0/24"), None);
        assert_eq!(range.overlapping("fd00::/64"), None);
        // A range written with host bits set still means the network.
        assert_eq!(ClusterCidr::parse("10.244.3.1/16", 24), Ok(range));
    }

    #[test]
    fn lowest_free_block_first() {
        let range = ClusterCidr::parse("10.244.0.0/16", 24).unwrap();
        let used: BTreeSet<u32> = [0, 1, 3].into();
        assert_eq!(range.lowest_free(&used), Some(2));
        let small = ClusterCidr::parse("10.244.0.0/23", 24).unwrap();
        assert_eq!(small.lowest_free(&[0, 1].into()), None);
        let odd = ClusterCidr::parse("192.168.0.0/24", 26).unwrap();
        assert_eq!(odd.block(3), "192.168.0.192/26");
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(ClusterCidr::parse("10.244.0.0", 24).is_err());
        assert!(ClusterCidr::parse("10.244.0.0/33", 24).is_err());
        assert!(ClusterCidr::parse("10.244.0.0/24", 16).is_err());
        assert!(ClusterCidr::parse("10.0.0.0/0", 32).is_err());
        assert!(ClusterCidr::parse("banana/16", 24).is_err());
    }
}
