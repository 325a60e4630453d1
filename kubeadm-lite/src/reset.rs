//! `kubeadm-lite reset`: undo init or join on this VM.
//!
//! Removes what kubeadm-lite and the components it installed made here:
//! the node's Node object (on a worker, with the node's own credentials),
//! the units, the Pods (through containerd, as `crictl rmp -af`), the Service
//! rules (`nft` table `ip kube-lite`), the bridge `cni0` (and the Service
//! route on it), the routes to other nodes' Pods, and `/etc/kube-lite`,
//! `/var/lib/kube-lite`. On the master that includes the cluster's
//! database: the cluster is gone.
//!
//! Each step goes on when one before it failed, and the summary says what
//! could not be removed. Network state is removed with `ip` and `nft`, as
//! an administrator would type it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;

use crate::layout::Layout;
use crate::units;
use crate::Result;

/// `kubeadm-lite reset`'s flags.
#[derive(Debug, Clone)]
pub struct ResetOptions {
    pub root: std::path::PathBuf,
    pub no_systemd: bool,
}

/// The value after `--flag` in a unit's command.
fn flag_value(command: &[String], flag: &str) -> Option<String> {
    command
        .iter()
        .position(|w| w == flag)
        .and_then(|i| command.get(i + 1).cloned())
}

/// Runs a command; its failure is reported, not fatal.
fn run(left: &mut Vec<String>, what: &str, program: &str, args: &[&str]) -> bool {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => {
            println!("[reset] {what}");
            true
        }
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            left.push(format!("{what}: {program} {}: {stderr}", args.join(" ")));
            false
        }
        Err(e) => {
            left.push(format!("{what}: {program}: {e}"));
            false
        }
    }
}

pub async fn reset(options: &ResetOptions) -> Result<()> {
    let layout = Layout::new(&options.root);
    let mut left: Vec<String> = vec![];
    let agent = units::exec_start(&layout.unit(units::NODE)).ok();
    let node_name = agent.as_ref().and_then(|c| flag_value(c, "--node-name"));
    let cluster_cidr = agent
        .as_ref()
        .and_then(|c| flag_value(c, "--cluster-cidr"))
        .and_then(|c| c.parse::<ipnet::Ipv4Net>().ok());

    let present: Vec<&str> = ["apiserver", "controller", units::NODE]
        .into_iter()
        .filter(|c| layout.unit(c).exists())
        .collect();
    if !present.is_empty() {
        if options.no_systemd {
            println!(
                "[reset] --no-systemd: stop the processes you started from the units' commands \
                 ({}) if they still run",
                present.join(", ")
            );
        } else if units::systemd_running() {
            let names: Vec<String> = present.iter().map(|c| units::unit_name(c)).collect();
            let mut args = vec!["disable", "--now"];
            args.extend(names.iter().map(String::as_str));
            run(
                &mut left,
                "Stopped and disabled the units",
                "systemctl",
                &args,
            );
        }
    }

    // A worker leaves the cluster: its Node and Lease go (after its agent
    // stopped, which would register the Node again).
    if !layout.admin_conf().exists() && layout.nodeagent_conf().exists() {
        if let Some(node) = &node_name {
            if let Err(e) = delete_node(&layout, node).await {
                left.push(format!("deleting Node {node}: {e}"));
            }
        }
    }

    remove_pods(&layout, &mut left).await;
    let table = Command::new("nft")
        .args(["list", "table", "ip", "kube-lite"])
        .output()
        .is_ok_and(|o| o.status.success());
    if table {
        run(
            &mut left,
            "Removed the nftables table ip kube-lite",
            "nft",
            &["delete", "table", "ip", "kube-lite"],
        );
    }
    // (`ip`, not /sys/class/net: sysfs shows the network namespace that
    // mounted it, which in the lab is not this VM's.)
    let bridge = Command::new("ip")
        .args(["link", "show", "cni0"])
        .output()
        .is_ok_and(|o| o.status.success());
    if bridge {
        run(
            &mut left,
            "Removed the bridge cni0 (and the Service route on it)",
            "ip",
            &["link", "del", "cni0"],
        );
    }
    if let Some(cidr) = cluster_cidr {
        remove_pod_routes(cidr, &mut left);
    }

    detach_mounts_under(&layout.var());
    for unit in ["apiserver", "controller", units::NODE] {
        let file = layout.unit(unit);
        if file.exists() {
            match std::fs::remove_file(&file) {
                Ok(()) => println!("[reset] Removed {}", file.display()),
                Err(e) => left.push(format!("removing {}: {e}", file.display())),
            }
        }
    }
    if !options.no_systemd && units::systemd_running() && !present.is_empty() {
        run(
            &mut left,
            "Reloaded systemd",
            "systemctl",
            &["daemon-reload"],
        );
    }
    // What init and join set up for containerd: its configuration, the
    // CNI plugins' links, the conflist and the plugin's address records.
    for file in [
        layout.containerd_config(),
        layout.cni_bin_dir().join(api::cni::PLUGIN_TYPE),
        layout.cni_bin_dir().join("loopback"),
        layout.cni_conf_dir().join(api::cni::CONFLIST_FILE),
    ] {
        if file.symlink_metadata().is_ok() {
            match std::fs::remove_file(&file) {
                Ok(()) => println!("[reset] Removed {}", file.display()),
                Err(e) => left.push(format!("removing {}: {e}", file.display())),
            }
        }
    }
    if !options.no_systemd && units::systemd_running() {
        run(
            &mut left,
            "Restarted containerd with its default configuration",
            "systemctl",
            &["restart", "containerd"],
        );
    }
    for dir in [
        layout.etc(),
        layout.var(),
        layout.cni_data_dir().join(api::cni::NETWORK_NAME),
    ] {
        if dir.exists() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => println!("[reset] Removed {}", dir.display()),
                Err(e) => left.push(format!("removing {}: {e}", dir.display())),
            }
        }
    }
    if left.is_empty() {
        println!("[reset] Done: kube-lite is gone from this VM.");
        Ok(())
    } else {
        Err(crate::Error::Refused(format!(
            "reset could not remove everything:\n  {}",
            left.join("\n  ")
        )))
    }
}

/// Deletes this worker's Node and Lease with its own credentials.
async fn delete_node(layout: &Layout, node: &str) -> Result<()> {
    let client = crate::client(&layout.nodeagent_conf()).await?;
    let work = async {
        let nodes: Api<Node> = Api::all(client.clone());
        match nodes.delete(node, &Default::default()).await {
            Ok(_) => println!("[reset] Deleted Node {node} from the cluster"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(crate::Error::Api {
                    what: format!("deleting Node {node}"),
                    source: e,
                })
            }
        }
        let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
        let _ = leases.delete(node, &Default::default()).await;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(15), work)
        .await
        .map_err(|_| crate::Error::Refused("the apiserver did not answer within 15s".into()))?
}

/// The node's Pods, as kubeadm's `crictl rmp --all --force` removes them:
/// every sandbox of containerd's CRI stopped (its containers stop, the
/// CNI plugin frees its address) and removed. A containerd that does not
/// answer has no Pods to remove (it is said, not an error).
async fn remove_pods(layout: &Layout, left: &mut Vec<String>) {
    use nodeagent::cri::{config, Runtime};
    let endpoint = layout.containerd_endpoint();
    let connected = tokio::time::timeout(Duration::from_secs(5), Runtime::connect(&endpoint)).await;
    let Ok(Ok(mut runtime)) = connected else {
        println!("[reset] containerd does not answer at {endpoint}: no Pods to remove");
        return;
    };
    let sandboxes = match runtime.sandboxes(Default::default()).await {
        Ok(sandboxes) => sandboxes,
        Err(status) => {
            left.push(format!(
                "listing the Pods at {endpoint}: {}",
                status.message()
            ));
            return;
        }
    };
    for sandbox in sandboxes {
        let label = |key: &str| sandbox.labels.get(key).cloned().unwrap_or_default();
        let pod = format!(
            "{}/{}",
            label(config::POD_NAMESPACE_LABEL),
            label(config::POD_NAME_LABEL)
        );
        match runtime.remove_sandbox(&sandbox.id).await {
            Ok(()) => println!("[reset] Removed Pod {pod} (sandbox {:.13})", sandbox.id),
            Err(status) => left.push(format!("removing Pod {pod}: {}", status.message())),
        }
    }
}

/// Routes into the cluster's Pod range via other nodes (host-gw).
fn remove_pod_routes(cluster: ipnet::Ipv4Net, left: &mut Vec<String>) {
    let routes = Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for line in routes.lines() {
        let Some(destination) = line.split_whitespace().next() else {
            continue;
        };
        let inside = destination
            .parse::<ipnet::Ipv4Net>()
            .is_ok_and(|d| cluster.contains(&d));
        if inside && line.contains(" via ") {
            run(
                left,
                &format!("Removed the route to {destination}"),
                "ip",
                &["route", "del", destination],
            );
        }
    }
}

/// Mounts under `dir` (a Pod volume left by an agent killed mid-way),
/// detached so that the directory can go.
fn detach_mounts_under(dir: &Path) {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<std::path::PathBuf> = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| std::path::PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}
