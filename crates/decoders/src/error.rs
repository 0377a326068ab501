//! Errors of the NetFlow family (v5, v7, v9, IPFIX): shared by their
//! decoders, so none of them depends on another for its error type.

/// Why a whole datagram could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramError {
    TooShort {
        len: usize,
    },
    UnsupportedVersion(u16),
    /// The header itself is inconsistent (e.g. more records than the version allows).
    BadHeader(String),
}

impl std::fmt::Display for DatagramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatagramError::TooShort { len } => {
                write!(f, "datagram of {len} bytes is too short for its header")
            }
            DatagramError::UnsupportedVersion(v) => write!(f, "unsupported NetFlow version {v}"),
            DatagramError::BadHeader(why) => write!(f, "bad export header: {why}"),
        }
    }
}

impl std::error::Error for DatagramError {}
