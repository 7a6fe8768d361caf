//! Tunables of the horde's rules, with the public horde's values as defaults.

/// Parallel waiting jobs a user may have unless a moderator changes it.
pub const DEFAULT_CONCURRENCY: i64 = 30;

/// Rules that operators may tune. Defaults follow the public AI Horde.
#[derive(Debug, Clone)]
pub struct HordeConfig {
    /// A request vanishes this long after its last activity (creation, pop, submit).
    pub request_expiry_secs: u64,
    /// A worker is online when it checked in this recently.
    pub worker_online_secs: u64,
    /// Shortest text job TTL; longer jobs get more (see `text::job_ttl_secs`).
    pub min_text_job_ttl_secs: u64,
    /// A request whose jobs failed more than this many times is faulted.
    pub max_job_faults: u32,
    /// Uptime kudos are paid for every this many seconds online.
    pub uptime_reward_interval_secs: u64,
    /// Priority points a queued request gains per second (the public horde adds 50 every 10 s).
    pub aging_per_sec: f64,
    /// Parallel waiting jobs a user may have (moderators may raise it per user).
    pub default_concurrency: i64,
    /// Workers a user who is not trusted may run.
    pub max_workers_untrusted: usize,
    /// Workers a trusted user may run.
    pub max_workers_trusted: usize,
    /// Kudos a new pseudonymous account starts with.
    pub registration_kudos: i64,
    /// Bytes of images (results and source images) held in memory at most; past it, new uploads
    /// and image requests with a source image are refused with `ImageStoreFull`.
    pub image_memory_cap_bytes: usize,
    /// Bytes of text (prompts and room for results) held in memory at most; past it, new text
    /// requests are refused with `TextStoreFull` (see `text::memory`).
    pub text_memory_cap_bytes: usize,
    /// Bytes of text one account that is neither trusted nor a moderator may hold; past it, its
    /// new text requests are refused with `TooManyPromptBytes`.
    pub account_text_memory_cap_bytes: usize,
    /// Largest decoded `source_image` / `source_mask`, in bytes.
    pub max_source_image_bytes: usize,
    /// Largest submitted result image, in bytes.
    pub max_result_image_bytes: usize,
    /// Upload URLs given to workers stay valid this long.
    pub upload_url_secs: u64,
    /// Result image URLs given to clients stay valid this long.
    pub download_url_secs: u64,
    /// Development only: accept `http://` webhooks to loopback addresses.
    pub allow_loopback_http_webhooks: bool,
}

impl Default for HordeConfig {
    fn default() -> Self {
        Self {
            request_expiry_secs: 20 * 60,
            worker_online_secs: 300,
            min_text_job_ttl_secs: 150,
            max_job_faults: 2,
            uptime_reward_interval_secs: 600,
            aging_per_sec: 5.0,
            default_concurrency: DEFAULT_CONCURRENCY,
            max_workers_untrusted: 4,
            max_workers_trusted: 20,
            registration_kudos: 0,
            image_memory_cap_bytes: 1024 * 1024 * 1024,
            text_memory_cap_bytes: 1024 * 1024 * 1024,
            account_text_memory_cap_bytes: 16 * 1024 * 1024,
            max_source_image_bytes: 5 * 1024 * 1024,
            max_result_image_bytes: 40 * 1024 * 1024,
            upload_url_secs: 30 * 60,
            download_url_secs: 20 * 60,
            allow_loopback_http_webhooks: false,
        }
    }
}
