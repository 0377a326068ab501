//! SIGHUP: re-read the configuration file and change only what changed.
//!
//! The new file is validated first; an invalid one leaves everything as it
//! runs. Consumers are matched by name:
//! - unchanged: untouched (sockets, queues, sessions, templates, window);
//! - only the connectors changed: the old connectors drain and stop, the
//!   new ones start on the same pipeline slot (sessions and window kept);
//! - the parser changed: each worker moves to a new session after the
//!   messages queued before it, carrying the old session's state over when
//!   the plugin is the same; connectors and window are kept;
//! - removed: connectors drain and stop, the workers finish its queued
//!   messages, then its open window is flushed and uploaded;
//! - added: a new slot, a window, sessions, then its connectors.
//!
//! Settings outside `consumers` are read at start only: a change is named
//! in the log and the running value kept.

use anyhow::{Result, anyhow};
use tokio::sync::oneshot;

use super::{Running, RunningConsumer};
use crate::aggregator::WindowOwner;
use crate::config::{self, Config, ConsumerConfig};
use crate::metrics::ReloadResult;
use crate::pipeline::{AggregatorInput, WorkerInput, open_session};
use crate::plugin::ParserInstance;

/// A consumer that stays, with its new configuration and what changed.
struct Change {
    new: ConsumerConfig,
    connectors: bool,
    parser: bool,
}

impl Running {
    pub(super) async fn reload(&mut self) {
        let result = self.try_reload().await;
        // Even a reload applied in part changed what runs.
        let running: Vec<ConsumerConfig> =
            self.consumers.iter().map(|c| c.config.clone()).collect();
        self.plugin_uses.set(super::plugin_uses(&running));
        let outcome = match &result {
            Ok(None) => ReloadResult::Unchanged,
            Ok(Some(_)) => ReloadResult::Applied,
            Err(_) => ReloadResult::Failed,
        };
        self.metrics.count_reload(outcome);
        match result {
            Ok(None) => tracing::info!(
                file = %self.config.file.display(),
                "SIGHUP: configuration reloaded, nothing changed"
            ),
            Ok(Some(summary)) => tracing::info!(
                file = %self.config.file.display(),
                "SIGHUP: configuration reloaded: {summary}"
            ),
            Err(e) => {
                tracing::error!("SIGHUP: configuration not reloaded, the running one stays: {e:#}")
            }
        }
    }

    /// `Ok(None)`: nothing to do; `Ok(Some(summary))`: applied.
    async fn try_reload(&mut self) -> Result<Option<String>> {
        let file = self.config.file.clone();
        let new = tokio::task::spawn_blocking(move || config::load(&file))
            .await
            .map_err(|e| anyhow!("reading the file: {e}"))??;
        if new.log.level != self.config.log.level {
            match crate::logging::set_level(&new.log.level) {
                Ok(changed) => {
                    if changed {
                        tracing::info!(log_level = %new.log.level, "SIGHUP: log level changed");
                    }
                    // What runs now, so a later reload back to the old level applies.
                    self.config.log.level = new.log.level.clone();
                }
                Err(e) => tracing::warn!("SIGHUP: log_level not applied: {e}"),
            }
        }
        for key in restart_only_changes(&self.config, &new) {
            tracing::warn!(
                "SIGHUP: {key} changed; it takes effect only after a restart, the running value stays"
            );
        }

        let mut changes = Vec::new();
        let mut added = Vec::new();
        for consumer in &new.consumers {
            match self
                .consumers
                .iter()
                .position(|c| c.config.name == consumer.name)
            {
                None => added.push(consumer.clone()),
                Some(at) => {
                    let old = &self.consumers[at].config;
                    let change = Change {
                        new: consumer.clone(),
                        connectors: old.connectors != consumer.connectors,
                        parser: old.parser != consumer.parser,
                    };
                    if old.checkpoints_windows() != consumer.checkpoints_windows() {
                        tracing::warn!(
                            consumer = %consumer.name,
                            "SIGHUP: kafka `commit` changed; it takes effect only after a restart"
                        );
                    }
                    if change.connectors || change.parser {
                        changes.push(change);
                    }
                }
            }
        }
        let removed: Vec<usize> = (0..self.consumers.len())
            .filter(|&at| {
                !new.consumers
                    .iter()
                    .any(|c| c.name == self.consumers[at].config.name)
            })
            .collect();
        if changes.is_empty() && added.is_empty() && removed.is_empty() {
            return Ok(None);
        }
        // While the change is applied, a hot swap must satisfy both the
        // running consumers and the new ones (their pins, their properties).
        let mut both = super::plugin_uses(&self.config.consumers);
        both.extend(super::plugin_uses(&new.consumers));
        self.plugin_uses.set(both);

        // Everything that can refuse is tried before anything changes:
        // each new or changed parser opens its sessions.
        let workers = self.worker_inputs.len();
        let mut new_sessions = Vec::new();
        for config in changes
            .iter()
            .filter(|c| c.parser)
            .map(|c| &c.new)
            .chain(&added)
        {
            new_sessions.push(self.open_sessions(config.clone(), workers).await?);
        }
        let mut new_sessions = new_sessions.into_iter();

        let mut summary = Vec::new();
        // Removed first: their ports may be what an added consumer binds.
        for &at in removed.iter().rev() {
            let consumer = self.consumers.remove(at);
            let name = consumer.config.name.clone();
            self.remove(consumer).await;
            summary.push(format!("removed {name:?} (its window uploaded)"));
        }
        for change in changes {
            let Change {
                new,
                connectors,
                parser,
            } = change;
            let name = new.name.clone();
            let at = self
                .consumers
                .iter()
                .position(|c| c.config.name == name)
                .expect("a changed consumer is running");
            let slot = self.consumers[at].slot;
            if connectors {
                stop_all(std::mem::take(&mut self.consumers[at].connectors)).await;
            }
            if parser {
                let same_plugin = self.consumers[at].config.parser.plugin == new.parser.plugin;
                let sessions = new_sessions.next().expect("opened above");
                for (input, session) in self.worker_inputs.iter().zip(sessions) {
                    let _ = input
                        .send(WorkerInput::ReplaceSession {
                            consumer: slot,
                            session: Box::new(session),
                            carry_state: same_plugin,
                            breaker: new.parser.breaker,
                        })
                        .await;
                }
            }
            if connectors {
                match self.start_connectors(slot, &new).await {
                    Ok(handles) => self.consumers[at].connectors = handles,
                    Err(e) => {
                        // The consumer stays, without intake, until fixed.
                        self.consumers[at].config = new;
                        return Err(e.context(format!(
                            "partly applied (the changes before this one stay): consumer {name:?}: its new connectors did not start"
                        )));
                    }
                }
            }
            self.consumers[at].config = new;
            summary.push(format!(
                "restarted {name:?} ({})",
                match (connectors, parser) {
                    (true, true) => "connectors and parser",
                    (true, false) => "connectors; parser state kept",
                    _ => "parser",
                }
            ));
        }
        for config in added {
            let sessions = new_sessions.next().expect("opened above");
            let name = config.name.clone();
            let slot = self.metrics.register(&name);
            let _ = self
                .aggregator_input
                .send(AggregatorInput::ConsumerAdded {
                    consumer: slot,
                    owner: WindowOwner::of(&config),
                })
                .await;
            for (input, session) in self.worker_inputs.iter().zip(sessions) {
                let _ = input
                    .send(WorkerInput::OpenConsumer {
                        consumer: slot,
                        name: name.as_str().into(),
                        session: Box::new(session),
                        breaker: config.parser.breaker,
                    })
                    .await;
            }
            let connectors = match self.start_connectors(slot, &config).await {
                Ok(handles) => handles,
                Err(e) => {
                    self.remove(RunningConsumer {
                        slot,
                        config,
                        connectors: Vec::new(),
                    })
                    .await;
                    return Err(e.context(format!("partly applied (the changes before this one stay): added consumer {name:?} did not start")));
                }
            };
            self.consumers.push(RunningConsumer {
                slot,
                config,
                connectors,
            });
            summary.push(format!("added {name:?}"));
        }
        self.config.consumers = self.consumers.iter().map(|c| c.config.clone()).collect();
        Ok(Some(summary.join(", ")))
    }

    /// One session per worker for `config`, opened off the async threads;
    /// the error is the plugin's word on the properties.
    async fn open_sessions(
        &self,
        config: ConsumerConfig,
        workers: usize,
    ) -> Result<Vec<ParserInstance>> {
        let setup = self.setup.clone();
        tokio::task::spawn_blocking(move || {
            (0..workers)
                .map(|worker| open_session(&setup, &config, worker))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| anyhow!("opening sessions: {e}"))?
    }

    /// Stops a consumer in order: intake, its queued messages, its window.
    async fn remove(&self, consumer: RunningConsumer) {
        stop_all(consumer.connectors).await;
        let mut drained = Vec::new();
        for input in &self.worker_inputs {
            let (done, finished) = oneshot::channel();
            let _ = input
                .send(WorkerInput::CloseConsumer {
                    consumer: consumer.slot,
                    done,
                })
                .await;
            drained.push(finished);
        }
        for finished in drained {
            let _ = finished.await;
        }
        // After every worker handed over that consumer's last flows, in the
        // same queue: the flush includes them.
        let _ = self
            .aggregator_input
            .send(AggregatorInput::ConsumerRemoved {
                consumer: consumer.slot,
            })
            .await;
    }
}

async fn stop_all(connectors: Vec<crate::connector::ConnectorHandle>) {
    connectors.iter().for_each(|c| c.stop());
    for connector in connectors {
        connector.finished().await;
    }
}

/// Top-level settings that differ, by key: read at start only.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |key: &'static str, same: bool| {
        if !same {
            changed.push(key);
        }
    };
    check("consumers with `relay:` (relays)", old.relays == new.relays);
    check("pce_addr", old.pce.base_url == new.pce.base_url);
    check("org_id", old.pce.org_id == new.pce.org_id);
    check("api_key", old.pce.api_key == new.pce.api_key);
    check("pce_ca_file", old.pce.ca_file == new.pce.ca_file);
    check("pce_insecure", old.pce.insecure == new.pce.insecure);
    check(
        "upload_format",
        old.pce.upload_format == new.pce.upload_format,
    );
    check(
        "aggregation_minutes/aggregation_seconds",
        old.window == new.window,
    );
    check("data_directory", old.data_directory == new.data_directory);
    check(
        "data_directory_size_mb",
        old.spool_max_bytes == new.spool_max_bytes,
    );
    check(
        "file_retention_hours",
        old.file_retention == new.file_retention,
    );
    check(
        "metrics_print_seconds",
        old.metrics_print == new.metrics_print,
    );
    check("metrics_listen", old.metrics_listen == new.metrics_listen);
    check("spool_retry_seconds", old.spool_retry == new.spool_retry);
    check("direction_inference", old.direction == new.direction);
    check(
        "direction_service_ports",
        old.direction_service_ports == new.direction_service_ports,
    );
    check("plugin_dir", old.plugin_dir == new.plugin_dir);
    check(
        "plugin_cache_dir",
        old.plugin_cache_dir == new.plugin_cache_dir,
    );
    check("parser_workers", old.parser_workers == new.parser_workers);
    check("queue_capacity", old.queue_capacity == new.queue_capacity);
    check("queue_max_mb", old.queue_max_bytes == new.queue_max_bytes);
    check(
        "quarantine_mb",
        old.quarantine_max_bytes == new.quarantine_max_bytes,
    );
    check(
        "aggregation_max_keys",
        old.aggregation_max_keys == new.aggregation_max_keys,
    );
    check(
        "state_snapshot_seconds",
        old.state_snapshot == new.state_snapshot,
    );
    check("checkpoint_seconds", old.checkpoint == new.checkpoint);
    check("log_format", old.log.format == new.log.format);
    check(
        "shutdown_upload_seconds",
        old.shutdown_upload == new.shutdown_upload,
    );
    changed
}
