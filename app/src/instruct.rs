//! Instruct templates: the tags instruction-tuned model families expect around the system prompt,
//! the user's turns and the model's turns, plus the writer's own tags; and the `{{user}}` /
//! `{{char}}` placeholders that character cards and Lite saves use.

use serde::{Deserialize, Serialize};

use crate::story::stored_by_name;

stored_by_name!(InstructTemplate {
    ChatMl => "ChatMl",
    Alpaca => "Alpaca",
    Vicuna => "Vicuna",
    Llama2 => "Llama2",
    Llama3 => "Llama3",
    Mistral => "Mistral",
    Gemma => "Gemma",
    Phi3 => "Phi3",
    CommandR => "CommandR",
    Metharme => "Metharme",
    DeepSeek => "DeepSeek",
    Glm => "Glm",
    Custom => "Custom",
});

/// Instruct formats of the common model families, and the writer's own ([`CustomTags`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(try_from = "String", into = "&'static str")]
pub enum InstructTemplate {
    #[default]
    ChatMl,
    Alpaca,
    Vicuna,
    Llama2,
    Llama3,
    Mistral,
    Gemma,
    Phi3,
    CommandR,
    Metharme,
    DeepSeek,
    Glm,
    /// The story's [`CustomTags`].
    Custom,
}

/// The tags a template wraps around each part: `(opening, closing)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateTags<'a> {
    pub system: (&'a str, &'a str),
    pub user: (&'a str, &'a str),
    pub assistant: (&'a str, &'a str),
    /// Where the model is expected to stop.
    pub stops: Vec<&'a str>,
}

/// The writer's own instruct tags (what Lite calls the start, end and system tags). Each turn is
/// its opening tag, the text, then `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CustomTags {
    pub system: String,
    pub user: String,
    pub assistant: String,
    /// After every turn (may be empty).
    pub end: String,
}

/// `(opening, closing)` pairs of the built-in templates, in the order system, user, assistant,
/// then the stop sequences.
type Builtin = [(&'static str, &'static str); 3];

impl InstructTemplate {
    pub const ALL: [InstructTemplate; 13] = [
        InstructTemplate::ChatMl,
        InstructTemplate::Alpaca,
        InstructTemplate::Vicuna,
        InstructTemplate::Llama2,
        InstructTemplate::Llama3,
        InstructTemplate::Mistral,
        InstructTemplate::Gemma,
        InstructTemplate::Phi3,
        InstructTemplate::CommandR,
        InstructTemplate::Metharme,
        InstructTemplate::DeepSeek,
        InstructTemplate::Glm,
        InstructTemplate::Custom,
    ];

    pub fn label(self) -> &'static str {
        match self {
            InstructTemplate::ChatMl => "ChatML",
            InstructTemplate::Alpaca => "Alpaca",
            InstructTemplate::Vicuna => "Vicuna",
            InstructTemplate::Llama2 => "Llama 2",
            InstructTemplate::Llama3 => "Llama 3",
            InstructTemplate::Mistral => "Mistral",
            InstructTemplate::Gemma => "Gemma",
            InstructTemplate::Phi3 => "Phi-3",
            InstructTemplate::CommandR => "Command-R",
            InstructTemplate::Metharme => "Metharme",
            InstructTemplate::DeepSeek => "DeepSeek",
            InstructTemplate::Glm => "GLM",
            InstructTemplate::Custom => "Custom tags",
        }
    }

    pub fn from_label(label: &str) -> InstructTemplate {
        Self::ALL.into_iter().find(|t| t.label() == label).unwrap_or_default()
    }

    /// The built-in tags and stops (`None` for [`InstructTemplate::Custom`]).
    fn builtin(self) -> Option<(Builtin, &'static [&'static str])> {
        Some(match self {
            InstructTemplate::ChatMl => (
                [
                    ("<|im_start|>system\n", "<|im_end|>\n"),
                    ("<|im_start|>user\n", "<|im_end|>\n"),
                    ("<|im_start|>assistant\n", "<|im_end|>\n"),
                ],
                &["<|im_end|>", "<|im_start|>"],
            ),
            InstructTemplate::Alpaca => (
                [("", "\n\n"), ("### Instruction:\n", "\n\n"), ("### Response:\n", "\n\n")],
                &["### Instruction:", "### Response:"],
            ),
            InstructTemplate::Vicuna => ([("", "\n\n"), ("USER: ", "\n"), ("ASSISTANT: ", "</s>\n")], &["</s>", "USER:"]),
            InstructTemplate::Llama2 => (
                [("<<SYS>>\n", "\n<</SYS>>\n\n"), ("[INST] ", " [/INST]"), (" ", " </s>")],
                &["</s>", "[INST]"],
            ),
            InstructTemplate::Llama3 => (
                [
                    ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
                    ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
                    ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
                ],
                &["<|eot_id|>", "<|start_header_id|>"],
            ),
            InstructTemplate::Mistral => ([("", "\n\n"), ("[INST] ", " [/INST]"), ("", "</s>")], &["</s>", "[INST]"]),
            InstructTemplate::Gemma => (
                [
                    ("<start_of_turn>user\n", "<end_of_turn>\n"),
                    ("<start_of_turn>user\n", "<end_of_turn>\n"),
                    ("<start_of_turn>model\n", "<end_of_turn>\n"),
                ],
                &["<end_of_turn>", "<start_of_turn>"],
            ),
            InstructTemplate::Phi3 => (
                [
                    ("<|system|>\n", "<|end|>\n"),
                    ("<|user|>\n", "<|end|>\n"),
                    ("<|assistant|>\n", "<|end|>\n"),
                ],
                &["<|end|>", "<|user|>"],
            ),
            InstructTemplate::CommandR => (
                [
                    ("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
                    ("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
                    ("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
                ],
                &["<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>"],
            ),
            InstructTemplate::Metharme => (
                [("<|system|>", ""), ("<|user|>", ""), ("<|model|>", "")],
                &["<|user|>", "<|system|>"],
            ),
            InstructTemplate::DeepSeek => (
                [("", "\n\n"), ("<｜User｜>", ""), ("<｜Assistant｜>", "<｜end▁of▁sentence｜>")],
                &["<｜end▁of▁sentence｜>", "<｜User｜>"],
            ),
            InstructTemplate::Glm => (
                [("<|system|>\n", ""), ("<|user|>\n", ""), ("<|assistant|>\n", "")],
                &["<|user|>", "<|observation|>"],
            ),
            InstructTemplate::Custom => return None,
        })
    }

    /// The tags to use; `custom` is read for [`InstructTemplate::Custom`].
    pub fn tags(self, custom: &CustomTags) -> TemplateTags<'_> {
        match self.builtin() {
            Some(([system, user, assistant], stops)) => TemplateTags {
                system,
                user,
                assistant,
                stops: stops.to_vec(),
            },
            None => {
                let end = custom.end.as_str();
                // The model stops where the writer's next turn (or the end of its own) would begin.
                let stops = [end, custom.user.as_str()]
                    .into_iter()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                TemplateTags {
                    system: (custom.system.as_str(), end),
                    user: (custom.user.as_str(), end),
                    assistant: (custom.assistant.as_str(), end),
                    stops,
                }
            }
        }
    }
}

/// Replaces the placeholders character cards and Lite use: `{{user}}` and `<USER>` become the
/// writer's name, `{{char}}` and `<BOT>` the bot's (either case of the first letter).
pub fn fill_placeholders(text: &str, user: &str, char_name: &str) -> String {
    if !text.contains("{{") && !text.contains('<') {
        return text.to_string();
    }
    text.replace("{{user}}", user)
        .replace("{{User}}", user)
        .replace("<USER>", user)
        .replace("{{char}}", char_name)
        .replace("{{Char}}", char_name)
        .replace("<BOT>", char_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_a_label_a_stored_name_and_stops() {
        let custom = CustomTags {
            system: "<sys>".into(),
            user: "<u>".into(),
            assistant: "<a>".into(),
            end: "</t>".into(),
        };
        for t in InstructTemplate::ALL {
            assert_eq!(InstructTemplate::from_label(t.label()), t);
            let back: InstructTemplate = serde_json::from_str(&serde_json::to_string(&t).expect("json")).expect("template");
            assert_eq!(back, t);
            let tags = t.tags(&custom);
            assert!(!tags.stops.is_empty(), "{t:?} has no stops");
            assert!(
                !tags.assistant.0.is_empty() || t == InstructTemplate::Mistral,
                "{t:?} has no assistant cue"
            );
        }
        assert_eq!(InstructTemplate::ALL.len(), 13);
    }

    #[test]
    fn custom_tags_come_from_the_story() {
        let custom = CustomTags {
            system: "".into(),
            user: "\n### Me:\n".into(),
            assistant: "\n### You:\n".into(),
            end: "".into(),
        };
        let tags = InstructTemplate::Custom.tags(&custom);
        assert_eq!(tags.user, ("\n### Me:\n", ""));
        assert_eq!(tags.assistant.0, "\n### You:\n");
        assert_eq!(tags.stops, vec!["### Me:"]);
    }

    #[test]
    fn placeholders_take_the_names() {
        assert_eq!(
            fill_placeholders("{{char}} greets {{user}}. <BOT> smiles at <USER>.", "Ann", "Rex"),
            "Rex greets Ann. Rex smiles at Ann."
        );
        assert_eq!(fill_placeholders("plain", "Ann", "Rex"), "plain");
    }
}
