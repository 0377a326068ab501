//! The `netflow` parser component: a thin wrapper exporting the NetFlow
//! decoders of `flowlink-decoders` through the plugin SDK.

use flowlink_decoders::netflow;
use flowlink_plugin_sdk::{Batch, Origin, Parser, ParserInfo};

pub struct NetflowParser;

impl Parser for NetflowParser {
    fn info() -> ParserInfo {
        ParserInfo::new("netflow", env!("CARGO_PKG_VERSION"), &["netflow-v5"])
    }

    fn open(config: &str) -> Result<Self, String> {
        let config: serde_json::Value = serde_json::from_str(config)
            .map_err(|e| format!("parser properties are not JSON: {e}"))?;
        match config.as_object() {
            Some(map) if map.is_empty() => Ok(NetflowParser),
            Some(map) => Err(format!(
                "unknown netflow parser properties: {}",
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
            None => Err("parser properties must be a mapping".to_owned()),
        }
    }

    fn parse(&mut self, _origin: &Origin, payload: &[u8]) -> Result<Batch, String> {
        let mut batch = Batch::default();
        netflow::decode(payload, &mut batch).map_err(|e| e.to_string())?;
        Ok(batch)
    }
}

flowlink_plugin_sdk::export_parser!(NetflowParser);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_refuses_unknown_properties() {
        assert!(NetflowParser::open("{}").is_ok());
        let err = NetflowParser::open(r#"{"templat_timeout": 5}"#)
            .err()
            .unwrap();
        assert!(err.contains("templat_timeout"), "{err}");
    }
}
