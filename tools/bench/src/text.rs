//! `flowlink-bench text`: lines per second on one core through the `text`
//! component (each mode) and the `vpc-flow` component, with many lines per
//! message (Kafka messages, TCP reads, file chunks) and one line per
//! message (CloudWatch events, UDP syslog).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{measure, parse_pass};
use flowlink::plugin::{
    IpAddr, LoadedPlugin, Message, Origin, ParserInstance, PluginEngine, PluginRegistry,
    SandboxLimits,
};

#[derive(clap::Args)]
pub struct TextArgs {
    #[arg(long, env = "FLOWLINK_PLUGIN_DIR", default_value = "build/plugins")]
    plugin_dir: PathBuf,
    /// Seconds to run each measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Lines per message in the "many lines" case.
    #[arg(long, default_value_t = 100)]
    lines: usize,
}

/// One benchmark case: a plugin, its properties, and line `i`.
struct Case {
    name: &'static str,
    plugin: &'static str,
    properties: &'static str,
    line: fn(usize) -> String,
}

const CASES: [Case; 5] = [
    Case {
        name: "text kv (syslog line)",
        plugin: "text",
        properties: r#"{"src_ip":"sip","src_port":"sport","dst_ip":"dip","dst_port":"dport","protocol":"prot","packets":"pkts","bytes":"bytes","action":"action","timestamp":"time","timestamp_format":"epoch"}"#,
        line: |i| {
            format!(
                "<134>Nov 28 12:00:00 fw01 filterlog: time=1795867200 action=allow sip=10.{}.{}.{} sport={} dip=172.16.0.53 dport=53 prot=udp pkts=3 bytes=300",
                i % 200,
                (i / 200) % 250,
                i % 250,
                1024 + i % 60000
            )
        },
    },
    Case {
        name: "text delimited (CSV)",
        plugin: "text",
        properties: r#"{"mode":"delimited","src_ip":0,"src_port":1,"dst_ip":2,"dst_port":3,"protocol":4,"packets":5,"bytes":6,"action":7,"timestamp":8}"#,
        line: |i| {
            format!(
                "10.{}.{}.{},{},172.16.0.53,53,udp,3,300,accept,1795867200",
                i % 200,
                (i / 200) % 250,
                i % 250,
                1024 + i % 60000
            )
        },
    },
    Case {
        name: "text regex",
        plugin: "text",
        properties: r#"{"mode":"regex","regex":"^(?P<action>\\w+) (?P<protocol>\\w+) (?P<src_ip>[0-9.]+):(?P<src_port>\\d+) -> (?P<dst_ip>[0-9.]+):(?P<dst_port>\\d+) pkts=(?P<packets>\\d+) bytes=(?P<bytes>\\d+)$"}"#,
        line: |i| {
            format!(
                "allow udp 10.{}.{}.{}:{} -> 172.16.0.53:53 pkts=3 bytes=300",
                i % 200,
                (i / 200) % 250,
                i % 250,
                1024 + i % 60000
            )
        },
    },
    Case {
        name: "text json",
        plugin: "text",
        properties: r#"{"mode":"json","src_ip":"src.ip","src_port":"src.port","dst_ip":"dst.ip","dst_port":"dst.port","protocol":"proto","packets":"pkts","bytes":"bytes","timestamp":"ts"}"#,
        line: |i| {
            format!(
                r#"{{"ts":1795867200,"src":{{"ip":"10.{}.{}.{}","port":{}}},"dst":{{"ip":"172.16.0.53","port":53}},"proto":"udp","pkts":3,"bytes":300}}"#,
                i % 200,
                (i / 200) % 250,
                i % 250,
                1024 + i % 60000
            )
        },
    },
    Case {
        name: "vpc-flow (v2 default format)",
        plugin: "vpc-flow",
        properties: "{}",
        line: vpc_line,
    },
];

/// VPC flow log record `i` (default format): a distinct source per record.
pub(super) fn vpc_line(i: usize) -> String {
    format!(
        "2 123456789012 eni-0a1b2c3d4e5f60718 10.{}.{}.{} 172.16.0.10 {} 443 6 20 4249 1795867200 1795867260 ACCEPT OK",
        i % 200,
        (i / 200) % 250,
        i % 250,
        1024 + i % 60000
    )
}

pub fn run(args: TextArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.seconds);
    let engine = PluginEngine::new(None)?;
    let registry = PluginRegistry::load_dir(&engine, &args.plugin_dir)?;
    println!(
        "flowlink-bench text: one parser session (one core), {:.1} s per measurement",
        args.seconds
    );
    println!(
        "{:<30} {:>22} {:>22}",
        "",
        format!("{} lines/message", args.lines),
        "1 line/message"
    );
    for case in &CASES {
        let plugin = registry.get(case.plugin).with_context(|| {
            format!(
                "no plugin {:?} in {}",
                case.plugin,
                args.plugin_dir.display()
            )
        })?;
        let many = lines_per_second(&engine, &plugin, case, args.lines, budget)?;
        let one = lines_per_second(&engine, &plugin, case, 1, budget)?;
        println!(
            "{:<30} {:>16.0} lines/s {:>16.0} lines/s",
            case.name, many, one
        );
    }
    Ok(())
}

fn lines_per_second(
    engine: &Arc<PluginEngine>,
    plugin: &Arc<LoadedPlugin>,
    case: &Case,
    lines_per_message: usize,
    budget: Duration,
) -> Result<f64> {
    let mut session = ParserInstance::new(
        engine.clone(),
        plugin.clone(),
        case.properties.into(),
        SandboxLimits::default(),
        Arc::from("bench"),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", case.name))?;
    let origin = Origin {
        exporter: IpAddr::V4(0x7f00_0001),
        port: 514,
        received_ms: 1_795_867_200_000,
    };
    // 6400 lines per pass, in messages of `lines_per_message`, 64 messages a call.
    let total = 6400;
    let messages: Vec<Message> = (0..total / lines_per_message)
        .map(|m| {
            let payload: Vec<String> = (0..lines_per_message)
                .map(|l| (case.line)(m * lines_per_message + l))
                .collect();
            Message {
                origin,
                payload: payload.join("\n").into_bytes(),
            }
        })
        .collect();
    let lines = (messages.len() * lines_per_message) as u64;
    let flows = parse_pass(&mut session, &messages, 64);
    if flows != lines {
        bail!("{}: {flows} flows from {lines} lines", case.name);
    }
    Ok(measure(budget, lines, || {
        std::hint::black_box(parse_pass(&mut session, &messages, 64));
    })
    .per_sec)
}
