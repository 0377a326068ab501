//! The set (v9: flowset) framing shared by NetFlow v9 and IPFIX: a 2-byte
//! id, a 2-byte length that counts its own 4-byte header, the body.

use crate::ByteReader;

/// Walks the sets of a message body. Yields `Err` (once, then stops) for a
/// length that is below the header size or runs past the end: after that
/// no later set can be found.
pub struct Sets<'a> {
    reader: ByteReader<'a>,
    /// Offset of `body` in the message, for error positions.
    offset: usize,
    /// "flowset" (v9) or "set" (IPFIX), for errors.
    noun: &'static str,
    done: bool,
}

impl<'a> Sets<'a> {
    pub fn new(body: &'a [u8], offset: usize, noun: &'static str) -> Self {
        Sets {
            reader: ByteReader::new(body),
            offset,
            noun,
            done: false,
        }
    }
}

impl<'a> Iterator for Sets<'a> {
    type Item = Result<(u16, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer than a set header left: padding, or the end.
        if self.done || self.reader.remaining() < 4 {
            return None;
        }
        let at = self.offset + self.reader.position();
        let id = self.reader.u16().expect("checked");
        let length = usize::from(self.reader.u16().expect("checked"));
        let noun = self.noun;
        if length < 4 {
            self.done = true;
            return Some(Err(format!(
                "{noun} at byte {at} has length {length}, less than its own header"
            )));
        }
        let left = self.reader.remaining() + 4;
        match self.reader.take(length - 4) {
            Ok(body) => Some(Ok((id, body))),
            Err(_) => {
                self.done = true;
                Some(Err(format!(
                    "{noun} {id} at byte {at} claims {length} bytes, {left} are left"
                )))
            }
        }
    }
}
