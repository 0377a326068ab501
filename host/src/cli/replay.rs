//! `flowlink replay`: sends the datagrams of captures (pcap, pcapng) or raw
//! datagram files to a collector over UDP, at a fixed rate or as fast as
//! the socket takes them, looping, from several exporter addresses, with
//! NetFlow/IPFIX export times and sequence numbers rewritten so every loop
//! looks like live traffic. For load tests, side-by-side benchmarks and the
//! quick start; `sendmmsg` sends up to [`BATCH`] datagrams per call.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::decode::read_messages;

/// Datagrams per `sendmmsg` call.
const BATCH: usize = 32;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Where to send, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:2055")]
    to: SocketAddr,
    /// Datagrams per second over all exporters; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Times to send the whole input (each exporter sends it once per loop).
    #[arg(long = "loop", default_value_t = 1)]
    loops: u64,
    /// Exporters: source addresses 127.0.0.1, 127.0.0.2, … (loopback
    /// targets only), each sending its own copy of the input.
    #[arg(long, default_value_t = 1)]
    exporters: u8,
    /// Send the bytes exactly as captured (no export time or sequence rewrite).
    #[arg(long)]
    verbatim: bool,
    /// pcap/pcapng captures or raw datagram files, sent in the order given.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The export protocol of a datagram, from its version field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    NetflowV5,
    NetflowV9,
    Ipfix,
    /// Sent as is (sFlow, anything else).
    Other,
}

impl Export {
    fn of(payload: &[u8]) -> Export {
        match payload.get(..2).map(|v| u16::from_be_bytes([v[0], v[1]])) {
            Some(5) if payload.len() >= 24 => Export::NetflowV5,
            Some(9) if payload.len() >= 20 => Export::NetflowV9,
            Some(10) if payload.len() >= 16 => Export::Ipfix,
            _ => Export::Other,
        }
    }

    /// Where the sequence number sits (RFC 3954, RFC 7011, Cisco v5).
    fn sequence_at(self) -> Option<usize> {
        match self {
            Export::NetflowV5 => Some(16),
            Export::NetflowV9 => Some(12),
            Export::Ipfix => Some(8),
            Export::Other => None,
        }
    }
}

fn read_u32(payload: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(payload[at..at + 4].try_into().expect("4 bytes"))
}

fn write_u32(payload: &mut [u8], at: usize, value: u32) {
    payload[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// One exporter's copy of the input and where its sequence numbers are.
struct ExporterStream {
    socket: UdpSocket,
    datagrams: Vec<Vec<u8>>,
    /// Added to every sequence number per loop: the span one pass covers.
    sequence_step: u32,
    original_sequences: Vec<Option<u32>>,
}

impl ExporterStream {
    fn new(source: IpAddr, datagrams: Vec<Vec<u8>>) -> Result<Self> {
        let socket = UdpSocket::bind((source, 0))
            .with_context(|| format!("binding an exporter socket on {source}"))?;
        let original_sequences: Vec<Option<u32>> = datagrams
            .iter()
            .map(|d| Export::of(d).sequence_at().map(|at| read_u32(d, at)))
            .collect();
        let known: Vec<u32> = original_sequences.iter().flatten().copied().collect();
        // One pass advances the sequence by its span, plus one more step of
        // the size of the last advance (v9: 1 per datagram; v5/IPFIX: the
        // records of the last datagram, approximately).
        let sequence_step = match (known.first(), known.last()) {
            (Some(first), Some(last)) => {
                let last_step = known
                    .windows(2)
                    .last()
                    .map_or(1, |w| w[1].wrapping_sub(w[0]).max(1));
                last.wrapping_sub(*first).wrapping_add(last_step)
            }
            _ => 0,
        };
        Ok(ExporterStream {
            socket,
            datagrams,
            sequence_step,
            original_sequences,
        })
    }

    /// Prepares datagram `index` of loop `pass` for sending now.
    fn rewrite(&mut self, index: usize, pass: u64, now: Duration) {
        let datagram = &mut self.datagrams[index];
        let export = Export::of(datagram);
        if let (Some(at), Some(original)) = (export.sequence_at(), self.original_sequences[index]) {
            let shift = self.sequence_step.wrapping_mul(pass as u32);
            write_u32(datagram, at, original.wrapping_add(shift));
        }
        let secs = now.as_secs() as u32;
        match export {
            Export::NetflowV5 => {
                write_u32(datagram, 8, secs);
                write_u32(datagram, 12, now.subsec_nanos());
            }
            Export::NetflowV9 => write_u32(datagram, 8, secs),
            Export::Ipfix => write_u32(datagram, 4, secs),
            Export::Other => {}
        }
    }
}

/// What was sent, for the report.
#[derive(Default)]
struct Sent {
    datagrams: u64,
    bytes: u64,
    errors: u64,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let mut input = Vec::new();
    for file in &args.files {
        let read = read_messages(file, SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_context(|| format!("reading {}", file.display()))?;
        input.extend(read.messages.into_iter().map(|m| m.payload));
    }
    if input.is_empty() {
        bail!("no datagrams in the input files");
    }
    if args.exporters == 0 {
        bail!("--exporters must be at least 1");
    }
    if args.exporters > 1 && !args.to.ip().is_loopback() {
        bail!("--exporters above 1 uses 127.0.0.x sources: the target must be a loopback address");
    }
    let mut streams = (1..=args.exporters)
        .map(|n| {
            let source = match args.to.ip() {
                IpAddr::V4(_) if args.exporters > 1 => IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)),
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            };
            ExporterStream::new(source, input.clone())
        })
        .collect::<Result<Vec<_>>>()?;

    let started = Instant::now();
    let mut sent = Sent::default();
    let per_datagram = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / args.rate as f64));
    for pass in 0..args.loops {
        for chunk_start in (0..input.len()).step_by(BATCH) {
            let chunk = chunk_start..(chunk_start + BATCH).min(input.len());
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            for stream in &mut streams {
                if !args.verbatim {
                    for index in chunk.clone() {
                        stream.rewrite(index, pass, now);
                    }
                }
                send_batch(
                    &stream.socket,
                    args.to,
                    &stream.datagrams[chunk.clone()],
                    &mut sent,
                );
                // Pacing: never ahead of the schedule the rate sets.
                if let Some(each) = per_datagram {
                    let due = each.mul_f64(sent.datagrams as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "sent {} datagrams ({} bytes) from {} exporter(s) to {} in {:.3} s: {:.0} datagrams/s{}",
        sent.datagrams,
        sent.bytes,
        args.exporters,
        args.to,
        elapsed,
        sent.datagrams as f64 / elapsed.max(1e-9),
        if sent.errors > 0 {
            format!(", {} send errors", sent.errors)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Sends `datagrams` with as few `sendmmsg` calls as the kernel allows.
fn send_batch(socket: &UdpSocket, to: SocketAddr, datagrams: &[Vec<u8>], sent: &mut Sent) {
    use std::os::fd::AsRawFd;
    let address = socket2::SockAddr::from(to);
    let mut iovecs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: a zeroed msghdr is valid; the pointers set below
            // outlive the call (they borrow `address` and `iovecs`).
            let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
            header.msg_hdr.msg_name = address.as_ptr() as *mut libc::c_void;
            header.msg_hdr.msg_namelen = address.len();
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            header
        })
        .collect();
    let mut offset = 0;
    while offset < headers.len() {
        // SAFETY: `headers[offset..]` are initialised mmsghdrs whose
        // pointers stay valid for the call.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers[offset..].as_mut_ptr(),
                (headers.len() - offset) as libc::c_uint,
                0,
            )
        };
        if n <= 0 {
            // A full send buffer or an ICMP error from an earlier datagram:
            // count it and skip that datagram.
            sent.errors += 1;
            offset += 1;
            continue;
        }
        for d in &datagrams[offset..offset + n as usize] {
            sent.datagrams += 1;
            sent.bytes += d.len() as u64;
        }
        offset += n as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v9_header(sequence: u32) -> Vec<u8> {
        let mut d = vec![0, 9, 0, 1];
        d.extend_from_slice(&1000u32.to_be_bytes()); // uptime
        d.extend_from_slice(&1_600_000_000u32.to_be_bytes()); // unix secs
        d.extend_from_slice(&sequence.to_be_bytes());
        d.extend_from_slice(&7u32.to_be_bytes()); // source id
        d
    }

    #[test]
    fn loops_continue_the_sequence_and_carry_the_current_time() {
        let input = vec![v9_header(100), v9_header(101), v9_header(102)];
        let mut stream = ExporterStream::new(IpAddr::V4(Ipv4Addr::LOCALHOST), input).unwrap();
        let now = Duration::from_secs(1_800_000_000);
        let sequences: Vec<u32> = (0..2)
            .flat_map(|pass| (0..3).map(move |i| (pass, i)))
            .map(|(pass, i)| {
                stream.rewrite(i, pass, now);
                read_u32(&stream.datagrams[i], 12)
            })
            .collect();
        assert_eq!(sequences, [100, 101, 102, 103, 104, 105]);
        assert_eq!(read_u32(&stream.datagrams[0], 8), 1_800_000_000);
        // The source id (observation domain) is left alone.
        assert_eq!(read_u32(&stream.datagrams[0], 16), 7);
    }

    #[test]
    fn other_protocols_are_sent_as_captured() {
        let sflow = vec![0, 0, 0, 5, 0, 0, 0, 1, 9, 9, 9, 9];
        let mut stream =
            ExporterStream::new(IpAddr::V4(Ipv4Addr::LOCALHOST), vec![sflow.clone()]).unwrap();
        stream.rewrite(0, 3, Duration::from_secs(5));
        assert_eq!(stream.datagrams[0], sflow);
    }
}
