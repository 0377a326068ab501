//! Glue between a plain-Rust [`Parser`] and the generated component
//! exports: converts origins, runs the parser over each message of a batch
//! (a list of messages, or since contract 1.1.0 one buffer of payloads),
//! packs the flows.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::exports::flowlink::parser::packed_input::Guest as PackedInputGuest;
use crate::bindings::exports::flowlink::parser::parser::{
    Guest, GuestSession, ParserInfo as WitInfo, Session, SessionBorrow,
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
    /// Bytes of packed flows the last call returned: the next call's
    /// output starts at that size instead of growing (and copying) to it.
    last_output: usize,
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

fn origin(o: &wit::Origin) -> Origin {
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
            last_output: 0,
        };
        Ok(Session::new(SessionCell(RefCell::new(state))))
    }

    fn parse(&self, messages: Vec<wit::Message>) -> wit::Parsed {
        let count = messages.len();
        self.parse_each(
            count,
            messages
                .iter()
                .map(|m| (origin(&m.origin), m.payload.as_slice())),
        )
    }

    fn save_state(&self) -> Vec<u8> {
        self.0.borrow().parser.save_state()
    }

    fn restore_state(&self, state: Vec<u8>) -> Result<(), String> {
        self.0.borrow_mut().parser.restore_state(&state)
    }
}

impl<P: Parser> SessionCell<P> {
    /// Runs the parser over `count` messages in order, packing their flows.
    fn parse_each<'a>(
        &self,
        count: usize,
        messages: impl Iterator<Item = (Origin, &'a [u8])>,
    ) -> wit::Parsed {
        let mut state = self.0.borrow_mut();
        let SessionState {
            parser,
            scratch,
            last_output,
        } = &mut *state;
        let mut parsed = wit::Parsed {
            flows: Vec::with_capacity(*last_output),
            outcomes: Vec::with_capacity(count),
            rejected: Vec::new(),
        };
        for (i, (origin, payload)) in messages.enumerate() {
            scratch.flows.clear();
            scratch.rejected.clear();
            scratch.skipped = 0;
            match parser.parse(&origin, payload, scratch) {
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
        *last_output = parsed.flows.len();
        parsed
    }
}

impl<P: Parser> PackedInputGuest for Component<P> {
    fn parse_packed(
        session: SessionBorrow<'_>,
        origins: Vec<wit::Origin>,
        payloads: Vec<u8>,
        ends: Vec<u32>,
    ) -> wit::Parsed {
        let cell: &SessionCell<P> = session.get();
        if let Err(why) = check_ends(origins.len(), &ends, payloads.len()) {
            // The host's mistake, not the data's: every message says so.
            return wit::Parsed {
                flows: Vec::new(),
                outcomes: origins.iter().map(|_| Err(why.clone())).collect(),
                rejected: Vec::new(),
            };
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let messages = origins
            .iter()
            .zip(starts.zip(&ends))
            .map(|(o, (start, &end))| (origin(o), &payloads[start as usize..end as usize]));
        cell.parse_each(origins.len(), messages)
    }
}

/// `ends` as the contract defines it: one per message, never decreasing,
/// the last at the end of the payloads.
fn check_ends(messages: usize, ends: &[u32], payloads: usize) -> Result<(), String> {
    if ends.len() != messages {
        return Err(format!(
            "{} payload ends for {messages} messages",
            ends.len()
        ));
    }
    if ends.windows(2).any(|w| w[0] > w[1]) {
        return Err("payload ends decrease".into());
    }
    match ends.last() {
        Some(&last) if last as usize != payloads => Err(format!(
            "payload ends stop at {last}, the payloads are {payloads} bytes"
        )),
        None if payloads != 0 => Err(format!("{payloads} bytes of payloads for no message")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_ends;

    #[test]
    fn payload_ends_are_checked_as_the_contract_defines_them() {
        assert_eq!(check_ends(3, &[4, 4, 10], 10), Ok(()));
        assert_eq!(check_ends(0, &[], 0), Ok(()));
        assert_eq!(check_ends(1, &[0], 0), Ok(()), "an empty payload");
        assert!(check_ends(2, &[4], 4).is_err(), "one end short");
        assert!(check_ends(2, &[5, 4], 4).is_err(), "decreasing");
        assert!(
            check_ends(2, &[2, 4], 6).is_err(),
            "bytes past the last end"
        );
        assert!(check_ends(0, &[], 3).is_err(), "bytes for no message");
    }
}
