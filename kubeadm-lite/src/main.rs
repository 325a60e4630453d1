//! `kubeadm-lite`: kube-lite's kubeadm.
//!
//! ```text
//! kubeadm-lite init --node-ip 192.168.56.10                       # on the master
//! kubeadm-lite join 192.168.56.10:6443 --token T \
//!     --discovery-token-ca-cert-hash sha256:H                     # on each worker
//! kubeadm-lite token create --print-join-command                  # on the master
//! kubeadm-lite reset                                              # on any of them
//! ```
//!
//! What each does is in the crate's modules (`init`, `join`, `token`,
//! `reset`); this file reads the command line.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use kubeadm_lite::clusterinfo::ClusterConfiguration;
use kubeadm_lite::{init, join, layout::Layout, reset, token, Error};

#[derive(Parser)]
#[command(
    version,
    about = "kube-lite's kubeadm: one command makes this VM the master, one more makes another VM a worker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the binaries and files go (every command).
#[derive(clap::Args, Clone)]
struct Place {
    /// Everything is written under this directory (the lab gives each
    /// namespace "VM" one); `/` on a VM.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Where the apiserver, controller and nodeagent binaries are (default:
    /// next to kubeadm-lite).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Write the units but start nothing: print the commands to run instead
    /// (where systemd is absent: a container, the lab).
    #[arg(long)]
    no_systemd: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Make this VM the master: certificates, kubeconfigs, units, a join
    /// token; waits until the node is Ready and prints the join command.
    Init {
        /// This VM's host-only address (never the NAT 10.0.2.15).
        #[arg(long)]
        node_ip: Ipv4Addr,
        /// The Node's name (default: the host name).
        #[arg(long)]
        node_name: Option<String>,
        /// The range Pod IPs come from; each node gets a /24 of it.
        #[arg(long, default_value = "10.244.0.0/16")]
        pod_network_cidr: ipnet::Ipv4Net,
        /// The range ClusterIPs come from.
        #[arg(long, default_value = "10.96.0.0/12")]
        service_cidr: ipnet::Ipv4Net,
        /// The apiserver's port.
        #[arg(long, default_value_t = 6443)]
        apiserver_bind_port: u16,
        #[command(flatten)]
        place: Place,
    },
    /// Make this VM a worker of the cluster at API_SERVER_ENDPOINT.
    Join {
        /// The master's apiserver, HOST:PORT (as init printed it).
        #[arg(value_name = "API_SERVER_ENDPOINT")]
        endpoint: String,
        /// The bootstrap token (as init printed it).
        #[arg(long)]
        token: String,
        /// The cluster CA's public key hash, sha256:... (as init printed it).
        #[arg(long)]
        discovery_token_ca_cert_hash: String,
        /// This VM's host-only address (default: the one it reaches the
        /// master from).
        #[arg(long)]
        node_ip: Option<Ipv4Addr>,
        /// The Node's name (default: the host name).
        #[arg(long)]
        node_name: Option<String>,
        #[command(flatten)]
        place: Place,
    },
    /// Bootstrap tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Remove everything init or join made on this VM.
    Reset {
        #[command(flatten)]
        place: Place,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new bootstrap token on the master.
    Create {
        /// Print the whole join command, not just the token.
        #[arg(long)]
        print_join_command: bool,
        /// How long it is valid: 24h, 30m, 90s.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// The administrator's kubeconfig (default: ROOT/etc/kube-lite/admin.conf).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
}

fn bin_dir(place: &Place) -> PathBuf {
    place
        .bin_dir
        .clone()
        .unwrap_or_else(kubeadm_lite::default_bin_dir)
}

/// Paths in units must be absolute: a unit has no working directory.
fn absolute(path: &std::path::Path, flag: &str) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|e| Error::flag(flag, e.to_string()))
}

async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Init {
            node_ip,
            node_name,
            pod_network_cidr,
            service_cidr,
            apiserver_bind_port,
            place,
        } => {
            let options = init::InitOptions {
                node_ip,
                node_name: node_name.unwrap_or_else(kubeadm_lite::preflight::hostname),
                cluster: ClusterConfiguration {
                    pod_subnet: pod_network_cidr.trunc(),
                    service_subnet: service_cidr.trunc(),
                    port: apiserver_bind_port,
                    ..Default::default()
                },
                root: absolute(&place.root, "--root")?,
                bin_dir: absolute(&bin_dir(&place), "--bin-dir")?,
                no_systemd: place.no_systemd,
            };
            init::init(&options).await.map(drop)
        }
        Command::Join {
            endpoint,
            token,
            discovery_token_ca_cert_hash,
            node_ip,
            node_name,
            place,
        } => {
            let options = join::JoinOptions {
                endpoint,
                token,
                ca_hash: discovery_token_ca_cert_hash,
                node_ip,
                node_name,
                root: absolute(&place.root, "--root")?,
                bin_dir: absolute(&bin_dir(&place), "--bin-dir")?,
                no_systemd: place.no_systemd,
            };
            join::join(&options).await
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    print_join_command,
                    ttl,
                    kubeconfig,
                    root,
                },
        } => {
            let ttl = token::parse_ttl(&ttl)?;
            let layout = Layout::new(root);
            let kubeconfig = kubeconfig.unwrap_or_else(|| layout.admin_conf());
            if !kubeconfig.exists() {
                return Err(Error::flag(
                    "--kubeconfig",
                    format!(
                        "{} does not exist: run this on the master, after `kubeadm-lite init`",
                        kubeconfig.display()
                    ),
                ));
            }
            let client = kubeadm_lite::client(&kubeconfig).await?;
            let new = token::create(client, ttl, "Made by 'kubeadm-lite token create'.").await?;
            if print_join_command {
                let text = std::fs::read_to_string(&kubeconfig)
                    .map_err(Error::io(format!("reading {}", kubeconfig.display())))?;
                let (endpoint, ca) = endpoint_and_ca(&text)?;
                println!("{}", token::join_command(&endpoint, &new, &ca)?);
            } else {
                println!("{new}");
            }
            Ok(())
        }
        Command::Reset { place } => {
            reset::reset(&reset::ResetOptions {
                root: absolute(&place.root, "--root")?,
                no_systemd: place.no_systemd,
            })
            .await
        }
    }
}

/// The apiserver's HOST:PORT and the CA of a kubeconfig.
fn endpoint_and_ca(text: &str) -> Result<(String, String), Error> {
    let found = kubeadm_lite::clusterinfo::server_and_ca(text)
        .map_err(|why| Error::flag("--kubeconfig", format!("the kubeconfig {why}")))?;
    let endpoint = found
        .server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    Ok((endpoint, found.ca_pem))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        // Every message is whole: the causes are in it already.
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
