//! The template engine shared by NetFlow v9 and IPFIX: templates scoped by
//! exporter, observation domain (v9 source id) and template id; options
//! state (sampling, system init time) per scope; data that arrived before
//! its template held in a bounded buffer.

pub mod field;
mod pending;
pub mod record;
#[cfg(test)]
mod section_tests;
mod sets;
mod state;
#[cfg(test)]
mod tests;
pub mod walker;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use foldhash::fast::RandomState;

use flowlink_flow::Batch;

pub use field::{FieldAction, FieldSpec, REVERSE_PEN, VARIABLE_LENGTH};
use pending::PendingSets;
pub use record::{ExportClock, RecordFields};

/// Where templates live: one exporter's observation domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scope {
    pub exporter: IpAddr,
    /// IPFIX observation domain id, NetFlow v9 source id.
    pub domain: u32,
}

/// A template's key in the session: its scope and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TemplateKey(Scope, u16);

// Both keys are hashed as whole 128-bit words, not field by field: the
// hasher gathers small integers in a `u128` shifted by a variable amount,
// which in the wasm32 components is a call to a compiler helper per field,
// and a template lookup per data set cost more than anything but the
// records themselves.
impl Hash for Scope {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash_with(0, state);
    }
}

impl Hash for TemplateKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_with(self.1, state);
    }
}

impl Scope {
    fn hash_with<H: Hasher>(&self, id: u16, state: &mut H) {
        let words = |hi: u64, lo: u64| u128::from(hi) << 64 | u128::from(lo);
        let domain_and_id = u64::from(self.domain) << 16 | u64::from(id);
        match self.exporter {
            IpAddr::V4(v4) => state.write_u128(words(u64::from(v4.to_bits()), domain_and_id)),
            IpAddr::V6(v6) => {
                state.write_u128(u128::from_ne_bytes(v6.octets()));
                state.write_u128(u128::from(domain_and_id));
            }
        }
    }
}

/// Limits and timeouts; all from the parser's properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateConfig {
    /// A template not refreshed for this long is forgotten (0 = never).
    pub template_timeout_ms: u64,
    /// Data sets kept per scope while their template is unknown.
    pub pending_max_sets: usize,
    /// How long such a data set waits for its template.
    pub pending_timeout_ms: u64,
    /// Templates one session keeps at most, over all exporters: a bound
    /// on the memory a stream of made-up template ids can take.
    pub max_templates: usize,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        TemplateConfig {
            template_timeout_ms: 30 * 60 * 1000,
            pending_max_sets: 64,
            pending_timeout_ms: 60 * 1000,
            max_templates: 10_000,
        }
    }
}

/// `parser.properties` of the template-based parsers (netflow, ipfix).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateProperties {
    template_timeout_seconds: Option<u64>,
    pending_max_sets: Option<usize>,
    pending_timeout_seconds: Option<u64>,
    max_templates: Option<usize>,
}

impl TemplateConfig {
    /// From a parser's properties JSON: `template_timeout_seconds` (default
    /// 1800, 0 = never), `pending_max_sets` (64), `pending_timeout_seconds`
    /// (60), `max_templates` (10000).
    pub fn from_properties(json: &str) -> Result<TemplateConfig, String> {
        let p: TemplateProperties =
            serde_json::from_str(json).map_err(|e| format!("parser properties: {e}"))?;
        let defaults = TemplateConfig::default();
        let pending_max_sets = p.pending_max_sets.unwrap_or(defaults.pending_max_sets);
        if pending_max_sets > 100_000 {
            return Err(format!(
                "parser properties: pending_max_sets {pending_max_sets} is over 100000"
            ));
        }
        Ok(TemplateConfig {
            template_timeout_ms: p
                .template_timeout_seconds
                .map_or(defaults.template_timeout_ms, |s| s * 1000),
            pending_max_sets,
            pending_timeout_ms: p
                .pending_timeout_seconds
                .map_or(defaults.pending_timeout_ms, |s| s * 1000),
            max_templates: p.max_templates.unwrap_or(defaults.max_templates),
        })
    }
}

/// A learned template, its fields already classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub id: u16,
    /// Scope fields of an options template; 0 for data templates.
    pub scope_fields: u16,
    pub fields: Vec<(FieldSpec, FieldAction)>,
    /// Bytes of the shortest possible record (variable fields count 1).
    pub min_record_len: usize,
    pub has_variable_fields: bool,
    /// Without variable-length fields: where each field that means
    /// something sits in a record (ignored ones left out), so a record is
    /// read without walking every field's length. Empty otherwise.
    placed: Vec<PlacedField>,
    /// Carries RFC 5103 reverse counters: one record may be two flows.
    pub biflow: bool,
    pub learned_ms: u64,
}

/// A field of a fixed-length template at its place in the record.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PlacedField {
    start: u32,
    end: u32,
    action: FieldAction,
}

impl Template {
    pub fn new(
        id: u16,
        scope_fields: u16,
        specs: &[FieldSpec],
        learned_ms: u64,
    ) -> Result<Template, String> {
        let mut min_record_len = 0usize;
        let mut has_variable_fields = false;
        for spec in specs {
            if spec.length == VARIABLE_LENGTH {
                has_variable_fields = true;
                min_record_len += 1;
            } else {
                min_record_len += usize::from(spec.length);
            }
        }
        if min_record_len == 0 {
            return Err(format!("template {id} describes records of 0 bytes"));
        }
        let fields: Vec<(FieldSpec, FieldAction)> =
            specs.iter().map(|s| (*s, FieldAction::of(*s))).collect();
        let biflow = fields
            .iter()
            .any(|(_, a)| matches!(a, FieldAction::ReverseOctets | FieldAction::ReversePackets));
        let mut placed = Vec::new();
        if !has_variable_fields {
            let mut start = 0u32;
            for (spec, action) in &fields {
                let end = start + u32::from(spec.length);
                if *action != FieldAction::Ignore {
                    placed.push(PlacedField {
                        start,
                        end,
                        action: *action,
                    });
                }
                start = end;
            }
        }
        Ok(Template {
            id,
            scope_fields,
            fields,
            min_record_len,
            has_variable_fields,
            placed,
            biflow,
            learned_ms,
        })
    }

    /// Whether this template has exactly these fields.
    pub fn describes(&self, scope_fields: u16, specs: &[FieldSpec]) -> bool {
        self.scope_fields == scope_fields
            && self.fields.len() == specs.len()
            && self
                .fields
                .iter()
                .zip(specs)
                .all(|((known, _), spec)| known == spec)
    }

    pub fn is_options(&self) -> bool {
        self.scope_fields > 0
    }
}

/// What options records told us about one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeOptions {
    pub sampling_interval: Option<u32>,
    pub system_init_ms: Option<u64>,
}

/// Per-session template state of a v9/IPFIX parser.
#[derive(Debug, Default)]
pub struct TemplateSession {
    pub config: TemplateConfig,
    // foldhash: several times faster than SipHash on these small keys and
    // still seeded per process, so exporters cannot aim at collisions.
    templates: HashMap<TemplateKey, Template, RandomState>,
    options: HashMap<Scope, ScopeOptions, RandomState>,
    pending: PendingSets,
    /// The walker's buffer for a template's field specifiers.
    spec_buffer: Vec<FieldSpec>,
}

/// A data set as it arrived: enough to decode it later.
#[derive(Debug, Clone)]
pub struct DataSet<'a> {
    pub scope: Scope,
    pub template_id: u16,
    pub clock: ExportClock,
    pub body: &'a [u8],
}

impl TemplateSession {
    pub fn new(config: TemplateConfig) -> Self {
        TemplateSession {
            config,
            ..Default::default()
        }
    }

    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    pub fn options(&self, scope: &Scope) -> ScopeOptions {
        self.options.get(scope).copied().unwrap_or_default()
    }

    /// A template sent again unchanged (exporters resend theirs every few
    /// datagrams) only has its time renewed: no new template is built.
    /// `false` when the session does not hold it as described, or when
    /// data sets are waiting (a restored snapshot can bring a template in
    /// without decoding what waits for it): [`TemplateSession::learn`]
    /// then decodes them.
    pub fn refresh(
        &mut self,
        scope: Scope,
        id: u16,
        scope_fields: u16,
        specs: &[FieldSpec],
        now_ms: u64,
    ) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        match self.templates.get_mut(&TemplateKey(scope, id)) {
            Some(known) if known.describes(scope_fields, specs) => {
                known.learned_ms = now_ms;
                true
            }
            _ => false,
        }
    }

    /// Adds or replaces a template, then decodes any data that waited for it.
    pub fn learn(&mut self, scope: Scope, template: Template, now_ms: u64, out: &mut Batch) {
        let id = template.id;
        let known = self.templates.contains_key(&TemplateKey(scope, id));
        if !known && self.templates.len() >= self.config.max_templates {
            out.reject(
                0,
                format!(
                    "template {id} from {} (domain {}) ignored: the session holds max_templates ({})",
                    scope.exporter, scope.domain, self.config.max_templates
                ),
            );
            return;
        }
        self.templates.insert(TemplateKey(scope, id), template);
        for waiting in self.pending.take(scope, id) {
            let set = DataSet {
                scope,
                template_id: id,
                clock: waiting.clock,
                body: &waiting.body,
            };
            let mut index = 0;
            self.decode(&set, now_ms, out, &mut index);
        }
    }

    /// IPFIX template withdrawal (RFC 7011 §8.1).
    pub fn withdraw(&mut self, scope: Scope, id: u16) {
        self.templates.remove(&TemplateKey(scope, id));
    }

    /// IPFIX "withdraw all templates" of a scope.
    pub fn withdraw_all(&mut self, scope: Scope) {
        self.templates.retain(|TemplateKey(s, _), _| *s != scope);
    }

    /// Drops data that waited too long for its template, as rejects.
    pub fn expire_pending(&mut self, now_ms: u64, out: &mut Batch) {
        let timeout = self.config.pending_timeout_ms;
        for dropped in self.pending.expire(now_ms, timeout) {
            out.reject(
                0,
                format!(
                    "data set for template {} from {} (domain {}) dropped: no template within {} s",
                    dropped.template_id,
                    dropped.scope.exporter,
                    dropped.scope.domain,
                    timeout / 1000
                ),
            );
        }
    }

    /// Decodes a data set, or keeps it until its template arrives.
    /// `index` numbers the records of the message, for rejects.
    pub fn decode(&mut self, set: &DataSet<'_>, now_ms: u64, out: &mut Batch, index: &mut u32) {
        let key = TemplateKey(set.scope, set.template_id);
        let timeout_ms = self.config.template_timeout_ms;
        let live = |t: &Template| timeout_ms == 0 || now_ms <= t.learned_ms + timeout_ms;
        // One lookup on the common path: a known, live template.
        let found = self.templates.get(&key);
        let Some(template) = found.filter(|t| live(t)) else {
            if found.is_some() {
                self.templates.remove(&key);
            }
            if let Some(dropped) = self.pending.hold(
                set.scope,
                set.template_id,
                set.clock,
                set.body,
                now_ms,
                self.config.pending_max_sets,
            ) {
                out.reject(
                    *index,
                    format!(
                        "data set for template {} dropped: more than {} sets waiting for templates from {}",
                        dropped.template_id, self.config.pending_max_sets, dropped.scope.exporter
                    ),
                );
            }
            return;
        };
        if template.is_options() {
            let learned = decode_options(template, set.body);
            let options = self.options.entry(set.scope).or_default();
            if let Some(rate) = learned.sampling_interval {
                options.sampling_interval = Some(rate);
            }
            if let Some(init) = learned.system_init_ms {
                options.system_init_ms = Some(init);
            }
            return;
        }
        // Most exporters send no options: then no second lookup.
        let options = if self.options.is_empty() {
            ScopeOptions::default()
        } else {
            self.options.get(&set.scope).copied().unwrap_or_default()
        };
        let clock = match set.clock {
            ExportClock::SystemInit { system_init_ms } => ExportClock::SystemInit {
                system_init_ms: system_init_ms.or(options.system_init_ms),
            },
            uptime => uptime,
        };
        decode_records(
            template,
            set.body,
            clock,
            options.sampling_interval,
            out,
            index,
        );
    }
}

/// Walks the records of a set. A fixed-length record is read only when
/// the set holds all of it (its fields' places lie inside it by
/// construction); a variable-length field is bounds-checked as it is
/// read, so a lying length ends the set with a reject, never a panic.
fn for_each_record(
    template: &Template,
    body: &[u8],
    mut record: impl FnMut(&mut RecordFields),
) -> Result<(), String> {
    let mut pos = 0usize;
    // Fewer bytes left than the shortest record: padding (RFC 7011 §3.3.1).
    while body.len() - pos >= template.min_record_len {
        let mut fields = RecordFields::default();
        if template.has_variable_fields {
            pos = read_walking(template, body, pos, &mut fields)?;
        } else {
            let bytes = &body[pos..pos + template.min_record_len];
            for field in &template.placed {
                fields.apply(
                    field.action,
                    &bytes[field.start as usize..field.end as usize],
                );
            }
            pos += template.min_record_len;
        }
        // One call site: the closure stays inlined into the loop.
        record(&mut fields);
    }
    Ok(())
}

/// Reads the record at `pos` of a template with variable-length fields,
/// each field's length found as it goes; returns where the next begins.
fn read_walking<'a>(
    template: &Template,
    body: &'a [u8],
    mut pos: usize,
    fields: &mut RecordFields<'a>,
) -> Result<usize, String> {
    for (spec, action) in &template.fields {
        let len = if spec.length == VARIABLE_LENGTH {
            let first = *body
                .get(pos)
                .ok_or("variable-length field runs past the set")?;
            pos += 1;
            if first < 255 {
                usize::from(first)
            } else {
                let long = body
                    .get(pos..pos + 2)
                    .ok_or("variable-length field runs past the set")?;
                pos += 2;
                usize::from(u16::from_be_bytes([long[0], long[1]]))
            }
        } else {
            usize::from(spec.length)
        };
        let value = body.get(pos..pos + len).ok_or_else(|| {
            format!(
                "field {} ({len} bytes) runs past the end of the set",
                spec.id
            )
        })?;
        fields.apply(*action, value);
        pos += len;
    }
    Ok(pos)
}

fn decode_records(
    template: &Template,
    body: &[u8],
    clock: ExportClock,
    scope_sampling: Option<u32>,
    out: &mut Batch,
    index: &mut u32,
) {
    let mut rejects = Vec::new();
    let walked = for_each_record(template, body, |fields| {
        let sampling = fields.sampling_rate().or(scope_sampling).unwrap_or(1);
        if let Err(why) = fields.into_flows(clock, sampling, template.biflow, &mut out.flows) {
            rejects.push((*index, format!("template {}: {why}", template.id)));
        }
        *index += 1;
    });
    for (at, why) in rejects {
        out.reject(at, why);
    }
    if let Err(why) = walked {
        out.reject(
            *index,
            format!("template {}: record {}: {why}", template.id, *index),
        );
    }
}

fn decode_options(template: &Template, body: &[u8]) -> ScopeOptions {
    let mut learned = ScopeOptions::default();
    let _ = for_each_record(template, body, |fields| {
        if let Some(rate) = fields.sampling_rate() {
            learned.sampling_interval = Some(rate);
        }
        if let Some(init) = fields.system_init_ms {
            learned.system_init_ms = Some(init);
        }
    });
    learned
}
