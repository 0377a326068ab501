//! Any bytes as sFlow v5 datagrams, plus the packet-header walker alone.
#![no_main]

use flowlink_decoders::sflow::{SflowDecoder, packet_header};
use flowlink_flow::Batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = SflowDecoder::default();
    let mut batch = Batch::default();
    let _ = decoder.decode(0, data, &mut batch);
    let _ = packet_header::from_ethernet(data);
    let _ = packet_header::from_ip(data);
});
