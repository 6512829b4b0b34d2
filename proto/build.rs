//! Compiles the anygan.v1 protobuf files. protoc comes from `protoc-bin-vendored` unless PROTOC
//! names another, so building needs no system package.

fn main() -> anyhow::Result<()> {
    let mut config = tonic_prost_build::Config::new();
    match std::env::var_os("PROTOC") {
        Some(protoc) => config.protoc_executable(protoc),
        None => config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?),
    };
    // Ring chunks are the bulk of the traffic: decode them as `Bytes`, without a copy.
    config.bytes([".anygan.v1.RingChunk.values"]);
    let protos = [
        "proto/anygan/v1/coordinator.proto",
        "proto/anygan/v1/collective.proto",
    ];
    tonic_prost_build::configure().compile_with_config(config, &protos, &["proto"])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
