//! The error type of KalamDB and its stable contract codes.
//!
//! Every failure a client can see is one [`Error`] variant with one [`ErrorCode`]; the HTTP
//! layer maps codes to status codes in exactly one place. Messages of `Internal` errors are
//! logged, never sent to clients.

use std::fmt;

/// Stable error codes of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidSql,
    InvalidParameter,
    TypeMismatch,
    ConstraintViolation,
    /// A transaction wrote a key another transaction or statement committed after its
    /// snapshot: it changed nothing (first committer wins).
    SerializationFailure,
    NamespaceNotFound,
    TableNotFound,
    JobNotFound,
    AlreadyExists,
    Unauthorized,
    PermissionDenied,
    PayloadTooLarge,
    Unsupported,
    Timeout,
    InternalError,
}

impl ErrorCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::InvalidSql => "INVALID_SQL",
            ErrorCode::InvalidParameter => "INVALID_PARAMETER",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::ConstraintViolation => "CONSTRAINT_VIOLATION",
            ErrorCode::SerializationFailure => "SERIALIZATION_FAILURE",
            ErrorCode::NamespaceNotFound => "NAMESPACE_NOT_FOUND",
            ErrorCode::TableNotFound => "TABLE_NOT_FOUND",
            ErrorCode::JobNotFound => "JOB_NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Any error KalamDB reports.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    InvalidSql {
        message: String,
        line: Option<u64>,
        column: Option<u64>,
    },
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    TypeMismatch(String),
    #[error("{0}")]
    ConstraintViolation(String),
    #[error("{0}")]
    SerializationFailure(String),
    #[error("namespace '{0}' does not exist")]
    NamespaceNotFound(String),
    #[error("table '{0}' does not exist")]
    TableNotFound(String),
    #[error("job '{0}' does not exist")]
    JobNotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Timeout(String),
    /// The message is for logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidSql { .. } => ErrorCode::InvalidSql,
            Error::InvalidParameter(_) => ErrorCode::InvalidParameter,
            Error::TypeMismatch(_) => ErrorCode::TypeMismatch,
            Error::ConstraintViolation(_) => ErrorCode::ConstraintViolation,
            Error::SerializationFailure(_) => ErrorCode::SerializationFailure,
            Error::NamespaceNotFound(_) => ErrorCode::NamespaceNotFound,
            Error::TableNotFound(_) => ErrorCode::TableNotFound,
            Error::JobNotFound(_) => ErrorCode::JobNotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::Unsupported(_) => ErrorCode::Unsupported,
            Error::Timeout(_) => ErrorCode::Timeout,
            Error::Internal(_) => ErrorCode::InternalError,
        }
    }

    pub fn invalid_sql(message: impl Into<String>) -> Error {
        Error::InvalidSql {
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// The message a client may see: internal details are replaced, and user input echoed in
    /// a message (a huge identifier, say) is cut to 1000 characters.
    pub fn client_message(&self) -> String {
        const MAX_CHARS: usize = 1000;
        match self {
            Error::Internal(_) => "internal error; see the server log".to_string(),
            other => {
                let m = other.to_string();
                if m.chars().count() > MAX_CHARS {
                    let cut: String = m.chars().take(MAX_CHARS).collect();
                    format!("{cut}... (truncated)")
                } else {
                    m
                }
            }
        }
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Error {
        Error::Internal(format!("rocksdb: {e}"))
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Error {
        Error::Internal(format!("arrow: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorten user-supplied text before echoing it in a message.
pub fn truncate_for_message(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
    if s.chars().count() > 80 {
        format!("{clean}...")
    } else {
        clean
    }
}
