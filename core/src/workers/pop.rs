//! A worker's pop request, validated, with the public horde's effective defaults.

use horde_protocol::text::TextPopRequest;

use super::validate_worker_name;
use crate::accounts::parse_user_reference;
use crate::{HordeError, Result};

/// Models a text worker may declare (the rest are ignored).
pub const MAX_POP_MODELS: usize = 200;

/// What a worker declares each time it asks for work.
#[derive(Debug, Clone)]
pub struct WorkerPop {
    pub name: String,
    pub models: Vec<String>,
    pub max_length: i64,
    pub max_context_length: i64,
    pub priority_user_ids: Vec<i64>,
    pub nsfw: bool,
    pub bridge_agent: String,
    pub threads: i64,
    pub amount: u32,
    pub require_upfront_kudos: bool,
    pub extra_slow_worker: bool,
    pub softprompts: Vec<String>,
}

impl TryFrom<TextPopRequest> for WorkerPop {
    type Error = HordeError;

    fn try_from(p: TextPopRequest) -> Result<Self> {
        let name = validate_worker_name(p.name.as_deref().unwrap_or(""))?;
        let mut models: Vec<String> = p
            .models
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        models.truncate(MAX_POP_MODELS);
        if models.iter().any(|m| m.len() > 255 || m.contains('\0')) {
            return Err(HordeError::Validation("Model names must be at most 255 characters.".into()));
        }
        let max_length = p.max_length.unwrap_or(512);
        let max_context_length = p.max_context_length.unwrap_or(2048);
        if !(1..=1_048_576).contains(&max_length) || !(1..=1_048_576).contains(&max_context_length) {
            return Err(HordeError::Validation(
                "max_length and max_context_length must be between 1 and 1048576.".into(),
            ));
        }
        let threads = p.threads.unwrap_or(1);
        if !(1..=50).contains(&threads) {
            return Err(HordeError::Validation("threads must be between 1 and 50.".into()));
        }
        let amount = p.amount.unwrap_or(1);
        if !(1..=20).contains(&amount) {
            return Err(HordeError::Validation("amount must be between 1 and 20.".into()));
        }
        let mut priority_user_ids = Vec::new();
        for u in p.priority_usernames.unwrap_or_default() {
            if !u.contains('#') {
                return Err(HordeError::InvalidPriorityUsername(u.chars().take(60).collect()));
            }
            match parse_user_reference(&u) {
                Some(id) => priority_user_ids.push(id),
                None => return Err(HordeError::InvalidPriorityUsername(u.chars().take(60).collect())),
            }
        }
        let bridge_agent = p.bridge_agent.unwrap_or_else(|| "unknown:0:unknown".into());
        if bridge_agent.chars().count() > 1000 || bridge_agent.contains('\0') {
            return Err(HordeError::Validation("bridge_agent may be at most 1000 characters.".into()));
        }
        Ok(WorkerPop {
            name,
            models,
            max_length,
            max_context_length,
            priority_user_ids,
            nsfw: p.nsfw.unwrap_or(true),
            bridge_agent,
            threads,
            amount: amount as u32,
            require_upfront_kudos: p.require_upfront_kudos.unwrap_or(false),
            extra_slow_worker: p.extra_slow_worker.unwrap_or(false),
            softprompts: p.softprompts.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let p: TextPopRequest = serde_json::from_value(serde_json::json!({"name": "w", "models": ["m"]})).expect("json");
        let w = WorkerPop::try_from(p).expect("valid");
        assert_eq!(
            (w.max_length, w.max_context_length, w.threads, w.amount, w.nsfw),
            (512, 2048, 1, 1, true)
        );
        let p: TextPopRequest = serde_json::from_value(serde_json::json!({"name": "w", "priority_usernames": ["bob"]})).expect("json");
        assert_eq!(WorkerPop::try_from(p).err().map(|e| e.rc()), Some("InvalidPriorityUsername"));
        let p: TextPopRequest = serde_json::from_value(serde_json::json!({"name": "w", "amount": 21})).expect("json");
        assert_eq!(WorkerPop::try_from(p).err().map(|e| e.rc()), Some("ValidationError"));
        let p: TextPopRequest = serde_json::from_value(serde_json::json!({"models": ["m"]})).expect("json");
        assert_eq!(WorkerPop::try_from(p).err().map(|e| e.rc()), Some("InvalidWorkerName"));
    }
}
