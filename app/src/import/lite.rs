//! KoboldAI Lite's JSON save (also KoboldAI's "old UI" save, which Lite writes: `prompt`,
//! `actions`, `memory`, `authorsnote`, `anotetemplate`, `worldinfo`, and Lite's own `anotestr`
//! and `savedsettings`) and KoboldAI United's newer save (`file_version: 2`, `actions.actions`,
//! `authornote`, `worldinfo_v2`). Read into a story, and written back for Lite.
//!
//! Lite keeps the story as one text in pieces. Chat saves mark turns with `\nName: `, instruct
//! saves with `{{[INPUT]}}` and `{{[OUTPUT]}}`; those become the studio's turns.

use serde_json::{json, Map, Value};

use super::{count, title_of, worldinfo, ImportError, Imported};
use crate::story::{GenSettings, InstructTemplate, Mode, Role, Story, Turn, DEFAULT_NOTE_TEMPLATE};

/// Lite's instruct placeholders, in its saved text.
const INPUT: &str = "{{[INPUT]}}";
const OUTPUT: &str = "{{[OUTPUT]}}";
const SYSTEM: &str = "{{[SYSTEM]}}";

/// Characters from the end per turn of the studio's author's-note depth, in Lite's `anotestr`
/// (Lite's choices are 480, 320, 160 and 0 characters).
const NOTE_CHARS_PER_TURN: u64 = 160;

/// Whether `value` is a Lite or KoboldAI save.
pub fn is_save(value: &Value) -> bool {
    let actions = value.get("actions");
    value.is_object()
        && (actions.is_some_and(Value::is_array) || actions.and_then(|a| a.get("actions")).is_some_and(Value::is_object))
        && (value.get("prompt").is_some() || value.get("gamestarted").is_some())
}

fn str_of<'a>(value: &'a Value, name: &str) -> &'a str {
    value.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// Lite's inline image markers, `[<|h|hash|h|>]` and `[<|p|...|p|>]`: removed, and counted.
fn strip_images(text: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut n = 0;
    while let Some(start) = rest.find("[<|") {
        let kind = rest.get(start + 3..start + 4).unwrap_or_default();
        let close = format!("|{kind}|>]");
        match rest[start..].find(&close) {
            Some(len) if kind == "h" || kind == "p" => {
                out.push_str(&rest[..start]);
                rest = &rest[start + len + close.len()..];
                n += 1;
            }
            _ => {
                out.push_str(&rest[..start + 3]);
                rest = &rest[start + 3..];
            }
        }
    }
    out.push_str(rest);
    (out, n)
}

/// The story's text pieces: the prompt, then each action.
fn pieces(save: &Value) -> Vec<String> {
    let mut out = vec![str_of(save, "prompt").to_string()];
    match save.get("actions") {
        Some(Value::Array(actions)) => out.extend(actions.iter().filter_map(Value::as_str).map(str::to_string)),
        Some(actions) => {
            // United: `{"actions": {"0": {"Selected Text": ...}, ...}}`, in number order.
            if let Some(Value::Object(map)) = actions.get("actions") {
                let mut items: Vec<(u64, &Value)> = map.iter().map(|(k, v)| (k.parse().unwrap_or(u64::MAX), v)).collect();
                items.sort_by_key(|(k, _)| *k);
                out.extend(items.into_iter().map(|(_, v)| str_of(v, "Selected Text").to_string()));
            }
        }
        None => {}
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Turns of a chat: lines starting `Name: ` begin a turn; text before the first goes back as the
/// preface.
fn chat_turns(text: &str, user: &str, bot: &str) -> (String, Vec<Turn>) {
    let mut preface = String::new();
    let mut turns: Vec<Turn> = Vec::new();
    for line in text.split('\n') {
        let user_line = line.strip_prefix(user).and_then(|r| r.strip_prefix(':'));
        let bot_line = line.strip_prefix(bot).and_then(|r| r.strip_prefix(':'));
        match (user_line, bot_line) {
            (Some(said), _) if !user.is_empty() => turns.push(Turn::writer(said.trim())),
            (_, Some(said)) if !bot.is_empty() => turns.push(Turn::model(said.trim(), None)),
            _ => match turns.last_mut() {
                Some(turn) => {
                    turn.text.push('\n');
                    turn.text.push_str(line);
                }
                None => {
                    preface.push_str(line);
                    preface.push('\n');
                }
            },
        }
    }
    for turn in &mut turns {
        turn.text = turn.text.trim_end().to_string();
    }
    (preface.trim().to_string(), turns)
}

/// Turns of an instruct save, split at Lite's placeholders; the system part and the text before
/// the first placeholder go back separately.
fn instruct_turns(text: &str) -> (String, String, Vec<Turn>) {
    let mut preface = String::new();
    let mut system = String::new();
    let mut turns = Vec::new();
    let mut rest = text;
    let mut current: Option<&str> = None;
    loop {
        let next = [INPUT, OUTPUT, SYSTEM]
            .into_iter()
            .filter_map(|m| rest.find(m).map(|i| (i, m)))
            .min_by_key(|(i, _)| *i);
        let (body, after) = match next {
            Some((i, m)) => (&rest[..i], Some((m, &rest[i + m.len()..]))),
            None => (rest, None),
        };
        let body = body.trim();
        match current {
            None => preface.push_str(body),
            Some(SYSTEM) => system.push_str(body),
            Some(INPUT) if !body.is_empty() => turns.push(Turn::writer(body)),
            Some(_) if !body.is_empty() => turns.push(Turn::model(body, None)),
            Some(_) => {}
        }
        match after {
            Some((marker, tail)) => {
                current = Some(marker);
                rest = tail;
            }
            None => break,
        }
    }
    (preface, system, turns)
}

/// Lite's saved sampler settings, over the studio's defaults.
fn settings_of(saved: &Value) -> (GenSettings, Vec<&'static str>) {
    let mut s = GenSettings::default();
    let mut took = Vec::new();
    let f = |name: &str| saved.get(name).and_then(Value::as_f64);
    macro_rules! take {
        ($field:ident, $name:literal, f64) => {
            if let Some(v) = f($name) {
                s.$field = v;
                took.push($name);
            }
        };
        ($field:ident, $name:literal, i64) => {
            if let Some(v) = f($name) {
                s.$field = v.round() as i64;
                took.push($name);
            }
        };
    }
    take!(temperature, "temperature", f64);
    take!(top_p, "top_p", f64);
    take!(top_k, "top_k", i64);
    take!(min_p, "min_p", f64);
    take!(rep_pen, "rep_pen", f64);
    take!(rep_pen_range, "rep_pen_range", i64);
    take!(rep_pen_slope, "rep_pen_slope", f64);
    take!(top_a, "top_a", f64);
    take!(typical, "typ_s", f64);
    take!(tfs, "tfs_s", f64);
    take!(dynatemp_range, "dynatemp_range", f64);
    take!(dynatemp_exponent, "dynatemp_exponent", f64);
    take!(smoothing_factor, "smoothing_factor", f64);
    take!(seed, "sampler_seed", i64);
    if let Some(order) = saved.get("sampler_order").and_then(Value::as_array) {
        let order: Vec<String> = order.iter().filter_map(Value::as_i64).map(|n| n.to_string()).collect();
        s.sampler_order = order.join(",");
        took.push("sampler_order");
    }
    take!(max_length, "max_length", i64);
    take!(max_context_length, "max_context_length", i64);
    let stops = str_of(saved, "extrastopseq");
    if !stops.is_empty() {
        s.stop_sequences = stops.split("||$||").map(|s| s.replace('\n', "\\n")).collect::<Vec<_>>().join("\n");
        took.push("extrastopseq");
    }
    (s, took)
}

/// Imports a Lite or KoboldAI save.
pub fn import_save(name: &str, save: &Value) -> Result<Imported, ImportError> {
    let mut imported = Imported::default();
    let united = save.get("file_version").is_some() && !save.get("actions").is_some_and(Value::is_array);
    let mut story = Story {
        title: match str_of(save, "story_name") {
            "" => title_of(name),
            n => n.to_string(),
        },
        memory: str_of(save, "memory").to_string(),
        authors_note: str_of(save, if united { "authornote" } else { "authorsnote" }).to_string(),
        ..Story::default()
    };
    let template = str_of(save, if united { "authornotetemplate" } else { "anotetemplate" });
    story.authors_note_template = if template.contains("<|>") {
        template.to_string()
    } else {
        DEFAULT_NOTE_TEMPLATE.to_string()
    };
    if let Some(chars) = save.get("anotestr").and_then(Value::as_u64) {
        story.authors_note_depth = (chars / NOTE_CHARS_PER_TURN) as usize;
    }

    let saved = save.get("savedsettings").filter(|s| s.is_object());
    // KoboldAI United (`.kaistory`) keeps the mode as `storymode`: 0 story, 1 adventure, 2 chat
    // (Lite's opmodes 1, 2, 3), and the writer's chat name as `chatname`.
    let opmode = if united {
        match save.get("storymode").and_then(Value::as_u64) {
            Some(1) => 2,
            Some(2) => 3,
            _ => 1,
        }
    } else {
        saved.and_then(|s| s.get("opmode")).and_then(Value::as_u64).unwrap_or(1)
    };
    let (text, images) = strip_images(&pieces(save).concat());
    match opmode {
        3 => {
            let user = match (united, saved) {
                (true, _) => Some(str_of(save, "chatname")).filter(|n| !n.is_empty()).unwrap_or("User"),
                (false, s) => s.map(|s| str_of(s, "chatname")).unwrap_or("User"),
            };
            let opponents = saved.map(|s| str_of(s, "chatopponent")).unwrap_or("KoboldAI");
            let mut bots = opponents.split("||$||");
            let bot = bots.next().unwrap_or("KoboldAI");
            story.mode = Mode::Chat;
            story.user_name = user.to_string();
            story.bot_name = bot.to_string();
            let (preface, turns) = chat_turns(&text, user, bot);
            story.turns = turns;
            if !preface.is_empty() {
                story.memory = [story.memory.trim(), &preface].join("\n").trim().to_string();
                imported.took("the text before the first chat line, added to the memory");
            }
            if bots.next().is_some() {
                imported.left_out("the other group-chat members (the chat goes on with the first)");
            }
            imported.took(format!("the chat ({})", count(story.turns.len(), "turn", "turns")));
        }
        4 => {
            story.mode = Mode::Instruct;
            let (preface, system, turns) = instruct_turns(&text);
            story.turns = turns;
            let sysprompt = saved.map(|s| str_of(s, "instruct_sysprompt")).unwrap_or_default();
            let system = [system.as_str(), sysprompt].join("\n");
            if !system.trim().is_empty() {
                story.system_prompt = system.trim().to_string();
            }
            if !preface.is_empty() {
                story.memory = [story.memory.trim(), &preface].join("\n").trim().to_string();
                imported.took("the text before the first instruction, added to the memory");
            }
            if let Some(s) = saved {
                story.custom_tags.user = str_of(s, "instruct_starttag").to_string();
                story.custom_tags.assistant = str_of(s, "instruct_endtag").to_string();
                story.custom_tags.system = str_of(s, "instruct_systag").to_string();
                if !story.custom_tags.user.is_empty() && !story.custom_tags.user.contains("{{[") {
                    story.template = InstructTemplate::Custom;
                    imported.took("the instruct tags (as custom tags)");
                }
            }
            imported.took(format!("the instruct conversation ({})", count(story.turns.len(), "turn", "turns")));
        }
        mode => {
            let mut parts = pieces(save).into_iter().map(|p| strip_images(&p).0);
            if let Some(first) = parts.next() {
                story.turns.push(Turn::writer(first));
            }
            story.turns.extend(parts.map(|p| Turn::model(p, None)));
            imported.took(format!("the story text ({})", count(story.turns.len(), "piece", "pieces")));
            if mode == 2 {
                imported.left_out("adventure mode: the text is kept as it was, in story mode");
            }
        }
    }
    if !story.memory.is_empty() {
        imported.took("the memory");
    }
    if !story.authors_note.is_empty() {
        imported.took(format!("the author's note (template and depth {})", story.authors_note_depth));
    }
    let wi = if united {
        save.get("worldinfo_v2").filter(|w| w.get("entries").is_some())
    } else {
        save.get("worldinfo").filter(|w| w.as_array().is_some_and(|a| !a.is_empty()))
    };
    if let Some(wi) = wi {
        let (entries, report) = worldinfo::entries(wi)?;
        story.world_info = entries;
        imported.imported.extend(report.imported);
        imported.not_imported.extend(report.not_imported);
    }
    if let Some(saved) = saved {
        let (settings, took) = settings_of(saved);
        if !took.is_empty() {
            imported.took(format!("the settings ({})", took.join(", ")));
            imported.settings = Some(settings);
        }
    }
    if images > 0 {
        imported.left_out(count(
            images,
            "inline image (Lite keeps it outside the text)",
            "inline images (Lite keeps them outside the text)",
        ));
    }
    let left_if = |imported: &mut Imported, field: &str, what: &str| {
        let present = match save.get(field) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(a)) => a.iter().any(|b| !b.is_null() && b.as_array().is_none_or(|b| !b.is_empty())),
            Some(Value::Object(o)) => !o.is_empty(),
            _ => false,
        };
        if present {
            imported.left_out(what);
        }
    };
    left_if(&mut imported, "personal_notes", "personal notes");
    left_if(&mut imported, "altbranches", "other branches of the story");
    left_if(&mut imported, "documentdb_data", "TextDB documents");
    if saved.is_some() {
        imported.left_out("Lite's other settings (look, voices, image and other options)");
    }
    imported.stories = vec![story];
    Ok(imported)
}

/// The story as a Lite save (Lite's "Download JSON"), settings included.
pub fn export_save(story: &Story, settings: &GenSettings) -> String {
    let tags = story.template.tags(&story.custom_tags);
    let text: Vec<String> = story
        .turns
        .iter()
        .filter(|t| t.image.is_none())
        .map(|t| match (story.mode, t.role) {
            (Mode::Story, _) | (Mode::Adventure, Role::Model) => t.text.clone(),
            (Mode::Adventure, Role::Writer) => format!("\n\n> {}\n\n", t.text.trim()),
            (Mode::Chat, Role::Writer) => format!("\n{}: {}", story.user_name, t.text.trim()),
            (Mode::Chat, Role::Model) => format!("\n{}: {}", story.bot_name, t.text.trim()),
            (Mode::Instruct, Role::Writer) => format!("\n{INPUT}\n{}", t.text.trim()),
            (Mode::Instruct, Role::Model) => format!("\n{OUTPUT}\n{}", t.text.trim()),
        })
        .collect();
    let (prompt, actions) = match text.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let mut metadata = Map::new();
    for i in 0..actions.len() {
        metadata.insert(i.to_string(), json!({"Selected Text": "", "Alternative Text": []}));
    }
    let worldinfo: Vec<Value> = story
        .world_info
        .iter()
        .map(|e| {
            json!({
                "key": e.keys().collect::<Vec<_>>().join(","),
                "keysecondary": e.secondary().collect::<Vec<_>>().join(","),
                "keyanti": "", "content": e.content, "comment": "", "folder": null,
                "selective": !e.secondary_keys.trim().is_empty(), "constant": e.constant,
                "probability": 100, "wigroup": "", "widisabled": false
            })
        })
        .collect();
    let opmode = match story.mode {
        Mode::Story => 1,
        Mode::Adventure => 2,
        Mode::Chat => 3,
        Mode::Instruct => 4,
    };
    let (sys_open, _) = tags.system;
    let stops: Vec<String> = settings.user_stops().collect();
    let save = json!({
        "gamestarted": true,
        "prompt": prompt,
        "memory": story.memory,
        "authorsnote": story.authors_note,
        "anotetemplate": story.authors_note_template,
        "actions": actions,
        "actions_metadata": metadata,
        "worldinfo": worldinfo,
        "wifolders_d": {},
        "wifolders_l": [],
        "anotestr": story.authors_note_depth as u64 * NOTE_CHARS_PER_TURN,
        "wisearchdepth": 0,
        "wiinsertlocation": 0,
        "savedsettings": {
            "opmode": opmode,
            "chatname": story.user_name,
            "chatopponent": story.bot_name,
            "instruct_starttag": tags.user.0,
            "instruct_endtag": tags.assistant.0,
            "instruct_systag": sys_open,
            "instruct_starttag_end": tags.user.1,
            "instruct_endtag_end": tags.assistant.1,
            "instruct_systag_end": tags.system.1,
            "instruct_sysprompt": story.system_prompt,
            "max_context_length": settings.max_context_length,
            "max_length": settings.max_length,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "top_k": settings.top_k,
            "min_p": settings.min_p,
            "rep_pen": settings.rep_pen,
            "rep_pen_range": settings.rep_pen_range,
            "rep_pen_slope": settings.rep_pen_slope,
            "top_a": settings.top_a,
            "typ_s": settings.typical,
            "tfs_s": settings.tfs,
            "dynatemp_range": settings.dynatemp_range,
            "dynatemp_exponent": settings.dynatemp_exponent,
            "smoothing_factor": settings.smoothing_factor,
            "sampler_seed": settings.seed,
            "sampler_order": settings.sampler_order.split(',').filter_map(|n| n.trim().parse::<i64>().ok()).collect::<Vec<_>>(),
            "extrastopseq": stops.join("||$||"),
        },
    });
    save.to_string()
}

#[cfg(test)]
#[path = "lite_tests.rs"]
mod tests;
