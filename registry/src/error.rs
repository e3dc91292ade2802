//! Errors with Confluent's error codes, so clients written for the real registry understand
//! the stand-in's answers.

/// Everything the registry can refuse, with the HTTP status and Confluent error code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error(
        "Version {1} of subject '{0}' was soft deleted.Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted(String, u32),
    #[error("Version {1} of subject '{0}' was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, u32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibilityLevel,
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", details.join(", "))]
    Incompatible {
        subject: String,
        details: Vec<String>,
    },
    #[error("Malformed request body: {0}")]
    BadRequest(String),
    #[error("Error while storing the change in the schemas topic: {0}")]
    Store(String),
    /// A request refused before any handler ran (unknown route, wrong method, unreadable
    /// path or body): Confluent answers these with the HTTP status as `error_code`.
    #[error("{message}")]
    Http { status: u16, message: String },
}

impl RegistryError {
    /// The HTTP status Confluent answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::SubjectNotFound(_)
            | Self::VersionNotFound(_)
            | Self::SchemaNotFound
            | Self::SubjectSoftDeleted(_)
            | Self::SubjectNotSoftDeleted(_)
            | Self::VersionSoftDeleted(..)
            | Self::VersionNotSoftDeleted(..)
            | Self::SubjectConfigNotFound(_) => 404,
            Self::InvalidSchema(_) | Self::InvalidVersion(_) | Self::InvalidCompatibilityLevel => {
                422
            }
            Self::Incompatible { .. } => 409,
            Self::BadRequest(_) => 400,
            Self::Store(_) => 500,
            Self::Http { status, .. } => *status,
        }
    }

    /// Confluent's `error_code`: the status followed by a two-digit detail.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound(_) => 40402,
            Self::SchemaNotFound => 40403,
            Self::SubjectSoftDeleted(_) => 40404,
            Self::SubjectNotSoftDeleted(_) => 40405,
            Self::VersionSoftDeleted(..) => 40406,
            Self::VersionNotSoftDeleted(..) => 40407,
            Self::SubjectConfigNotFound(_) => 40408,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibilityLevel => 42203,
            Self::Incompatible { .. } => 409,
            Self::BadRequest(_) => 400,
            Self::Store(_) => 50001,
            Self::Http { status, .. } => u32::from(*status),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
