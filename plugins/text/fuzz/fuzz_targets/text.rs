//! Any bytes as lines for each of the four modes (and the syslog prefix
//! stripper and timestamp patterns they use).
#![no_main]

use flowlink_plugin_sdk::{Batch, IpAddr, Origin, Parser};
use flowlink_plugin_text::TextParser;
use libfuzzer_sys::fuzz_target;

const CONFIGS: [&str; 5] = [
    r#"{"src_ip":"sip","dst_ip":"dip","dst_port":"dport","protocol":"prot","timestamp":"time","timestamp_format":"mmm dd yyyy HH:MM:SS.sss","strip_syslog_prefix":true}"#,
    r#"{"mode":"delimited","header":true,"src_ip":"s","dst_ip":"d","protocol":"p","timestamp":"t","timestamp_format":"%d/%b/%Y:%H:%M:%S %z"}"#,
    r#"{"mode":"delimited","separator":" ","src_ip":0,"dst_ip":1,"protocol":2,"packets":3,"timestamp":4}"#,
    r#"{"mode":"regex","regex":"(?P<src_ip>\\S+) (?P<dst_ip>\\S+) (?P<protocol>\\w+)(?: (?P<icmp_type>\\d+))?","timestamp_format":"rfc3339"}"#,
    r#"{"mode":"json","src_ip":"a.0","dst_ip":"b.ip","protocol":"p","bytes":"n","timestamp":"t","timestamp_format":"epoch_ms"}"#,
];

const REGEX: usize = 3;

thread_local! {
    static REGEX_PARSER: std::cell::RefCell<TextParser> =
        std::cell::RefCell::new(TextParser::open(CONFIGS[REGEX]).expect("valid"));
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, payload)) = data.split_first() else {
        return;
    };
    let index = usize::from(*selector) % CONFIGS.len();
    let origin = Origin { exporter: IpAddr::V4(0), port: 0, received_ms: 1_795_867_200_000 };
    let mut out = Batch::default();
    if index == REGEX {
        // Compiling the regex per input would be most of the run; the
        // regex mode keeps no state between messages, so one session serves.
        REGEX_PARSER.with(|parser| {
            let _ = parser.borrow_mut().parse(&origin, payload, &mut out);
        });
        return;
    }
    // A fresh session per input keeps runs reproducible (a delimited
    // header is state).
    let mut parser = TextParser::open(CONFIGS[index]).expect("the fuzz configs are valid");
    let _ = parser.parse(&origin, payload, &mut out);
    let _ = parser.restore_state(payload);
});
