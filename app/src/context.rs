//! Context assembly: turns a story into the prompt a worker sees, within the model's context.
//!
//! Order: (instruct system prompt) memory, triggered world info, then as many of the most recent
//! turns as fit, with the author's note inserted `depth` turns before the end, and last the cue
//! for the model's turn (`\nBot:`, the assistant tag, an empty line after an action).

use crate::instruct::fill_placeholders;
use crate::story::{GenSettings, Mode, Role, Story, Turn};
use horde_protocol::text::{GenerateTextRequest, TextParams};
use serde::{Deserialize, Serialize};

/// Characters per token assumed when measuring text in the browser (no tokenizer there). Lower
/// than most tokenizers' average so the estimate errs on the side of fitting.
pub const CHARS_PER_TOKEN: usize = 3;

/// How many recent turns world-info keys are looked for in.
pub const WORLD_INFO_SCAN_TURNS: usize = 4;

/// Estimated tokens in a text.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN)
}

/// The prompt for the next model turn, and what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    pub prompt: String,
    pub stop_sequences: Vec<String>,
    /// Estimated tokens of the prompt.
    pub used_tokens: usize,
    /// Tokens the prompt may use: context size minus the reply's length.
    pub budget_tokens: usize,
    /// Oldest turns left out to fit.
    pub dropped_turns: usize,
    /// Indexes of the world-info entries that joined.
    pub world_info: Vec<usize>,
}

/// One turn as the prompt writes it.
fn render_turn(story: &Story, turn: &Turn) -> String {
    match (story.mode, turn.role) {
        (Mode::Story, _) => turn.text.clone(),
        (Mode::Adventure, Role::Writer) => format!("\n> {}\n", turn.text.trim()),
        (Mode::Adventure, Role::Model) => turn.text.clone(),
        (Mode::Chat, Role::Writer) => format!("\n{}: {}", story.user_name, turn.text.trim()),
        (Mode::Chat, Role::Model) => format!("\n{}: {}", story.bot_name, turn.text.trim()),
        (Mode::Instruct, role) => {
            let tags = story.template.tags(&story.custom_tags);
            let (open, close) = if role == Role::Writer { tags.user } else { tags.assistant };
            format!("{open}{}{close}", turn.text.trim())
        }
    }
}

/// What comes after the last turn: the cue for the model to write.
fn cue(story: &Story) -> String {
    match story.mode {
        Mode::Story | Mode::Adventure => String::new(),
        Mode::Chat => format!("\n{}:", story.bot_name),
        Mode::Instruct => story.template.tags(&story.custom_tags).assistant.0.to_string(),
    }
}

fn mode_stops(story: &Story) -> Vec<String> {
    let stops = match story.mode {
        Mode::Story => Vec::new(),
        Mode::Adventure => vec!["\n>".to_string()],
        Mode::Chat => vec![format!("\n{}:", story.user_name)],
        Mode::Instruct => story
            .template
            .tags(&story.custom_tags)
            .stops
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    // Custom tags may name the speakers.
    stops
        .into_iter()
        .map(|s| fill_placeholders(&s, &story.user_name, &story.bot_name))
        .collect()
}

/// Which world-info entries the recent turns trigger.
pub fn triggered_world_info(story: &Story) -> Vec<usize> {
    let start = story.turns.len().saturating_sub(WORLD_INFO_SCAN_TURNS);
    let recent: String = story.turns[start..]
        .iter()
        .map(|t| crate::browser::lowercase(&t.text))
        .collect::<Vec<_>>()
        .join("\n");
    story
        .world_info
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            let secondary_ok = || e.secondary_keys.trim().is_empty() || e.secondary().any(|k| recent.contains(&k));
            !e.content.trim().is_empty() && (e.constant || (e.keys().any(|k| recent.contains(&k)) && secondary_ok()))
        })
        .map(|(i, _)| i)
        .collect()
}

/// The last `max_chars` characters of a text.
fn tail_chars(text: &str, max_chars: usize) -> &str {
    let n = text.chars().count();
    if n <= max_chars {
        return text;
    }
    let skip = n - max_chars;
    let at = text.char_indices().nth(skip).map_or(text.len(), |(i, _)| i);
    &text[at..]
}

/// Builds the prompt for the next model turn.
pub fn assemble(story: &Story, settings: &GenSettings) -> Assembled {
    let budget_tokens = usize::try_from(settings.max_context_length.saturating_sub(settings.max_length)).unwrap_or(0);
    let world_info = triggered_world_info(story);

    let mut header = String::new();
    if story.mode == Mode::Instruct && !story.system_prompt.trim().is_empty() {
        let (open, close) = story.template.tags(&story.custom_tags).system;
        header.push_str(&format!("{open}{}{close}", story.system_prompt.trim()));
    }
    let mut background: Vec<&str> = Vec::new();
    if !story.memory.trim().is_empty() {
        background.push(story.memory.trim());
    }
    background.extend(world_info.iter().map(|&i| story.world_info[i].content.trim()));
    if !background.is_empty() {
        header.push_str(&background.join("\n"));
        header.push('\n');
    }
    let note = if story.authors_note.trim().is_empty() {
        String::new()
    } else {
        let template = if story.authors_note_template.contains("<|>") {
            story.authors_note_template.as_str()
        } else {
            crate::story::DEFAULT_NOTE_TEMPLATE
        };
        format!("\n{}\n", template.replace("<|>", story.authors_note.trim()))
    };
    let cue = cue(story);

    // Fixed parts first; the turns get what is left, newest first.
    let fixed_tokens = estimate_tokens(&header) + estimate_tokens(&note) + estimate_tokens(&cue);
    let mut left = budget_tokens.saturating_sub(fixed_tokens);
    // Images are for the reader: the models are text-only.
    let rendered: Vec<String> = story
        .turns
        .iter()
        .filter(|t| t.image.is_none())
        .map(|t| render_turn(story, t))
        .collect();
    let mut kept: Vec<String> = Vec::new();
    for piece in rendered.iter().rev() {
        let cost = estimate_tokens(piece);
        if cost <= left {
            left -= cost;
            kept.push(piece.clone());
        } else {
            // The newest turn that does not fit whole keeps its end.
            if kept.is_empty() && left > 0 {
                kept.push(tail_chars(piece, left * CHARS_PER_TOKEN).to_string());
            }
            break;
        }
    }
    let dropped_turns = rendered.len() - kept.len();
    kept.reverse();

    // The author's note goes `depth` turns before the end (at the top when there are fewer).
    let depth = story.authors_note_depth.min(kept.len());
    let mut prompt = header;
    for (i, piece) in kept.iter().enumerate() {
        if !note.is_empty() && i == kept.len() - depth {
            prompt.push_str(&note);
        }
        prompt.push_str(piece);
    }
    if !note.is_empty() && depth == 0 {
        prompt.push_str(&note);
    }
    prompt.push_str(&cue);
    let prompt = fill_placeholders(&prompt, &story.user_name, &story.bot_name);

    let mut stop_sequences = mode_stops(story);
    for s in settings.user_stops() {
        if !stop_sequences.contains(&s) {
            stop_sequences.push(s);
        }
    }
    Assembled {
        used_tokens: estimate_tokens(&prompt),
        prompt,
        stop_sequences,
        budget_tokens,
        dropped_turns,
        world_info,
    }
}

/// What the studio sends for the next model turn: the assembled prompt, its stop sequences and
/// the settings. The server makes the horde's request of it ([`StudioTextRequest::to_horde`]), so
/// the browser carries no code for the wire request's many fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudioTextRequest {
    pub prompt: String,
    pub stop_sequences: Vec<String>,
    pub settings: GenSettings,
}

impl StudioTextRequest {
    /// The horde request.
    pub fn to_horde(&self) -> GenerateTextRequest {
        let settings = &self.settings;
        let nonempty = |s: &str| (!s.trim().is_empty()).then(|| vec![s.trim().to_string()]);
        GenerateTextRequest {
            prompt: Some(self.prompt.clone()),
            params: Some(TextParams {
                n: Some(1),
                max_length: Some(settings.max_length),
                max_context_length: Some(settings.max_context_length),
                temperature: Some(settings.temperature),
                top_p: Some(settings.top_p),
                top_k: Some(settings.top_k),
                min_p: Some(settings.min_p),
                rep_pen: Some(settings.rep_pen),
                rep_pen_range: Some(settings.rep_pen_range),
                rep_pen_slope: Some(settings.rep_pen_slope),
                top_a: Some(settings.top_a),
                typical: Some(settings.typical),
                tfs: Some(settings.tfs),
                dynatemp_range: Some(settings.dynatemp_range),
                dynatemp_exponent: Some(settings.dynatemp_exponent),
                smoothing_factor: Some(settings.smoothing_factor),
                sampler_order: sampler_order(&settings.sampler_order),
                sampler_seed: (settings.seed >= 0).then_some(settings.seed),
                use_default_badwordsids: Some(settings.ban_eos),
                stop_sequence: (!self.stop_sequences.is_empty()).then(|| self.stop_sequences.clone()),
                ..TextParams::default()
            }),
            models: {
                let models: Vec<String> = settings
                    .models
                    .lines()
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect();
                (!models.is_empty()).then_some(models)
            },
            workers: nonempty(&settings.worker),
            ..GenerateTextRequest::default()
        }
    }
}

/// The samplers' order as typed ("6, 0, 1"): empty is none (the worker's order); an entry that
/// is not a number is sent as -1, so the horde refuses the request and says why.
fn sampler_order(typed: &str) -> Option<Vec<i64>> {
    let order: Vec<i64> = typed
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(-1))
        .collect();
    (!order.is_empty()).then_some(order)
}

/// The request for the next model turn.
pub fn text_request(story: &Story, settings: &GenSettings) -> StudioTextRequest {
    let a = assemble(story, settings);
    StudioTextRequest {
        prompt: a.prompt,
        stop_sequences: a.stop_sequences,
        settings: settings.clone(),
    }
}

/// The request that continues the model's last turn: the prompt ends inside that turn (no cue
/// for a new turn, no closing tag in instruct). Story and adventure prompts already end so.
pub fn continue_request(story: &Story, settings: &GenSettings) -> StudioTextRequest {
    let mut request = text_request(story, settings);
    let cue = fill_placeholders(&cue(story), &story.user_name, &story.bot_name);
    let close = match story.mode {
        Mode::Instruct => story.template.tags(&story.custom_tags).assistant.1.to_string(),
        _ => String::new(),
    };
    if let Some(inside) = request.prompt.strip_suffix(cue.as_str()) {
        request.prompt = inside.strip_suffix(close.as_str()).unwrap_or(inside).to_string();
    }
    request
}

/// A model's reply as the turn keeps it: chat and instruct replies lose surrounding blank space
/// and anything from a stop sequence on (workers that ignore stops leave them in).
pub fn clean_reply(story: &Story, settings: &GenSettings, text: &str) -> String {
    let a_stops = mode_stops(story).into_iter().chain(settings.user_stops());
    let mut end = text.len();
    for s in a_stops {
        if let Some(i) = text.find(&s) {
            end = end.min(i);
        }
    }
    let text = &text[..end];
    match story.mode {
        Mode::Chat | Mode::Instruct => text.trim().to_string(),
        Mode::Story | Mode::Adventure => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::story::{InstructTemplate, WorldEntry};

    fn settings(context: i64, length: i64) -> GenSettings {
        GenSettings {
            max_context_length: context,
            max_length: length,
            ..GenSettings::default()
        }
    }

    #[test]
    fn story_mode_joins_memory_turns_and_the_note_at_depth() {
        let story = Story {
            memory: "Memory here.".into(),
            authors_note: "Dark tone".into(),
            authors_note_depth: 1,
            turns: vec![Turn::writer("The night fell."), Turn::model(" Wolves howled.", None)],
            ..Story::default()
        };
        let a = assemble(&story, &settings(2048, 100));
        assert_eq!(
            a.prompt,
            "Memory here.\nThe night fell.\n[Author's note: Dark tone]\n Wolves howled."
        );
        assert_eq!(a.dropped_turns, 0);
        assert!(a.stop_sequences.is_empty());
        assert_eq!(a.budget_tokens, 1948);
        assert_eq!(a.used_tokens, estimate_tokens(&a.prompt));
    }

    #[test]
    fn the_note_goes_to_the_top_when_deeper_than_the_story_and_last_at_depth_zero() {
        let mut story = Story {
            authors_note: "N".into(),
            authors_note_depth: 5,
            turns: vec![Turn::writer("a"), Turn::model("b", None)],
            ..Story::default()
        };
        assert_eq!(assemble(&story, &settings(2048, 100)).prompt, "\n[Author's note: N]\nab");
        story.authors_note_depth = 0;
        assert_eq!(assemble(&story, &settings(2048, 100)).prompt, "ab\n[Author's note: N]\n");
    }

    #[test]
    fn chat_mode_names_speakers_cues_the_bot_and_stops_at_the_user() {
        let story = Story {
            mode: Mode::Chat,
            user_name: "Ann".into(),
            bot_name: "Max".into(),
            turns: vec![Turn::writer("Hi!"), Turn::model("Hello.", None), Turn::writer(" How are you? ")],
            ..Story::default()
        };
        let a = assemble(&story, &settings(2048, 100));
        assert_eq!(a.prompt, "\nAnn: Hi!\nMax: Hello.\nAnn: How are you?\nMax:");
        assert_eq!(a.stop_sequences, vec!["\nAnn:".to_string()]);
        assert_eq!(clean_reply(&story, &settings(2048, 100), " Fine.\nAnn: and"), "Fine.");
    }

    #[test]
    fn instruct_mode_wraps_turns_in_the_template() {
        let mut story = Story {
            mode: Mode::Instruct,
            system_prompt: "Be brief.".into(),
            memory: "The user is Ann.".into(),
            turns: vec![Turn::writer("Capital of France?")],
            ..Story::default()
        };
        let a = assemble(&story, &settings(2048, 100));
        assert_eq!(
            a.prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\nThe user is Ann.\n<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(a.stop_sequences.contains(&"<|im_end|>".to_string()));
        story.template = InstructTemplate::Alpaca;
        let a = assemble(&story, &settings(2048, 100));
        assert_eq!(
            a.prompt,
            "Be brief.\n\nThe user is Ann.\n### Instruction:\nCapital of France?\n\n### Response:\n"
        );
        for t in InstructTemplate::ALL {
            story.template = t;
            assert!(assemble(&story, &settings(2048, 100))
                .prompt
                .ends_with(t.tags(&story.custom_tags).assistant.0));
        }
    }

    #[test]
    fn adventure_actions_are_marked() {
        let story = Story {
            mode: Mode::Adventure,
            turns: vec![Turn::model("You stand in a cave.", None), Turn::writer("light a torch")],
            ..Story::default()
        };
        let a = assemble(&story, &settings(2048, 100));
        assert_eq!(a.prompt, "You stand in a cave.\n> light a torch\n");
        assert_eq!(a.stop_sequences, vec!["\n>".to_string()]);
    }

    #[test]
    fn world_info_joins_when_a_key_is_in_the_recent_turns() {
        let mut story = Story {
            world_info: vec![
                WorldEntry {
                    keys: "dragon, wyrm".into(),
                    content: "Dragons breathe ice here.".into(),
                    constant: false,
                    ..WorldEntry::default()
                },
                WorldEntry {
                    keys: "castle".into(),
                    content: "The castle is ruined.".into(),
                    constant: false,
                    ..WorldEntry::default()
                },
                WorldEntry {
                    keys: String::new(),
                    content: "It always rains.".into(),
                    constant: true,
                    ..WorldEntry::default()
                },
            ],
            turns: vec![Turn::writer("A WYRM appeared.")],
            ..Story::default()
        };
        let a = assemble(&story, &settings(2048, 100));
        assert_eq!(a.world_info, vec![0, 2]);
        assert_eq!(a.prompt, "Dragons breathe ice here.\nIt always rains.\nA WYRM appeared.");
        // Keys are only looked for in the recent turns.
        for i in 0..WORLD_INFO_SCAN_TURNS {
            story.turns.push(Turn::writer(format!(" Turn {i}.")));
        }
        assert_eq!(triggered_world_info(&story), vec![2]);
    }

    #[test]
    fn selective_entries_need_a_secondary_key_too() {
        let mut story = Story {
            world_info: vec![WorldEntry {
                keys: "sword".into(),
                secondary_keys: "cursed, black".into(),
                content: "The black sword drinks souls.".into(),
                ..WorldEntry::default()
            }],
            turns: vec![Turn::writer("She drew her sword.")],
            ..Story::default()
        };
        assert!(triggered_world_info(&story).is_empty());
        story.turns.push(Turn::writer(" It was Black as night."));
        assert_eq!(triggered_world_info(&story), vec![0]);
    }

    #[test]
    fn the_note_template_and_placeholders_shape_the_prompt() {
        let story = Story {
            mode: Mode::Chat,
            user_name: "Ann".into(),
            bot_name: "Rex".into(),
            memory: "{{char}} is a dog who loves {{user}}.".into(),
            authors_note: "Rex barks".into(),
            authors_note_template: "[Style: <|>]".into(),
            authors_note_depth: 0,
            turns: vec![Turn::writer("Hi {{char}}")],
            ..Story::default()
        };
        let a = assemble(&story, &settings(2048, 100));
        assert_eq!(a.prompt, "Rex is a dog who loves Ann.\n\nAnn: Hi Rex\n[Style: Rex barks]\n\nRex:");

        // Custom instruct tags naming the speakers: in the prompt and in the stops.
        let story = Story {
            mode: Mode::Instruct,
            template: InstructTemplate::Custom,
            custom_tags: crate::story::CustomTags {
                user: "\n{{user}}: ".into(),
                assistant: "\n{{char}}: ".into(),
                ..Default::default()
            },
            system_prompt: String::new(),
            ..story
        };
        let a = assemble(&story, &settings(2048, 100));
        assert_eq!(a.prompt, "Rex is a dog who loves Ann.\n\nAnn: Hi Rex\n[Style: Rex barks]\n\nRex: ");
        assert_eq!(a.stop_sequences, vec!["Ann:".to_string()]);
        assert_eq!(clean_reply(&story, &settings(2048, 100), "Woof.\nAnn: hi"), "Woof.");
    }

    #[test]
    fn old_turns_drop_to_fit_and_the_newest_keeps_its_end() {
        let turns: Vec<Turn> = (0..10).map(|i| Turn::writer(format!("{i}{}", "x".repeat(29)))).collect();
        let story = Story {
            memory: "M".repeat(30),
            turns,
            ..Story::default()
        };
        // 60 tokens of context, 20 for the reply: 40 for the prompt; memory and newline take 11,
        // each turn 10, so two turns fit.
        let a = assemble(&story, &settings(60, 20));
        assert_eq!(a.budget_tokens, 40);
        assert_eq!(a.dropped_turns, 8);
        assert!(a.prompt.starts_with(&format!("{}\n8", "M".repeat(30))));
        assert!(a.prompt.ends_with(&format!("9{}", "x".repeat(29))));
        assert!(a.used_tokens <= a.budget_tokens);

        let long = Story {
            turns: vec![Turn::writer(format!("{}END", "é".repeat(500)))],
            ..Story::default()
        };
        let a = assemble(&long, &settings(60, 20));
        assert_eq!(a.dropped_turns, 0);
        assert!(a.prompt.ends_with("END") && a.prompt.chars().count() == 40 * CHARS_PER_TOKEN);
    }

    #[test]
    fn continuing_ends_the_prompt_inside_the_models_last_turn() {
        let mut story = Story {
            mode: Mode::Chat,
            bot_name: "Max".into(),
            turns: vec![Turn::writer("Hi"), Turn::model("Hello", None)],
            ..Story::default()
        };
        let s = GenSettings::default();
        assert_eq!(continue_request(&story, &s).prompt, "\nUser: Hi\nMax: Hello");
        story.mode = Mode::Instruct;
        assert_eq!(
            continue_request(&story, &s).prompt,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello"
        );
    }

    #[test]
    fn the_request_carries_the_prompt_settings_and_choices() {
        let story = Story {
            mode: Mode::Chat,
            turns: vec![Turn::writer("Hi")],
            ..Story::default()
        };
        let s = GenSettings {
            models: "koboldcpp/smol\n koboldcpp/big\n\n".into(),
            stop_sequences: "END".into(),
            ..GenSettings::default()
        };
        let r = text_request(&story, &s).to_horde();
        assert_eq!(r.prompt.as_deref(), Some("\nUser: Hi\nBot:"));
        assert_eq!(r.models, Some(vec!["koboldcpp/smol".to_string(), "koboldcpp/big".to_string()]));
        assert_eq!(r.workers, None);
        let any = text_request(&story, &GenSettings::default()).to_horde();
        assert_eq!(any.models, None);
        let p = r.params.expect("params");
        assert_eq!(p.max_length, Some(120));
        assert_eq!(p.stop_sequence, Some(vec!["\nUser:".to_string(), "END".to_string()]));
    }
}

#[cfg(test)]
mod image_turn_tests {
    use super::*;

    #[test]
    fn images_in_the_story_stay_out_of_the_prompt() {
        let story = Story {
            mode: Mode::Chat,
            turns: vec![
                Turn::writer("Look at this."),
                Turn::image("data:image/png;base64,AAAA", "a red fox"),
                Turn::writer("What is it?"),
            ],
            ..Story::default()
        };
        let a = assemble(&story, &GenSettings::default());
        assert_eq!(a.prompt, "\nUser: Look at this.\nUser: What is it?\nBot:");
        assert_eq!(a.dropped_turns, 0);
    }

    #[test]
    fn every_sampler_reaches_the_horde_request() {
        let s = GenSettings {
            top_a: 0.2,
            typical: 0.9,
            tfs: 0.95,
            rep_pen_slope: 0.3,
            dynatemp_range: 0.5,
            dynatemp_exponent: 1.5,
            smoothing_factor: 0.25,
            sampler_order: " 5, 6,0,1,2,3,4 ".into(),
            seed: 77,
            ban_eos: true,
            ..GenSettings::default()
        };
        let request = text_request(&Story::default(), &s).to_horde();
        let p = request.params.expect("params");
        assert_eq!(
            (p.top_a, p.typical, p.tfs, p.rep_pen_slope),
            (Some(0.2), Some(0.9), Some(0.95), Some(0.3))
        );
        assert_eq!(
            (p.dynatemp_range, p.dynatemp_exponent, p.smoothing_factor),
            (Some(0.5), Some(1.5), Some(0.25))
        );
        assert_eq!(p.sampler_order, Some(vec![5, 6, 0, 1, 2, 3, 4]));
        assert_eq!((p.sampler_seed, p.use_default_badwordsids), (Some(77), Some(true)));
        // A random seed is left to the worker; an empty order is the worker's; a typo is sent
        // as -1 for the horde to refuse.
        let p = text_request(&Story::default(), &GenSettings::default())
            .to_horde()
            .params
            .expect("params");
        assert_eq!((p.sampler_seed, p.sampler_order), (None, Some(vec![6, 0, 1, 3, 4, 2, 5])));
        assert_eq!(super::sampler_order(""), None);
        assert_eq!(super::sampler_order("1,x"), Some(vec![1, -1]));
    }
}
