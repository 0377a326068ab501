//! The one walk over a NetFlow v9 or IPFIX message body: sets in order,
//! (options) templates learned, data sets decoded. The two formats differ
//! only in set ids, the options template header, enterprise numbers and
//! withdrawals; [`Dialect`] says which, so the rules (reserved ids,
//! padding, errors) are written once.

use flowlink_flow::Batch;

use super::sets::Sets;
use super::{DataSet, ExportClock, FieldSpec, Scope, Template, TemplateSession};
use crate::ByteReader;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// NetFlow v9 (RFC 3954): template flowset 0, options 1.
    V9,
    /// IPFIX (RFC 7011): template set 2, options 3.
    Ipfix,
}

/// What a set id means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetKind {
    Templates,
    OptionsTemplates,
    Data(u16),
    /// Unassigned below 256: skipped.
    Reserved,
}

impl Dialect {
    fn set_kind(self, id: u16) -> SetKind {
        match (self, id) {
            (Dialect::V9, 0) | (Dialect::Ipfix, 2) => SetKind::Templates,
            (Dialect::V9, 1) | (Dialect::Ipfix, 3) => SetKind::OptionsTemplates,
            (_, 256..) => SetKind::Data(id),
            _ => SetKind::Reserved,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Dialect::V9 => "flowset",
            Dialect::Ipfix => "set",
        }
    }
}

/// Decodes the sets of `body` (the message after its header, which starts
/// at byte `offset`). A set whose length is impossible ends the walk: no
/// later set can be found.
#[allow(clippy::too_many_arguments)]
pub fn decode_sets(
    dialect: Dialect,
    session: &mut TemplateSession,
    scope: Scope,
    clock: ExportClock,
    body: &[u8],
    offset: usize,
    now_ms: u64,
    out: &mut Batch,
) {
    let mut index = 0u32;
    for set in Sets::new(body, offset, dialect.noun()) {
        let (set_id, set_body) = match set {
            Ok(set) => set,
            Err(why) => {
                out.reject(index, why);
                break;
            }
        };
        let learn = |options, session: &mut TemplateSession, out: &mut Batch| {
            TemplateSet {
                dialect,
                options,
                scope,
                now_ms,
                index,
            }
            .learn(session, set_body, out)
        };
        match dialect.set_kind(set_id) {
            SetKind::Templates => learn(false, session, out),
            SetKind::OptionsTemplates => learn(true, session, out),
            SetKind::Reserved => {}
            SetKind::Data(template_id) => session.decode(
                &DataSet {
                    scope,
                    template_id,
                    clock,
                    body: set_body,
                },
                now_ms,
                out,
                &mut index,
            ),
        }
    }
}

/// One (options) template set being learned.
struct TemplateSet {
    dialect: Dialect,
    options: bool,
    scope: Scope,
    now_ms: u64,
    /// The record index rejections are reported at.
    index: u32,
}

/// A template record's header: its id, how many field specifiers follow,
/// how many of them are scope fields.
struct RecordHeader {
    id: u16,
    fields: usize,
    scope_fields: usize,
}

enum Next {
    Record(RecordHeader),
    /// IPFIX: a template (or, with the set's own id, all) withdrawn.
    Withdrawal(u16),
    /// Fewer bytes than a record header, or zeros: set padding.
    End,
    Refused(String),
}

impl TemplateSet {
    fn learn(&self, session: &mut TemplateSession, body: &[u8], out: &mut Batch) {
        // The session's buffer: exporters resend their templates every few
        // datagrams, and a resent template then costs no allocation.
        let mut specs = std::mem::take(&mut session.spec_buffer);
        self.learn_records(session, body, &mut specs, out);
        session.spec_buffer = specs;
    }

    fn learn_records(
        &self,
        session: &mut TemplateSession,
        body: &[u8],
        specs: &mut Vec<FieldSpec>,
        out: &mut Batch,
    ) {
        let mut r = ByteReader::new(body);
        loop {
            let header = match self.next_header(&mut r) {
                Next::Record(header) => header,
                Next::Withdrawal(id) => {
                    if id == 2 || id == 3 {
                        session.withdraw_all(self.scope);
                    } else {
                        session.withdraw(self.scope, id);
                    }
                    continue;
                }
                Next::End => return,
                Next::Refused(why) => {
                    out.reject(self.index, why);
                    return;
                }
            };
            let id = header.id;
            if self.read_fields(&mut r, header.fields, specs).is_none() {
                out.reject(
                    self.index,
                    format!(
                        "template {id}: {} fields do not fit in its {}",
                        header.fields,
                        self.dialect.noun()
                    ),
                );
                return;
            }
            if id < 256 {
                out.reject(
                    self.index,
                    format!("template id {id} is reserved (must be 256 or more)"),
                );
                continue;
            }
            let scope_fields = header.scope_fields as u16;
            if session.refresh(self.scope, id, scope_fields, specs, self.now_ms) {
                continue;
            }
            match Template::new(id, scope_fields, specs, self.now_ms) {
                Ok(template) => session.learn(self.scope, template, self.now_ms, out),
                Err(why) => out.reject(self.index, why),
            }
        }
    }

    fn next_header(&self, r: &mut ByteReader<'_>) -> Next {
        let header_len = match (self.dialect, self.options) {
            (Dialect::V9, true) => 6,
            _ => 4,
        };
        if r.remaining() < header_len {
            return Next::End;
        }
        let id = r.u16().expect("checked");
        let second = usize::from(r.u16().expect("checked"));
        // Padding is zeros; an id of 0 is never a template's.
        if id == 0 && second == 0 {
            return Next::End;
        }
        match (self.dialect, self.options) {
            // IPFIX: a record without fields withdraws (RFC 7011 8.1).
            (Dialect::Ipfix, _) if second == 0 => Next::Withdrawal(id),
            (_, false) => Next::Record(RecordHeader {
                id,
                fields: second,
                scope_fields: 0,
            }),
            // v9: scope and option lengths in bytes, 4 per field.
            (Dialect::V9, true) => {
                let options_len = usize::from(r.u16().expect("checked"));
                let scope_fields = second / 4;
                Next::Record(RecordHeader {
                    id,
                    fields: scope_fields + options_len / 4,
                    // RFC 3954 requires a scope; some exporters send none
                    // and mean the first field.
                    scope_fields: scope_fields.max(1),
                })
            }
            // IPFIX: field count, then scope field count.
            (Dialect::Ipfix, true) => match r.u16() {
                Ok(scope) if scope > 0 => Next::Record(RecordHeader {
                    id,
                    fields: second,
                    scope_fields: usize::from(scope),
                }),
                _ => Next::Refused(format!("options template {id} has no scope field")),
            },
        }
    }

    /// The `count` field specifiers that follow, into `specs`.
    fn read_fields(
        &self,
        r: &mut ByteReader<'_>,
        count: usize,
        specs: &mut Vec<FieldSpec>,
    ) -> Option<()> {
        specs.clear();
        for _ in 0..count {
            let raw_id = r.u16().ok()?;
            let length = r.u16().ok()?;
            // IPFIX: the top bit says an enterprise number follows.
            let (id, enterprise) = if self.dialect == Dialect::Ipfix && raw_id & 0x8000 != 0 {
                (raw_id & 0x7fff, r.u32().ok()?)
            } else {
                (raw_id, 0)
            };
            specs.push(FieldSpec {
                id,
                enterprise,
                length,
            });
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateConfig;

    fn scope() -> Scope {
        Scope {
            exporter: "192.0.2.1".parse().unwrap(),
            domain: 0,
        }
    }

    /// One set: id, length (header included), body; laid out by hand from
    /// RFC 3954 section 5 and RFC 7011 section 3.3.
    fn set(id: u16, body: &[u8]) -> Vec<u8> {
        let mut out = id.to_be_bytes().to_vec();
        out.extend_from_slice(&(body.len() as u16 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn walk(dialect: Dialect, body: &[u8]) -> (TemplateSession, Batch) {
        let mut session = TemplateSession::new(TemplateConfig::default());
        let mut out = Batch::default();
        let clock = ExportClock::SystemInit {
            system_init_ms: None,
        };
        decode_sets(dialect, &mut session, scope(), clock, body, 16, 0, &mut out);
        (session, out)
    }

    #[test]
    fn an_options_template_with_a_reserved_id_is_refused_alike_in_both() {
        // v9 options template 200: scope length 4 (one field), options length 4.
        let v9 = set(1, &[0, 200, 0, 4, 0, 4, 0, 1, 0, 4, 0, 34, 0, 4, 0, 0]);
        // IPFIX options template 200: 2 fields, 1 of them scope.
        let ipfix = set(3, &[0, 200, 0, 2, 0, 1, 0, 149, 0, 4, 0, 34, 0, 4, 0, 0]);
        for (dialect, body) in [(Dialect::V9, v9), (Dialect::Ipfix, ipfix)] {
            let (session, out) = walk(dialect, &body);
            assert_eq!(session.template_count(), 0, "{dialect:?}");
            let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason.as_str()).collect();
            assert_eq!(
                reasons,
                ["template id 200 is reserved (must be 256 or more)"],
                "{dialect:?}"
            );
        }
    }

    #[test]
    fn zero_padding_after_a_template_ends_the_set_quietly() {
        // Template 256 with one field (IE 8, 4 bytes), then 4 bytes of padding.
        let v9 = set(0, &[1, 0, 0, 1, 0, 8, 0, 4, 0, 0, 0, 0]);
        let ipfix = set(2, &[1, 0, 0, 1, 0, 8, 0, 4, 0, 0, 0, 0]);
        for (dialect, body) in [(Dialect::V9, v9), (Dialect::Ipfix, ipfix)] {
            let (session, out) = walk(dialect, &body);
            assert_eq!(session.template_count(), 1, "{dialect:?}");
            assert!(out.rejected.is_empty(), "{dialect:?}: {:?}", out.rejected);
        }
    }

    #[test]
    fn an_ipfix_withdrawal_forgets_the_template() {
        let mut body = set(2, &[1, 0, 0, 1, 0, 8, 0, 4]);
        // Template 256 with field count 0: withdrawn (RFC 7011 section 8.1).
        body.extend(set(2, &[1, 0, 0, 0]));
        let (session, out) = walk(Dialect::Ipfix, &body);
        assert_eq!(session.template_count(), 0);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    }

    #[test]
    fn ipfix_enterprise_fields_take_their_number() {
        // One field: enterprise bit + IE 1, length 4, PEN 29305 (reverse).
        let body = [1, 0, 0, 1, 0x80, 1, 0, 4, 0, 0, 0x72, 0x79];
        let (session, out) = walk(Dialect::Ipfix, &set(2, &body));
        assert_eq!(session.template_count(), 1);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    }
}
