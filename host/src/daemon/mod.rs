//! `flowlink run`: wires connectors → parser workers → aggregator →
//! uploader, reloads the consumers on SIGHUP, and shuts the stages down in
//! that order so nothing in flight is lost.

mod reload;
mod service_manager;
mod signals;

pub use signals::Signals;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::aggregator::{
    Aggregator, DirectionInference, WindowCheckpoints, WindowOwner, WindowSettings,
};
use crate::config::{Config, ConnectorSpec, ConsumerConfig, RelayConfig};
use crate::connector::{self, ConnectorContext, ConnectorHandle};
use crate::metrics::Metrics;
use crate::parser_state::{ParserStateStore, StateSinks};
use crate::pipeline::{
    AggregatorInput, ByteBudget, ParserWorkerPool, ShardRouter, WorkerInput, WorkerSetup,
};
use crate::plugin::{PluginEngine, PluginRegistry, PluginUse, PluginUses, PluginWatcher};
use crate::relay;
use crate::spool::{Spool, SpoolLimits};
use crate::uploader::{PceClient, UploadJob, Uploader};

/// Windows waiting for the uploader. Small: each may hold many flows.
const UPLOAD_QUEUE: usize = 16;
/// Parsed batches waiting for the aggregator.
const AGGREGATOR_QUEUE: usize = 1024;

/// Loads the plugins and checks that every consumer's parser exists.
pub fn load_plugins(config: &Config) -> Result<(Arc<PluginEngine>, Arc<PluginRegistry>)> {
    let engine = PluginEngine::new(Some(config.plugin_cache_dir.clone()))?;
    let builtin = crate::plugin::builtin_plugin_dir();
    let registry = PluginRegistry::load_with_builtin(
        &engine,
        builtin.as_deref(),
        config.plugin_dir.as_deref(),
    )
    .with_context(|| format!("loading plugins (config {})", config.file.display()))?;
    let searched = match (&config.plugin_dir, &builtin) {
        (Some(dir), Some(b)) => format!(
            "plugin_dir {} or the built-in plugins in {}",
            dir.display(),
            b.display()
        ),
        (Some(dir), None) => format!("plugin_dir {} (no built-in plugins found)", dir.display()),
        (None, Some(b)) => format!(
            "the built-in plugins in {} (no plugin_dir set)",
            b.display()
        ),
        (None, None) => format!(
            "no plugin_dir set and no built-in plugins found (looked in {}); run scripts/build-plugins or set plugin_dir",
            crate::plugin::builtin_plugin_candidates()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut missing = Vec::new();
    for (i, consumer) in config.consumers.iter().enumerate() {
        if let Some(plugin) = registry.get(&consumer.parser.plugin) {
            if let Err(why) = plugin.check_pin(consumer.parser.sha256.as_deref()) {
                missing.push(format!("consumers[{i}].parser.sha256: {why}"));
            }
        } else {
            missing.push(format!(
                "consumers[{i}].parser.type: no plugin named {:?} in {searched} (loaded: {})",
                consumer.parser.plugin,
                if registry.names().is_empty() {
                    "none".to_owned()
                } else {
                    registry.names().join(", ")
                }
            ));
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "invalid configuration {}:\n  - {}",
            config.file.display(),
            missing.join("\n  - ")
        );
    }
    Ok((engine, Arc::new(registry)))
}

/// What a hot swap checks a new build against: each consumer's plugin,
/// properties, limits and pin.
fn plugin_uses(consumers: &[ConsumerConfig]) -> Vec<PluginUse> {
    consumers
        .iter()
        .map(|c| PluginUse {
            consumer: c.name.clone(),
            plugin: c.parser.plugin.clone(),
            properties_json: c.parser.properties_json.clone(),
            limits: c.parser.limits,
            sha256: c.parser.sha256.clone(),
        })
        .collect()
}

/// A consumer as it runs: its slot in the pipeline and its connectors.
struct RunningConsumer {
    slot: usize,
    config: ConsumerConfig,
    connectors: Vec<ConnectorHandle>,
}

/// A relay as it runs: its connectors hold the only senders of its task's
/// queue, so the task ends once they have.
struct RunningRelay {
    connectors: Vec<ConnectorHandle>,
    task: tokio::task::JoinHandle<()>,
}

/// What a reload needs to change the running consumers.
struct Running {
    config: Config,
    consumers: Vec<RunningConsumer>,
    setup: Arc<WorkerSetup>,
    worker_inputs: Vec<mpsc::Sender<WorkerInput>>,
    router: ShardRouter,
    aggregator_input: mpsc::Sender<AggregatorInput>,
    metrics: Arc<Metrics>,
    /// What the plugin watcher checks new builds against.
    plugin_uses: Arc<PluginUses>,
    /// Relays start and stop with the daemon; a reload does not change them.
    relays: Vec<RunningRelay>,
    /// Where Kafka connectors with a `state_topic` take parser snapshots.
    state_sinks: Arc<StateSinks>,
}

/// Runs until SIGTERM or SIGINT. `signals` were armed before the
/// configuration was read.
pub async fn run(config: Config, mut signals: Signals) -> Result<()> {
    std::fs::create_dir_all(&config.data_directory).with_context(|| {
        format!(
            "creating data_directory {}",
            config.data_directory.display()
        )
    })?;
    // Compiling plugins takes a while on a cold cache: a stop request then
    // waits for the compilation under way (so no cache file is left half
    // written) and ends the start before anything else is opened.
    tracing::info!("loading plugins");
    let loading = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || load_plugins(&config))
    };
    tokio::pin!(loading);
    let (engine, registry) = tokio::select! {
        loaded = &mut loading => loaded.context("plugin loading task")??,
        name = signals::stop_requested(&mut signals.term, &mut signals.int) => {
            tracing::info!("{name} during start-up: stopping once plugin compilation finishes");
            let _ = loading.await;
            tracing::info!("stopped before start-up completed; nothing was opened");
            return Ok(());
        }
    };
    let metrics = Metrics::new(config.consumers.iter().map(|c| c.name.clone()));
    let metrics_task = crate::metrics_reporter::start(
        metrics.clone(),
        config.metrics_print,
        config.metrics_listen,
    )
    .await?;
    let client = PceClient::new(&config.pce)?;
    let spool = Spool::open(
        &config.data_directory,
        SpoolLimits::from_config(&config),
        metrics.upload.clone(),
    )?;

    // The spool's lock is held: only this process writes here now, so a
    // temp file is what a crash left behind.
    crate::durable_file::sweep_temp_files(&config.data_directory.join("checkpoints"));
    ParserStateStore::new(&config.data_directory).sweep_temp_files();

    let (upload_tx, upload_rx) = mpsc::channel(UPLOAD_QUEUE);
    let uploader = Uploader::new(
        client,
        metrics.clone(),
        spool,
        config.spool_retry,
        config.shutdown_upload,
    );
    let uploader = tokio::spawn(uploader.run(upload_rx));
    // Windows a crash left open go first, under their own batch ids.
    let checkpoints = WindowCheckpoints::new(&config.data_directory);
    let leftovers = {
        let checkpoints = checkpoints.clone();
        tokio::task::spawn_blocking(move || checkpoints.leftovers()).await?
    };
    for (path, batch) in leftovers {
        tracing::info!(
            consumer = %batch.consumer,
            flows = batch.flows.len(),
            batch_id = %batch.batch_id,
            "uploading a window an earlier run left open"
        );
        let job = UploadJob {
            checkpoint: Some(path),
            ..UploadJob::new(batch)
        };
        upload_tx.send(job).await.ok();
    }

    let (parsed_tx, parsed_rx) = mpsc::channel(AGGREGATOR_QUEUE);
    let aggregator = Aggregator::new(
        config.consumers.iter().map(WindowOwner::of).collect(),
        WindowSettings {
            window_len: config.window,
            max_keys: config.aggregation_max_keys,
            direction: DirectionInference::new(config.direction, &config.direction_service_ports),
            checkpoints,
            checkpoint_every: config.checkpoint,
        },
        metrics.clone(),
        upload_tx,
    );
    let aggregator = aggregator
        .spawn(parsed_rx)
        .context("starting the aggregator thread")?;

    // Before the workers start, so no build published in between is missed.
    let uses = PluginUses::new(plugin_uses(&config.consumers));
    // Built-in plugins change with the package, not at run time: only a
    // configured plugin_dir is watched.
    let watcher = match &config.plugin_dir {
        Some(dir) => Some(PluginWatcher::start(
            engine.clone(),
            registry.clone(),
            dir,
            uses.clone(),
        )?),
        None => None,
    };
    let state_sinks = Arc::new(StateSinks::default());
    let setup = Arc::new(WorkerSetup {
        engine,
        registry,
        consumers: config.consumers.clone(),
        metrics: metrics.clone(),
        state_store: ParserStateStore::new(&config.data_directory).with_sinks(state_sinks.clone()),
        snapshot_every: config.state_snapshot,
        workers: config.parser_workers,
        aggregator_budget: ByteBudget::new(config.queue_max_bytes),
        runtime: tokio::runtime::Handle::current(),
        data_directory: config.data_directory.clone(),
        quarantine_max_bytes: config.quarantine_max_bytes,
    });
    let (workers, worker_inputs) = ParserWorkerPool::start(
        setup.clone(),
        config.parser_workers,
        config.queue_capacity,
        parsed_tx.clone(),
    )
    .with_context(|| format!("invalid configuration {}", config.file.display()))?;
    let router = ShardRouter::new(
        worker_inputs.clone(),
        config.queue_max_bytes,
        metrics.clone(),
    );

    let mut running = Running {
        consumers: Vec::new(),
        setup,
        worker_inputs,
        router,
        aggregator_input: parsed_tx,
        metrics: metrics.clone(),
        config: config.clone(),
        plugin_uses: uses,
        relays: Vec::new(),
        state_sinks,
    };
    for (slot, consumer) in config.consumers.iter().enumerate() {
        let connectors = running
            .start_connectors(slot, consumer)
            .await
            .with_context(|| format!("consumers[{slot}] ({:?})", consumer.name))?;
        running.consumers.push(RunningConsumer {
            slot,
            config: consumer.clone(),
            connectors,
        });
    }

    for relay in &config.relays {
        let slot = metrics.register(&relay.name);
        let started = running
            .start_relay(slot, relay)
            .await
            .with_context(|| format!("consumer {:?} (relay)", relay.name))?;
        running.relays.push(started);
    }

    tracing::info!(
        consumers = config.consumers.len(),
        relays = config.relays.len(),
        workers = config.parser_workers,
        window_s = config.window.as_secs(),
        pce = %config.pce.base_url,
        "flowlink running"
    );
    service_manager::notify("READY=1\nSTATUS=collecting");

    loop {
        tokio::select! {
            name = signals::stop_requested(&mut signals.term, &mut signals.int) => {
                tracing::info!("{name} received");
                break;
            }
            _ = signals.hup.recv() => {
                service_manager::notify("RELOADING=1");
                running.reload().await;
                service_manager::notify("READY=1");
            }
        }
    }
    tracing::info!("shutting down: draining parsers, flushing the open window, finishing uploads");
    service_manager::notify("STOPPING=1");

    // Order matters: stop intake, let workers drain their queues, then the
    // aggregator flushes (its input closes when the last worker exits), then
    // the uploader sends what it was handed.
    // Replayable sources (Kafka, CloudWatch, files) stay up until the
    // workers acknowledged what they sent, then record their resume point.
    let Running {
        consumers,
        worker_inputs,
        router,
        aggregator_input,
        relays,
        ..
    } = running;
    let mut relay_tasks = Vec::new();
    let mut connectors: Vec<ConnectorHandle> =
        consumers.into_iter().flat_map(|c| c.connectors).collect();
    for relay in relays {
        connectors.extend(relay.connectors);
        relay_tasks.push(relay.task);
    }
    connectors.iter().for_each(ConnectorHandle::stop);
    drop(watcher);
    drop((worker_inputs, router, aggregator_input));
    let workers = tokio::task::spawn_blocking(move || workers.join());
    for connector in connectors {
        connector.finished().await;
    }
    // Their routers went with the connectors: each relay delivers or
    // writes to disk what it holds, then ends.
    for task in relay_tasks {
        let _ = task.await;
    }
    workers.await?;
    aggregator
        .await
        .context("the aggregator stopped before flushing its windows (see the panic above)")?;
    uploader.await?;
    metrics_task.abort();
    for line in metrics.log_lines() {
        tracing::info!("final counters: {line}");
    }
    Ok(())
}

impl Running {
    /// Starts `consumer`'s connectors feeding pipeline slot `slot`.
    async fn start_connectors(
        &self,
        slot: usize,
        consumer: &ConsumerConfig,
    ) -> Result<Vec<ConnectorHandle>> {
        self.start_connectors_to(&self.router, slot, &consumer.name, &consumer.connectors)
            .await
    }

    /// Starts relay `config` on metrics slot `slot`, then its connectors.
    async fn start_relay(&self, slot: usize, config: &RelayConfig) -> Result<RunningRelay> {
        let handle = relay::start(
            config,
            slot,
            &self.config.data_directory,
            self.metrics.clone(),
            (self.config.queue_capacity, self.config.queue_max_bytes),
            self.config.shutdown_upload,
        )?;
        let connectors = self
            .start_connectors_to(&handle.router, slot, &config.name, &config.connectors)
            .await?;
        Ok(RunningRelay {
            connectors,
            task: handle.task,
        })
    }

    async fn start_connectors_to(
        &self,
        router: &ShardRouter,
        slot: usize,
        name: &str,
        specs: &[ConnectorSpec],
    ) -> Result<Vec<ConnectorHandle>> {
        let mut handles = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let ctx = ConnectorContext {
                consumer: slot,
                consumer_name: name.into(),
                index,
                router: router.clone(),
                metrics: self.metrics.clone(),
                checkpoint_dir: self.config.data_directory.join("checkpoints"),
                state_sinks: self.state_sinks.clone(),
            };
            match connector::start(ctx, spec).await {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    // Those already started stop again: all or nothing.
                    for handle in handles {
                        handle.stop();
                        handle.finished().await;
                    }
                    return Err(e.context(format!("connectors[{index}]")));
                }
            }
        }
        Ok(handles)
    }
}
