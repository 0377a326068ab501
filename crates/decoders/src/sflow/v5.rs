//! The sFlow v5 datagram: XDR (big-endian, 4-byte aligned) header, then
//! samples, each holding flow records.

use std::net::IpAddr;

use flowlink_flow::{Action, Batch, Flow, ip_from_std};

use super::SflowError;
use crate::ByteReader;
use crate::packet_header::{self, PacketSummary};

/// Samples in one datagram beyond this mean a corrupt header (a 64 KiB
/// datagram cannot hold more than a few hundred).
const MAX_SAMPLES: u32 = 4096;
const MAX_RECORDS: u32 = 1024;

/// Counters a session keeps beyond its flows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SflowStats {
    pub flow_samples: u64,
    pub counter_samples: u64,
    pub other_samples: u64,
}

#[derive(Debug, Default)]
pub struct SflowDecoder {
    pub stats: SflowStats,
}

/// sFlow data format: enterprise (20 bits) and format (12 bits).
fn format(raw: u32) -> (u32, u32) {
    (raw >> 12, raw & 0xfff)
}

fn truncated(what: &str) -> impl Fn(crate::Truncated) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl SflowDecoder {
    /// Decodes one datagram. Each flow's time is `received_ms`: sFlow
    /// carries the agent's uptime only, no wall clock.
    pub fn decode(
        &mut self,
        received_ms: u64,
        payload: &[u8],
        out: &mut Batch,
    ) -> Result<(), SflowError> {
        let mut r = ByteReader::new(payload);
        let too_short = |_| SflowError::TooShort { len: payload.len() };
        let version = r.u32().map_err(too_short)?;
        if version != 5 {
            return Err(SflowError::UnsupportedVersion(version));
        }
        match r.u32().map_err(too_short)? {
            1 => r.skip(4).map_err(too_short)?,
            2 => r.skip(16).map_err(too_short)?,
            other => {
                return Err(SflowError::BadHeader(format!("agent address type {other}")));
            }
        }
        let _sub_agent = r.u32().map_err(too_short)?;
        let _sequence = r.u32().map_err(too_short)?;
        let _uptime = r.u32().map_err(too_short)?;
        let samples = r.u32().map_err(too_short)?;
        if samples > MAX_SAMPLES {
            return Err(SflowError::BadHeader(format!(
                "{samples} samples in one datagram"
            )));
        }
        for index in 0..samples {
            let header = r.u32().and_then(|f| Ok((f, r.u32()?)));
            let Ok((raw_format, length)) = header else {
                out.reject(index, format!("sample {index}: header cut off"));
                return Ok(());
            };
            let Ok(body) = r.take(length as usize) else {
                out.reject(
                    index,
                    format!(
                        "sample {index}: claims {length} bytes, {} left",
                        r.remaining()
                    ),
                );
                return Ok(());
            };
            let result = match format(raw_format) {
                (0, 1) => self.flow_sample(body, false, received_ms, out),
                (0, 3) => self.flow_sample(body, true, received_ms, out),
                (0, 2) | (0, 4) => {
                    self.stats.counter_samples += 1;
                    Ok(())
                }
                _ => {
                    self.stats.other_samples += 1;
                    Ok(())
                }
            };
            if let Err(why) = result {
                out.reject(index, format!("sample {index}: {why}"));
            }
        }
        Ok(())
    }

    fn flow_sample(
        &mut self,
        body: &[u8],
        expanded: bool,
        received_ms: u64,
        out: &mut Batch,
    ) -> Result<(), String> {
        self.stats.flow_samples += 1;
        let mut r = ByteReader::new(body);
        let e = truncated("flow sample");
        let _sequence = r.u32().map_err(&e)?;
        r.skip(if expanded { 8 } else { 4 }).map_err(&e)?; // source id
        let sampling_rate = r.u32().map_err(&e)?;
        let _pool = r.u32().map_err(&e)?;
        let _drops = r.u32().map_err(&e)?;
        r.skip(if expanded { 16 } else { 8 }).map_err(&e)?; // input, output interfaces
        let records = r.u32().map_err(&e)?;
        if records > MAX_RECORDS {
            return Err(format!("{records} records in one sample"));
        }
        let mut packet: Option<PacketSummary> = None;
        let mut header_error = None;
        for _ in 0..records {
            let raw_format = r.u32().map_err(&e)?;
            let length = r.u32().map_err(&e)?;
            let data = r.take(length as usize).map_err(&e)?;
            match format(raw_format) {
                (0, 1) => match raw_packet_header(data) {
                    Ok(summary) => packet = Some(summary),
                    Err(why) => header_error = Some(why),
                },
                // Sampled IPv4/IPv6 records: the agent already decoded the packet.
                (0, 3) if packet.is_none() => packet = sampled_ip(data, 4).ok(),
                (0, 4) if packet.is_none() => packet = sampled_ip(data, 16).ok(),
                _ => {}
            }
        }
        let Some(p) = packet else {
            return Err(header_error
                .unwrap_or("no IP packet header or sampled IP record")
                .to_owned());
        };
        out.flows.push(Flow {
            src: ip_from_std(p.src),
            dst: ip_from_std(p.dst),
            src_port: p.src_port,
            dst_port: p.dst_port,
            protocol: p.protocol,
            packets: 1,
            bytes: u64::from(p.ip_length),
            start_ms: received_ms,
            end_ms: received_ms,
            sampling_interval: sampling_rate.max(1),
            tcp_flags: p.tcp_flags,
            icmp_type: p.icmp_type,
            icmp_code: p.icmp_code,
            icmp_unknown: false,
            action: Action::Unknown,
        });
        Ok(())
    }
}

/// Raw packet header record: protocol, frame length, stripped, header.
fn raw_packet_header(data: &[u8]) -> Result<PacketSummary, &'static str> {
    let mut r = ByteReader::new(data);
    let cut = |_| "raw packet header record cut short";
    let protocol = r.u32().map_err(cut)?;
    let _frame_length = r.u32().map_err(cut)?;
    let _stripped = r.u32().map_err(cut)?;
    let header_length = r.u32().map_err(cut)? as usize;
    let header = r.take(header_length).map_err(cut)?;
    match protocol {
        1 => packet_header::from_ethernet(header),
        11 => packet_header::from_ipv4(header),
        12 => packet_header::from_ipv6(header),
        _ => Err("header protocol is not Ethernet or IP"),
    }
}

/// Sampled IPv4 (address length 4) or IPv6 (16) record.
fn sampled_ip(data: &[u8], address_len: usize) -> Result<PacketSummary, crate::Truncated> {
    let mut r = ByteReader::new(data);
    let length = r.u32()?;
    let protocol = r.u32()? as u8;
    let src = r.take(address_len)?;
    let dst = r.take(address_len)?;
    let ip = |b: &[u8]| -> IpAddr {
        match b.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(b).expect("4 bytes")),
            _ => IpAddr::from(<[u8; 16]>::try_from(b).expect("16 bytes")),
        }
    };
    let src_port = r.u32()? as u16;
    let dst_port = r.u32()? as u16;
    let tcp_flags = r.u32()? as u8;
    // For ICMP the record's port fields carry type and code.
    let icmp = matches!(protocol, 1 | 58);
    let (icmp_type, icmp_code) = if icmp {
        (src_port as u8, dst_port as u8)
    } else {
        (0, 0)
    };
    Ok(PacketSummary {
        src: ip(src),
        dst: ip(dst),
        protocol,
        src_port: if icmp { 0 } else { src_port },
        dst_port: if icmp { 0 } else { dst_port },
        tcp_flags,
        icmp_type,
        icmp_code,
        ip_length: length,
    })
}
