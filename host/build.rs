//! Compiles `proto/` with protox (pure Rust), so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../proto";
    let file = "../proto/flowlink/v1/flow_batch.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], [proto_root])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
