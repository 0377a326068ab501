//! Compiles `proto/` with protox (pure Rust), so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../proto";
    let file = "../proto/flowlink/v1/flow_batch.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], [proto_root])?;
    // `AggregatedFlow` is written by hand (src/proto/aggregated_flow.rs):
    // its addresses are `IpAddr`s, not shared buffers.
    prost_build::Config::new()
        .extern_path(
            ".flowlink.v1.AggregatedFlow",
            "crate::proto::AggregatedFlow",
        )
        .compile_fds(fds.clone())?;
    // The schema as prost generates it, whole: the tests' reference for
    // the hand-written message's wire format.
    let generated = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("generated");
    std::fs::create_dir_all(&generated)?;
    prost_build::Config::new()
        .out_dir(&generated)
        .compile_fds(fds)?;
    Ok(())
}
