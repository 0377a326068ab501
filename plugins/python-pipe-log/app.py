"""pipe-log-py: the pipe-separated firewall log of `flowlink plugin new
--kind text`, parsed in Python. It proves the contract is the WIT, not Rust:
built with componentize-py against wit/parser.wit, loaded by the same host,
its records packed by hand into the contract's 80-byte layout.

A line: epoch_seconds|action|protocol|src|src_port|dst|dst_port|packets|bytes

componentize-py takes the `parser` interface's functions from this module and
its `session` resource from the module named after the interface (parser.py).
"""

import ipaddress
import struct

from wit_world import exports
from wit_world.exports import parser

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
ACTIONS = {"allow": 1, "accept": 1, "permit": 1, "deny": 2, "drop": 2, "reject": 2, "block": 2}
# wit/parser.wit, `parsed.flows`: families, protocol, tcp flags, icmp type and
# code, action, flags (bit 0: no ICMP type/code in the format), ports,
# sampling, addresses, packets, bytes, start and end (ms), little-endian.
PACKED = struct.Struct("<BBBBBBBBHHI16s16sQQQQ")
assert PACKED.size == 80


def address(text):
    ip = ipaddress.ip_address(text.strip())
    return (4 if ip.version == 4 else 6), ip.packed.ljust(16, b"\0")


def number(text, what, limit):
    value = int(text)
    if not 0 <= value <= limit:
        raise ValueError(f"{text!r} is not a {what}")
    return value


def record(line, separator):
    fields = line.split(separator)
    if len(fields) != 9:
        raise ValueError(f"{len(fields)} fields, expected 9")
    time, action, protocol, src, src_port, dst, dst_port, packets, octets = fields
    src_family, src_raw = address(src)
    dst_family, dst_raw = address(dst)
    proto = (
        number(protocol, "protocol", 255)
        if protocol.strip().isdigit()
        else PROTOCOLS[protocol.strip().lower()]
    )
    ms = number(time, "time", 2**53) * 1000
    return PACKED.pack(
        src_family, dst_family, proto, 0, 0, 0, ACTIONS[action.strip().lower()], 1,
        number(src_port, "port", 65535), number(dst_port, "port", 65535), 1,
        src_raw, dst_raw,
        number(packets, "count", 2**64 - 1), number(octets, "count", 2**64 - 1), ms, ms,
    )


class Parser(exports.Parser):
    def info(self):
        return parser.ParserInfo(name="pipe-log-py", version="0.1.0", formats=["pipe-log"])

    def describe(self):
        """Only in the build against a newer minor of the contract
        (scripts/build-plugins adds `describe` to a copy of the WIT at 1.2.0):
        a function a 1.1.0 host never calls."""
        return "pipe-separated firewall log"
