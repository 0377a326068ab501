//! `flowlink replay`: sends the datagrams of captures (pcap, pcapng) or raw
//! datagram files to a collector over UDP, at a fixed rate or as fast as
//! the socket takes them, looping, from several exporter addresses, with
//! NetFlow/IPFIX export times and sequence numbers rewritten so every loop
//! looks like live traffic. For load tests, side-by-side benchmarks and the
//! quick start; `sendmmsg` sends up to [`BATCH`] datagrams per call.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::decode::read_messages;

mod synthetic;
use synthetic::Generated;

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
    /// Instead of files: generate a stream in this format whose records are
    /// all different traffic keys, each one packet of 1,000 bytes.
    #[arg(long, value_enum, conflicts_with = "files")]
    generate: Option<Generated>,
    /// With --generate: records (distinct keys) in one pass of the stream.
    #[arg(long, default_value_t = 1_000_000, requires = "generate")]
    keys: u32,
    /// With --generate: records per datagram (default: 30 for v9 and
    /// IPFIX, 10 sFlow samples, what fits in a 1,500-byte MTU).
    #[arg(long, requires = "generate")]
    records_per_datagram: Option<u32>,
    /// Write the input's datagrams to this folder as 0000000.bin, 0000001.bin,
    /// … (as generated or captured) instead of sending them: raw datagram
    /// files for `flowlink-bench parser --datagrams` and the tests. The
    /// folder must be empty or new; the sending options do not apply.
    #[arg(long, value_name = "DIR")]
    save_to: Option<PathBuf>,
    /// pcap/pcapng captures or raw datagram files, sent in the order given.
    #[arg(required_unless_present = "generate")]
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

    /// Which sequence a datagram belongs to: v5 engine type and id, v9
    /// source id, IPFIX observation domain.
    fn domain(self, payload: &[u8]) -> u32 {
        match self {
            Export::NetflowV5 => u32::from(u16::from_be_bytes([payload[20], payload[21]])),
            Export::NetflowV9 => read_u32(payload, 16),
            Export::Ipfix => read_u32(payload, 12),
            Export::Other => 0,
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

/// The datagrams as numbered raw files in `dir` (created if missing).
fn save(datagrams: &[Vec<u8>], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Files of an earlier, longer save would join this one under a glob.
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    if entries.next().is_some() {
        bail!("--save-to {}: the folder is not empty", dir.display());
    }
    for (n, datagram) in datagrams.iter().enumerate() {
        let path = dir.join(format!("{n:07}.bin"));
        std::fs::write(&path, datagram).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("saved {} datagrams to {}", datagrams.len(), dir.display());
    Ok(())
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
    /// Per datagram: its sequence number as captured, and what one pass
    /// of its sequence (protocol and domain) advances it by.
    original_sequences: Vec<Option<(u32, u32)>>,
}

/// Per datagram: its sequence number as captured and what one pass of
/// its sequence (protocol and domain) advances it by; the same for every
/// exporter, so computed once.
fn sequence_plan(datagrams: &[Vec<u8>]) -> Vec<Option<(u32, u32)>> {
    // One pass of a sequence advances it by its span plus the last
    // datagram's own advance: v5 counts flows (the header's count), v9
    // packets (1), IPFIX data records (taken from the last two
    // datagrams of the sequence, as the records are not parsed here).
    struct Span {
        first: u32,
        last: u32,
        advance: u32,
    }
    let mut spans: Vec<((Export, u32), Span)> = Vec::new();
    for d in datagrams {
        let export = Export::of(d);
        let Some(at) = export.sequence_at() else {
            continue;
        };
        let (key, sequence) = ((export, export.domain(d)), read_u32(d, at));
        let own = match export {
            Export::NetflowV5 => u32::from(u16::from_be_bytes([d[2], d[3]])),
            _ => 1,
        };
        match spans.iter_mut().find(|(k, _)| *k == key) {
            Some((_, span)) => {
                if export == Export::Ipfix {
                    span.advance = sequence.wrapping_sub(span.last).max(1);
                } else {
                    span.advance = own;
                }
                span.last = sequence;
            }
            None => spans.push((
                key,
                Span {
                    first: sequence,
                    last: sequence,
                    advance: own,
                },
            )),
        }
    }
    datagrams
        .iter()
        .map(|d| {
            let export = Export::of(d);
            let at = export.sequence_at()?;
            let key = (export, export.domain(d));
            let (_, span) = spans.iter().find(|(k, _)| *k == key)?;
            let step = span
                .last
                .wrapping_sub(span.first)
                .wrapping_add(span.advance);
            Some((read_u32(d, at), step))
        })
        .collect()
}

impl ExporterStream {
    /// `sequences` from [`sequence_plan`] of the same datagrams.
    fn new(
        source: IpAddr,
        datagrams: Vec<Vec<u8>>,
        sequences: Vec<Option<(u32, u32)>>,
    ) -> Result<Self> {
        let socket = UdpSocket::bind((source, 0))
            .with_context(|| format!("binding an exporter socket on {source}"))?;
        Ok(ExporterStream {
            socket,
            datagrams,
            original_sequences: sequences,
        })
    }

    /// Prepares datagram `index` of loop `pass` for sending now.
    fn rewrite(&mut self, index: usize, pass: u64, now: Duration) {
        let datagram = &mut self.datagrams[index];
        let export = Export::of(datagram);
        if let (Some(at), Some((original, step))) =
            (export.sequence_at(), self.original_sequences[index])
        {
            write_u32(
                datagram,
                at,
                original.wrapping_add(step.wrapping_mul(pass as u32)),
            );
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
    first_error: Option<std::io::Error>,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let mut input = match args.generate {
        Some(format) => {
            let per = args
                .records_per_datagram
                .unwrap_or_else(|| format.default_per_datagram());
            if !(1..=synthetic::MAX_PER_DATAGRAM).contains(&per) {
                bail!(
                    "--records-per-datagram must be 1 to {}",
                    synthetic::MAX_PER_DATAGRAM
                );
            }
            synthetic::datagrams(format, args.keys, per)
        }
        None => Vec::new(),
    };
    for file in &args.files {
        let read = read_messages(file, SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_context(|| format!("reading {}", file.display()))?;
        input.extend(read.messages.into_iter().map(|m| m.payload));
    }
    if input.is_empty() {
        bail!("no datagrams in the input (files, or --generate with --keys 0)");
    }
    if let Some(dir) = &args.save_to {
        return save(&input, dir);
    }
    if args.exporters == 0 {
        bail!("--exporters must be at least 1");
    }
    if args.exporters > 1 && !(args.to.is_ipv4() && args.to.ip().is_loopback()) {
        bail!(
            "--exporters above 1 sends from 127.0.0.1, 127.0.0.2, …: the target must be an IPv4 loopback address"
        );
    }
    // A generated stream knows how far a pass moves its sequences; for
    // captures it is inferred.
    let sequences = match args.generate {
        Some(format) => synthetic::sequence_plan(format, &input, args.keys),
        None => sequence_plan(&input),
    };
    let mut streams = (1..=args.exporters)
        .map(|n| {
            let source = match args.to.ip() {
                IpAddr::V4(_) if args.exporters > 1 => IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)),
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            };
            ExporterStream::new(source, input.clone(), sequences.clone())
        })
        .collect::<Result<Vec<_>>>()?;

    let started = Instant::now();
    let mut sent = Sent::default();
    // A low rate sends smaller batches, so pacing stays smooth.
    let batch = if args.rate > 0 {
        (args.rate / 1000).clamp(1, BATCH as u64) as usize
    } else {
        BATCH
    };
    for pass in 0..args.loops {
        for chunk_start in (0..input.len()).step_by(batch) {
            let chunk = chunk_start..(chunk_start + batch).min(input.len());
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
                if args.rate > 0 {
                    let due = Duration::from_secs_f64(sent.datagrams as f64 / args.rate as f64);
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
        match (&sent.first_error, sent.errors) {
            (Some(e), n) => format!(", {n} not sent (first: {e})"),
            (None, _) => String::new(),
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
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Skip the datagram the kernel refused, say why once.
            sent.errors += 1;
            sent.first_error.get_or_insert(error);
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
        let mut stream = ExporterStream::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            input.clone(),
            sequence_plan(&input),
        )
        .unwrap();
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
    fn a_v5_loop_continues_by_the_flows_of_the_last_datagram() {
        // flow_sequence counts flows: 0, 30, 60 with 30, 30 and 18 flows.
        let v5 = |sequence: u32, count: u16| {
            let mut d = vec![0u8; 24];
            d[..2].copy_from_slice(&5u16.to_be_bytes());
            d[2..4].copy_from_slice(&count.to_be_bytes());
            d[16..20].copy_from_slice(&sequence.to_be_bytes());
            d
        };
        let input = vec![v5(0, 30), v5(30, 30), v5(60, 18)];
        let mut stream = ExporterStream::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            input.clone(),
            sequence_plan(&input),
        )
        .unwrap();
        stream.rewrite(0, 1, Duration::ZERO);
        assert_eq!(read_u32(&stream.datagrams[0], 16), 78, "60 + 18: no gap");
    }

    #[test]
    fn each_observation_domain_keeps_its_own_sequence() {
        let ipfix = |domain: u32, sequence: u32| {
            let mut d = vec![0u8; 16];
            d[..2].copy_from_slice(&10u16.to_be_bytes());
            d[8..12].copy_from_slice(&sequence.to_be_bytes());
            d[12..16].copy_from_slice(&domain.to_be_bytes());
            d
        };
        // Domain 1 counts 100, 110, 120; domain 2 counts 5, 7.
        let input = vec![
            ipfix(1, 100),
            ipfix(2, 5),
            ipfix(1, 110),
            ipfix(2, 7),
            ipfix(1, 120),
        ];
        let mut stream = ExporterStream::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            input.clone(),
            sequence_plan(&input),
        )
        .unwrap();
        stream.rewrite(0, 1, Duration::ZERO);
        stream.rewrite(1, 1, Duration::ZERO);
        assert_eq!(read_u32(&stream.datagrams[0], 8), 130, "120 + 10");
        assert_eq!(read_u32(&stream.datagrams[1], 8), 9, "7 + 2");
    }

    #[test]
    fn other_protocols_are_sent_as_captured() {
        let sflow = vec![0, 0, 0, 5, 0, 0, 0, 1, 9, 9, 9, 9];
        let mut stream = ExporterStream::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            vec![sflow.clone()],
            sequence_plan(std::slice::from_ref(&sflow)),
        )
        .unwrap();
        stream.rewrite(0, 3, Duration::from_secs(5));
        assert_eq!(stream.datagrams[0], sflow);
    }
}
