//! The plugin SDK as it ships inside the `flowlink` binary: `plugin new`
//! writes it into each project, so a project builds with only crates.io
//! reachable and against exactly the contract this flowlink speaks.

/// `(path inside the project's flowlink-sdk/ folder, contents)`.
pub const FILES: &[(&str, &str)] = &[
    (
        "flowlink-flow/src/lib.rs",
        include_str!("../../../../crates/flow/src/lib.rs"),
    ),
    (
        "flowlink-flow/src/flow.rs",
        include_str!("../../../../crates/flow/src/flow.rs"),
    ),
    (
        "flowlink-flow/src/packed.rs",
        include_str!("../../../../crates/flow/src/packed.rs"),
    ),
    (
        "flowlink-flow/src/packed_flows.rs",
        include_str!("../../../../crates/flow/src/packed_flows.rs"),
    ),
    (
        "flowlink-flow/src/address.rs",
        include_str!("../../../../crates/flow/src/address.rs"),
    ),
    (
        "flowlink-plugin-sdk/README.md",
        include_str!("../../../../crates/sdk/README.md"),
    ),
    (
        "flowlink-plugin-sdk/wit/parser.wit",
        include_str!("../../../../crates/sdk/wit/parser.wit"),
    ),
    (
        "flowlink-plugin-sdk/src/lib.rs",
        include_str!("../../../../crates/sdk/src/lib.rs"),
    ),
    (
        "flowlink-plugin-sdk/src/component.rs",
        include_str!("../../../../crates/sdk/src/component.rs"),
    ),
    (
        "flowlink-plugin-sdk/src/log.rs",
        include_str!("../../../../crates/sdk/src/log.rs"),
    ),
    (
        "flowlink-plugin-sdk/src/properties.rs",
        include_str!("../../../../crates/sdk/src/properties.rs"),
    ),
    (
        "flowlink-plugin-sdk/src/testing.rs",
        include_str!("../../../../crates/sdk/src/testing.rs"),
    ),
    (
        "flowlink-plugin-sdk/src/text.rs",
        include_str!("../../../../crates/sdk/src/text.rs"),
    ),
];

/// The crates.io dependencies of the SDK, as in the workspace's
/// Cargo.toml (a test compares them).
pub const SDK_DEPENDENCIES: &str = r#"wit-bindgen = { version = "0.63", default-features = false, features = ["macros", "realloc"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
"#;

/// The manifests of the two vendored crates: the workspace's, made
/// standalone (no `workspace = true` keys).
pub fn manifests(version: &str) -> [(String, String); 2] {
    [
        (
            "flowlink-flow/Cargo.toml".to_owned(),
            format!(
                "[package]\nname = \"flowlink-flow\"\nversion = \"{version}\"\nedition = \"2024\"\n\
                 license = \"Apache-2.0\"\ndescription = \"flowlink's flow record and its packed form\"\n\n\
                 [dependencies]\n"
            ),
        ),
        (
            "flowlink-plugin-sdk/Cargo.toml".to_owned(),
            format!(
                "[package]\nname = \"flowlink-plugin-sdk\"\nversion = \"{version}\"\nedition = \"2024\"\n\
                 license = \"Apache-2.0\"\ndescription = \"Write flowlink parsers as WebAssembly components\"\n\n\
                 [dependencies]\nflowlink-flow = {{ path = \"../flowlink-flow\", version = \"{version}\" }}\n\
                 {SDK_DEPENDENCIES}"
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source file of the two crates is shipped, and the dependency
    /// versions are the workspace's.
    #[test]
    fn the_embedded_sdk_is_complete_and_pinned_like_the_workspace() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (krate, folder) in [
            ("flowlink-flow", "crates/flow/src"),
            ("flowlink-plugin-sdk", "crates/sdk/src"),
        ] {
            for entry in std::fs::read_dir(root.join(folder)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let shipped = format!("{krate}/src/{name}");
                assert!(
                    FILES.iter().any(|(path, _)| *path == shipped),
                    "{folder}/{name} is not in the embedded SDK"
                );
            }
        }
        let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let sdk = std::fs::read_to_string(root.join("crates/sdk/Cargo.toml")).unwrap();
        for line in SDK_DEPENDENCIES.lines() {
            let name = line.split(' ').next().unwrap();
            assert!(
                sdk.contains(&format!("{name}.workspace = true")),
                "{name} is not a dependency of crates/sdk"
            );
            assert!(
                workspace.lines().any(|l| l.trim() == line),
                "{name}: the embedded requirement {line:?} differs from the workspace's"
            );
        }
    }
}
