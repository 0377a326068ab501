//! A native test harness: runs a [`Parser`] over sample messages exactly as
//! the component glue does inside the sandbox (one session, messages in
//! order, a reused output batch, every flow through the packed wire form and
//! back), without building or loading a component. `cargo test` in a plugin
//! project uses it.

use crate::packed::{self, PACKED_FLOW_LEN};
use crate::{Batch, Flow, IpAddr, Origin, Parser, Rejected};

/// What one message produced, as the host would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Parsed {
        flows: Vec<Flow>,
        rejected: Vec<Rejected>,
        skipped: u32,
    },
    /// The parser refused the whole message.
    Failed(String),
}

impl Outcome {
    /// The flows, or an empty list for a refused message.
    pub fn flows(&self) -> &[Flow] {
        match self {
            Outcome::Parsed { flows, .. } => flows,
            Outcome::Failed(_) => &[],
        }
    }
}

/// An origin for test messages: an IPv4 exporter and port, received at 0.
pub fn origin(exporter: [u8; 4], port: u16) -> Origin {
    Origin {
        exporter: IpAddr::V4(u32::from_be_bytes(exporter)),
        port,
        received_ms: 0,
    }
}

/// Opens `P` with `properties` (a JSON object, `{}` for none) and parses
/// `messages` in order in that one session.
pub fn run<P: Parser>(
    properties: &str,
    origin: Origin,
    messages: &[&[u8]],
) -> Result<Vec<Outcome>, String> {
    let mut parser = P::open(properties)?;
    let mut scratch = Batch::default();
    let mut wire = Vec::new();
    let mut outcomes = Vec::with_capacity(messages.len());
    for payload in messages {
        scratch.flows.clear();
        scratch.rejected.clear();
        scratch.skipped = 0;
        match parser.parse(&origin, payload, &mut scratch) {
            Ok(()) => {
                wire.clear();
                for flow in &scratch.flows {
                    packed::pack(flow, &mut wire);
                }
                let flows = wire
                    .chunks_exact(PACKED_FLOW_LEN)
                    .map(|record| {
                        let record: &[u8; PACKED_FLOW_LEN] =
                            record.try_into().expect("chunks of the packed length");
                        packed::unpack(record).map_err(|e| format!("packed record: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                outcomes.push(Outcome::Parsed {
                    flows,
                    rejected: scratch.rejected.clone(),
                    skipped: scratch.skipped,
                });
            }
            Err(reason) => outcomes.push(Outcome::Failed(reason)),
        }
    }
    Ok(outcomes)
}
