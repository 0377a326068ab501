//! The `vpc-flow` parser component: AWS VPC flow log records, in the
//! default v2 format or any custom `${field}` format (versions 2 to 8), one
//! record per message (CloudWatch event, Kafka message) or many lines per
//! message (files). A header line in the data sets the format too.

mod format;
mod record;

use flowlink_plugin_sdk::text::{lines, shorten};
use flowlink_plugin_sdk::{Batch, Origin, Parser, ParserInfo, log};
use serde_json::{Map, Value};

use crate::format::{DEFAULT_FORMAT, Layout};
use crate::record::{Addresses, Record, parse_record};

pub struct VpcFlowParser {
    layout: Layout,
    addresses: Addresses,
    skip_data: u64,
}

impl VpcFlowParser {
    /// NODATA/SKIPDATA records are neither flows nor errors: the host
    /// counts them (`records_skipped`). SKIPDATA means AWS lost records
    /// (capacity or an internal error), so it is also logged, at 1, 2, 4,
    /// … so a steady trickle stays quiet.
    fn skipped(&mut self, record: &Record, out: &mut Batch) {
        out.skip();
        if matches!(record, Record::SkipData) {
            self.skip_data += 1;
            if self.skip_data.is_power_of_two() {
                log::warn(&format!(
                    "{} SKIPDATA records so far: AWS could not capture some flows",
                    self.skip_data
                ));
            }
        }
    }
}

impl Parser for VpcFlowParser {
    fn info() -> ParserInfo {
        ParserInfo::new(
            "vpc-flow",
            env!("CARGO_PKG_VERSION"),
            &[
                "aws-vpc-flow-v2",
                "aws-vpc-flow-v3",
                "aws-vpc-flow-v4",
                "aws-vpc-flow-v5",
                "aws-vpc-flow-custom",
            ],
        )
    }

    fn open(config: &str) -> Result<Self, String> {
        let obj: Map<String, Value> = serde_json::from_str(config)
            .map_err(|e| format!("parser.properties is not a mapping: {e}"))?;
        let mut format = DEFAULT_FORMAT;
        let mut addresses = Addresses::Interface;
        for (key, value) in &obj {
            match (key.as_str(), value) {
                ("format", Value::String(text)) => format = text,
                ("addresses", Value::String(text)) => {
                    addresses = match text.as_str() {
                        "interface" => Addresses::Interface,
                        "packet" => Addresses::Packet,
                        other => {
                            return Err(format!("addresses: {other:?} is not interface or packet"));
                        }
                    }
                }
                ("format" | "addresses", other) => {
                    return Err(format!("{key} must be a string, got {other}"));
                }
                _ => {
                    return Err(format!(
                        "unknown property {key:?} (known: format, addresses)"
                    ));
                }
            }
        }
        let layout = Layout::from_format_string(format).map_err(|e| format!("format: {e}"))?;
        if addresses == Addresses::Packet && layout.pkt_srcaddr.is_none() {
            return Err(
                "addresses: packet needs ${pkt-srcaddr} and ${pkt-dstaddr} in the format"
                    .to_owned(),
            );
        }
        Ok(VpcFlowParser {
            layout,
            addresses,
            skip_data: 0,
        })
    }

    fn parse(&mut self, _origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
        for (index, line) in lines(payload) {
            let Ok(line) = std::str::from_utf8(line) else {
                out.reject(index, "line is not UTF-8");
                continue;
            };
            if let Some(layout) = Layout::from_header(line) {
                self.layout = layout;
                continue;
            }
            match parse_record(line, &self.layout, self.addresses) {
                Ok(Record::Flow(flow)) => out.flows.push(flow),
                Ok(skipped) => self.skipped(&skipped, out),
                Err(e) => out.reject(index, format!("{e}; line: {:?}", shorten(line))),
            }
        }
        Ok(())
    }
}

flowlink_plugin_sdk::export_parser!(VpcFlowParser);

#[cfg(test)]
mod tests;
