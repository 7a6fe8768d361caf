//! Ratings of a finished shared image request, and their reward.

use std::collections::HashMap;

use horde_protocol::image::RateRequest;
use uuid::Uuid;

use crate::kudos::{to_kudos, Centikudos, PostingKind};
use crate::state::State;
use crate::{HordeError, Result};

/// Rating rewards (reference 5.6): 5 per rating, +5 with artifacts, 15 for a best pick.
const RATING_REWARD: Centikudos = 500;
const ARTIFACTS_REWARD: Centikudos = 500;
const BEST_REWARD: Centikudos = 1500;

impl State {
    /// `POST /generate/rate/{id}`: kudos for rating the images of a finished shared request,
    /// paid once per request: 5 per rating (+5 with artifacts), 15 for a best pick (a lone
    /// rating of 7 or more counts as one), capped at what the request consumed minus 1.
    pub fn rate_images(&mut self, request_id: &Uuid, rate: RateRequest, now_ms: u64) -> Result<f64> {
        let req = self
            .images
            .get(request_id)
            .ok_or_else(|| HordeError::RequestNotFound(request_id.to_string()))?;
        if !req.is_done() || req.generations.is_empty() {
            return Err(HordeError::rejected(
                "AestheticsNotCompleted",
                "Only finished requests can be rated.",
            ));
        }
        if !req.request.shared {
            return Err(HordeError::rejected(
                "AestheticsNotPublic",
                "Only requests sent with shared: true can be rated.",
            ));
        }
        if req.rated {
            return Err(HordeError::rejected("AestheticsAlreadyExist", "This request was already rated."));
        }
        let ids: HashMap<String, usize> = req.generations.iter().enumerate().map(|(i, g)| (g.job_id.to_string(), i)).collect();
        let ratings = rate.ratings.unwrap_or_default();
        if ratings.is_empty() && rate.best.is_none() {
            return Err(HordeError::rejected("AestheticsMissing", "Send ratings, a best image, or both."));
        }
        let mut seen = std::collections::HashSet::new();
        let mut reward: Centikudos = 0;
        for r in &ratings {
            if !ids.contains_key(r.id.trim()) {
                return Err(HordeError::rejected(
                    "AestheticsMissing",
                    "A rated id is not an image of this request.",
                ));
            }
            if !seen.insert(r.id.trim().to_string()) {
                return Err(HordeError::rejected("AestheticsDuplicate", "An image was rated twice."));
            }
            if !(1..=10).contains(&r.rating) || r.artifacts.is_some_and(|a| !(0..=5).contains(&a)) {
                return Err(HordeError::Validation("rating must be 1 to 10 and artifacts 0 to 5.".into()));
            }
            reward += RATING_REWARD + if r.artifacts.is_some() { ARTIFACTS_REWARD } else { 0 };
        }
        if let Some(best) = &rate.best {
            if !ids.contains_key(best.trim()) {
                return Err(HordeError::rejected("AestheticsMissing", "best is not an image of this request."));
            }
            if req.generations.len() < 2 {
                return Err(HordeError::rejected("AestheticsSolo", "A best pick needs more than one image."));
            }
            if ratings.len() == 1 && ratings[0].id.trim() == best.trim() && ratings[0].rating < 7 {
                return Err(HordeError::rejected(
                    "AestheticsConfused",
                    "The best image cannot have a low rating.",
                ));
            }
            reward += BEST_REWARD;
        } else if ratings.len() == 1 && ratings[0].rating >= 7 && req.generations.len() > 1 {
            reward += BEST_REWARD;
        }
        let reward = reward.min((req.consumed - 100).max(0));
        let user_id = req.user_id;
        if let Some(r) = self.images.get_mut(request_id) {
            r.rated = true;
            r.last_activity_ms = now_ms;
        }
        if reward > 0 {
            self.ledger
                .reward(&mut self.users, user_id, reward, PostingKind::RatingReward, now_ms)?;
        }
        Ok(to_kudos(reward))
    }
}
