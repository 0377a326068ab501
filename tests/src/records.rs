//! Text flow records for the connector tests, and the totals the PCE
//! emulator must end up with for them.

use super::process::Totals;

/// A VPC flow log record (default v2 format), accepted TCP to port 443
/// from 10.`net`.0.`host`, with `packets` and `bytes`.
pub fn vpc_record(net: u8, host: u8, packets: u64, bytes: u64) -> String {
    format!(
        "2 123456789012 eni-0a1b2c3d 10.{net}.0.{host} 172.16.0.10 40000 443 6 {packets} {bytes} 1795867200 1795867260 ACCEPT OK"
    )
}

/// A `key=value` firewall line: UDP to port 53 from 10.`net`.0.`host`.
pub fn kv_record(net: u8, host: u8, packets: u64, bytes: u64) -> String {
    format!(
        "action=allow sip=10.{net}.0.{host} sport=40000 dip=172.16.0.53 dport=53 prot=udp pkts={packets} bytes={bytes}"
    )
}

/// `parser.properties` for [`kv_record`] lines, as a YAML flow mapping.
pub const KV_PROPERTIES: &str = "properties: { src_ip: sip, src_port: sport, dst_ip: dip, dst_port: dport, protocol: prot, packets: pkts, bytes: bytes, action: action }";

/// What the emulator shows for records made by `make(net, host, packets, bytes)`:
/// one connection per record.
pub fn expected_totals(
    records: &[(u8, u8, u64, u64)],
    dst: &str,
    port: u16,
    protocol: u8,
) -> Totals {
    let mut totals = Totals::new();
    for (net, host, packets, bytes) in records {
        let t = totals
            .entry((format!("10.{net}.0.{host}"), dst.to_owned(), port, protocol))
            .or_insert((0, 0, 0));
        t.0 += 1;
        t.1 += packets;
        t.2 += bytes;
    }
    totals
}
