//! `kube-lite-cni`: the pod network's CNI plugin (see `nodeagent::cni`).
//!
//! containerd runs it with `CNI_*` variables and the network's
//! configuration on stdin; it prints the result (or a CNI error) as JSON
//! on stdout and exits 0 (or 1).

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Err(error) => Err(nodeagent::cni::CniError::Stdin(error)),
        Ok(_) => {
            match nodeagent::cni::spec::Environment::from_vars(|name| std::env::var(name).ok()) {
                Err(message) => Err(nodeagent::cni::CniError::InvalidEnvironment(message)),
                Ok(env) => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(nodeagent::cni::CniError::Runtime)
                    .and_then(|runtime| runtime.block_on(nodeagent::cni::run(&env, &stdin))),
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok(None) => {}
        Ok(Some(result)) => {
            let _ = writeln!(stdout, "{result}");
        }
        Err(error) => {
            let result = error.to_result(&nodeagent::cni::error_version(&stdin));
            let _ = writeln!(
                stdout,
                "{}",
                serde_json::to_string(&result).expect("serialisable")
            );
            let _ = stdout.flush();
            std::process::exit(1);
        }
    }
}
