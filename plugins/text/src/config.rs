//! `parser.properties` of the `text` plugin, checked at `open` so a typo
//! stops the daemon's start with the property's name, not every line later.

use serde_json::{Map, Value};

use crate::field::{FIELD_COUNT, Field, FlowBuilder};
use crate::mode::delimited::{Column, DelimitedFormat};
use crate::mode::json::JsonFormat;
use crate::mode::kv::KvFormat;
use crate::mode::regex::RegexFormat;
use crate::timestamp::TimestampFormat;

// One value per session: its size does not matter, boxing would only add a hop.
#[allow(clippy::large_enum_variant)]
pub enum Format {
    Kv(KvFormat),
    Delimited(DelimitedFormat),
    Regex(RegexFormat),
    Json(JsonFormat),
}

pub struct TextConfig {
    pub format: Format,
    pub builder: FlowBuilder,
    pub strip_syslog_prefix: bool,
}

const COMMON: [&str; 5] = [
    "mode",
    "timestamp_format",
    "timezone",
    "defaults",
    "strip_syslog_prefix",
];

/// Options that belong to one mode only.
fn mode_of_option(key: &str) -> Option<&'static str> {
    match key {
        "kv_separator" => Some("kv"),
        "separator" | "quote" | "header" | "columns" => Some("delimited"),
        "regex" => Some("regex"),
        _ => None,
    }
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key} must be a string, got {other}")),
    }
}

fn one_char(obj: &Map<String, Value>, key: &str, default: char) -> Result<char, String> {
    let Some(text) = string(obj, key)? else {
        return Ok(default);
    };
    let text = match text {
        "\\t" | "tab" => "\t",
        "space" => " ",
        other => other,
    };
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(format!("{key} must be one character, got {text:?}")),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl TextConfig {
    pub fn parse(json: &str) -> Result<Self, String> {
        let obj: Map<String, Value> = serde_json::from_str(json)
            .map_err(|e| format!("parser.properties is not a mapping: {e}"))?;
        let mode = string(&obj, "mode")?.unwrap_or("kv");
        if !matches!(mode, "kv" | "delimited" | "regex" | "json") {
            return Err(format!("mode {mode:?} is not kv, delimited, regex or json"));
        }

        let mut mapping: Vec<(Field, &Value)> = Vec::new();
        for (key, value) in &obj {
            if let Some(field) = Field::from_name(key) {
                if mapping.iter().any(|(f, _)| *f == field) {
                    return Err(format!(
                        "{} is mapped twice (proto is an alias of protocol)",
                        field.name()
                    ));
                }
                mapping.push((field, value));
            } else if let Some(owner) = mode_of_option(key) {
                if owner != mode {
                    return Err(format!("{key} applies to mode {owner}, not {mode}"));
                }
            } else if !COMMON.contains(&key.as_str()) {
                return Err(format!(
                    "unknown property {key:?}; fields: {}; options: {}, kv_separator, separator, quote, header, columns, regex",
                    Field::ALL.map(Field::name).join(", "),
                    COMMON.join(", ")
                ));
            }
        }

        let mut defaults: [Option<String>; FIELD_COUNT] = Default::default();
        match obj.get("defaults") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let field = Field::from_name(key)
                        .ok_or_else(|| format!("defaults: {key:?} is not a field name"))?;
                    defaults[field.index()] = Some(
                        scalar_text(value)
                            .ok_or_else(|| format!("defaults.{key} must be a string or number"))?,
                    );
                }
            }
            Some(_) => return Err("defaults must be a mapping of field to value".to_owned()),
        }

        let named = |field: Field, value: &Value| -> Result<String, String> {
            match value {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(format!(
                    "{} must name the record's key, group or path (a non-empty string)",
                    field.name()
                )),
            }
        };
        let mut sources: [Option<String>; FIELD_COUNT] = Default::default();
        let format = match mode {
            "kv" => {
                let mut keys = Vec::new();
                for (field, value) in &mapping {
                    let key = named(*field, value)?;
                    sources[field.index()] = Some(format!("key {key}"));
                    keys.push((key, *field));
                }
                Format::Kv(KvFormat::new(keys, one_char(&obj, "kv_separator", '=')?)?)
            }
            "delimited" => {
                let mut columns: [Option<Column>; FIELD_COUNT] = Default::default();
                for (field, value) in &mapping {
                    let column = match value {
                        Value::Number(n) => Column::Index(
                            n.as_u64()
                                .and_then(|n| usize::try_from(n).ok())
                                .ok_or_else(|| {
                                    format!(
                                        "{}: column index {n} is not a non-negative integer",
                                        field.name()
                                    )
                                })?,
                        ),
                        Value::String(s) if !s.is_empty() => Column::Name(s.clone()),
                        _ => {
                            return Err(format!(
                                "{} must be a column index (0 = first) or a header name",
                                field.name()
                            ));
                        }
                    };
                    sources[field.index()] = Some(match &column {
                        Column::Index(i) => format!("column {i}"),
                        Column::Name(n) => format!("column {n:?}"),
                    });
                    columns[field.index()] = Some(column);
                }
                let names = match obj.get("columns") {
                    None | Some(Value::Null) => None,
                    Some(Value::Array(items)) => Some(
                        items
                            .iter()
                            .map(|v| v.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                            .ok_or("columns must be a list of names")?,
                    ),
                    Some(_) => return Err("columns must be a list of names".to_owned()),
                };
                let header = match obj.get("header") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err("header must be true or false".to_owned()),
                };
                let quote = match obj.get("quote") {
                    Some(Value::Bool(false)) => None,
                    _ => Some(one_char(&obj, "quote", '"')?),
                };
                Format::Delimited(DelimitedFormat::new(
                    one_char(&obj, "separator", ',')?,
                    quote,
                    columns,
                    names,
                    header,
                )?)
            }
            "regex" => {
                let pattern = string(&obj, "regex")?.ok_or("mode regex needs a regex")?;
                let mut groups = Vec::new();
                for (field, value) in &mapping {
                    groups.push((named(*field, value)?, *field));
                }
                let format = RegexFormat::new(pattern, &groups)?;
                for field in Field::ALL {
                    let group = groups
                        .iter()
                        .find(|(_, f)| *f == field)
                        .map_or(field.name(), |(g, _)| g.as_str());
                    sources[field.index()] = Some(format!("group {group}"));
                }
                Format::Regex(format)
            }
            _ => {
                let mut paths = Vec::new();
                for (field, value) in &mapping {
                    let path = named(*field, value)?;
                    sources[field.index()] = Some(format!("path {path}"));
                    paths.push((path, *field));
                }
                Format::Json(JsonFormat::new(&paths)?)
            }
        };

        if !matches!(format, Format::Regex(_)) {
            for field in [Field::SrcIp, Field::DstIp, Field::Protocol] {
                let mapped = mapping.iter().any(|(f, _)| *f == field);
                if !mapped && defaults[field.index()].is_none() {
                    return Err(format!(
                        "{} is not mapped: name the record's key for it, or give it in defaults",
                        field.name()
                    ));
                }
            }
        }

        let strip_syslog_prefix = match obj.get("strip_syslog_prefix") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("strip_syslog_prefix must be true or false".to_owned()),
        };
        let timestamp =
            TimestampFormat::compile(string(&obj, "timestamp_format")?, string(&obj, "timezone")?)?;
        Ok(TextConfig {
            format,
            builder: FlowBuilder {
                defaults,
                timestamp,
                sources,
            },
            strip_syslog_prefix,
        })
    }
}
