//! Templates and options as bytes, so a hot swap to a newer build of the
//! parser keeps them (`save-state` / `restore-state`). Versioned by a magic.

use std::net::IpAddr;

use super::{FieldSpec, Scope, ScopeOptions, Template, TemplateKey, TemplateSession};
use crate::ByteReader;

const MAGIC: &[u8; 4] = b"FLT1";

fn put_scope(out: &mut Vec<u8>, scope: &Scope) {
    match scope.exporter {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.extend_from_slice(&scope.domain.to_be_bytes());
}

fn get_scope(r: &mut ByteReader<'_>) -> Result<Scope, String> {
    let exporter = match r.u8().map_err(|e| e.to_string())? {
        4 => IpAddr::from(
            <[u8; 4]>::try_from(r.take(4).map_err(|e| e.to_string())?).expect("4 bytes"),
        ),
        6 => IpAddr::from(
            <[u8; 16]>::try_from(r.take(16).map_err(|e| e.to_string())?).expect("16 bytes"),
        ),
        other => return Err(format!("bad address family {other}")),
    };
    Ok(Scope {
        exporter,
        domain: r.u32().map_err(|e| e.to_string())?,
    })
}

impl TemplateSession {
    pub fn save_state(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.templates.len() as u32).to_be_bytes());
        for (TemplateKey(scope, _), t) in &self.templates {
            put_scope(&mut out, scope);
            out.extend_from_slice(&t.id.to_be_bytes());
            out.extend_from_slice(&t.scope_fields.to_be_bytes());
            out.extend_from_slice(&t.learned_ms.to_be_bytes());
            out.extend_from_slice(&(t.fields.len() as u16).to_be_bytes());
            for (spec, _) in &t.fields {
                out.extend_from_slice(&spec.id.to_be_bytes());
                out.extend_from_slice(&spec.enterprise.to_be_bytes());
                out.extend_from_slice(&spec.length.to_be_bytes());
            }
        }
        out.extend_from_slice(&(self.options.len() as u32).to_be_bytes());
        for (scope, options) in &self.options {
            put_scope(&mut out, scope);
            out.extend_from_slice(&options.sampling_interval.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&options.system_init_ms.map_or(u64::MAX, |v| v).to_be_bytes());
        }
        out
    }

    /// Adds the saved templates and options to what is known (a template
    /// both know: the more recently learned one). All or nothing. Merging
    /// lets the host restore several workers' snapshots into one session
    /// when the number of workers changed between runs.
    pub fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        if state.is_empty() {
            return Ok(());
        }
        let mut r = ByteReader::new(state);
        if r.take(4).map_err(|e| e.to_string())? != MAGIC {
            return Err("not a flowlink template state (bad magic)".to_owned());
        }
        let e = |e: crate::Truncated| format!("template state {e}");
        let mut templates = Vec::new();
        for _ in 0..r.u32().map_err(e)? {
            let scope = get_scope(&mut r)?;
            let id = r.u16().map_err(e)?;
            let scope_fields = r.u16().map_err(e)?;
            let learned_ms = r.u64().map_err(e)?;
            let count = r.u16().map_err(e)?;
            let mut specs = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                specs.push(FieldSpec {
                    id: r.u16().map_err(e)?,
                    enterprise: r.u32().map_err(e)?,
                    length: r.u16().map_err(e)?,
                });
            }
            templates.push((scope, Template::new(id, scope_fields, &specs, learned_ms)?));
        }
        let mut options = Vec::new();
        for _ in 0..r.u32().map_err(e)? {
            let scope = get_scope(&mut r)?;
            let sampling = r.u32().map_err(e)?;
            let init = r.u64().map_err(e)?;
            options.push((
                scope,
                ScopeOptions {
                    sampling_interval: (sampling > 0).then_some(sampling),
                    system_init_ms: (init != u64::MAX).then_some(init),
                },
            ));
        }
        let added = templates
            .iter()
            .filter(|(scope, t)| !self.templates.contains_key(&TemplateKey(*scope, t.id)))
            .count();
        if self.templates.len() + added > self.config.max_templates {
            return Err(format!(
                "saved state holds {} more templates, over max_templates",
                added
            ));
        }
        for (scope, t) in templates {
            match self.templates.get(&TemplateKey(scope, t.id)) {
                // Two snapshots know the template: the newer one wins.
                Some(known) if known.learned_ms > t.learned_ms => {}
                _ => {
                    self.templates.insert(TemplateKey(scope, t.id), t);
                }
            }
        }
        for (scope, o) in options {
            self.options.entry(scope).or_insert(o);
        }
        Ok(())
    }
}
