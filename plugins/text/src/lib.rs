//! The `text` parser component: flow records in text, described by
//! configuration alone (`parser.properties`): `kv` (FlowLink's
//! `key=value` style, the default), `delimited`, `regex` or `json`.
//! Every message may hold many lines; a line that does not fit is rejected
//! with the field and the reason, the others still count.

mod config;
mod field;
mod mode;
mod syslog;
mod timestamp;

use flowlink_plugin_sdk::text::{lines, shorten};
use flowlink_plugin_sdk::{Batch, Origin, Parser, ParserInfo};

use crate::config::{Format, TextConfig};
use crate::field::empty_values;
use crate::mode::delimited::Line;
use crate::mode::json::JsonFormat;

pub struct TextParser {
    config: TextConfig,
}

impl TextParser {
    fn parse_line(&mut self, line: &str, received_ms: u64, index: u32, out: &mut Batch) {
        let line = if self.config.strip_syslog_prefix {
            syslog::strip_prefix(line)
        } else {
            line
        };
        let mut values = empty_values();
        let extracted = match &mut self.config.format {
            Format::Kv(kv) => {
                kv.extract(line, &mut values);
                Ok(())
            }
            Format::Regex(regex) => regex.extract(line, &mut values),
            Format::Delimited(delimited) => match delimited.extract(line, &mut values) {
                Ok(Line::Header) => return,
                Ok(Line::Record) => Ok(()),
                Err(e) => Err(e),
            },
            Format::Json(json) => {
                match JsonFormat::records(line) {
                    Ok(records) => {
                        for record in &records {
                            let mut values = empty_values();
                            json.extract(record, &mut values);
                            match self.config.builder.build(&values, received_ms) {
                                Ok(flow) => out.flows.push(flow),
                                Err(e) => out.reject(index, rejection(&e, line)),
                            }
                        }
                    }
                    Err(e) => out.reject(index, rejection(&e, line)),
                }
                return;
            }
        };
        let built = extracted.and_then(|()| self.config.builder.build(&values, received_ms));
        match built {
            Ok(flow) => out.flows.push(flow),
            Err(e) => out.reject(index, rejection(&e, line)),
        }
    }
}

fn rejection(reason: &str, line: &str) -> String {
    format!("{reason}; line: {:?}", shorten(line))
}

impl Parser for TextParser {
    fn info() -> ParserInfo {
        ParserInfo::new(
            "text",
            env!("CARGO_PKG_VERSION"),
            &["text-kv", "text-delimited", "text-regex", "text-json"],
        )
    }

    fn open(config: &str) -> Result<Self, String> {
        Ok(TextParser {
            config: TextConfig::parse(config)?,
        })
    }

    fn parse(&mut self, origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
        for (index, line) in lines(payload) {
            match std::str::from_utf8(line) {
                Ok(line) => self.parse_line(line, origin.received_ms, index, out),
                Err(e) => out.reject(index, format!("line is not UTF-8: {e}")),
            }
        }
        Ok(())
    }

    /// The delimited header seen last, so a swapped-in build reads the
    /// next lines by the same column names.
    fn save_state(&self) -> Vec<u8> {
        match &self.config.format {
            Format::Delimited(d) => d
                .header()
                .map(|h| h.join("\n").into_bytes())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        if let Format::Delimited(d) = &mut self.config.format
            && !state.is_empty()
        {
            let text = std::str::from_utf8(state).map_err(|e| e.to_string())?;
            d.restore_header(text.split('\n').map(str::to_owned).collect())?;
        }
        Ok(())
    }
}

flowlink_plugin_sdk::export_parser!(TextParser);

#[cfg(test)]
mod tests;
