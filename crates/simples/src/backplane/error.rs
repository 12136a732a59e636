//! The backplane's error type (a leaf: the other backplane modules use it).

/// A backplane's failure, as seen by the framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackplaneError {
    /// The queue towards the engine is full: the message was dropped (and
    /// counted in [`BackplaneStats::dropped`](super::BackplaneStats::dropped)).
    Full,
    /// The engine cannot be reached now (the operation was not done).
    Unavailable(String),
    /// The engine answered with an error, or sent what cannot be decoded.
    Engine(String),
    /// The backplane's configuration is unusable (a bad URL, a zero
    /// capacity...): said at start, by the constructor.
    Config(String),
}

impl std::fmt::Display for BackplaneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackplaneError::Full => f.write_str("the backplane's publish queue is full"),
            BackplaneError::Unavailable(e) => write!(f, "the backplane is unavailable: {e}"),
            BackplaneError::Engine(e) => write!(f, "backplane error: {e}"),
            BackplaneError::Config(e) => write!(f, "backplane configuration: {e}"),
        }
    }
}

impl std::error::Error for BackplaneError {}
