//! Real services the connectors talk to, run as child processes: moto's
//! AWS server (CloudWatch Logs) and the tansu Kafka broker. Both must be
//! installed (`.ci/run` does); a test fails with the install command if not.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::process::{free_tcp_port, wait_for};

/// Starts a peer. With `FLOWLINK_E2E_PEER_LOGS=DIR` set, its output goes to
/// `DIR/PROGRAM-PID.log`, to see why a peer misbehaved.
fn spawn(program: &str, args: &[&str], install: &str) -> Child {
    let log = std::env::var_os("FLOWLINK_E2E_PEER_LOGS").map(|dir| {
        let path = std::path::Path::new(&dir).join(format!(
            "{program}-{}-{}.log",
            std::process::id(),
            free_tcp_port()
        ));
        std::fs::File::create(path).expect("peer log file")
    });
    let (out, err) = match log {
        Some(file) => (
            Stdio::from(file.try_clone().expect("peer log file")),
            Stdio::from(file),
        ),
        None => (Stdio::null(), Stdio::null()),
    };
    Command::new(program)
        .args(args)
        .stdout(out)
        .stderr(err)
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

/// A `tansu` Kafka broker (in-memory storage) behind a [`TcpProxy`]: the
/// broker advertises the proxy's address, so every client connection goes
/// through it, and [`KafkaBroker::go_away`] makes the broker unreachable
/// without losing its data.
pub struct KafkaBroker {
    child: Child,
    proxy: TcpProxy,
    broker_port: u16,
}

impl KafkaBroker {
    pub fn start() -> KafkaBroker {
        let broker_port = free_tcp_port();
        let proxy = TcpProxy::start(broker_port);
        let child = spawn(
            "tansu",
            &[
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{broker_port}"),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{}", proxy.port),
                "--storage-engine",
                "memory://tansu/",
            ],
            "scripts/install-peers tools (cargo install tansu --locked --features dynostore)",
        );
        wait_listening(broker_port, "tansu");
        KafkaBroker {
            child,
            proxy,
            broker_port,
        }
    }

    /// What clients use: the proxy.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port)
    }

    /// Every connection is cut and new ones are refused, as when a broker dies.
    pub fn go_away(&self) {
        self.proxy.set_up(false);
    }

    pub fn come_back(&self) {
        self.proxy.set_up(true);
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new("tansu")
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.broker_port),
                "--partitions",
                &partitions.to_string(),
                topic,
            ])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "tansu topic create {topic} failed");
    }

    /// The offsets group `group` committed on `topic`, summed over its
    /// `partitions`: how many messages it is done with. (tansu's high
    /// watermarks can fall short of the last message; these do not.)
    pub fn committed(&self, topic: &str, partitions: i32, group: &str) -> i64 {
        use rdkafka::config::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("group.id", group)
            .create()
            .expect("creating a Kafka consumer");
        let timeout = Duration::from_secs(10);
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition);
        }
        consumer
            .committed_offsets(list, timeout)
            .expect("committed offsets")
            .elements()
            .iter()
            .map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => o,
                _ => 0,
            })
            .sum()
    }

    /// Group `group`'s state as the broker reports it (`Stable` once a
    /// rebalance is over) and how many members it has. tansu describes a
    /// group only once it has committed offsets.
    pub fn group_state(&self, group: &str) -> Option<(String, usize)> {
        use rdkafka::config::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .create()
            .expect("creating a Kafka client");
        let list = consumer
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .ok()?;
        let found = list.groups().iter().find(|g| g.name() == group)?;
        Some((found.state().to_owned(), found.members().len()))
    }

    /// Waits until the broker has settled `group` on `members` members: a
    /// rebalance is over and none is pending. Records read while a partition
    /// moves can be read again by its next owner (at-least-once), so tests
    /// that count exactly produce only once the group is stable. The group
    /// must have committed offsets already (tansu's describe needs them).
    pub fn wait_stable(&self, group: &str, members: usize) {
        let want = Some(("Stable".to_owned(), members));
        let stable = crate::wait_for(Duration::from_secs(90), || {
            (self.group_state(group) == want).then_some(())
        });
        assert!(
            stable.is_some(),
            "group {group} not stable with {members} members: {:?}",
            self.group_state(group)
        );
    }

    /// Every message of `topic` (one partition), read until nothing more
    /// arrives for a second.
    pub fn read_all(&self, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        use rdkafka::config::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("group.id", "flowlink-e2e-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("creating a Kafka consumer");
        let mut list = rdkafka::TopicPartitionList::new();
        list.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&list).expect("assign");
        let mut messages = Vec::new();
        let mut quiet_since = std::time::Instant::now();
        while quiet_since.elapsed() < Duration::from_secs(1) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                messages.push((
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                ));
                quiet_since = std::time::Instant::now();
            }
        }
        messages
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay to `127.0.0.1:target` that can be switched off: then it
/// resets every open connection and every new one.
pub struct TcpProxy {
    pub port: u16,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    down: std::sync::atomic::AtomicBool,
    open: std::sync::Mutex<Vec<TcpStream>>,
}

impl TcpProxy {
    pub fn start(target: u16) -> TcpProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(ProxyState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if shared.down.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut open = shared.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        TcpProxy { port, state }
    }

    pub fn set_up(&self, up: bool) {
        self.state
            .down
            .store(!up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for stream in self.state.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}
