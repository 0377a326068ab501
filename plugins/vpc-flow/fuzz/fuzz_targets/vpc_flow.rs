//! Any bytes as VPC flow log lines, in the default format and a custom
//! one; header lines in the data switch the format.
#![no_main]

use flowlink_plugin_sdk::{Batch, IpAddr, Origin, Parser};
use flowlink_plugin_vpc_flow::VpcFlowParser;
use libfuzzer_sys::fuzz_target;

const CONFIGS: [&str; 2] = [
    "{}",
    r#"{"format":"${version} ${vpc-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${pkt-dstaddr} ${protocol} ${tcp-flags} ${action} ${log-status}","addresses":"packet"}"#,
];

fuzz_target!(|data: &[u8]| {
    let Some((selector, payload)) = data.split_first() else {
        return;
    };
    let mut parser = VpcFlowParser::open(CONFIGS[usize::from(*selector) % 2]).expect("valid");
    let origin = Origin { exporter: IpAddr::V4(0), port: 0, received_ms: 0 };
    let mut out = Batch::default();
    let _ = parser.parse(&origin, payload, &mut out);
});
