//! `flowlink run`: wires connectors → parser workers → aggregator →
//! uploader, and shuts them down in that order so nothing in flight is lost.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::aggregator::{Aggregator, DirectionInference};
use crate::config::Config;
use crate::connector::{self, ConnectorContext, ConnectorHandle};
use crate::metrics::Metrics;
use crate::pipeline::{ParserWorkerPool, ShardRouter, WorkerSetup};
use crate::plugin::{PluginEngine, PluginRegistry, PluginUse, PluginWatcher};
use crate::spool::Spool;
use crate::uploader::{PceClient, Uploader};

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
        if registry.get(&consumer.parser.plugin).is_none() {
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

pub async fn run(config: Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_directory).with_context(|| {
        format!(
            "creating data_directory {}",
            config.data_directory.display()
        )
    })?;
    let (engine, registry) = load_plugins(&config)?;
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
        config.spool_limits(),
        metrics.upload.clone(),
    )?;

    let (upload_tx, upload_rx) = mpsc::channel(UPLOAD_QUEUE);
    let uploader = Uploader::new(client, metrics.clone(), spool, config.spool_retry);
    let uploader = tokio::spawn(uploader.run(upload_rx));

    let (parsed_tx, parsed_rx) = mpsc::channel(AGGREGATOR_QUEUE);
    let aggregator = Aggregator::new(
        config.consumers.iter().map(|c| c.name.clone()).collect(),
        config.window,
        config.aggregation_max_keys,
        DirectionInference::new(config.direction, &config.direction_service_ports),
        metrics.clone(),
        upload_tx,
    );
    let aggregator = tokio::spawn(aggregator.run(parsed_rx));

    // Before the workers start, so no build published in between is missed.
    let uses = config
        .consumers
        .iter()
        .map(|c| PluginUse {
            consumer: c.name.clone(),
            plugin: c.parser.plugin.clone(),
            properties_json: c.parser.properties_json.clone(),
            limits: c.parser.limits,
        })
        .collect();
    // Built-in plugins change with the package, not at run time: only a
    // configured plugin_dir is watched.
    let watcher = match &config.plugin_dir {
        Some(dir) => Some(PluginWatcher::start(
            engine.clone(),
            registry.clone(),
            dir,
            uses,
        )?),
        None => None,
    };
    let setup = Arc::new(WorkerSetup {
        engine,
        registry,
        consumers: config.consumers.clone(),
        metrics: metrics.clone(),
    });
    let (workers, worker_inputs) = ParserWorkerPool::start(
        setup,
        config.parser_workers,
        config.queue_capacity,
        parsed_tx,
    )
    .with_context(|| format!("invalid configuration {}", config.file.display()))?;
    let router = ShardRouter::new(worker_inputs, metrics.clone());

    let mut connectors = Vec::new();
    for (consumer_index, consumer) in config.consumers.iter().enumerate() {
        for (index, spec) in consumer.connectors.iter().enumerate() {
            let ctx = ConnectorContext {
                consumer: consumer_index,
                consumer_name: consumer.name.as_str().into(),
                index,
                router: router.clone(),
                metrics: metrics.clone(),
                checkpoint_dir: config.data_directory.join("checkpoints"),
            };
            let handle = connector::start(ctx, spec).await.with_context(|| {
                format!(
                    "consumers[{consumer_index}].connectors[{index}] ({:?})",
                    consumer.name
                )
            })?;
            connectors.push(handle);
        }
    }
    drop(router);

    tracing::info!(
        consumers = config.consumers.len(),
        workers = config.parser_workers,
        window_s = config.window.as_secs(),
        pce = %config.pce.base_url,
        "flowlink running"
    );

    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down: draining parsers, flushing the open window, finishing uploads");

    // Order matters: stop intake, let workers drain their queues, then the
    // aggregator flushes (its input closes when the last worker exits), then
    // the uploader sends what it was handed.
    // Replayable sources (Kafka, CloudWatch, files) stay up until the
    // workers acknowledged what they sent, then record their resume point.
    connectors.iter().for_each(ConnectorHandle::stop);
    drop(watcher);
    let workers = tokio::task::spawn_blocking(move || workers.join());
    for connector in connectors {
        connector.finished().await;
    }
    workers.await?;
    aggregator.await?;
    uploader.await?;
    metrics_task.abort();
    for line in metrics.log_lines() {
        tracing::info!("final counters: {line}");
    }
    Ok(())
}

async fn wait_for_shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}
