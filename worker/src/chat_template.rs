//! A model's chat template (the Jinja text in GGUF `tokenizer.chat_template` or HF
//! `tokenizer_config.json`), rendered with MiniJinja the way Hugging Face renders it: messages,
//! `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception`, Python string methods,
//! trimmed blocks. Files without a template get a built-in one chosen by the marker tokens their
//! vocabulary has ([`builtin_for`]).

use horde_protocol::text::ChatMessage;
use minijinja::{context, Environment, Error, ErrorKind};

/// A chat template ready to render.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
    /// Whether a leading BOS text is cut from the rendered prompt (the tokenizer adds BOS).
    strip_bos: bool,
}

/// Gemma's turns; there is no system role, so a system prompt opens the first user turn.
const GEMMA: &str = r#"{{ bos_token }}
{%- if messages and messages[0].role == 'system' -%}
{%- set system = messages[0].content | trim + '\n\n' -%}
{%- set turns = messages[1:] -%}
{%- else -%}
{%- set system = '' -%}
{%- set turns = messages -%}
{%- endif -%}
{%- if not turns and system -%}
{{ '<start_of_turn>user\n' + system | trim + '<end_of_turn>\n' }}
{%- endif -%}
{%- for m in turns -%}
{{ '<start_of_turn>' + ('model' if m.role == 'assistant' else m.role) + '\n' + (system if loop.first else '') + m.content | trim + '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<start_of_turn>model\n' }}
{%- endif -%}"#;

/// ChatML (Qwen, SmolLM, many fine-tunes).
const CHATML: &str = r#"{%- for m in messages -%}
{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|im_start|>assistant\n' }}
{%- endif -%}"#;

/// Llama 3's headers.
const LLAMA3: &str = r#"{{ bos_token }}
{%- for m in messages -%}
{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\n\n' + m.content | trim + '<|eot_id|>' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif -%}"#;

/// Mistral's `[INST]` turns; a system prompt opens the first one.
const MISTRAL: &str = r#"{{ bos_token }}
{%- if messages and messages[0].role == 'system' -%}
{%- set system = messages[0].content | trim + '\n\n' -%}
{%- set turns = messages[1:] -%}
{%- else -%}
{%- set system = '' -%}
{%- set turns = messages -%}
{%- endif -%}
{%- for m in turns -%}
{%- if m.role == 'assistant' -%}
{{ m.content | trim + eos_token }}
{%- else -%}
{{ '[INST] ' + (system if loop.first else '') + m.content | trim + '[/INST]' }}
{%- endif -%}
{%- endfor -%}"#;

/// Built-in templates: the token that marks the format, its name, the template.
const BUILTIN: &[(&str, &str, &str)] = &[
    ("<start_of_turn>", "gemma", GEMMA),
    ("<|start_header_id|>", "llama3", LLAMA3),
    ("<|im_start|>", "chatml", CHATML),
    ("[INST]", "mistral", MISTRAL),
];

/// The built-in template (name, source) for a vocabulary with no template of its own, chosen by
/// the first marker token it has: `<start_of_turn>` Gemma, `<|start_header_id|>` Llama 3,
/// `<|im_start|>` ChatML, `[INST]` Mistral.
pub fn builtin_for(has_token: impl Fn(&str) -> bool) -> Option<(&'static str, &'static str)> {
    BUILTIN
        .iter()
        .find(|(marker, _, _)| has_token(marker))
        .map(|(_, name, source)| (*name, *source))
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> Result<String, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, message))
    });
    env
}

impl ChatTemplate {
    /// Checks that `source` parses.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self, String> {
        environment().template_from_str(source).map_err(|e| format!("chat template: {e}"))?;
        Ok(Self {
            source: source.to_string(),
            bos: bos.to_string(),
            eos: eos.to_string(),
            strip_bos: false,
        })
    }

    /// Cut a leading BOS text from rendered prompts when `tokenizer_adds_bos` (templates write
    /// `{{ bos_token }}` for tokenizers that do not add it; two BOS tokens confuse models).
    pub fn with_tokenizer_bos(mut self, tokenizer_adds_bos: bool) -> Self {
        self.strip_bos = tokenizer_adds_bos && !self.bos.is_empty();
        self
    }

    /// The prompt for `messages`, ending where the assistant's answer begins.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, String> {
        let env = environment();
        let template = env.template_from_str(&self.source).map_err(|e| format!("chat template: {e}"))?;
        let prompt = template
            .render(context! {
                messages => messages
                    .iter()
                    .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
                    .collect::<Vec<_>>(),
                add_generation_prompt => true,
                bos_token => self.bos.as_str(),
                eos_token => self.eos.as_str(),
            })
            .map_err(|e| format!("chat template: {e}"))?;
        Ok(match prompt.strip_prefix(self.bos.as_str()).filter(|_| self.strip_bos) {
            Some(rest) => rest.to_string(),
            None => prompt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    /// SmolLM2-Instruct's template (ChatML with a default system prompt).
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_a_default_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").expect("parses");
        let out = t.render(&[msg("user", "Hi")]).expect("renders");
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t.render(&[msg("system", "Be brief."), msg("user", "Hi")]).expect("renders");
        assert!(out.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n"), "{out}");
    }

    #[test]
    fn python_methods_bos_and_exceptions() {
        let src = "{{ bos_token }}{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}[{{ m.role.upper() }}] {{ m.content.strip() }}\n{% endfor %}";
        let t = ChatTemplate::new(src, "<s>", "</s>").expect("parses");
        assert_eq!(t.render(&[msg("user", "  hi  ")]).expect("renders"), "<s>[USER] hi\n");
        let err = t.render(&[msg("tool", "x")]).expect_err("raises");
        assert!(err.contains("no tools"), "{err}");
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }

    fn builtin(marker: &str) -> ChatTemplate {
        let (_, source) = builtin_for(|t| t == marker).expect("a built-in template");
        ChatTemplate::new(source, "<bos>", "<eos>").expect("parses")
    }

    #[test]
    fn builtin_templates_are_chosen_by_the_vocabulary() {
        let name = |tokens: &[&str]| builtin_for(|t| tokens.contains(&t)).map(|(name, _)| name);
        assert_eq!(name(&["<start_of_turn>", "<end_of_turn>"]), Some("gemma"));
        assert_eq!(name(&["<|start_header_id|>", "<|eot_id|>"]), Some("llama3"));
        assert_eq!(name(&["<|im_start|>", "<|im_end|>"]), Some("chatml"));
        assert_eq!(name(&["[INST]", "[/INST]"]), Some("mistral"));
        assert_eq!(name(&["<s>", "</s>"]), None);
    }

    #[test]
    fn gemma_folds_the_system_prompt_into_the_first_user_turn() {
        let t = builtin("<start_of_turn>");
        let chat = [
            msg("system", "Be brief."),
            msg("user", "Hi "),
            msg("assistant", "Hello."),
            msg("user", "Bye"),
        ];
        assert_eq!(
            t.render(&chat).expect("renders"),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            t.render(&[msg("user", "Hi")]).expect("renders"),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            t.render(&[msg("system", "Only this.")]).expect("renders"),
            "<bos><start_of_turn>user\nOnly this.<end_of_turn>\n<start_of_turn>model\n"
        );
        // The tokenizer adds BOS: the rendered prompt leaves it out.
        let t = t.with_tokenizer_bos(true);
        assert_eq!(
            t.render(&[msg("user", "Hi")]).expect("renders"),
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn chatml_llama3_and_mistral_builtins() {
        let chat = [msg("system", "Be brief."), msg("user", "Hi")];
        assert_eq!(
            builtin("<|im_start|>").render(&chat).expect("renders"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            builtin("<|start_header_id|>").render(&chat).expect("renders"),
            "<bos><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        let chat = [
            msg("system", "Be brief."),
            msg("user", "Hi"),
            msg("assistant", "Hello."),
            msg("user", "Bye"),
        ];
        assert_eq!(
            builtin("[INST]").render(&chat).expect("renders"),
            "<bos>[INST] Be brief.\n\nHi[/INST]Hello.<eos>[INST] Bye[/INST]"
        );
    }
}
