//! Reading the files a KoboldAI Lite user has: Lite/KoboldAI JSON saves (KoboldAI United's
//! `.kaistory` files among them), Tavern character cards (PNG with a `chara`/`ccv3` text chunk,
//! WEBP with the card in its EXIF user comment or XMP, JSON V1/V2/V3), lorebooks and world-info exports
//! (SillyTavern, Agnai, Lite, ours), plain text and our own story files; and writing Lite's save
//! format. Runs on the server (the `import_file` server function), so none of it is in the
//! browser bundle; every import says what it took and what it left out.

pub mod lite;
mod png;
pub mod tavern;
mod webp;
pub mod worldinfo;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::story::{GenSettings, Story, WorldEntry};

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("The file is not valid JSON: {0}")]
    Json(String),
    #[error("This PNG has no character card in it (no `chara` or `ccv3` text chunk).")]
    NoCard,
    #[error("This WEBP has no character card in it (no `chara` in its EXIF user comment or XMP).")]
    NoWebpCard,
    #[error("The character card's data is not readable: {0}")]
    BadCard(String),
    #[error("This JSON is none of the formats the studio reads (a Lite or KoboldAI save, a character card, a lorebook or world-info file, a studio story).")]
    Unknown,
    #[error("That is not world info: no entries in a format the studio reads.")]
    NoWorldInfo,
    #[error("That is not a story: {0}")]
    Story(String),
    #[error("The file is not text (UTF-8).")]
    NotText,
}

/// What an import made: the stories (the first becomes the current one, the others join the
/// stories list), settings when the file had them, and what was and was not imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Imported {
    pub stories: Vec<Story>,
    pub settings: Option<GenSettings>,
    /// One line per thing taken, e.g. "3 world info entries".
    pub imported: Vec<String>,
    /// One line per thing left out, with why.
    pub not_imported: Vec<String>,
}

impl Imported {
    /// A single story, nothing said yet.
    fn story(story: Story) -> Self {
        Imported {
            stories: vec![story],
            ..Imported::default()
        }
    }

    fn took(&mut self, what: impl Into<String>) {
        self.imported.push(what.into());
    }

    fn left_out(&mut self, what: impl Into<String>) {
        self.not_imported.push(what.into());
    }

    /// Reads the JSON the import server functions answer (the same decoder as the browser's
    /// storage uses, so no second copy of it is in the bundle).
    pub fn from_json(json: &str) -> Result<Imported, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// The message shown after the import.
    pub fn summary(&self) -> String {
        let mut text = format!("Imported: {}.", self.imported.join(", "));
        if !self.not_imported.is_empty() {
            text.push_str(&format!(" Not imported: {}.", self.not_imported.join("; ")));
        }
        text
    }
}

/// `n thing` or `n things`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The file name without its extension, as a story title.
fn title_of(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem).trim();
    if stem.is_empty() {
        "Imported".into()
    } else {
        stem.to_string()
    }
}

/// Imports a story file: whatever the format, decided by its content (then its name).
pub fn import_file(name: &str, bytes: &[u8]) -> Result<Imported, ImportError> {
    if bytes.starts_with(png::SIGNATURE) {
        let json = png::card_json(bytes)?;
        let value: Value = serde_json::from_str(&json).map_err(|e| ImportError::BadCard(e.to_string()))?;
        // The picture becomes the bot's avatar in the browser (app/js/studio-files.js), which
        // says so.
        return tavern::import_card(&value);
    }
    if webp::is_webp(bytes) {
        let json = webp::card_json(bytes)?;
        let value: Value = serde_json::from_str(&json).map_err(|e| ImportError::BadCard(e.to_string()))?;
        return tavern::import_card(&value);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ImportError::NotText)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return Ok(import_text(name, text));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| ImportError::Json(e.to_string()))?;
    if value.get("turns").is_some() {
        let story: Story = serde_json::from_value(value).map_err(|e| ImportError::Story(e.to_string()))?;
        let mut imported = Imported::story(story);
        imported.took("the studio story");
        return Ok(imported);
    }
    if tavern::is_card(&value) {
        return tavern::import_card(&value);
    }
    if lite::is_save(&value) {
        return lite::import_save(name, &value);
    }
    if worldinfo::is_world_info(&value) {
        let (entries, mut imported) = worldinfo::entries(&value)?;
        let story = Story {
            title: title_of(name),
            world_info: entries,
            ..Story::default()
        };
        imported.stories = vec![story];
        imported.left_out("a lorebook has no story text: a new story holds its entries");
        return Ok(imported);
    }
    Err(ImportError::Unknown)
}

/// Imports world info to add to the current story.
pub fn import_world_info(bytes: &[u8]) -> Result<(Vec<WorldEntry>, Imported), ImportError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ImportError::NotText)?;
    let value: Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| ImportError::Json(e.to_string()))?;
    // A whole save or card: its world info.
    if let Some(book) = value.get("worldinfo").or_else(|| tavern::character_book(&value)) {
        return worldinfo::entries(book);
    }
    worldinfo::entries(&value)
}

/// A plain text file: the story so far, in story mode.
fn import_text(name: &str, text: &str) -> Imported {
    let mut story = Story {
        title: title_of(name),
        ..Story::default()
    };
    if !text.trim().is_empty() {
        story.turns.push(crate::story::Turn::writer(text.replace("\r\n", "\n")));
    }
    let mut imported = Imported::story(story);
    imported.took(format!("the text ({})", count(text.chars().count(), "character", "characters")));
    imported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_becomes_a_story_named_after_the_file() {
        let i = import_file("The Keep.txt", b"It was a dark night.\r\nThe end.").expect("imports");
        assert_eq!(i.stories[0].title, "The Keep");
        assert_eq!(i.stories[0].turns[0].text, "It was a dark night.\nThe end.");
        assert!(i.summary().starts_with("Imported: the text"));
    }

    #[test]
    fn our_own_story_files_still_import() {
        let mut s = Story::default();
        s.turns.push(crate::story::Turn::writer("Once"));
        let json = serde_json::to_vec(&s).expect("json");
        assert_eq!(import_file("s.json", &json).expect("imports").stories, vec![s]);
    }

    #[test]
    fn a_webp_card_and_a_kaistory_import() {
        let card = br#"{"spec":"chara_card_v2","data":{"name":"Ada","first_mes":"Hello.","description":"A clockmaker."}}"#;
        let i = import_file("ada.webp", &webp::webp_with_comment(card, true)).expect("imports");
        assert_eq!(i.stories[0].bot_name, "Ada");
        assert_eq!(import_file("x.webp", b"RIFF\0\0\0\0WEBP"), Err(ImportError::NoWebpCard));
        // KoboldAI United's story download, as it writes it.
        let kaistory = br#"{"file_version": 2, "story_name": "Keep", "prompt": "The gate opened.", "memory": "A siege.",
            "authornote": "Grim.", "authornotetemplate": "[Note: <|>]",
            "actions": {"action_count": 1, "actions": {"1": {"Selected Text": " Then it closed.", "Options": []},
                                                       "0": {"Selected Text": " Soldiers ran in.", "Options": []}}},
            "worldinfo_v2": {"folders": {"root": []}, "entries": {"0": {"uid": 0, "key": ["gate"], "keysecondary": [],
                "content": "The gate is iron.", "constant": false, "folder": "root", "comment": ""}}}}"#;
        let i = import_file("keep.kaistory", kaistory).expect("imports");
        let s = &i.stories[0];
        assert_eq!(s.title, "Keep");
        let text: String = s.turns.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(text, "The gate opened. Soldiers ran in. Then it closed.");
        assert_eq!((s.memory.as_str(), s.authors_note.as_str()), ("A siege.", "Grim."));
        assert_eq!(s.world_info[0].content, "The gate is iron.");
    }

    #[test]
    fn unknown_json_and_binary_are_refused_with_a_reason() {
        assert_eq!(import_file("x.json", br#"{"hello": 1}"#), Err(ImportError::Unknown));
        assert_eq!(import_file("x.bin", &[0xff, 0xfe, 0x00]), Err(ImportError::NotText));
        assert!(matches!(import_file("x.json", b"{nope"), Err(ImportError::Json(_))));
    }
}
