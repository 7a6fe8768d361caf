//! Teams: named groups of workers. A worker is in at most one team; its owner (or a moderator)
//! puts it in or takes it out. A team's figures are its members' figures summed when read, so
//! they need no bookkeeping of their own. Teams live in the database.

use crate::{HordeError, Result};

/// A stored team.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub info: String,
    pub owner_id: i64,
    /// The owner as `name#id` (read with the team).
    pub creator: String,
    pub created_ms: i64,
}

/// A team name: trimmed, 1 to 100 characters, no control characters.
pub fn clean_name(name: &str) -> Result<String> {
    let n = name.trim();
    let len = n.chars().count();
    if len == 0 || len > 100 || n.chars().any(char::is_control) {
        return Err(HordeError::Validation("A team name must be 1 to 100 characters.".into()));
    }
    crate::safety::profanity::check(n, "ProfaneTeamName", "team name")?;
    Ok(n.to_string())
}

/// The key names are unique by (case-insensitive, as the public horde compares them).
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Team info: at most 1000 characters.
pub fn clean_info(info: &str) -> Result<String> {
    let i = info.trim();
    if i.chars().count() > 1000 || i.contains('\0') {
        return Err(HordeError::Validation("Team info may be at most 1000 characters.".into()));
    }
    crate::safety::profanity::check(i, "ProfaneTeamInfo", "team info")?;
    Ok(i.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_compared_without_case() {
        assert!(clean_name(" ").is_err());
        assert!(clean_name(&"x".repeat(101)).is_err());
        assert_eq!(clean_name(" Red Team ").ok().as_deref(), Some("Red Team"));
        assert_eq!(name_key("Red Team"), name_key("red team"));
    }
}
