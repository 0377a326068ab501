//! Logging through the host. A plugin has no stdout or stderr of its own: the
//! host tags these lines with the plugin and consumer and writes them to its log.

use crate::bindings::flowlink::parser::types::LogLevel;

pub fn error(message: &str) {
    write(LogLevel::Error, message);
}

pub fn warn(message: &str) {
    write(LogLevel::Warn, message);
}

pub fn info(message: &str) {
    write(LogLevel::Info, message);
}

pub fn debug(message: &str) {
    write(LogLevel::Debug, message);
}

#[cfg(target_arch = "wasm32")]
fn write(level: LogLevel, message: &str) {
    crate::bindings::log(level, message);
}

/// Native builds (unit tests) have no host: print to stderr instead.
#[cfg(not(target_arch = "wasm32"))]
fn write(level: LogLevel, message: &str) {
    eprintln!("[plugin {level:?}] {message}");
}

/// Sends panic messages to the host log before the component traps, so the
/// operator sees why a message was lost, not just "unreachable".
pub(crate) fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|panic| {
            write(LogLevel::Error, &format!("plugin panicked: {panic}"));
        }));
    });
}
