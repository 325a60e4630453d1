//! # kubectl-lite: the command line students type
//!
//! A small clone of `kubectl` 1.35 for the kube-lite cluster. Like the real
//! one it is only an HTTP client: every command becomes REST calls to the
//! API server (found through the kubeconfig file), and every answer is
//! printed the way kubectl prints it, so that what a student sees here is
//! what they would see on any Kubernetes cluster. It shares the resource
//! table, manifest decoding, patch computation and table printing with the
//! rest of kube-lite through the `api` crate, and never links the API server.
//!
//! # Layout
//! - [`kubeconfig`]: which server and namespace to use (`--kubeconfig`,
//!   `KUBECONFIG`, `~/.kube/config`, `--server`, `-n`).
//! - [`client`]: the HTTP calls, watch streams, and server errors rendered
//!   as `Error from server (NotFound): ...`.
//! - [`resource_args`]: `TYPE NAME`, `TYPE/NAME`, `svc,deploy`, `all`.
//! - [`output`], [`yaml`], [`tabwriter`]: `-o yaml|json|name`, kubectl's
//!   YAML style, and kubectl's column alignment.
//! - One module per command: [`apply`], [`get`], [`describe`], [`delete`],
//!   [`scale`], [`expose`], [`create`], [`label`] (label and annotate),
//!   [`discovery`] (api-resources), [`version`] (version and cluster-info),
//!   [`rollout`], [`logs`] and [`exec`] (both served by the Pod's node,
//!   with [`containers`] choosing the container), and [`trace`],
//!   kube-lite's own verb: a Service's path on each node, read from the
//!   node's kernel.
//!
//! Errors go to stderr in kubectl's words and the exit code is 1, except
//! for `exec`, which exits with the remote command's code.

mod apply;
mod client;
mod containers;
mod create;
mod delete;
mod describe;
mod discovery;
mod exec;
mod expose;
mod get;
mod jsonpath;
mod kubeconfig;
mod label;
mod logs;
mod output;
mod resource_args;
mod rollout;
mod scale;
mod tabwriter;
mod trace;
mod version;
mod yaml;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::Client;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-lite",
    about = "kubectl-lite controls the kube-lite cluster manager, like kubectl controls Kubernetes.",
    version = version::CLIENT_VERSION
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// The address of the API server (overrides the kubeconfig)
    #[arg(short = 's', long, global = true)]
    server: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The namespace to work in (default: the context's, else "default")
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update objects from manifest files
    Apply(apply::ApplyArgs),
    /// List objects, or watch them with -w
    Get(get::GetArgs),
    /// Show an object in detail, with its events
    Describe(describe::DescribeArgs),
    /// Delete objects by name, label selector or manifest
    Delete(delete::DeleteArgs),
    /// Set the number of replicas of a Deployment
    Scale(scale::ScaleArgs),
    /// Create a Service for a Deployment, ReplicaSet, Pod or Service
    Expose(expose::ExposeArgs),
    /// Create an object from flags
    Create(create::CreateArgs),
    /// Add, change or remove labels
    Label(label::LabelArgs),
    /// Add, change or remove annotations
    Annotate(label::LabelArgs),
    /// List the resource types the server serves
    ApiResources(discovery::ApiResourcesArgs),
    /// Print the client and server versions
    Version(version::VersionArgs),
    /// Print where the control plane and cluster services run
    ClusterInfo,
    /// Follow a Deployment's rollout
    Rollout(rollout::RolloutArgs),
    /// Print the logs of a container in a Pod
    Logs(logs::LogsArgs),
    /// Run a command in a container: exec [-i] [-t] POD [-c C] -- COMMAND [args...]
    Exec(exec::ExecArgs),
    /// kube-lite's own: the path a packet to a Service takes on each node, read from its kernel
    Trace(trace::TraceArgs),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let target = kubeconfig::resolve(
        cli.global.kubeconfig.as_deref(),
        cli.global.server.as_deref(),
        cli.global.namespace.as_deref(),
    )
    .await?;
    let client = Client::new(&target, cli.global.namespace.is_some())?;
    match cli.command {
        Command::Apply(args) => apply::run(&client, args).await,
        Command::Get(args) => get::run(&client, args).await,
        Command::Describe(args) => describe::run(&client, args).await,
        Command::Delete(args) => delete::run(&client, args).await,
        Command::Scale(args) => scale::run(&client, args).await,
        Command::Expose(args) => expose::run(&client, args).await,
        Command::Create(args) => create::run(&client, args).await,
        Command::Label(args) => label::run(&client, args, label::MetadataMap::Labels).await,
        Command::Annotate(args) => label::run(&client, args, label::MetadataMap::Annotations).await,
        Command::ApiResources(args) => discovery::run(&client, args).await,
        Command::Version(args) => version::run_version(&client, args).await,
        Command::ClusterInfo => version::run_cluster_info(&client).await,
        Command::Rollout(args) => rollout::run(&client, args).await,
        Command::Logs(args) => logs::run(&client, args).await,
        Command::Exec(args) => exec::run(&client, args).await,
        Command::Trace(args) => trace::run(&client, args).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors; a bad command line exits 1
        // like kubectl's (clap would use 2).
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The remote command's own exit code, like kubectl exec.
            if let Some(exit) = err.downcast_ref::<exec::ExitCodeError>() {
                eprintln!("{exit}");
                return ExitCode::from(exit.code);
            }
            eprintln!("{}", client::error_message(&err));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("kubectl-lite").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["get", "svc", "-n", "kube-system", "--server", "http://h:1"]);
        assert_eq!(cli.global.namespace.as_deref(), Some("kube-system"));
        assert_eq!(cli.global.server.as_deref(), Some("http://h:1"));
        let Command::Get(get) = cli.command else {
            panic!("not get")
        };
        assert_eq!(get.args, vec!["svc"]);
    }

    #[test]
    fn apply_takes_several_files() {
        let cli = parse(&["apply", "-f", "a.yml", "-f", "dir/", "--filename=-"]);
        let Command::Apply(apply) = cli.command else {
            panic!("not apply")
        };
        assert_eq!(apply.filenames, vec!["a.yml", "dir/", "-"]);
    }

    #[test]
    fn logs_and_exec_parse_like_kubectl() {
        let cli = parse(&[
            "exec", "-it", "web-1", "-c", "web", "--", "sh", "-c", "ls -l",
        ]);
        let Command::Exec(exec) = cli.command else {
            panic!("not exec")
        };
        assert!(exec.stdin && exec.tty);
        assert_eq!(exec.container.as_deref(), Some("web"));
        assert_eq!(exec.command, ["sh", "-c", "ls -l"]);
        let cli = parse(&["logs", "-f", "web-1", "--tail=-1", "-p", "--since=5m"]);
        assert!(matches!(cli.command, Command::Logs(l) if l.follow && l.previous && l.tail == -1));
    }

    #[test]
    fn lesson_commands_parse() {
        let cli = parse(&[
            "expose",
            "deploy",
            "ngx-dep",
            "--port=80",
            "--target-port=80",
            "--dry-run=client",
            "-o",
            "yaml",
        ]);
        let Command::Expose(expose) = cli.command else {
            panic!("not expose")
        };
        assert_eq!(expose.port.as_deref(), Some("80"));
        assert_eq!(expose.dry_run, "client");
        let cli = parse(&["scale", "deploy", "ngx-dep", "--replicas=5"]);
        assert!(matches!(cli.command, Command::Scale(s) if s.replicas == Some(5)));
        let cli = parse(&[
            "create",
            "service",
            "nodeport",
            "s",
            "--tcp=80:8080",
            "--node-port=30080",
        ]);
        assert!(matches!(
            cli.command,
            Command::Create(create::CreateArgs {
                what: create::CreateCommand::Service {
                    kind: create::ServiceKind::Nodeport {
                        node_port: Some(30080),
                        ..
                    }
                }
            })
        ));
        let cli = parse(&["label", "svc", "ngx-svc", "tier=web", "old-", "--overwrite"]);
        assert!(matches!(cli.command, Command::Label(l) if l.overwrite && l.args.len() == 4));
        let cli = parse(&["rollout", "status", "deploy/ngx-dep"]);
        assert!(matches!(cli.command, Command::Rollout(_)));
        let cli = parse(&["get", "pods", "-o", "wide", "-w", "-A", "-l", "app=ngx-dep"]);
        assert!(matches!(cli.command, Command::Get(g) if g.watch && g.all_namespaces));
    }
}
