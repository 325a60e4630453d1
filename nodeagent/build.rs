//! Generates the CRI client (`runtime.v1`: RuntimeService and
//! ImageService) from `protos/cri/api.proto` (see vendor.sh there), with
//! protox: no `protoc` needed.

fn main() {
    println!("cargo:rerun-if-changed=protos/cri");
    let descriptors =
        protox::compile(["api.proto"], ["protos/cri"]).expect("compiling protos/cri/api.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)
        .expect("generating the CRI client");
}
