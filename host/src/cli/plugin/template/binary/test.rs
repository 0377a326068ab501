//! The sample through the parser natively, as the component would run it.

use flowlink_plugin_sdk::testing::{Outcome, origin, run};
use flowlink_plugin_sdk::{IpAddr, ip_to_std};
use {{crate_name}}::{{type_name}};

#[test]
fn every_sample_record_is_a_flow() {
    let sample = include_bytes!("../samples/sample.bin");
    let out = run::<{{type_name}}>("{}", origin([192, 0, 2, 1], 9999), &[sample]).unwrap();
    let Outcome::Parsed { flows, rejected, .. } = &out[0] else {
        panic!("the sample was refused: {out:?}");
    };
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(flows.len(), 3);
    assert_eq!(ip_to_std(flows[0].src).to_string(), "10.1.0.5");
    assert_eq!(flows[0].dst, IpAddr::V4(0x0a02_0014));
    assert_eq!((flows[0].dst_port, flows[0].protocol, flows[0].bytes), (443, 6, 4380));
}

#[test]
fn a_message_without_the_magic_is_refused() {
    let out = run::<{{type_name}}>("{}", origin([0; 4], 0), &[b"nope"]).unwrap();
    assert!(matches!(out[0], Outcome::Failed(_)), "{out:?}");
}
