//! The sFlow decoder behind `flowlink:parser@1.0.0` exactly as released
//! (`wit/` is a frozen copy): what a plugin built with the first public SDK
//! looks like to this host. It exports `session.parse` only, so the host
//! hands it lists of messages, never `packed-input` (1.1.0). The tests
//! expect it to load and to decode pmacct's sFlow as tshark does.

use std::cell::RefCell;

use flowlink_decoders::sflow::SflowDecoder;
use flowlink_flow::{Batch, packed};

wit_bindgen::generate!({ world: "flow-parser", path: "wit" });

use exports::flowlink::parser::parser::{Guest, GuestSession, ParserInfo, Session};
use flowlink::parser::types::{Message, Outcome, Parsed, Rejected};

struct Contract10;

impl Guest for Contract10 {
    type Session = SflowSession;

    fn info() -> ParserInfo {
        ParserInfo {
            name: "sflow-contract-1-0".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            formats: vec!["sflow-v5".into()],
        }
    }
}

struct SflowSession(RefCell<SflowDecoder>);

impl GuestSession for SflowSession {
    fn open(_config: String) -> Result<Session, String> {
        Ok(Session::new(SflowSession(RefCell::new(
            SflowDecoder::default(),
        ))))
    }

    fn parse(&self, messages: Vec<Message>) -> Parsed {
        let mut decoder = self.0.borrow_mut();
        let mut parsed = Parsed {
            flows: Vec::new(),
            outcomes: Vec::new(),
            rejected: Vec::new(),
        };
        for (i, message) in messages.iter().enumerate() {
            let mut batch = Batch::default();
            match decoder.decode(message.origin.received_ms, &message.payload, &mut batch) {
                Ok(()) => {
                    for flow in &batch.flows {
                        packed::pack(flow, &mut parsed.flows);
                    }
                    parsed.outcomes.push(Ok(Outcome {
                        flows: batch.flows.len() as u32,
                        skipped: batch.skipped,
                    }));
                    parsed
                        .rejected
                        .extend(batch.rejected.into_iter().map(|r| Rejected {
                            message: i as u32,
                            index: r.index,
                            reason: r.reason,
                        }));
                }
                Err(e) => parsed.outcomes.push(Err(e.to_string())),
            }
        }
        parsed
    }

    fn save_state(&self) -> Vec<u8> {
        Vec::new()
    }

    fn restore_state(&self, _state: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

// Export names hold `:`, which a native link refuses: wasm32 only.
#[cfg(target_arch = "wasm32")]
export!(Contract10);
