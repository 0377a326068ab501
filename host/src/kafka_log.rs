//! librdkafka's log and error events in our log. While a broker is away
//! librdkafka repeats the same complaint several times a second: a message
//! identical to the previous one is logged again only after a while.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

const REPEAT_AFTER: Duration = Duration::from_secs(30);

pub struct KafkaLog {
    /// `consumer[index]` or `relay <consumer>`: names the client in logs.
    label: String,
    last: Mutex<(String, Option<Instant>)>,
}

impl KafkaLog {
    pub fn new(label: String) -> Self {
        KafkaLog {
            label,
            last: Mutex::new((String::new(), None)),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether `message` is news (not a repeat of the last one, or a repeat
    /// after a while).
    fn is_news(&self, message: &str) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let repeat = last.0 == message && last.1.is_some_and(|t| t.elapsed() < REPEAT_AFTER);
        if !repeat {
            *last = (message.to_owned(), Some(Instant::now()));
        }
        !repeat
    }

    /// For `ClientContext::log`.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Debug | RDKafkaLogLevel::Info | RDKafkaLogLevel::Notice => {
                tracing::debug!(connector = %self.label, "librdkafka {facility}: {message}")
            }
            _ => {
                // "... (after 0ms in state CONNECT, 1 identical error(s) suppressed)"
                let gist = message.split(" (after").next().unwrap_or(message);
                if self.is_news(gist) {
                    tracing::warn!(connector = %self.label, "librdkafka {facility}: {message}")
                }
            }
        }
    }

    /// For `ClientContext::error`.
    pub fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("{error}");
        if self.is_news(&text) {
            tracing::warn!(connector = %self.label, "kafka: {error}: {reason}");
        }
    }
}
