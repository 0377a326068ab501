//! IPFIX messages with a valid header around fuzzed sets, so the fuzzer
//! spends its time in template and data set decoding.
#![no_main]

use flowlink_decoders::ipfix;
use flowlink_decoders::template::TemplateSession;
use flowlink_flow::Batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|sets: &[u8]| {
    if sets.len() > 65_000 {
        return;
    }
    let mut session = TemplateSession::default();
    let mut message = vec![0, 10];
    message.extend_from_slice(&((16 + sets.len()) as u16).to_be_bytes());
    message.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    message.extend_from_slice(sets);
    for now in [0, 1000] {
        let mut batch = Batch::default();
        let _ = ipfix::decode(&mut session, [192, 0, 2, 1].into(), now, &message, &mut batch);
    }
});
