//! The horde's generation figures: `/stats/img/*` and `/stats/text/*` (counts only).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Images finished in one window, and their pixelsteps.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImagePeriodStats {
    pub images: i64,
    /// Pixelsteps (width × height × steps) of those images.
    pub ps: i64,
}

/// Text generations finished in one window, and their tokens.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextPeriodStats {
    pub requests: i64,
    pub tokens: i64,
}

/// `GET /api/v2/stats/img/totals`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageTotals {
    pub minute: ImagePeriodStats,
    pub hour: ImagePeriodStats,
    pub day: ImagePeriodStats,
    pub month: ImagePeriodStats,
    pub total: ImagePeriodStats,
}

/// `GET /api/v2/stats/text/totals`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextTotals {
    pub minute: TextPeriodStats,
    pub hour: TextPeriodStats,
    pub day: TextPeriodStats,
    pub month: TextPeriodStats,
    pub total: TextPeriodStats,
}

/// `GET /api/v2/stats/img/models` and `/stats/text/models`: finished jobs per model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelStats {
    pub day: HashMap<String, i64>,
    pub month: HashMap<String, i64>,
    pub total: HashMap<String, i64>,
}
