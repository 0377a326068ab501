//! Glue between a plain-Rust [`Parser`] and the generated component
//! exports: converts origins, runs the parser over each message of a batch,
//! packs the flows.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::exports::flowlink::parser::parser::{
    Guest, GuestSession, ParserInfo as WitInfo, Session,
};
use crate::bindings::flowlink::parser::types::{self as wit};
use crate::{Batch, IpAddr, Origin, Parser, packed};

/// The exported component for parser `P`. Use it through [`crate::export_parser!`].
pub struct Component<P>(PhantomData<P>);

/// One session resource: the parser value behind the handle the host holds.
/// The component model gives `&self`; a `RefCell` is enough because a
/// component instance is single-threaded and never re-entered.
pub struct SessionCell<P>(RefCell<SessionState<P>>);

/// The parser and a scratch batch whose buffers live across messages.
pub struct SessionState<P> {
    parser: P,
    scratch: Batch,
}

impl<P: Parser> Guest for Component<P> {
    type Session = SessionCell<P>;

    fn info() -> WitInfo {
        let info = P::info();
        WitInfo {
            name: info.name,
            version: info.version,
            formats: info.formats,
        }
    }
}

fn origin(o: wit::Origin) -> Origin {
    Origin {
        exporter: match o.exporter {
            wit::IpAddr::V4(v4) => IpAddr::V4(v4),
            wit::IpAddr::V6(v6) => IpAddr::V6(v6),
        },
        port: o.port,
        received_ms: o.received_ms,
    }
}

impl<P: Parser> GuestSession for SessionCell<P> {
    fn open(config: String) -> Result<Session, String> {
        crate::log::install_panic_hook();
        let parser = P::open(&config)?;
        let state = SessionState {
            parser,
            scratch: Batch::default(),
        };
        Ok(Session::new(SessionCell(RefCell::new(state))))
    }

    fn parse(&self, messages: Vec<wit::Message>) -> wit::Parsed {
        let mut state = self.0.borrow_mut();
        let SessionState { parser, scratch } = &mut *state;
        let mut parsed = wit::Parsed {
            flows: Vec::new(),
            outcomes: Vec::with_capacity(messages.len()),
            rejected: Vec::new(),
        };
        for (i, message) in messages.into_iter().enumerate() {
            scratch.flows.clear();
            scratch.rejected.clear();
            scratch.skipped = 0;
            match parser.parse(&origin(message.origin), &message.payload, scratch) {
                Ok(()) => {
                    parsed
                        .flows
                        .reserve(scratch.flows.len() * packed::PACKED_FLOW_LEN);
                    for flow in &scratch.flows {
                        packed::pack(flow, &mut parsed.flows);
                    }
                    parsed.outcomes.push(Ok(wit::Outcome {
                        flows: scratch.flows.len() as u32,
                        skipped: scratch.skipped,
                    }));
                    parsed
                        .rejected
                        .extend(scratch.rejected.drain(..).map(|r| wit::Rejected {
                            message: i as u32,
                            index: r.index,
                            reason: r.reason,
                        }));
                }
                Err(reason) => parsed.outcomes.push(Err(reason)),
            }
        }
        parsed
    }

    fn save_state(&self) -> Vec<u8> {
        self.0.borrow().parser.save_state()
    }

    fn restore_state(&self, state: Vec<u8>) -> Result<(), String> {
        self.0.borrow_mut().parser.restore_state(&state)
    }
}
