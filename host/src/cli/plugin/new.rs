//! `flowlink plugin new`: a plugin project that builds outside this
//! repository: the SDK written beside it, a parser for a made-up format of
//! the chosen kind, a sample input, native tests, a README.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::sdk_files;
use flowlink::plugin::WIT_VERSION;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Log lines: a pipe-separated firewall log.
    Text,
    /// Datagrams: fixed-size binary records behind a magic.
    Binary,
}

const CARGO_TOML: &str = include_str!("template/Cargo.toml.tmpl");
const README: &str = include_str!("template/README.md.tmpl");
const TEXT_LIB: &str = include_str!("template/text/lib.rs");
const TEXT_TEST: &str = include_str!("template/text/test.rs");
const TEXT_SAMPLE: &str = include_str!("template/text/sample.log");
const BINARY_LIB: &str = include_str!("template/binary/lib.rs");
const BINARY_TEST: &str = include_str!("template/binary/test.rs");

/// Writes the project into `parent/name` (which must not exist or be
/// empty) and returns its path.
pub fn new_project(parent: &Path, name: &str, kind: Kind) -> Result<PathBuf> {
    check_name(name)?;
    let parent =
        std::path::absolute(parent).with_context(|| format!("resolving {}", parent.display()))?;
    let project = parent.join(name);
    if project.exists()
        && std::fs::read_dir(&project)
            .with_context(|| format!("reading {}", project.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", project.display());
    }
    let crate_name = name.replace('-', "_");
    let (lib, test, sample_name, sample): (&str, &str, &str, Vec<u8>) = match kind {
        Kind::Text => (
            TEXT_LIB,
            TEXT_TEST,
            "sample.log",
            TEXT_SAMPLE.as_bytes().to_vec(),
        ),
        Kind::Binary => (BINARY_LIB, BINARY_TEST, "sample.bin", binary_sample()),
    };
    let wasm_path = format!("target/wasm32-wasip2/release/{crate_name}.wasm");
    let sample_path = format!("samples/{sample_name}");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name)
            .replace("{{type_name}}", &type_name(name))
            .replace("{{wit_version}}", WIT_VERSION)
            .replace("{{wasm_path}}", &wasm_path)
            .replace("{{sample}}", &sample_path)
    };
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("Cargo.toml".into(), fill(CARGO_TOML).into_bytes()),
        ("README.md".into(), fill(README).into_bytes()),
        ("src/lib.rs".into(), fill(lib).into_bytes()),
        ("tests/sample.rs".into(), fill(test).into_bytes()),
        (sample_path.clone(), sample),
        (".gitignore".into(), b"/target\n".to_vec()),
    ];
    for (path, text) in sdk_files::FILES {
        files.push((format!("flowlink-sdk/{path}"), text.as_bytes().to_vec()));
    }
    for (path, text) in sdk_files::manifests(env!("CARGO_PKG_VERSION")) {
        files.push((format!("flowlink-sdk/{path}"), text.into_bytes()));
    }
    for (path, bytes) in files {
        let path = project.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(project)
}

/// A parser name as the host accepts it, and a crate name cargo accepts.
fn check_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "{name:?} is not a plugin name: lower-case letters, digits, '-' and '_', starting with a letter"
        );
    }
    Ok(())
}

/// `pipe-log` → `PipeLog`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// One record of the binary kind's format: source, destination, ports,
/// protocol, packets, bytes, start (Unix seconds).
type FlxRecord = ([u8; 4], [u8; 4], u16, u16, u8, u32, u64, u32);

/// Three records of the binary kind's made-up format (see its `lib.rs`).
fn binary_sample() -> Vec<u8> {
    let mut out = b"FLX1".to_vec();
    let records: [FlxRecord; 3] = [
        (
            [10, 1, 0, 5],
            [10, 2, 0, 20],
            51514,
            443,
            6,
            12,
            4380,
            1_764_669_600,
        ),
        (
            [10, 1, 0, 6],
            [10, 2, 0, 53],
            40000,
            53,
            17,
            1,
            76,
            1_764_669_601,
        ),
        (
            [192, 0, 2, 77],
            [10, 2, 0, 20],
            33000,
            22,
            6,
            3,
            180,
            1_764_669_602,
        ),
    ];
    for (src, dst, sport, dport, proto, packets, bytes, start) in records {
        out.extend_from_slice(&src);
        out.extend_from_slice(&dst);
        out.extend_from_slice(&sport.to_be_bytes());
        out.extend_from_slice(&dport.to_be_bytes());
        out.push(proto);
        out.extend_from_slice(&packets.to_be_bytes());
        out.extend_from_slice(&bytes.to_be_bytes());
        out.extend_from_slice(&start.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(type_name("pipe-log"), "PipeLog");
        assert_eq!(type_name("fw_log2"), "FwLog2");
        assert!(check_name("pipe-log").is_ok());
        assert!(check_name("Pipe").is_err());
        assert!(check_name("9lives").is_err());
        assert!(check_name("a b").is_err());
    }

    #[test]
    fn the_binary_sample_is_whole_records() {
        assert_eq!((binary_sample().len() - 4) % 29, 0);
    }
}
