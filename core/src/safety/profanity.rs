//! Profanity in the names and texts the horde shows to everyone (usernames, worker names and
//! info, team names and info, contacts): refused with the public horde's rc names
//! (`ProfaneUserName`, `ProfaneWorkerName`, …), as its public API does.
//!
//! The check looks for a short list of unambiguous English slurs and obscenities as whole words,
//! after folding case, common letter substitutions (`@`→a, `0`→o, `1`→i, `3`→e, `$`→s, …) and
//! separators between letters, so "sh1t" and "s.h.i.t" are caught while "Scunthorpe" or
//! "classic" are not.

/// Stems matched at the start of a word (so plurals and -ing forms match too).
const STEMS: &[&str] = &[
    "fuck",
    "shit",
    "cunt",
    "bitch",
    "bastard",
    "asshole",
    "dickhead",
    "motherfuck",
    "wanker",
    "twat",
    "slut",
    "whore",
    "nigger",
    "nigga",
    "faggot",
    "tranny",
    "cocksuck",
    "bollock",
    "jizz",
];

/// Letters that stand in for others.
fn fold(c: char) -> char {
    match c {
        '@' | '4' => 'a',
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' => 'e',
        '$' | '5' => 's',
        '7' | '+' => 't',
        c => c,
    }
}

/// The words of `text`, lowercased and folded; single letters separated by dots, dashes,
/// underscores or spaces ("s.h.i.t") are joined into one word.
fn words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in text.chars().flat_map(char::to_lowercase).map(fold) {
        if c.is_alphanumeric() {
            current.push(c);
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    // Runs of one-letter words are spelled-out words.
    let mut joined = Vec::with_capacity(words.len());
    let mut run = String::new();
    for w in words {
        if w.chars().count() == 1 {
            run.push_str(&w);
        } else {
            if !run.is_empty() {
                joined.push(std::mem::take(&mut run));
            }
            joined.push(w);
        }
    }
    if !run.is_empty() {
        joined.push(run);
    }
    joined
}

/// Whether `text` holds profanity (see the module).
pub fn is_profane(text: &str) -> bool {
    words(text).iter().any(|w| STEMS.iter().any(|s| w.starts_with(s)))
}

/// Refuses profane `text` with `rc` (400), naming what it was (`what`).
pub fn check(text: &str, rc: &'static str, what: &str) -> crate::Result<()> {
    if is_profane(text) {
        return Err(crate::HordeError::rejected(
            rc,
            format!("As this horde's API is public, profanity is not allowed in the {what}; please try again."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profanity_is_found_through_disguises_but_not_inside_words() {
        for bad in [
            "Shit",
            "the fucking worker",
            "sh1t",
            "s.h.i.t",
            "B!TCH",
            "$hithead",
            "a-s-s-h-o-l-e",
        ] {
            assert!(is_profane(bad), "{bad}");
        }
        for fine in [
            "Scunthorpe",
            "classic",
            "Grass hopper",
            "cocktail",
            "therapist",
            "my-worker_01",
            "Sussex",
            "Dickens",
            "spicy",
            "pussycat",
        ] {
            assert!(!is_profane(fine), "{fine}");
        }
        assert_eq!(
            check("shit", "ProfaneWorkerName", "worker name").err().map(|e| e.rc()),
            Some("ProfaneWorkerName")
        );
        assert!(check("painter", "ProfaneWorkerName", "worker name").is_ok());
    }
}
