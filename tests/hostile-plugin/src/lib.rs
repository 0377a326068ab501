//! A parser that misbehaves on command, for the sandbox tests. The first
//! bytes of a message pick the misbehaviour; anything else is decoded as
//! NetFlow v5, so the tests can show that good traffic still flows after
//! each fault.
//!
//! - `SPIN`: loops forever (the deadline must stop it)
//! - `HOG`: allocates and touches 1 GiB (the memory cap must stop it)
//! - `PANIC`: panics (a trap)
//! - `FLOOD` + u32 big-endian N: returns N records for a tiny message (the
//!   host's record cap must refuse it)
//! - `ESCAPE PATH PORT`: tries to read the file PATH and list `/`, the
//!   environment, the arguments, and a TCP connection to 127.0.0.1:PORT,
//!   and refuses the message with what it got (the sandbox must have
//!   granted nothing; the test makes sure each would work unsandboxed)
//!
//! Anything else goes to the real NetFlow decoder (v5, v9, IPFIX) with its
//! templates, saved and restored like the `netflow` plugin's: so a test can
//! show that a fault on one exporter costs no other exporter's templates.

use flowlink_decoders::netflow::NetflowDecoder;
use flowlink_decoders::template::TemplateConfig;
use flowlink_plugin_sdk::{Batch, Flow, IpAddr, Origin, Parser, ParserInfo, ip_to_std};

pub struct HostileParser {
    decoder: NetflowDecoder,
}

impl Parser for HostileParser {
    fn info() -> ParserInfo {
        ParserInfo::new(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            &["netflow-v5", "misbehaviour"],
        )
    }

    fn open(_config: &str) -> Result<Self, String> {
        Ok(HostileParser {
            decoder: NetflowDecoder::new(TemplateConfig::from_properties("{}")?),
        })
    }

    fn save_state(&self) -> Vec<u8> {
        self.decoder.templates.save_state()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.decoder.templates.restore_state(state)
    }

    fn parse(&mut self, origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
        if payload.starts_with(b"SPIN") {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        if payload.starts_with(b"HOG") {
            let hog = vec![1u8; 1 << 30];
            return Err(format!(
                "allocated {} bytes",
                std::hint::black_box(&hog).len()
            ));
        }
        if let Some(rest) = payload.strip_prefix(b"ESCAPE ") {
            let rest = String::from_utf8_lossy(rest);
            let (path, port) = rest.trim().rsplit_once(' ').ok_or("ESCAPE PATH PORT")?;
            let port = port.parse().map_err(|_| "ESCAPE PATH PORT")?;
            return Err(escape_attempts(path, port));
        }
        if payload.starts_with(b"PANIC") {
            panic!("hostile plugin panics on purpose");
        }
        if let Some(count) = payload.strip_prefix(b"FLOOD") {
            let count = u32::from_be_bytes(
                count
                    .get(..4)
                    .ok_or("FLOOD needs a count")?
                    .try_into()
                    .unwrap(),
            );
            let flow = Flow {
                src: IpAddr::V4(0x0a00_0001),
                dst: IpAddr::V4(0x0a00_0002),
                src_port: 1,
                dst_port: 2,
                protocol: 17,
                packets: 1,
                bytes: 1,
                ..Flow::default()
            };
            out.flows = vec![flow; count as usize];
            return Ok(());
        }
        self.decoder
            .decode(ip_to_std(origin.exporter), origin.received_ms, payload, out)
            .map_err(|e| e.to_string())
    }
}

/// What a plugin gets when it reaches outside: `fs=… env=… args=… net=…`.
fn escape_attempts(path: &str, port: u16) -> String {
    let file = match std::fs::read_to_string(path) {
        Ok(text) => format!("read({text})"),
        Err(e) => format!("denied({:?})", e.kind()),
    };
    let root = match std::fs::read_dir("/") {
        Ok(entries) => format!("listed({})", entries.count()),
        Err(e) => format!("denied({:?})", e.kind()),
    };
    let env = std::env::vars().count();
    let args = std::env::args().count();
    // Built with `net-probe` only (build/test-plugins/hostile-net.wasm): a
    // component that imports wasi:sockets is refused at load.
    #[cfg(feature = "net-probe")]
    let net = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => "connected".to_owned(),
        Err(e) => format!("denied({:?})", e.kind()),
    };
    #[cfg(not(feature = "net-probe"))]
    let net = format!("not-built(port {port})");
    format!("escape attempts: file={file} root={root} env={env} args={args} net={net}")
}

flowlink_plugin_sdk::export_parser!(HostileParser);
