//! Error types for compilation and evaluation.

/// A syntax or static-semantic error found while compiling an expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {position})")]
pub struct ParseError {
    /// Human-readable description.
    pub message: String,
    /// Byte offset in the source where the problem was detected.
    pub position: usize,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, position: usize) -> ParseError {
        ParseError {
            message: message.into(),
            position,
        }
    }
}

/// The category of an evaluation error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalErrorKind {
    /// A singleton was required but the collection had several items.
    NotSingleton,
    /// An operand or input had a type the operation does not accept.
    Type,
    /// A function argument was invalid.
    Argument,
    /// `%name` is not defined in the environment.
    UnknownVariable,
    /// `now()`/`today()`/`timeOfDay()` was called without a clock in the
    /// environment.
    NoClock,
    /// The feature is not supported by this engine (e.g. terminology).
    Unsupported,
    /// A safety limit (result size, iteration count) was exceeded.
    Limit,
    /// Strict mode rejected a path that does not exist in the model.
    Semantic,
}

/// An error raised while evaluating an expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// Category.
    pub kind: EvalErrorKind,
    /// Human-readable description.
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(kind: EvalErrorKind, message: impl Into<String>) -> EvalError {
        EvalError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn type_error(message: impl Into<String>) -> EvalError {
        EvalError::new(EvalErrorKind::Type, message)
    }

    pub(crate) fn singleton(what: &str, count: usize) -> EvalError {
        EvalError::new(
            EvalErrorKind::NotSingleton,
            format!("{what} expects a single item but got {count}"),
        )
    }
}
