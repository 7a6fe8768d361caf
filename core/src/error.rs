//! One error enum for every rule the horde enforces. Each variant knows its `rc` (the return code
//! clients match on) and its class (which the HTTP adapter maps to a status code).

pub use horde_protocol::error::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum HordeError {
    #[error("{0}")]
    Validation(String),
    #[error("A prompt is required.")]
    MissingPrompt,
    #[error("max_length ({max_length}) may not be larger than max_context_length ({max_context_length}).")]
    TokenOverflow { max_length: i64, max_context_length: i64 },
    #[error("Too many stop sequences (at most 128 unique sequences).")]
    TooManyStopSequences,
    #[error("Stop sequences may add up to at most 2000 characters.")]
    ExcessiveStopSequence,
    #[error("sampler_order must contain at least 7 distinct samplers.")]
    MissingFullSamplerOrder,
    #[error("Null bytes are not allowed in the payload.")]
    NulByteInPayload,
    #[error("No user matching sent API Key. Have you remembered to register at this horde?")]
    InvalidApiKey,
    #[error("Anonymous user is forbidden from running a worker.")]
    AnonForbiddenWorker,
    #[error("Anonymous user is forbidden from this action.")]
    AnonForbidden,
    #[error("Wrong credentials to submit as this worker.")]
    WrongCredentials,
    #[error("You have reached the maximum number of workers ({0}) for your account.")]
    TooManyWorkers(usize),
    #[error("Worker name '{0}' is already used by a worker of another type.")]
    PolymorphicNameConflict(String),
    #[error("Invalid worker name: {0}")]
    InvalidWorkerName(String),
    #[error("Invalid priority username '{0}'. Use the form alias#id.")]
    InvalidPriorityUsername(String),
    #[error("Your worker has been put into maintenance mode by its owner or a moderator. Please log in to change it.")]
    WorkerMaintenance,
    #[error("Processing Job with ID {0} does not exist.")]
    InvalidJobId(String),
    #[error("Processing Job with ID {0} already submitted.")]
    DuplicateGen(String),
    #[error("This worker has not checked in since the horde started, so its address is unknown.")]
    WorkerIpUnknown,
    #[error("Processing Job with ID {0} was aborted because it took too long. Please check your worker speed.")]
    AbortedGen(String),
    #[error("Request with ID '{0}' not found. It may have expired.")]
    RequestNotFound(String),
    #[error("Worker with ID '{0}' not found.")]
    WorkerNotFound(String),
    #[error("User '{0}' not found.")]
    UserNotFound(String),
    #[error("Only a moderator can do this.")]
    NotModerator,
    #[error("Only the owner of this worker or a moderator can do this.")]
    NotOwner,
    #[error("You did not select any user field to modify.")]
    NoUserModSelected,
    #[error("You did not select any worker field to modify.")]
    NoWorkerModSelected,
    #[error("The worker name '{0}' is already taken.")]
    WorkerNameTaken(String),
    #[error("The anonymous user cannot send kudos.")]
    KudosTransferFromAnon,
    #[error("You cannot transfer kudos to the anonymous user.")]
    KudosTransferToAnon,
    #[error("You cannot transfer kudos to yourself.")]
    KudosTransferToSelf,
    #[error("The amount of kudos to transfer must be a positive whole number.")]
    InvalidKudosTransferAmount,
    #[error("This user sent you kudos less than a minute ago; wait before sending some back.")]
    TooFastKudosTransfers,
    #[error("Not enough kudos to transfer: you have {available} available above your minimum of {floor}.")]
    KudosTransferNotEnough { available: f64, floor: f64 },
    #[error("This Idempotency-Key was used for another transfer; use a new key for a new transfer.")]
    IdempotencyKeyConflict,
    #[error("Flagged accounts cannot send or receive kudos.")]
    SourceAccountFlagged,
    #[error("Parallel requests ({waiting}) exceed your concurrency limit of {limit}. Wait for some to finish.")]
    TooManyPrompts { waiting: i64, limit: i64 },
    #[error("This worker still has jobs in progress. Try again after they finish or expire (at most 20 minutes).")]
    Locked,
    #[error("The horde is in maintenance mode; new requests are not accepted right now.")]
    MaintenanceMode,
    /// The horde is restarting: it finishes the work it has and takes none.
    #[error("This horde is restarting: it finishes the jobs it has and takes no new work for a moment. Please try again shortly.")]
    Draining,
    #[error("Username '{0}' is not valid: 1 to 30 characters, no '#', no control or invisible formatting characters.")]
    InvalidUsername(String),
    #[error("This prompt appears to violate our terms of service and will be reported. Please contact us if you think this is an error.")]
    CorruptPrompt,
    #[error("This IP address has been timed out for {minutes_left} more minutes after a refused prompt. Please try again later.")]
    TimeoutIp { minutes_left: u64 },
    #[error("No filter with id {0}.")]
    FilterNotFound(i64),
    /// A bad request with its own return code (image parameters, ratings, uploads…).
    #[error("{message}")]
    Rejected { rc: &'static str, message: String },
    #[error("This horde holds as many images in memory as it may ({cap_mib} MiB); try again in a few minutes.")]
    ImageStoreFull { cap_mib: usize },
    #[error("This horde holds as much text (prompts and results) in memory as it may ({cap_mib} MiB); try again in a few minutes.")]
    TextStoreFull { cap_mib: usize },
    #[error("Your requests in memory hold {held} bytes of prompts and results; this one needs {asked} more and an account that is not trusted may hold {cap}. Wait for some to expire.")]
    TooManyPromptBytes { held: usize, asked: usize, cap: usize },
    #[error("This upload or image link is invalid or has expired.")]
    InvalidImageLink,
    /// The shared state (Redis) does not answer, or was lost and restarted empty.
    #[error("The horde's shared state is unavailable ({0}); try again in a moment.")]
    SharedStateUnavailable(String),
    #[error("Internal error: {0}")]
    Internal(String),
    /// Refused (403) with its own return code.
    #[error("{message}")]
    Forbidden { rc: &'static str, message: String },
    /// Not found (404) with its own return code (`StyleNotFound`, …).
    #[error("{message}")]
    Missing { rc: &'static str, message: String },
}

impl HordeError {
    /// A refusal (403) with a specific return code.
    pub fn forbidden(rc: &'static str, message: impl Into<String>) -> Self {
        HordeError::Forbidden {
            rc,
            message: message.into(),
        }
    }

    /// A missing thing (404) with a specific return code.
    pub fn missing(rc: &'static str, message: impl Into<String>) -> Self {
        HordeError::Missing {
            rc,
            message: message.into(),
        }
    }

    /// A bad request with a specific return code.
    pub fn rejected(rc: &'static str, message: impl Into<String>) -> Self {
        HordeError::Rejected {
            rc,
            message: message.into(),
        }
    }
}

impl HordeError {
    /// The return code clients match on.
    pub fn rc(&self) -> &'static str {
        use HordeError::*;
        match self {
            Validation(_) => "ValidationError",
            MissingPrompt => "MissingPrompt",
            TokenOverflow { .. } => "TokenOverflow",
            TooManyStopSequences => "TooManyStopSequences",
            ExcessiveStopSequence => "ExcessiveStopSequence",
            MissingFullSamplerOrder => "MissingFullSamplerOrder",
            NulByteInPayload => "NulByteInPayload",
            InvalidApiKey => "InvalidAPIKey",
            AnonForbiddenWorker => "AnonForbiddenWorker",
            AnonForbidden => "AnonForbidden",
            WrongCredentials => "WrongCredentials",
            TooManyWorkers(_) => "TooManyWorkers",
            PolymorphicNameConflict(_) => "PolymorphicNameConflict",
            InvalidWorkerName(_) => "InvalidWorkerName",
            InvalidPriorityUsername(_) => "InvalidPriorityUsername",
            WorkerMaintenance => "WorkerMaintenance",
            InvalidJobId(_) => "InvalidJobID",
            DuplicateGen(_) => "DuplicateGen",
            WorkerIpUnknown => "WorkerIPUnknown",
            AbortedGen(_) => "AbortedGen",
            RequestNotFound(_) => "RequestNotFound",
            WorkerNotFound(_) => "WorkerNotFound",
            UserNotFound(_) => "UserNotFound",
            NotModerator => "NotModerator",
            NotOwner => "NotOwner",
            NoUserModSelected => "NoUserModSelected",
            NoWorkerModSelected => "NoWorkerModSelected",
            WorkerNameTaken(_) => "WorkerNameAlreadyExists",
            KudosTransferFromAnon => "KudosTransferFromAnon",
            KudosTransferToAnon => "KudosTransferToAnon",
            KudosTransferToSelf => "KudosTransferToSelf",
            InvalidKudosTransferAmount => "InvalidKudosTransferAmount",
            TooFastKudosTransfers => "TooFastKudosTransfers",
            KudosTransferNotEnough { .. } => "KudosTransferNotEnough",
            SourceAccountFlagged => "SourceAccountFlagged",
            IdempotencyKeyConflict => "IdempotencyKeyConflict",
            TooManyPrompts { .. } => "TooManyPrompts",
            Locked => "Locked",
            MaintenanceMode | Draining => "MaintenanceMode",
            InvalidUsername(_) => "InvalidUsername",
            Rejected { rc, .. } | Forbidden { rc, .. } | Missing { rc, .. } => rc,
            CorruptPrompt => "CorruptPrompt",
            TimeoutIp { .. } => "TimeoutIP",
            FilterNotFound(_) => "FilterNotFound",
            ImageStoreFull { .. } => "ImageStoreFull",
            TextStoreFull { .. } => "TextStoreFull",
            TooManyPromptBytes { .. } => "TooManyPromptBytes",
            InvalidImageLink => "InvalidImageLink",
            SharedStateUnavailable(_) => "SharedStateUnavailable",
            Internal(_) => "InternalServerError",
        }
    }

    /// Which family of failure this is.
    pub fn class(&self) -> ErrorClass {
        use HordeError::*;
        match self {
            InvalidApiKey => ErrorClass::Unauthorized,
            AnonForbiddenWorker
            | AnonForbidden
            | WrongCredentials
            | TooManyWorkers(_)
            | WorkerMaintenance
            | NotModerator
            | NotOwner
            | KudosTransferFromAnon
            | TimeoutIp { .. }
            | SourceAccountFlagged
            | Forbidden { .. } => ErrorClass::Forbidden,
            Missing { .. } => ErrorClass::NotFound,
            InvalidJobId(_) | RequestNotFound(_) | WorkerNotFound(_) | UserNotFound(_) | InvalidImageLink | FilterNotFound(_)
            | WorkerIpUnknown => ErrorClass::NotFound,
            ImageStoreFull { .. } | TextStoreFull { .. } | SharedStateUnavailable(_) | Draining => ErrorClass::Unavailable,
            Locked => ErrorClass::Locked,
            TooManyPrompts { .. } | TooManyPromptBytes { .. } => ErrorClass::TooMany,
            Internal(_) => ErrorClass::Internal,
            _ => ErrorClass::BadRequest,
        }
    }

    /// What a client is told: the message, except for internal failures, whose details (a
    /// database error, say) are for the log only.
    pub fn public_message(&self) -> String {
        if self.class() == ErrorClass::Internal {
            "Internal server error; it has been logged.".to_string()
        } else {
            self.to_string()
        }
    }
}

impl From<sqlx::Error> for HordeError {
    fn from(e: sqlx::Error) -> Self {
        HordeError::Internal(format!("database: {e}"))
    }
}

pub type Result<T, E = HordeError> = std::result::Result<T, E>;
