//! The `sflow` parser component: sFlow v5 flow samples, one flow per
//! sample with the sampling rate in `sampling_interval` (the aggregator
//! scales). A thin wrapper over `flowlink-decoders`.

use flowlink_decoders::sflow::SflowDecoder;
use flowlink_plugin_sdk::{Batch, Origin, Parser, ParserInfo};

pub struct SflowParser {
    decoder: SflowDecoder,
}

impl Parser for SflowParser {
    fn info() -> ParserInfo {
        ParserInfo::new("sflow", env!("CARGO_PKG_VERSION"), &["sflow-v5"])
    }

    fn open(config: &str) -> Result<Self, String> {
        let properties: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(config).map_err(|e| format!("sflow parser properties: {e}"))?;
        if let Some(key) = properties.keys().next() {
            return Err(format!(
                "sflow parser properties: unknown property {key:?} (sflow takes none)"
            ));
        }
        Ok(SflowParser {
            decoder: SflowDecoder::default(),
        })
    }

    fn parse(&mut self, origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
        self.decoder
            .decode(origin.received_ms, payload, out)
            .map_err(|e| e.to_string())
    }
}

flowlink_plugin_sdk::export_parser!(SflowParser);
