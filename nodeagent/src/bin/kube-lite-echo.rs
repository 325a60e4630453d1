//! `kube-lite-echo`: the program of the `kube-lite/echo` image the lab
//! builds (see `nodeagent::echo`).

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = nodeagent::echo::EchoArgs::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    Ok(runtime.block_on(nodeagent::echo::serve(args))?)
}
