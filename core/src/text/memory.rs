//! Bounds on the client text held in memory, as images have theirs: every text request counts
//! its prompt (and its other client strings) plus room for its results against a cap on all
//! text held, and, for accounts that are not trusted, against a cap per account. Past the first
//! a request is refused with 503 `TextStoreFull`, past the second with 429 `TooManyPromptBytes`;
//! what is refused is not kept. Bytes are counted while the request is in memory (until it
//! expires), by the queue (`Queue::held`).

use super::TextRequest;
use crate::accounts::User;
use crate::config::HordeConfig;
use crate::scheduler::queue::HeldBytes;
use crate::{HordeError, Result};

/// Room reserved for each token a job may generate: a token is about four bytes of text.
pub const RESULT_BYTES_PER_TOKEN: usize = 4;

/// Room reserved for one job's result.
pub fn result_room(req: &TextRequest) -> usize {
    usize::try_from(req.max_length.max(0))
        .unwrap_or(usize::MAX)
        .saturating_mul(RESULT_BYTES_PER_TOKEN)
}

/// What `req` counts against the caps: its client text and room for `n` results.
pub fn held_bytes(req: &TextRequest) -> usize {
    let messages: usize = req
        .messages
        .iter()
        .flatten()
        .map(|m| serde_json::to_string(m).map_or(0, |s| s.len()))
        .sum();
    let strings = req.prompt.len()
        + req.softprompt.as_ref().map_or(0, String::len)
        + req.webhook.as_ref().map_or(0, String::len)
        + req.models.iter().map(String::len).sum::<usize>()
        + messages;
    strings.saturating_add(result_room(req).saturating_mul(req.n as usize))
}

/// Whether `user` may hold `bytes` more of text, given what is held now.
pub fn check(held: &HeldBytes, user: &User, bytes: usize, cfg: &HordeConfig) -> Result<()> {
    if held.total.saturating_add(bytes) > cfg.text_memory_cap_bytes {
        return Err(HordeError::TextStoreFull {
            cap_mib: cfg.text_memory_cap_bytes / (1024 * 1024),
        });
    }
    let own = held.of(user.id);
    if !user.trusted && !user.moderator && own.saturating_add(bytes) > cfg.account_text_memory_cap_bytes {
        return Err(HordeError::TooManyPromptBytes {
            held: own,
            asked: bytes,
            cap: cfg.account_text_memory_cap_bytes,
        });
    }
    Ok(())
}

/// Whether `user_id` (when loaded) may hold `req` in `state` now.
pub fn check_request(state: &crate::state::State, user_id: i64, req: &TextRequest) -> Result<()> {
    match state.users.get(user_id) {
        Some(user) => check(state.queue.held(), user, held_bytes(req), &state.cfg),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt_len: usize, n: u32, max_length: i64) -> TextRequest {
        let req = horde_protocol::text::GenerateTextRequest {
            prompt: Some("x".repeat(prompt_len)),
            params: Some(horde_protocol::text::TextParams {
                n: Some(i64::from(n)),
                max_length: Some(max_length),
                ..Default::default()
            }),
            ..Default::default()
        };
        TextRequest::try_from(req).expect("valid request")
    }

    #[test]
    fn a_request_holds_its_prompt_and_room_for_its_results() {
        let r = request(1000, 2, 100);
        assert_eq!(held_bytes(&r), 1000 + 2 * 100 * RESULT_BYTES_PER_TOKEN);
    }

    #[test]
    fn caps_refuse_past_the_total_and_past_an_untrusted_accounts_share() {
        let cfg = HordeConfig {
            text_memory_cap_bytes: 1000,
            account_text_memory_cap_bytes: 300,
            ..HordeConfig::default()
        };
        let mut held = HeldBytes::default();
        let user = User::new(7, "u", "o");
        assert!(check(&held, &user, 300, &cfg).is_ok());
        assert_eq!(check(&held, &user, 301, &cfg).err().map(|e| e.rc()), Some("TooManyPromptBytes"));
        let trusted = User {
            trusted: true,
            ..User::new(8, "t", "o")
        };
        assert!(check(&held, &trusted, 900, &cfg).is_ok());
        held.total = 900;
        let e = check(&held, &trusted, 101, &cfg).err();
        assert_eq!(e.as_ref().map(|e| e.rc()), Some("TextStoreFull"));
        assert_eq!(e.map(|e| e.class()), Some(crate::ErrorClass::Unavailable));
    }
}
