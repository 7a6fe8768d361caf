//! What the writer works on: a story (or chat) with its turns, memory, author's note and world
//! info, and the generation settings. Kept in the browser only; serialized as JSON for storage and
//! for export/import.

use serde::{Deserialize, Serialize};

pub use crate::instruct::{CustomTags, InstructTemplate, TemplateTags};

/// Unit enums are stored as their names (what serde's derive wrote before, so saved stories
/// still load) through the shared string code: a derived enum visitor is about a kilobyte of the
/// browser bundle each.
macro_rules! stored_by_name {
    ($t:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl From<$t> for &'static str {
            fn from(v: $t) -> Self {
                match v {
                    $($t::$variant => $name,)*
                }
            }
        }

        impl TryFrom<String> for $t {
            type Error = String;

            fn try_from(name: String) -> Result<Self, String> {
                match name.as_str() {
                    $($name => Ok($t::$variant),)*
                    _ => Err(format!("unknown {}: {name}", stringify!($t))),
                }
            }
        }
    };
}

pub(crate) use stored_by_name;

stored_by_name!(Mode { Story => "story", Adventure => "adventure", Chat => "chat", Instruct => "instruct" });
stored_by_name!(Role { Writer => "writer", Model => "model" });

/// How turns are written and how the prompt is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Mode {
    /// Continuous prose: what the writer types and what the model writes are one text.
    #[default]
    Story,
    /// The writer's turns are actions (`> You open the door.`), the model narrates.
    Adventure,
    /// Named speakers in message bubbles.
    Chat,
    /// Instruction-tuned models: each turn is wrapped in the template's tags.
    Instruct,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Story, Mode::Adventure, Mode::Chat, Mode::Instruct];

    pub fn label(self) -> &'static str {
        match self {
            Mode::Story => "Story",
            Mode::Adventure => "Adventure",
            Mode::Chat => "Chat",
            Mode::Instruct => "Instruct",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Mode::Story => "story",
            Mode::Adventure => "adventure",
            Mode::Chat => "chat",
            Mode::Instruct => "instruct",
        }
    }

    pub fn from_key(key: &str) -> Mode {
        Mode::ALL.into_iter().find(|m| m.key() == key).unwrap_or_default()
    }
}

/// Who wrote a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Role {
    Writer,
    Model,
}

/// Which worker and model wrote a model turn, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    pub worker_name: String,
    pub worker_id: String,
    pub model: String,
    pub kudos: f64,
}

/// One contribution to the story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// An image placed in the story (a `data:` URL, so it outlives the horde's 20 minutes). Shown
    /// to the reader; not part of the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Turn {
    pub fn writer(text: impl Into<String>) -> Self {
        Self {
            role: Role::Writer,
            text: text.into(),
            provenance: None,
            image: None,
        }
    }

    /// An image placed in the story, with its caption.
    pub fn image(data_url: impl Into<String>, caption: impl Into<String>) -> Self {
        Self {
            role: Role::Writer,
            text: caption.into(),
            provenance: None,
            image: Some(data_url.into()),
        }
    }

    pub fn model(text: impl Into<String>, provenance: Option<Provenance>) -> Self {
        Self {
            role: Role::Model,
            text: text.into(),
            provenance,
            image: None,
        }
    }
}

/// A keyword-triggered piece of background: when one of its keys appears in the recent story, its
/// content joins the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WorldEntry {
    /// Comma-separated keys, matched case-insensitively.
    pub keys: String,
    pub content: String,
    /// Always in the prompt, whatever the keys.
    #[serde(default)]
    pub constant: bool,
    /// Comma-separated; when set, one of these must appear as well as one of `keys` (Lite's and
    /// SillyTavern's "selective" entries).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secondary_keys: String,
}

impl WorldEntry {
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.keys
            .split(',')
            .map(|k| crate::browser::lowercase(k.trim()))
            .filter(|k| !k.is_empty())
    }

    /// The secondary keys, like [`WorldEntry::keys`].
    pub fn secondary(&self) -> impl Iterator<Item = String> + '_ {
        self.secondary_keys
            .split(',')
            .map(|k| crate::browser::lowercase(k.trim()))
            .filter(|k| !k.is_empty())
    }
}

/// The author's note as Lite writes it by default; `<|>` is the note.
pub const DEFAULT_NOTE_TEMPLATE: &str = "[Author's note: <|>]";

/// Everything about one story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Story {
    pub title: String,
    pub mode: Mode,
    pub turns: Vec<Turn>,
    /// Always at the top of the prompt.
    pub memory: String,
    /// Inserted `authors_note_depth` turns before the end.
    pub authors_note: String,
    pub authors_note_depth: usize,
    /// How the note is written into the prompt: `<|>` stands for the note.
    pub authors_note_template: String,
    pub world_info: Vec<WorldEntry>,
    pub user_name: String,
    pub bot_name: String,
    pub template: InstructTemplate,
    pub system_prompt: String,
    /// The tags of [`InstructTemplate::Custom`].
    pub custom_tags: CustomTags,
    /// The bot's picture in chat (a small `data:` URL made of a character card's image); empty:
    /// none (its initial stands in).
    pub bot_avatar: String,
}

impl Default for Story {
    fn default() -> Self {
        Self {
            title: "Untitled".into(),
            mode: Mode::Story,
            turns: Vec::new(),
            memory: String::new(),
            authors_note: String::new(),
            authors_note_depth: 3,
            authors_note_template: DEFAULT_NOTE_TEMPLATE.into(),
            world_info: Vec::new(),
            user_name: "User".into(),
            bot_name: "Bot".into(),
            template: InstructTemplate::ChatMl,
            system_prompt: "You are a helpful assistant.".into(),
            custom_tags: CustomTags::default(),
            bot_avatar: String::new(),
        }
    }
}

impl Story {
    /// Nothing written and nothing set up: not worth keeping.
    pub fn is_blank(&self) -> bool {
        self.turns.is_empty() && self.memory.trim().is_empty() && self.authors_note.trim().is_empty() && self.world_info.is_empty()
    }
}

/// Sampler settings offered as one click (each sets every sampler, like Lite's presets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: i64,
    pub min_p: f64,
    pub rep_pen: f64,
    pub top_a: f64,
    pub typical: f64,
    pub tfs: f64,
    pub rep_pen_slope: f64,
    pub dynatemp_range: f64,
    pub smoothing_factor: f64,
}

/// A preset with every other sampler off (top-a 0, typical 1, tail-free 1, no dynamic
/// temperature, no smoothing) and Lite's repetition-penalty slope.
const fn preset(name: &'static str, temperature: f64, top_p: f64, top_k: i64, min_p: f64, rep_pen: f64) -> Preset {
    Preset {
        name,
        temperature,
        top_p,
        top_k,
        min_p,
        rep_pen,
        top_a: 0.0,
        typical: 1.0,
        tfs: 1.0,
        rep_pen_slope: 0.7,
        dynatemp_range: 0.0,
        smoothing_factor: 0.0,
    }
}

/// The presets: the three simple ones and those Lite users know by the sampler they lean on.
pub const PRESETS: [Preset; 7] = [
    preset("Balanced", 0.7, 0.92, 100, 0.0, 1.07),
    preset("Creative", 1.1, 0.98, 0, 0.05, 1.05),
    preset("Precise", 0.2, 0.6, 20, 0.0, 1.1),
    preset("Min-P", 1.0, 1.0, 0, 0.1, 1.05),
    Preset {
        dynatemp_range: 0.5,
        ..preset("DynaTemp", 1.0, 1.0, 0, 0.05, 1.05)
    },
    Preset {
        smoothing_factor: 0.3,
        ..preset("Smoothing", 1.0, 1.0, 0, 0.0, 1.05)
    },
    Preset {
        tfs: 0.95,
        top_a: 0.2,
        ..preset("Top-A & TFS", 0.8, 1.0, 0, 0.0, 1.07)
    },
];

/// Lite's default order of the samplers (repetition penalty first, temperature last).
pub const LITE_SAMPLER_ORDER: &str = "6,0,1,3,4,2,5";

/// How the model should write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenSettings {
    pub max_length: i64,
    pub max_context_length: i64,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: i64,
    pub min_p: f64,
    pub rep_pen: f64,
    pub rep_pen_range: i64,
    pub rep_pen_slope: f64,
    /// Top-a (0: off).
    pub top_a: f64,
    /// Typical sampling (1: off).
    pub typical: f64,
    /// Tail-free sampling (1: off).
    pub tfs: f64,
    /// Dynamic temperature: the range around `temperature` (0: off) and its exponent.
    pub dynatemp_range: f64,
    pub dynatemp_exponent: f64,
    /// Quadratic sampling (0: off).
    pub smoothing_factor: f64,
    /// The samplers' order as KoboldAI numbers them (0 top-k, 1 top-a, 2 top-p, 3 tail-free,
    /// 4 typical, 5 temperature, 6 repetition penalty), comma separated; empty: the worker's.
    pub sampler_order: String,
    /// The sampling seed; negative: the worker picks one.
    pub seed: i64,
    /// The end-of-sequence token banned (the model writes to the full length): the request's
    /// `use_default_badwordsids`.
    pub ban_eos: bool,
    /// One per line.
    pub stop_sequences: String,
    /// The models the request may be served by (the request's `models` list), one per line;
    /// empty: any model. (A line each rather than a list: the bundle has no list decoder.)
    pub models: String,
    /// Empty: any worker.
    pub worker: String,
    /// The studio's colours: `light`, `dark`, `classic` (KoboldAI Lite's look); empty: as the
    /// device prefers.
    pub theme: String,
    /// The story's text size in CSS pixels; 0: the browser's.
    pub font_size: i64,
}

impl Default for GenSettings {
    fn default() -> Self {
        let p = PRESETS[0];
        Self {
            max_length: 120,
            max_context_length: 2048,
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k,
            min_p: p.min_p,
            rep_pen: p.rep_pen,
            rep_pen_range: 360,
            rep_pen_slope: p.rep_pen_slope,
            top_a: p.top_a,
            typical: p.typical,
            tfs: p.tfs,
            dynatemp_range: p.dynatemp_range,
            dynatemp_exponent: 1.0,
            smoothing_factor: p.smoothing_factor,
            sampler_order: LITE_SAMPLER_ORDER.into(),
            seed: -1,
            ban_eos: false,
            stop_sequences: String::new(),
            models: String::new(),
            worker: String::new(),
            theme: String::new(),
            font_size: 0,
        }
    }
}

impl GenSettings {
    pub fn apply(&mut self, p: &Preset) {
        self.temperature = p.temperature;
        self.top_p = p.top_p;
        self.top_k = p.top_k;
        self.min_p = p.min_p;
        self.rep_pen = p.rep_pen;
        self.top_a = p.top_a;
        self.typical = p.typical;
        self.tfs = p.tfs;
        self.rep_pen_slope = p.rep_pen_slope;
        self.dynatemp_range = p.dynatemp_range;
        self.smoothing_factor = p.smoothing_factor;
    }

    /// The settings within the ranges the studio allows (what the settings panel sends is
    /// typed by hand).
    pub fn clamped(mut self) -> Self {
        self.max_length = self.max_length.clamp(16, 4096);
        self.max_context_length = self.max_context_length.clamp(80, 1_048_576);
        self.temperature = self.temperature.clamp(0.0, 5.0);
        self.top_p = self.top_p.clamp(0.001, 1.0);
        self.top_k = self.top_k.clamp(0, 100);
        self.min_p = self.min_p.clamp(0.0, 1.0);
        self.rep_pen = self.rep_pen.clamp(1.0, 3.0);
        self.rep_pen_range = self.rep_pen_range.clamp(0, 4096);
        self.rep_pen_slope = self.rep_pen_slope.clamp(0.0, 10.0);
        self.top_a = self.top_a.clamp(0.0, 1.0);
        self.typical = self.typical.clamp(0.0, 1.0);
        self.tfs = self.tfs.clamp(0.0, 1.0);
        self.dynatemp_range = self.dynatemp_range.clamp(0.0, 5.0);
        self.dynatemp_exponent = self.dynatemp_exponent.clamp(0.0, 5.0);
        self.smoothing_factor = self.smoothing_factor.clamp(0.0, 10.0);
        self.seed = self.seed.clamp(-1, i64::from(i32::MAX));
        self.font_size = self.font_size.clamp(0, 40);
        self
    }

    pub fn user_stops(&self) -> impl Iterator<Item = String> + '_ {
        self.stop_sequences
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.replace("\\n", "\n"))
    }
}

/// Undo and redo over the turns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    undo: Vec<Vec<Turn>>,
    redo: Vec<Vec<Turn>>,
}

impl History {
    const DEPTH: usize = 100;

    /// Call before changing the turns.
    pub fn record(&mut self, before: &[Turn]) {
        self.undo.push(before.to_vec());
        if self.undo.len() > Self::DEPTH {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    pub fn undo(&mut self, current: &[Turn]) -> Option<Vec<Turn>> {
        let prev = self.undo.pop()?;
        self.redo.push(current.to_vec());
        Some(prev)
    }

    pub fn redo(&mut self, current: &[Turn]) -> Option<Vec<Turn>> {
        let next = self.redo.pop()?;
        self.undo.push(current.to_vec());
        Some(next)
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_enums_keep_their_stored_names() {
        assert_eq!(serde_json::to_string(&Mode::Chat).expect("json"), r#""chat""#);
        assert_eq!(serde_json::to_string(&Role::Model).expect("json"), r#""model""#);
        assert_eq!(serde_json::to_string(&InstructTemplate::Llama3).expect("json"), r#""Llama3""#);
        for mode in Mode::ALL {
            let back: Mode = serde_json::from_str(&serde_json::to_string(&mode).expect("json")).expect("mode");
            assert_eq!(back, mode);
        }
        for template in InstructTemplate::ALL {
            let back: InstructTemplate = serde_json::from_str(&serde_json::to_string(&template).expect("json")).expect("template");
            assert_eq!(back, template);
        }
        assert!(serde_json::from_str::<Role>(r#""narrator""#).is_err());
        // A story saved by an earlier version of the studio.
        let old = r#"{"title":"t","mode":"instruct","turns":[{"role":"writer","text":"Hi"}],"template":"Mistral"}"#;
        let story: Story = serde_json::from_str(old).expect("old story");
        assert_eq!(
            (story.mode, story.template, story.turns[0].role),
            (Mode::Instruct, InstructTemplate::Mistral, Role::Writer)
        );
    }

    #[test]
    fn stories_round_trip_and_old_exports_fill_defaults() {
        let mut s = Story::default();
        s.turns.push(Turn::writer("Once"));
        s.world_info.push(WorldEntry {
            keys: "Castle, moat".into(),
            content: "The castle is old.".into(),
            ..WorldEntry::default()
        });
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(serde_json::from_str::<Story>(&json).expect("parses"), s);
        let partial: Story = serde_json::from_str(r#"{"title":"t","mode":"chat"}"#).expect("parses");
        assert_eq!(partial.mode, Mode::Chat);
        assert_eq!(partial.bot_name, "Bot");
        assert_eq!(s.world_info[0].keys().collect::<Vec<_>>(), vec!["castle", "moat"]);
        assert!(!s.is_blank());
        assert!(Story::default().is_blank());
    }

    #[test]
    fn undo_and_redo_walk_the_turns() {
        let mut h = History::default();
        let a = vec![Turn::writer("a")];
        let b = vec![Turn::writer("a"), Turn::model("b", None)];
        h.record(&a);
        assert_eq!(h.undo(&b), Some(a.clone()));
        assert_eq!(h.redo(&a), Some(b.clone()));
        assert!(h.can_undo() && !h.can_redo());
        h.record(&b);
        assert!(!h.can_redo());
    }

    #[test]
    fn settings_stored_before_the_model_list_and_themes_still_load() {
        // The single `model` of earlier versions is dropped (any model), the rest kept.
        let old: GenSettings = serde_json::from_str(r#"{"max_length":64,"model":"koboldcpp/smol","worker":"w1"}"#).expect("old settings");
        assert_eq!((old.max_length, old.worker.as_str()), (64, "w1"));
        assert!(old.models.is_empty());
        assert_eq!((old.theme.as_str(), old.font_size), ("", 0));
        let chosen = GenSettings {
            models: "a\nb".into(),
            theme: "classic".into(),
            font_size: 20,
            ..GenSettings::default()
        };
        let back: GenSettings = serde_json::from_str(&serde_json::to_string(&chosen).expect("json")).expect("back");
        assert_eq!(back, chosen);
    }

    #[test]
    fn typed_settings_are_clamped() {
        let typed = GenSettings {
            max_length: 1,
            top_p: 7.0,
            seed: -20,
            ..GenSettings::default()
        }
        .clamped();
        assert_eq!((typed.max_length, typed.top_p, typed.seed), (16, 1.0, -1));
        assert_eq!(GenSettings::default().clamped(), GenSettings::default());
    }

    #[test]
    fn user_stop_sequences_read_escaped_newlines() {
        let s = GenSettings {
            stop_sequences: "\\nYou:\nEND\n".into(),
            ..GenSettings::default()
        };
        assert_eq!(s.user_stops().collect::<Vec<_>>(), vec!["\nYou:".to_string(), "END".to_string()]);
    }
}
