//! Compiles `proto/` with protox (pure Rust), so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../proto";
    let file = "../proto/flowlink/v1/flow_batch.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], [proto_root])?;
    // `bytes` fields as `bytes::Bytes`: a closing window slices every
    // address out of one buffer instead of allocating three per key.
    prost_build::Config::new().bytes(["."]).compile_fds(fds)?;
    Ok(())
}
