//! One JSON object per line (or an array of them), fields found by path:
//! `src.ip`, `endpoints.0.port`.

use std::borrow::Cow;

use serde_json::Value;

use crate::field::{FIELD_COUNT, Field, Values};

pub struct JsonFormat {
    paths: [Option<Vec<String>>; FIELD_COUNT],
}

impl JsonFormat {
    pub fn new(mapping: &[(String, Field)]) -> Result<Self, String> {
        let mut paths: [Option<Vec<String>>; FIELD_COUNT] = Default::default();
        for (path, field) in mapping {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!(
                    "{}: {path:?} is not a field path like a.b.0",
                    field.name()
                ));
            }
            paths[field.index()] = Some(path.split('.').map(str::to_owned).collect());
        }
        Ok(JsonFormat { paths })
    }

    /// The records of a line: the object, or each element of an array.
    pub fn records(line: &str) -> Result<Vec<Value>, String> {
        match serde_json::from_str(line) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(value @ Value::Object(_)) => Ok(vec![value]),
            Ok(_) => Err("the line is JSON but not an object or array".to_owned()),
            Err(e) => Err(format!("not JSON: {e}")),
        }
    }

    pub fn extract<'a>(&self, record: &'a Value, values: &mut Values<'a>) {
        for (field, path) in Field::ALL.into_iter().zip(&self.paths) {
            let Some(path) = path else { continue };
            let mut at = record;
            let mut found = true;
            for segment in path {
                let next = match at {
                    Value::Object(map) => map.get(segment),
                    Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                };
                match next {
                    Some(next) => at = next,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if !found {
                continue;
            }
            values[field.index()] = match at {
                Value::String(s) => Some(Cow::Borrowed(s.as_str())),
                Value::Number(n) => Some(Cow::Owned(n.to_string())),
                Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                _ => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::empty_values;

    #[test]
    fn nested_paths_numbers_and_arrays() {
        let format = JsonFormat::new(&[
            ("src.ip".into(), Field::SrcIp),
            ("ports.1".into(), Field::DstPort),
            ("proto".into(), Field::Protocol),
        ])
        .unwrap();
        let records =
            JsonFormat::records(r#"[{"src":{"ip":"10.0.0.1"},"ports":[5,443],"proto":6},{"x":1}]"#)
                .unwrap();
        assert_eq!(records.len(), 2);
        let mut values = empty_values();
        format.extract(&records[0], &mut values);
        assert_eq!(values[Field::SrcIp.index()].as_deref(), Some("10.0.0.1"));
        assert_eq!(values[Field::DstPort.index()].as_deref(), Some("443"));
        assert_eq!(values[Field::Protocol.index()].as_deref(), Some("6"));
        let mut values = empty_values();
        format.extract(&records[1], &mut values);
        assert!(values.iter().all(Option::is_none));
        assert!(
            JsonFormat::records("{oops")
                .unwrap_err()
                .starts_with("not JSON")
        );
        assert!(JsonFormat::new(&[("a..b".into(), Field::SrcIp)]).is_err());
    }
}
