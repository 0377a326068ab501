//! `flowlink-bench kafka --brokers HOST:PORT`: the Kafka connector's
//! consume path against a running broker. Produces `--messages` VPC flow
//! records to a fresh topic, then consumes them twice: with a bare rdkafka
//! consumer configured as the connector's (offsets stored per message), and
//! with the connector itself (raw messages, receipts, in-order offset
//! stores) feeding a stand-in worker that acknowledges at once, or holds
//! the receipts `--hold-ms` as the aggregator does between checkpoints.
//! Parsing is measured on its own by `flowlink-bench text`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::mpsc;

use flowlink::config::{ConnectorSpec, KafkaProperties, KafkaStartOffset, StringList};
use flowlink::connector::{self, ConnectorContext};
use flowlink::metrics::Metrics;
use flowlink::pipeline::{ShardRouter, WorkerInput};

#[derive(clap::Args)]
pub struct KafkaArgs {
    /// Bootstrap broker, host:port.
    #[arg(long)]
    brokers: String,
    /// Messages to produce and consume.
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Partitions of the bench topic.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// The stand-in worker holds receipts and lets them go every this many
    /// ms, as the aggregator does at each window checkpoint
    /// (`checkpoint_seconds`); 0 acknowledges each message at once.
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
}

pub fn run(args: KafkaArgs) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: KafkaArgs) -> Result<()> {
    let topic = format!("flowlink-bench-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let created = admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                args.partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .context("creating the bench topic")?;
    for result in created {
        if let Err((name, code)) = result {
            bail!("creating topic {name}: {code}");
        }
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let payloads: Vec<String> = (0..args.messages).map(super::text::vpc_line).collect();
    let bytes: usize = payloads.iter().map(String::len).sum();
    let started = Instant::now();
    let mut in_flight = Vec::with_capacity(10_000);
    for payload in &payloads {
        in_flight.push(producer.send_result(FutureRecord::<(), str>::to(&topic).payload(payload)));
        if in_flight.len() == 10_000 {
            for delivery in in_flight.drain(..) {
                delivery.map_err(|(e, _)| e)?.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for delivery in in_flight {
        delivery.map_err(|(e, _)| e)?.await?.map_err(|(e, _)| e)?;
    }
    let produce = started.elapsed();

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("{topic}-group"))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let mut received = 0usize;
    let mut started = None;
    while received < args.messages {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("no message for 30 s")??;
        started.get_or_insert_with(Instant::now);
        std::hint::black_box(message.payload().map(<[u8]>::to_vec));
        consumer.store_offset(message.topic(), message.partition(), message.offset())?;
        received += 1;
    }
    let consume = started.map_or(Duration::ZERO, |s| s.elapsed());
    drop(consumer);
    let connector = through_connector(&args, &topic).await?;

    println!(
        "flowlink-bench kafka: {} messages ({:.0} bytes each) on {} partition(s), broker {}",
        args.messages,
        bytes as f64 / args.messages as f64,
        args.partitions,
        args.brokers
    );
    println!(
        "produce            : {:>10.0} messages/s",
        args.messages as f64 / produce.as_secs_f64()
    );
    println!(
        "consume + store    : {:>10.0} messages/s ({:.1} MB/s)",
        args.messages as f64 / consume.as_secs_f64(),
        bytes as f64 / consume.as_secs_f64() / 1e6
    );
    println!(
        "kafka connector    : {:>10.0} messages/s ({:.1} MB/s), receipts held {} ms",
        args.messages as f64 / connector.as_secs_f64(),
        bytes as f64 / connector.as_secs_f64() / 1e6,
        args.hold_ms
    );
    Ok(())
}

/// The connector with everything but parsing: its messages go to one
/// queue whose reader acknowledges them as a parser worker would.
async fn through_connector(args: &KafkaArgs, topic: &str) -> Result<Duration> {
    let metrics = Metrics::new(["bench".to_owned()]);
    let (tx, mut rx) = mpsc::channel(8192);
    let checkpoint_dir =
        std::env::temp_dir().join(format!("flowlink-bench-kafka-{}", std::process::id()));
    let ctx = ConnectorContext {
        consumer: 0,
        consumer_name: "bench".into(),
        index: 0,
        router: ShardRouter::new(vec![tx], usize::MAX, metrics.clone()),
        metrics,
        checkpoint_dir: checkpoint_dir.clone(),
        state_sinks: Default::default(),
    };
    let spec = ConnectorSpec::Kafka(KafkaProperties {
        brokers: StringList::Text(args.brokers.clone()),
        topics: Some(StringList::List(vec![topic.to_owned()])),
        topic_pattern: None,
        group_id: Some(format!("{topic}-connector")),
        start_offset: Some(KafkaStartOffset::Earliest),
        properties: None,
        state_topic: None,
        commit: None,
    });
    let handle = connector::start(ctx, &spec).await?;
    let mut received = 0;
    let mut started = None;
    let hold = Duration::from_millis(args.hold_ms);
    let mut held = Vec::new();
    let mut released = Instant::now();
    while received < args.messages {
        let input = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .context("no message from the connector for 30 s")?;
        if let Some(WorkerInput::Message(message, _)) = input {
            started.get_or_insert_with(Instant::now);
            std::hint::black_box(message.payload.len());
            held.extend(message.ack);
            if released.elapsed() >= hold {
                held.drain(..).for_each(|ack| ack.done());
                released = Instant::now();
            }
            received += 1;
        }
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    held.drain(..).for_each(|ack| ack.done());
    handle.stop();
    drop(rx);
    handle.finished().await;
    let _ = std::fs::remove_dir_all(checkpoint_dir);
    Ok(elapsed)
}
