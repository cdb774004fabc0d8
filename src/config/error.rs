//! The one error every settings reader returns: the variable and what is wrong with it.

/// One bad setting. Its `Display` is the one line start-up prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {variable}: {problem}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: String,
    /// What is wrong, without the value when the value is secret.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}
