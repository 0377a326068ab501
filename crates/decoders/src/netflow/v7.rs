//! NetFlow v7 (Catalyst switches): the v5 header, up to 28 records of 52
//! bytes whose first 40 bytes are laid out as in v5.

use flowlink_flow::Batch;

use super::DatagramError;
use super::v5::{Layout, decode_fixed};

pub const V7: Layout = Layout {
    name: "v7",
    record_len: 52,
    max_records: 28,
};

pub fn decode(payload: &[u8], out: &mut Batch) -> Result<(), DatagramError> {
    decode_fixed(payload, V7, out)
}
