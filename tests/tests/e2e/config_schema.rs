//! The configuration's JSON Schema: `flowlink schema` is the committed
//! `flowlink_config_schema.json`, every shipped example validates against
//! it, and a misspelt key fails validation at its path. Validation is done
//! by Python's `jsonschema` (an implementation independent of the one that
//! generated the schema, and the kind an editor uses).

use std::path::{Path, PathBuf};
use std::process::Command;

use flowlink_e2e::{repo_root, run_flowlink, temp_dir};

/// Validates each YAML file against `schema`; returns, per file, the
/// errors as `PATH: MESSAGE` lines (empty when valid).
fn validate(schema: &Path, files: &[PathBuf]) -> Vec<(PathBuf, String)> {
    const SCRIPT: &str = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for name in sys.argv[2:]:
    doc = yaml.safe_load(open(name))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    for e in errors:
        print(name + "\t" + "/".join(map(str, e.absolute_path)) + ": " + e.message)
    print(name + "\tchecked")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(schema)
        .args(files)
        .output()
        .expect("python3 (scripts/install-peers installs jsonschema and PyYAML)");
    assert!(
        out.status.success(),
        "the validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    files
        .iter()
        .map(|file| {
            let prefix = format!("{}\t", file.display());
            let lines: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&prefix))
                .collect();
            assert_eq!(
                lines.last(),
                Some(&"checked"),
                "{file:?} not checked: {text}"
            );
            (file.clone(), lines[..lines.len() - 1].join("\n"))
        })
        .collect()
}

fn committed_schema() -> PathBuf {
    repo_root().join("flowlink_config_schema.json")
}

#[test]
fn flowlink_schema_prints_the_committed_file() {
    let out = run_flowlink(&["schema"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(committed_schema()).unwrap();
    assert!(
        printed.trim_end() == committed.trim_end(),
        "flowlink_config_schema.json is stale: run `flowlink schema > flowlink_config_schema.json`"
    );
}

#[test]
fn every_example_config_validates_and_names_the_schema() {
    let mut files: Vec<PathBuf> = ["examples", "packaging"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo_root().join(dir)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for (file, errors) in validate(&committed_schema(), &files) {
        assert!(errors.is_empty(), "{}: {errors}", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with("# yaml-language-server: $schema=")),
            "{} has no yaml-language-server line for editors",
            file.display()
        );
    }
}

#[test]
fn a_flowlink_style_config_validates() {
    // FlowLink's own keys and forms: destinations, one connector mapping,
    // ports as a string, the key in a `$cat` file, host:port.
    let dir = temp_dir("schema-flowlink");
    let file = dir.join("flowlink.yaml");
    std::fs::write(
        &file,
        "pce_addr: pce.example.com:8443\norg_id: 3\napi_key: $cat /etc/flowlink/api_key\n\
         aggregation_minutes: 10\ndata_directory: /var/lib/flowlink\ndata_directory_size_mb: 500\n\
         file_retention_hours: 24\nmetrics_print_seconds: 60\ndestinations:\n  - name: netflow\n\
         \x20   connector: { type: udp, properties: { ports: \"2055,9995\" } }\n\
         \x20   parser: { type: netflow }\n",
    )
    .unwrap();
    let results = validate(&committed_schema(), std::slice::from_ref(&file));
    assert!(results[0].1.is_empty(), "{}", results[0].1);
}

#[test]
fn an_unknown_key_fails_validation_at_its_path() {
    let dir = temp_dir("schema-unknown");
    let top = dir.join("top.yaml");
    std::fs::write(
        &top,
        "pce_addr: pce.example.com:8443\napi_key: \"k:s\"\nagregation_minutes: 10\nconsumers: []\n",
    )
    .unwrap();
    let nested = dir.join("nested.yaml");
    std::fs::write(
        &nested,
        "pce_addr: pce.example.com:8443\napi_key: \"k:s\"\nconsumers:\n  - name: a\n\
         \x20   connectors: [{ type: udp, properties: { ports: 2055 } }]\n\
         \x20   parser: { type: netflow, timeot_ms: 40 }\n",
    )
    .unwrap();
    let results = validate(&committed_schema(), &[top.clone(), nested.clone()]);
    let (top_errors, nested_errors) = (&results[0].1, &results[1].1);
    assert!(
        top_errors.contains("agregation_minutes"),
        "top-level key not named: {top_errors:?}"
    );
    assert!(
        nested_errors
            .lines()
            .any(|l| l.starts_with("consumers/0/parser: ") && l.contains("timeot_ms")),
        "nested key not named at its path: {nested_errors:?}"
    );
    // The daemon's own check agrees with the schema, key for key.
    for (file, path) in [
        (&top, "agregation_minutes"),
        (&nested, "consumers[0].parser"),
    ] {
        let out = run_flowlink(&["check-config", "--config", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(path), "{stderr}");
    }
}
