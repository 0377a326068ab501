//! Real services the connectors talk to, run as child processes: moto's
//! AWS server (CloudWatch Logs) and the tansu Kafka broker. Both must be
//! installed (`.ci/run` does); a test fails with the install command if not.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::process::{free_tcp_port, wait_for};

fn spawn(program: &str, args: &[&str], install: &str) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e} (install it: {install})"))
}

fn wait_listening(port: u16, what: &str) {
    let up = wait_for(Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "{what} did not listen on port {port}");
}

/// `moto_server` with CloudWatch Logs, on a free port.
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

pub const AWS_REGION: &str = "us-east-1";

impl MotoServer {
    pub fn start() -> MotoServer {
        let port = free_tcp_port();
        let child = spawn(
            "moto_server",
            &["-H", "127.0.0.1", "-p", &port.to_string()],
            "pip install 'moto[server]'",
        );
        wait_listening(port, "moto_server");
        MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// One CloudWatch Logs API call (JSON protocol); moto checks no signature.
    pub fn logs(&self, action: &str, body: Value) -> Result<Value, String> {
        let response = ureq::post(&self.endpoint)
            .header("X-Amz-Target", &format!("Logs_20140328.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                &format!("AWS4-HMAC-SHA256 Credential=test/20260101/{AWS_REGION}/logs/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .config()
            .http_status_as_error(false)
            .build()
            .send(body.to_string())
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.into_body().read_to_string().unwrap_or_default();
        if !status.is_success() {
            return Err(format!("{action}: {status} {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn create_stream(&self, group: &str, stream: &str) {
        let _ = self.logs("CreateLogGroup", json!({ "logGroupName": group }));
        self.logs(
            "CreateLogStream",
            json!({ "logGroupName": group, "logStreamName": stream }),
        )
        .unwrap();
    }

    /// Appends `messages` to a stream, one event each, stamped now.
    pub fn put_events(&self, group: &str, stream: &str, messages: &[String]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let events: Vec<Value> = messages
            .iter()
            .map(|m| json!({ "timestamp": now, "message": m }))
            .collect();
        self.logs(
            "PutLogEvents",
            json!({ "logGroupName": group, "logStreamName": stream, "logEvents": events }),
        )
        .unwrap();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tansu` Kafka broker with in-memory storage on a fixed port (so it can
/// be stopped and started again at the same address).
pub struct KafkaBroker {
    child: Option<Child>,
    pub port: u16,
}

impl KafkaBroker {
    pub fn start() -> KafkaBroker {
        let mut broker = KafkaBroker {
            child: None,
            port: free_tcp_port(),
        };
        broker.restart();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker process (after [`KafkaBroker::stop`]).
    pub fn restart(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = spawn(
            "tansu",
            &[
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ],
            "cargo install tansu --locked --features dynostore",
        );
        self.child = Some(child);
        wait_listening(self.port, "tansu");
    }

    /// Kills the broker: its in-memory topics go with it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new("tansu")
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--partitions",
                &partitions.to_string(),
                topic,
            ])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "tansu topic create {topic} failed");
    }

    /// Produces `messages` (key, payload) to `topic` and waits for the acks.
    pub fn produce(&self, topic: &str, messages: &[(Option<&str>, String)]) {
        use rdkafka::config::ClientConfig;
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("message.timeout.ms", "20000")
            .create()
            .expect("creating a Kafka producer");
        for (key, payload) in messages {
            let mut record = BaseRecord::<str, str>::to(topic).payload(payload.as_str());
            if let Some(key) = key {
                record = record.key(*key);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, back)) => {
                        assert!(
                            matches!(
                                e,
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull
                                )
                            ),
                            "producing to {topic}: {e}"
                        );
                        producer.poll(Duration::from_millis(50));
                        record = back;
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("Kafka producer flush");
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
