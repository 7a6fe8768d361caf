//! Tavern character cards, V1 (fields at the top), V2 (`spec: "chara_card_v2"`, fields under
//! `data`) and V3 (`spec: "chara_card_v3"`): a chat with the character. The description,
//! personality, scenario and example messages become the memory, the character book the world
//! info, the first message the bot's opening turn, and each alternate greeting a chat of its own.

use serde_json::Value;

use super::{count, worldinfo, ImportError, Imported};
use crate::story::{Mode, Story, Turn};

/// Where a card keeps its fields: `data` for V2/V3, the top level for V1.
fn fields(card: &Value) -> &Value {
    match card.get("data") {
        Some(data) if data.is_object() && card.get("spec").is_some() => data,
        _ => card,
    }
}

/// Whether `value` is a character card.
pub fn is_card(value: &Value) -> bool {
    let spec = value.get("spec").and_then(Value::as_str).unwrap_or_default();
    spec.starts_with("chara_card") || (fields(value).get("name").is_some() && fields(value).get("first_mes").is_some())
}

/// The card's character book, if it has one with entries.
pub fn character_book(value: &Value) -> Option<&Value> {
    fields(value)
        .get("character_book")
        .or_else(|| value.get("character_book"))
        .filter(|b| b.get("entries").is_some())
}

fn text<'a>(card: &'a Value, name: &str) -> &'a str {
    fields(card).get(name).and_then(Value::as_str).unwrap_or_default().trim()
}

fn list(card: &Value, name: &str) -> Vec<String> {
    fields(card)
        .get(name)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The chats a card starts, and what was and was not taken.
pub fn import_card(card: &Value) -> Result<Imported, ImportError> {
    if !fields(card).is_object() {
        return Err(ImportError::BadCard("not a JSON object".into()));
    }
    let name = match text(card, "name") {
        "" => "Character",
        n => n,
    };
    let version = match card.get("spec").and_then(Value::as_str) {
        Some("chara_card_v3") => "V3",
        Some("chara_card_v2") => "V2",
        _ => "V1",
    };
    let mut imported = Imported::default();
    imported.took(format!("character card {version} \"{name}\""));

    let mut memory = Vec::new();
    let parts = [
        ("description", "description", ""),
        ("personality", "personality", "{{char}}'s personality: "),
        ("scenario", "scenario", "Scenario: "),
        ("mes_example", "example messages", "Example messages:\n"),
    ];
    let mut in_memory = Vec::new();
    for (field, label, prefix) in parts {
        let value = text(card, field);
        if !value.is_empty() {
            memory.push(format!("{prefix}{value}"));
            in_memory.push(label);
        }
    }
    if !in_memory.is_empty() {
        imported.took(format!("{} as memory", in_memory.join(", ")));
    }

    let mut story = Story {
        title: name.to_string(),
        mode: Mode::Chat,
        bot_name: name.to_string(),
        memory: memory.join("\n"),
        ..Story::default()
    };
    if let Some(system) = Some(text(card, "system_prompt")).filter(|s| !s.is_empty()) {
        story.system_prompt = system.to_string();
        imported.took("the system prompt (used in Instruct mode)");
    }
    if let Some(post) = Some(text(card, "post_history_instructions")).filter(|s| !s.is_empty()) {
        story.authors_note = post.to_string();
        story.authors_note_template = "<|>".into();
        story.authors_note_depth = 0;
        imported.took("the post-history instructions as the author's note (after the last turn)");
    }
    if let Some(book) = character_book(card) {
        let (entries, report) = worldinfo::entries(book)?;
        story.world_info = entries;
        imported
            .imported
            .extend(report.imported.into_iter().map(|l| format!("{l} from the character book")));
        imported.not_imported.extend(report.not_imported);
    }

    let greetings = list(card, "alternate_greetings");
    let mut stories = Vec::new();
    let first = text(card, "first_mes");
    if !first.is_empty() {
        let mut chat = story.clone();
        chat.turns.push(Turn::model(first, None));
        stories.push(chat);
        imported.took("the first message");
    }
    for (i, greeting) in greetings.iter().enumerate() {
        let mut chat = story.clone();
        chat.title = format!("{name} (greeting {})", i + 2);
        chat.turns.push(Turn::model(greeting.trim(), None));
        stories.push(chat);
    }
    if !greetings.is_empty() {
        imported.took(format!(
            "{} (each a chat of its own in the stories list)",
            count(greetings.len(), "alternate greeting", "alternate greetings")
        ));
    }
    if stories.is_empty() {
        stories.push(story);
    }
    imported.stories = stories;

    let group = list(card, "group_only_greetings");
    if !group.is_empty() {
        imported.left_out(count(
            group.len(),
            "group-only greeting (no group chats here)",
            "group-only greetings (no group chats here)",
        ));
    }
    for (field, label) in [
        ("creator_notes", "the creator's notes (not for the model)"),
        ("nickname", "the nickname"),
    ] {
        if !text(card, field).is_empty() {
            imported.left_out(label);
        }
    }
    if fields(card).get("assets").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
        imported.left_out("the card's assets (images, backgrounds)");
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{import_file, png};
    use crate::story::Role;
    use base64::Engine;
    use serde_json::json;

    fn v2_card() -> Value {
        json!({
            "spec": "chara_card_v2", "spec_version": "2.0",
            "data": {
                "name": "Seraphina", "description": "{{char}} is a forest guardian.", "personality": "kind",
                "scenario": "{{user}} wakes in a glade.", "first_mes": "*Seraphina smiles at {{user}}.* You're awake.",
                "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello", "creator_notes": "Enjoy!",
                "system_prompt": "Write as {{char}}.", "post_history_instructions": "Stay in character.",
                "alternate_greetings": ["*The glade is quiet.*", ""], "tags": ["fantasy"], "creator": "me",
                "character_version": "1", "extensions": {},
                "character_book": {"entries": [
                    {"keys": ["glade"], "content": "The glade heals.", "enabled": true, "insertion_order": 0, "selective": false, "secondary_keys": []}
                ]}
            }
        })
    }

    #[test]
    fn a_v2_card_starts_chats_with_memory_world_info_and_greetings() {
        let card = v2_card();
        assert!(is_card(&card));
        let i = import_card(&card).expect("imports");
        assert_eq!(i.stories.len(), 2);
        let s = &i.stories[0];
        assert_eq!(
            (s.mode, s.bot_name.as_str(), s.title.as_str()),
            (Mode::Chat, "Seraphina", "Seraphina")
        );
        assert!(s
            .memory
            .starts_with("{{char}} is a forest guardian.\n{{char}}'s personality: kind\nScenario: {{user}} wakes"));
        assert!(s.memory.contains("Example messages:\n<START>"));
        assert_eq!(s.turns[0].role, Role::Model);
        assert!(s.turns[0].text.starts_with("*Seraphina smiles"));
        assert_eq!(s.world_info[0].keys, "glade");
        assert_eq!(s.system_prompt, "Write as {{char}}.");
        assert_eq!((s.authors_note.as_str(), s.authors_note_depth), ("Stay in character.", 0));
        assert_eq!(i.stories[1].title, "Seraphina (greeting 2)");
        assert_eq!(i.stories[1].turns[0].text, "*The glade is quiet.*");
        let summary = i.summary();
        assert!(summary.contains("character card V2 \"Seraphina\""), "{summary}");
        assert!(summary.contains("1 world info entry from the character book"), "{summary}");
        assert!(summary.contains("1 alternate greeting"), "{summary}");
        assert!(summary.contains("Not imported: the creator's notes"), "{summary}");
        // The assembled chat prompt fills the placeholders.
        let mut chat = s.clone();
        chat.turns.push(Turn::writer("I sit in the glade."));
        let prompt = crate::context::assemble(&chat, &crate::story::GenSettings::default()).prompt;
        assert!(
            prompt.contains("Seraphina is a forest guardian.") && prompt.contains("Scenario: User wakes"),
            "{prompt}"
        );
        assert!(prompt.contains("The glade heals."), "{prompt}");
    }

    #[test]
    fn v1_and_v3_cards_read() {
        let v1 =
            json!({"name": "Bob", "description": "A baker.", "personality": "", "scenario": "", "first_mes": "Bread?", "mes_example": ""});
        let i = import_card(&v1).expect("imports");
        assert_eq!(
            (i.stories[0].memory.as_str(), i.stories[0].turns[0].text.as_str()),
            ("A baker.", "Bread?")
        );
        assert!(i.imported[0].contains("V1"));
        let v3 = json!({"spec": "chara_card_v3", "spec_version": "3.0", "data": {
            "name": "Eve", "description": "A pilot.", "first_mes": "Ready.", "group_only_greetings": ["Hi all"],
            "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]}});
        let i = import_card(&v3).expect("imports");
        assert!(i.imported[0].contains("V3 \"Eve\""));
        assert!(
            i.summary().contains("1 group-only greeting") && i.summary().contains("assets"),
            "{}",
            i.summary()
        );
    }

    #[test]
    fn a_png_card_imports_and_says_its_image_was_not() {
        let json = serde_json::to_string(&v2_card()).expect("json");
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        let png = png::png_with_text(&[("chara", &b64)]);
        let i = import_file("seraphina.png", &png).expect("imports");
        assert_eq!(i.stories[0].bot_name, "Seraphina");
        assert_eq!(i.stories[0].world_info.len(), 1);
        // The image is the browser's to make an avatar of (app/js/studio-files.js).
        assert!(!i.summary().contains("image"), "{}", i.summary());
    }
}
