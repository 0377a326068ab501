//! The `netflow` parser component: NetFlow v5, v7, v9 and IPFIX (v10), a
//! thin wrapper exporting `flowlink-decoders` through the plugin SDK.

use flowlink_decoders::netflow::NetflowDecoder;
use flowlink_decoders::template::TemplateConfig;
use flowlink_plugin_sdk::{Batch, Origin, Parser, ParserInfo, ip_to_std};

pub struct NetflowParser {
    decoder: NetflowDecoder,
}

impl Parser for NetflowParser {
    fn info() -> ParserInfo {
        ParserInfo::new(
            "netflow",
            env!("CARGO_PKG_VERSION"),
            &["netflow-v5", "netflow-v7", "netflow-v9", "ipfix"],
        )
    }

    fn open(config: &str) -> Result<Self, String> {
        Ok(NetflowParser {
            decoder: NetflowDecoder::new(TemplateConfig::from_properties(config)?),
        })
    }

    fn parse(&mut self, origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
        let exporter = ip_to_std(origin.exporter);
        self.decoder
            .decode(exporter, origin.received_ms, payload, out)
            .map_err(|e| e.to_string())
    }

    fn save_state(&self) -> Vec<u8> {
        self.decoder.templates.save_state()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.decoder.templates.restore_state(state)
    }
}

flowlink_plugin_sdk::export_parser!(NetflowParser);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_refuses_unknown_properties() {
        assert!(NetflowParser::open("{}").is_ok());
        assert!(NetflowParser::open(r#"{"template_timeout_seconds": 60}"#).is_ok());
        let err = NetflowParser::open(r#"{"templat_timeout": 5}"#)
            .err()
            .unwrap();
        assert!(err.contains("templat_timeout"), "{err}");
    }
}
