//! The `ipfix` parser component: IPFIX only (RFC 7011, with RFC 5103
//! biflows), over UDP or TCP. Shares the template engine of the netflow
//! plugin; use it where a consumer must refuse anything but IPFIX.

use flowlink_decoders::ipfix;
use flowlink_decoders::template::{TemplateConfig, TemplateSession};
use flowlink_plugin_sdk::{Batch, Origin, Parser, ParserInfo, ip_to_std};

pub struct IpfixParser {
    templates: TemplateSession,
}

impl Parser for IpfixParser {
    fn info() -> ParserInfo {
        ParserInfo::new("ipfix", env!("CARGO_PKG_VERSION"), &["ipfix"])
    }

    fn open(config: &str) -> Result<Self, String> {
        Ok(IpfixParser {
            templates: TemplateSession::new(TemplateConfig::from_properties(config)?),
        })
    }

    fn parse(&mut self, origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
        self.templates.expire_pending(origin.received_ms, out);
        let exporter = ip_to_std(origin.exporter);
        ipfix::decode(
            &mut self.templates,
            exporter,
            origin.received_ms,
            payload,
            out,
        )
        .map_err(|e| e.to_string())
    }

    fn save_state(&self) -> Vec<u8> {
        self.templates.save_state()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.templates.restore_state(state)
    }
}

flowlink_plugin_sdk::export_parser!(IpfixParser);
