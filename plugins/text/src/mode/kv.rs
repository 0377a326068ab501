//! `key=value` pairs anywhere in a line (FlowLink's text style): a syslog
//! header or free text around them is ignored.

use std::borrow::Cow;

use crate::field::{Field, Values};

pub struct KvFormat {
    /// The record's key for each mapped field.
    keys: Vec<(String, Field)>,
    separator: u8,
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

impl KvFormat {
    pub fn new(keys: Vec<(String, Field)>, separator: char) -> Result<Self, String> {
        if !separator.is_ascii() || separator.is_ascii_alphanumeric() {
            return Err(format!(
                "kv_separator {separator:?} must be one ASCII punctuation character"
            ));
        }
        Ok(KvFormat {
            keys,
            separator: separator as u8,
        })
    }

    /// Fills `values` from the pairs of `line`; the first pair of a key wins.
    pub fn extract<'a>(&self, line: &'a str, values: &mut Values<'a>) {
        let b = line.as_bytes();
        let mut i = 0;
        while let Some(offset) = b[i..].iter().position(|c| *c == self.separator) {
            let eq = i + offset;
            let mut key_start = eq;
            while key_start > 0 && is_key_byte(b[key_start - 1]) {
                key_start -= 1;
            }
            let (value_start, value_end, next) = match b.get(eq + 1) {
                Some(q @ (b'"' | b'\'')) => {
                    let end = b[eq + 2..]
                        .iter()
                        .position(|c| c == q)
                        .map_or(b.len(), |p| eq + 2 + p);
                    (eq + 2, end, end + 1)
                }
                _ => {
                    let end = b[eq + 1..]
                        .iter()
                        .position(|c| c.is_ascii_whitespace() || matches!(c, b',' | b';'))
                        .map_or(b.len(), |p| eq + 1 + p);
                    (eq + 1, end, end)
                }
            };
            if key_start < eq {
                let key = &line[key_start..eq];
                if let Some((_, field)) = self.keys.iter().find(|(k, _)| k == key) {
                    let slot = &mut values[field.index()];
                    if slot.is_none() {
                        *slot = Some(Cow::Borrowed(&line[value_start..value_end.min(b.len())]));
                    }
                }
            }
            i = next.max(eq + 1).min(b.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::empty_values;

    #[test]
    fn finds_pairs_anywhere_and_handles_quotes() {
        let kv = KvFormat::new(
            vec![
                ("sip".into(), Field::SrcIp),
                ("dip".into(), Field::DstIp),
                ("dport".into(), Field::DstPort),
                ("act".into(), Field::Action),
            ],
            '=',
        )
        .unwrap();
        let mut values = empty_values();
        kv.extract(
            r#"<13>Nov 28 13:00:00 fw1 log: sip=10.0.0.1, dip=10.0.0.2;dport=443 act="allow it" sip=9.9.9.9"#,
            &mut values,
        );
        assert_eq!(values[Field::SrcIp.index()].as_deref(), Some("10.0.0.1"));
        assert_eq!(values[Field::DstIp.index()].as_deref(), Some("10.0.0.2"));
        assert_eq!(values[Field::DstPort.index()].as_deref(), Some("443"));
        assert_eq!(values[Field::Action.index()].as_deref(), Some("allow it"));
    }

    #[test]
    fn a_key_is_matched_whole() {
        let kv = KvFormat::new(vec![("ip".into(), Field::SrcIp)], '=').unwrap();
        let mut values = empty_values();
        kv.extract("sip=1.1.1.1 ip=2.2.2.2 =x trailing=", &mut values);
        assert_eq!(values[Field::SrcIp.index()].as_deref(), Some("2.2.2.2"));
    }
}
