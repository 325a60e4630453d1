//! `e2e`: kube-lite's lab on one machine, like `kind create cluster`.
//!
//! ```text
//! sudo e2e up --workers 2        # kl-master + kl-worker1..2 on kl-lan0
//! sudo e2e status
//! sudo e2e reboot kl-worker1   # what a VM reboot does, then its units start
//! sudo e2e down
//! ```
//!
//! The lab itself - what the namespaces, links and processes are and why -
//! is described in `e2e::lab` and docs/lab.md. This file only reads the
//! command line and prints.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use e2e::lab;

#[derive(Parser)]
#[command(
    version,
    about = "kube-lite's lab: a cluster of network namespaces on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Build the lab (or complete it: running it again changes nothing).
    Up {
        /// Number of worker nodes.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Where the kubeconfig, logs, PID files and data go.
        #[arg(long, default_value = ".lab")]
        dir: PathBuf,
    },
    /// Remove everything the lab made, also after a crash.
    Down {
        #[arg(long, default_value = ".lab")]
        dir: PathBuf,
    },
    /// Do to a lab node what a reboot does (kill every process, lose what
    /// lived in memory, keep its disk), then start it as its units would.
    Reboot {
        /// The node: kl-master, kl-worker1, ...
        node: String,
        #[arg(long, default_value = ".lab")]
        dir: PathBuf,
    },
    /// Show the namespaces, addresses, components and apiserver health.
    Status {
        #[arg(long, default_value = ".lab")]
        dir: PathBuf,
    },
}

/// How long a command waits for another lab user (a test run) to finish.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        LabCommand::Up { workers, dir } => {
            let _lock = lab::LabLock::acquire(LOCK_WAIT)?;
            let bin_dir = bin_dir()?;
            let dir = absolute(dir)?;
            let options = lab::LabOptions {
                workers,
                dir: dir.clone(),
                bin_dir,
            };
            lab::up(&options).context("bringing the lab up (`e2e down` removes what was made)")?;
            let kubeconfig = lab::kubeconfig_path(&dir);
            println!("The lab is up: apiserver at {}.", lab::apiserver_url());
            println!("Logs in {}/logs. To use it:", dir.display());
            println!();
            println!("  export KUBECONFIG={}", kubeconfig.display());
            println!("  kubectl-lite get nodes");
        }
        LabCommand::Down { dir } => {
            let _lock = lab::LabLock::acquire(LOCK_WAIT)?;
            lab::down(&absolute(dir)?).context("tearing the lab down")?;
            println!("The lab is down.");
        }
        LabCommand::Reboot { node, dir } => {
            let _lock = lab::LabLock::acquire(LOCK_WAIT)?;
            let options = lab::LabOptions {
                workers: 0,
                dir: absolute(dir)?,
                bin_dir: bin_dir()?,
            };
            lab::reboot(&options, &node).with_context(|| format!("rebooting {node}"))?;
            println!("{node} rebooted: its units are starting.");
        }
        LabCommand::Status { dir } => {
            println!("{}", lab::status(&absolute(dir)?)?);
        }
    }
    Ok(())
}

/// The component binaries: next to this one.
fn bin_dir() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()
        .context("finding the e2e executable")?
        .parent()
        .context("the e2e executable has no directory")?
        .to_path_buf())
}

/// The components run with their own working directory semantics, so every
/// path handed to them is absolute.
fn absolute(dir: PathBuf) -> anyhow::Result<PathBuf> {
    std::path::absolute(&dir).with_context(|| format!("resolving {}", dir.display()))
}
