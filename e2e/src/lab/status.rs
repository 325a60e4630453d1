//! `status`: the lab as found on the system.

use super::*;

/// What `status` reports: the lab as found on the system.
#[derive(Debug)]
pub struct LabStatus {
    /// The bridge's addresses, `None` if there is no bridge.
    pub bridge: Option<Vec<String>>,
    /// Unreachable routes in the host namespace.
    pub unreachable_routes: Vec<String>,
    pub nodes: Vec<NodeStatus>,
    /// Components from the PID files.
    pub components: Vec<ComponentStatus>,
    pub apiserver_ready: bool,
}

/// A node namespace, its links with their IPv4 addresses, and how many Pod
/// namespaces its node agent made.
#[derive(Debug)]
pub struct NodeStatus {
    pub netns: String,
    pub links: Vec<(String, Vec<String>)>,
    pub pods: usize,
}

/// A component named by a PID file.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ComponentStatus {
    pub name: String,
    pub pid: i32,
    /// Alive, and still running the component's binary.
    pub running: bool,
}

/// How many Pod sandboxes the node's containerd has: one directory each
/// under its state (what `crictl pods` would list).
fn sandboxes(dir: &Path, netns: &str) -> usize {
    let Some(node) = Node::all(MAX_WORKERS)
        .into_iter()
        .find(|n| n.netns() == netns)
    else {
        return 0;
    };
    let state = node_layout(dir, &node).containerd_state();
    std::fs::read_dir(state.join("io.containerd.grpc.v1.cri/sandboxes"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// Reads the lab's state from the system and `dir`.
pub fn status(dir: &Path) -> Result<LabStatus, LabError> {
    let bridge = if links(None)?.iter().any(|l| l == LAN_BRIDGE) {
        Some(addresses(None, LAN_BRIDGE)?)
    } else {
        None
    };
    let mut nodes = vec![];
    let all_namespaces = netns_list()?;
    let mut namespaces: Vec<String> = all_namespaces
        .iter()
        .filter(|n| is_node_netns(n))
        .cloned()
        .collect();
    namespaces.sort_by_key(|n| (n != "kl-master", n.len(), n.clone()));
    for ns in namespaces {
        let mut node_links = vec![];
        for link in links(Some(&ns))? {
            let addrs = addresses(Some(&ns), &link)?;
            node_links.push((link, addrs));
        }
        let pods = sandboxes(dir, &ns);
        nodes.push(NodeStatus {
            netns: ns,
            links: node_links,
            pods,
        });
    }
    let mut components = vec![];
    if let Ok(entries) = std::fs::read_dir(dir.join("pids")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(component) = name.strip_suffix(".pid") {
                if let Some(pid) = recorded_pid(dir, component) {
                    let binary = component_binary(component);
                    let running = !is_gone(pid) && lab_binary_of(pid) == Some(binary);
                    components.push(ComponentStatus {
                        name: component.to_string(),
                        pid,
                        running,
                    });
                }
            }
        }
    }
    components.sort();
    let apiserver_ready = bridge.is_some() && apiserver_ready(dir);
    Ok(LabStatus {
        bridge,
        unreachable_routes: unreachable_routes()?,
        nodes,
        components,
        apiserver_ready,
    })
}

impl std::fmt::Display for LabStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.bridge {
            Some(addrs) => writeln!(f, "host: {LAN_BRIDGE} {}", addrs.join(" "))?,
            None => writeln!(f, "host: no {LAN_BRIDGE} (the lab is down)")?,
        }
        writeln!(
            f,
            "host: unreachable routes: {}",
            if self.unreachable_routes.is_empty() {
                "none".to_string()
            } else {
                self.unreachable_routes.join(" ")
            }
        )?;
        for node in &self.nodes {
            let described: Vec<String> = node
                .links
                .iter()
                .map(|(link, addrs)| format!("{link} {}", addrs.join(",")).trim().to_string())
                .collect();
            let pods = match node.pods {
                1 => "1 Pod sandbox".to_string(),
                n => format!("{n} Pod sandboxes"),
            };
            writeln!(f, "node {}: {}  ({pods})", node.netns, described.join("  "))?;
        }
        writeln!(f, "{:<22} {:>8}  STATE", "COMPONENT", "PID")?;
        for c in &self.components {
            let state = if c.running { "running" } else { "not running" };
            writeln!(f, "{:<22} {:>8}  {state}", c.name, c.pid)?;
        }
        write!(
            f,
            "apiserver {}/readyz: {}",
            apiserver_url(),
            if self.apiserver_ready {
                "ok"
            } else {
                "not answering"
            }
        )
    }
}
