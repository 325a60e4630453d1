//! Compiles Kubernetes' protobuf definitions (`protos/`, see vendor.sh)
//! into a descriptor set the apiserver reads protobuf request bodies with
//! (`src/rest/protobuf.rs`).

use prost::Message as _;

fn main() {
    let root = std::path::Path::new("protos");
    println!("cargo:rerun-if-changed=protos");
    let files: Vec<String> = [
        "api/core/v1",
        "api/apps/v1",
        "api/authentication/v1",
        "api/authorization/v1",
        "api/autoscaling/v1",
        "api/batch/v1",
        "api/certificates/v1",
        "api/coordination/v1",
        "api/discovery/v1",
        "api/policy/v1",
        "api/rbac/v1",
    ]
    .iter()
    .map(|group| format!("k8s.io/{group}/generated.proto"))
    .collect();
    let descriptors = protox::compile(&files, [root]).expect("compiling apiserver/protos");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("kubernetes.fds"), descriptors.encode_to_vec())
        .expect("writing the descriptor set");
}
