//! The sample through the parser natively, as the component would run it.

use flowlink_plugin_sdk::testing::{Outcome, origin, run};
use {{crate_name}}::{{type_name}};

#[test]
fn every_sample_line_is_a_flow() {
    let sample = include_bytes!("../samples/sample.log");
    let out = run::<{{type_name}}>("{}", origin([192, 0, 2, 1], 514), &[sample]).unwrap();
    let Outcome::Parsed { flows, rejected, .. } = &out[0] else {
        panic!("the sample was refused: {out:?}");
    };
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(flows.len(), 4);
    assert_eq!(flows[0].dst_port, 443);
    assert_eq!(flows[0].bytes, 4380);
}

#[test]
fn a_bad_line_is_rejected_alone() {
    let out = run::<{{type_name}}>("{}", origin([192, 0, 2, 1], 514), &[b"1|allow|tcp\n"]).unwrap();
    let Outcome::Parsed { flows, rejected, .. } = &out[0] else {
        panic!("{out:?}");
    };
    assert!(flows.is_empty());
    assert_eq!(rejected.len(), 1);
}

#[test]
fn an_unknown_property_is_refused_by_name() {
    let err = run::<{{type_name}}>(r#"{"seperator": ";"}"#, origin([0; 4], 0), &[]).unwrap_err();
    assert!(err.contains("seperator"), "{err}");
}
