//! One regular expression with named groups per line.

use std::borrow::Cow;

use regex::{CaptureLocations, Regex};

use crate::field::{FIELD_COUNT, Field, Values};

#[derive(Debug)]
pub struct RegexFormat {
    regex: Regex,
    /// Capture group index of each mapped field.
    groups: [Option<usize>; FIELD_COUNT],
    locations: CaptureLocations,
}

impl RegexFormat {
    /// `mapping` names a group per field; a group named like a field (e.g.
    /// `(?P<src_ip>...)`) maps itself.
    pub fn new(pattern: &str, mapping: &[(String, Field)]) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("regex does not compile: {e}"))?;
        let group_index = |name: &str| regex.capture_names().position(|n| n == Some(name));
        let mut groups = [None; FIELD_COUNT];
        for (group, field) in mapping {
            groups[field.index()] = Some(group_index(group).ok_or_else(|| {
                format!("{}: the regex has no group named {group:?}", field.name())
            })?);
        }
        for field in Field::ALL {
            if groups[field.index()].is_none() {
                groups[field.index()] = group_index(field.name());
            }
        }
        if groups[Field::SrcIp.index()].is_none() || groups[Field::DstIp.index()].is_none() {
            return Err(
                "the regex must capture src_ip and dst_ip (name the groups so, or map them)"
                    .to_owned(),
            );
        }
        let locations = regex.capture_locations();
        Ok(RegexFormat {
            regex,
            groups,
            locations,
        })
    }

    pub fn extract<'a>(&mut self, line: &'a str, values: &mut Values<'a>) -> Result<(), String> {
        if self
            .regex
            .captures_read(&mut self.locations, line)
            .is_none()
        {
            return Err("the line does not match the regex".to_owned());
        }
        for (slot, group) in values.iter_mut().zip(self.groups) {
            if let Some((start, end)) = group.and_then(|g| self.locations.get(g)) {
                *slot = Some(Cow::Borrowed(&line[start..end]));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::empty_values;

    #[test]
    fn named_groups_map_themselves_or_by_mapping() {
        let mut format = RegexFormat::new(
            r"from (?P<src_ip>\S+):(?P<sp>\d+) to (?P<dst_ip>\S+):(?P<dst_port>\d+)",
            &[("sp".into(), Field::SrcPort)],
        )
        .unwrap();
        let mut values = empty_values();
        format
            .extract("conn from 10.0.0.1:5555 to 10.0.0.2:22 ok", &mut values)
            .unwrap();
        assert_eq!(values[Field::SrcIp.index()].as_deref(), Some("10.0.0.1"));
        assert_eq!(values[Field::SrcPort.index()].as_deref(), Some("5555"));
        assert_eq!(values[Field::DstPort.index()].as_deref(), Some("22"));
        assert!(format.extract("nothing here", &mut empty_values()).is_err());
    }

    #[test]
    fn config_errors_are_named() {
        assert!(
            RegexFormat::new("(", &[])
                .unwrap_err()
                .contains("does not compile")
        );
        assert!(
            RegexFormat::new(
                r"(?P<src_ip>\S+) (?P<dst_ip>\S+)",
                &[("nope".into(), Field::DstPort)]
            )
            .unwrap_err()
            .contains("\"nope\"")
        );
        assert!(
            RegexFormat::new(r"(?P<a>\S+)", &[])
                .unwrap_err()
                .contains("src_ip")
        );
    }
}
