//! Which field sits in which column: the default v2 format, a custom
//! `${field}` format string, or a header line of the data.

/// Every field AWS defines for VPC flow logs (versions 2 to 8).
pub const KNOWN_FIELDS: [&str; 43] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    // v3
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    // v4
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    // v5
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
    // v7 (ECS)
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
    // v8
    "reject-reason",
    // Names some exports use for the v2 fields.
    "src-addr",
    "dst-addr",
    "log_status",
];

pub const DEFAULT_FORMAT: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} \
     ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";

/// Column of each field the parser reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    pub columns: usize,
    pub srcaddr: Option<usize>,
    pub dstaddr: Option<usize>,
    pub pkt_srcaddr: Option<usize>,
    pub pkt_dstaddr: Option<usize>,
    pub srcport: Option<usize>,
    pub dstport: Option<usize>,
    pub protocol: Option<usize>,
    pub packets: Option<usize>,
    pub bytes: Option<usize>,
    pub start: Option<usize>,
    pub end: Option<usize>,
    pub action: Option<usize>,
    pub log_status: Option<usize>,
    pub tcp_flags: Option<usize>,
}

impl Layout {
    /// From field names in column order; every name must be a VPC field.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut layout = Layout::default();
        for (column, name) in names.into_iter().enumerate() {
            if !KNOWN_FIELDS.contains(&name) {
                return Err(format!("{name:?} is not a VPC flow log field"));
            }
            let slot = match name {
                "srcaddr" | "src-addr" => &mut layout.srcaddr,
                "dstaddr" | "dst-addr" => &mut layout.dstaddr,
                "pkt-srcaddr" => &mut layout.pkt_srcaddr,
                "pkt-dstaddr" => &mut layout.pkt_dstaddr,
                "srcport" => &mut layout.srcport,
                "dstport" => &mut layout.dstport,
                "protocol" => &mut layout.protocol,
                "packets" => &mut layout.packets,
                "bytes" => &mut layout.bytes,
                "start" => &mut layout.start,
                "end" => &mut layout.end,
                "action" => &mut layout.action,
                "log-status" | "log_status" => &mut layout.log_status,
                "tcp-flags" => &mut layout.tcp_flags,
                _ => {
                    layout.columns = column + 1;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(format!("{name:?} appears twice"));
            }
            *slot = Some(column);
            layout.columns = column + 1;
        }
        if layout.columns == 0 {
            return Err("the format names no fields".to_owned());
        }
        let has_addresses = (layout.srcaddr.is_some() && layout.dstaddr.is_some())
            || (layout.pkt_srcaddr.is_some() && layout.pkt_dstaddr.is_some());
        if !has_addresses {
            return Err(
                "the format has neither srcaddr/dstaddr nor pkt-srcaddr/pkt-dstaddr".to_owned(),
            );
        }
        Ok(layout)
    }

    /// A format string as AWS writes it: `${version} ${srcaddr} ...`.
    pub fn from_format_string(format: &str) -> Result<Self, String> {
        let names = format
            .split_whitespace()
            .map(|token| {
                token
                    .strip_prefix("${")
                    .and_then(|t| t.strip_suffix('}'))
                    .ok_or_else(|| format!("{token:?} is not a ${{field}} reference"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_names(names)
    }

    /// A header line (`version account-id ...`) sets the layout, as in
    /// files delivered to S3.
    pub fn from_header(line: &str) -> Option<Self> {
        let first = line.split_whitespace().next()?;
        if !KNOWN_FIELDS.contains(&first) {
            return None;
        }
        Self::from_names(line.split_whitespace()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_custom_and_header_layouts() {
        let default = Layout::from_format_string(DEFAULT_FORMAT).unwrap();
        assert_eq!(
            (default.srcaddr, default.log_status, default.columns),
            (Some(3), Some(13), 14)
        );
        let custom = Layout::from_format_string(
            "${vpc-id} ${pkt-srcaddr} ${pkt-dstaddr} ${srcaddr} ${dstaddr} ${flow-direction} ${ecs-task-id}",
        )
        .unwrap();
        assert_eq!(
            (custom.pkt_srcaddr, custom.dstaddr, custom.columns),
            (Some(1), Some(4), 7)
        );
        let header = Layout::from_header("version srcaddr dstaddr action").unwrap();
        assert_eq!(header.action, Some(3));
        assert!(Layout::from_header("2 123 eni-1 10.0.0.1").is_none());
    }

    #[test]
    fn format_errors_name_the_field() {
        assert!(
            Layout::from_format_string("${srcaddr} ${dstadr}")
                .unwrap_err()
                .contains("dstadr")
        );
        assert!(
            Layout::from_format_string("${srcaddr} dstaddr")
                .unwrap_err()
                .contains("dstaddr")
        );
        assert!(
            Layout::from_format_string("${version}")
                .unwrap_err()
                .contains("neither")
        );
        assert!(
            Layout::from_format_string("${srcaddr} ${srcaddr} ${dstaddr}")
                .unwrap_err()
                .contains("twice")
        );
    }
}
