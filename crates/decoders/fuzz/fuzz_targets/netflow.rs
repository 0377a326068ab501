//! Any bytes as a NetFlow datagram (v5, v7, v9, IPFIX), decoded in one
//! session as if sent three times, and the session's state saved and restored.
#![no_main]

use flowlink_decoders::netflow::NetflowDecoder;
use flowlink_decoders::template::TemplateConfig;
use flowlink_flow::Batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = TemplateConfig { pending_max_sets: 4, ..TemplateConfig::default() };
    let mut decoder = NetflowDecoder::new(config);
    // Twice from one exporter (the second pass meets the templates the
    // first one taught), once from another.
    for (exporter, now) in [([192, 0, 2, 1], 0), ([192, 0, 2, 1], 1000), ([192, 0, 2, 2], 2000)] {
        let mut batch = Batch::default();
        let _ = decoder.decode(exporter.into(), now, data, &mut batch);
    }
    let state = decoder.templates.save_state();
    let mut restored = NetflowDecoder::default();
    restored.templates.restore_state(&state).expect("own state restores");
    let _ = restored.templates.restore_state(data);
});
