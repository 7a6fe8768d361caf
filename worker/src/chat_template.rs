//! A model's chat template (the Jinja text in GGUF `tokenizer.chat_template` or HF
//! `tokenizer_config.json`), rendered with MiniJinja the way Hugging Face renders it: messages,
//! `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception`, Python string methods,
//! trimmed blocks.

use horde_protocol::text::ChatMessage;
use minijinja::{context, Environment, Error, ErrorKind};

/// A chat template ready to render.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
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
        })
    }

    /// The prompt for `messages`, ending where the assistant's answer begins.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, String> {
        let env = environment();
        let template = env.template_from_str(&self.source).map_err(|e| format!("chat template: {e}"))?;
        template
            .render(context! {
                messages => messages
                    .iter()
                    .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
                    .collect::<Vec<_>>(),
                add_generation_prompt => true,
                bos_token => self.bos.as_str(),
                eos_token => self.eos.as_str(),
            })
            .map_err(|e| format!("chat template: {e}"))
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
}
