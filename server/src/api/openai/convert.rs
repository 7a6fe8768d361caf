//! OpenAI requests as horde text requests: `max_tokens`, `temperature`, `top_p`, `stop`, `n` and
//! `seed` map onto the horde's params; chat messages travel as they are (for workers that apply
//! their model's chat template) and as a plain transcript prompt (for every other worker).

use horde_core::text::TextRequest;
use horde_protocol::openai::{ChatCompletionRequest, CompletionRequest, MessageContent, OneOrMany, Sampling};
use horde_protocol::text::{ChatMessage, GenerateTextRequest, TextParams};

use super::OpenAiError;

/// Most tokens a request may ask for (the horde's `max_length` bound).
pub const MAX_TOKENS: i64 = 4096;
/// `max_tokens` when a completion request names none (OpenAI's default).
pub const DEFAULT_COMPLETION_TOKENS: i64 = 16;
/// `max_tokens` when a chat request names none (the horde's default `max_length`).
pub const DEFAULT_CHAT_TOKENS: i64 = 80;
/// The horde's smallest `max_length`; smaller OpenAI requests are validated at this size.
const HORDE_MIN_LENGTH: i64 = 16;
/// Stop sequences added to chat requests, so a worker completing the transcript prompt stops
/// at the next turn.
pub const TRANSCRIPT_STOPS: [&str; 2] = ["\nUser:", "\nSystem:"];

/// A mapped request and the OpenAI figures the answer needs.
#[derive(Debug)]
pub struct Mapped {
    pub request: TextRequest,
    pub max_tokens: i64,
    /// The model the client named (empty: any).
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
}

/// `POST /v1/completions`.
pub fn completion(r: CompletionRequest) -> Result<Mapped, OpenAiError> {
    let prompt = match r.prompt {
        OneOrMany::One(p) => p,
        OneOrMany::Many(mut v) if v.len() == 1 => v.remove(0),
        OneOrMany::Many(_) => {
            return Err(OpenAiError::invalid("Send one prompt per request.", Some("prompt")));
        }
    };
    map(r.model, prompt, None, &r.sampling, DEFAULT_COMPLETION_TOKENS)
}

/// `POST /v1/chat/completions`.
pub fn chat(r: ChatCompletionRequest) -> Result<Mapped, OpenAiError> {
    if r.messages.is_empty() {
        return Err(OpenAiError::invalid("messages must not be empty.", Some("messages")));
    }
    let messages: Vec<ChatMessage> = r
        .messages
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role.trim().to_lowercase(),
            content: match m.content {
                None => String::new(),
                Some(MessageContent::Text(t)) => t,
                Some(MessageContent::Parts(parts)) => parts
                    .into_iter()
                    .filter(|p| p.kind == "text")
                    .filter_map(|p| p.text)
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
        })
        .collect();
    if let Some(m) = messages.iter().find(|m| m.role.is_empty() || m.role.len() > 32) {
        return Err(OpenAiError::invalid(
            format!("Invalid message role '{}'.", m.role.chars().take(40).collect::<String>()),
            Some("messages"),
        ));
    }
    let prompt = transcript(&messages);
    let mut sampling = r.sampling;
    let mut stops = sampling.stop.take().map(OneOrMany::into_vec).unwrap_or_default();
    for s in TRANSCRIPT_STOPS {
        if !stops.iter().any(|x| x == s) {
            stops.push(s.to_string());
        }
    }
    sampling.stop = Some(OneOrMany::Many(stops));
    map(r.model, prompt, Some(messages), &sampling, DEFAULT_CHAT_TOKENS)
}

/// The conversation as a plain transcript ending in the assistant's turn, for workers without a
/// chat template: `System: …`, `User: …`, `Assistant: …`, then `Assistant:`.
pub fn transcript(messages: &[ChatMessage]) -> String {
    let mut out = String::new();
    for m in messages {
        let label = match m.role.as_str() {
            "system" | "developer" => "System".to_string(),
            "user" => "User".to_string(),
            "assistant" => "Assistant".to_string(),
            other => {
                let mut c = other.chars();
                c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
            }
        };
        out.push_str(&label);
        out.push_str(": ");
        out.push_str(m.content.trim());
        out.push('\n');
    }
    out.push_str("Assistant:");
    out
}

fn map(
    model: Option<String>,
    prompt: String,
    messages: Option<Vec<ChatMessage>>,
    s: &Sampling,
    default_tokens: i64,
) -> Result<Mapped, OpenAiError> {
    let max_tokens = s.max_completion_tokens.or(s.max_tokens).unwrap_or(default_tokens);
    if !(1..=MAX_TOKENS).contains(&max_tokens) {
        return Err(OpenAiError::invalid(
            format!("max_tokens must be between 1 and {MAX_TOKENS}, got {max_tokens}."),
            Some("max_tokens"),
        ));
    }
    if let Some(t) = s.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(OpenAiError::invalid(
            format!("temperature must be between 0 and 2, got {t}."),
            Some("temperature"),
        ));
    }
    let model = model.map(|m| m.trim().to_string()).unwrap_or_default();
    let models = if model.is_empty() || model == "any" {
        None
    } else {
        Some(vec![model.clone()])
    };
    let params = TextParams {
        n: s.n,
        max_length: Some(max_tokens.max(HORDE_MIN_LENGTH)),
        temperature: s.temperature,
        top_p: s.top_p,
        stop_sequence: s.stop.clone().map(OneOrMany::into_vec).filter(|v| !v.is_empty()),
        sampler_seed: s.seed.map(|seed| seed.rem_euclid(1 << 31)),
        ..TextParams::default()
    };
    let wire = GenerateTextRequest {
        prompt: Some(prompt),
        params: Some(params),
        models,
        ..GenerateTextRequest::default()
    };
    let mut request = TextRequest::try_from(wire).map_err(OpenAiError::from)?;
    request.max_length = max_tokens;
    request.params.max_length = Some(max_tokens);
    request.messages = messages;
    Ok(Mapped {
        request,
        max_tokens,
        model,
        stream: s.stream.unwrap_or(false),
        include_usage: s.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}

/// Tokens in `text`, estimated at four characters each (the horde does not see token ids).
pub fn estimate_tokens(text: &str) -> i64 {
    (text.chars().count() as i64 + 3) / 4
}

/// `length` when the text is about as long as allowed, else `stop`.
pub fn finish_reason(text: &str, max_tokens: i64) -> &'static str {
    if estimate_tokens(text) >= max_tokens {
        "length"
    } else {
        "stop"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completion_fields_map_to_horde_params() {
        let r: CompletionRequest = serde_json::from_value(json!({
            "model": "m", "prompt": "Hi", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9,
            "stop": "\n", "n": 2, "seed": -1, "stream": true, "stream_options": {"include_usage": true},
            "logit_bias": {"1": 2}
        }))
        .expect("json");
        let m = completion(r).expect("valid");
        let p = &m.request.params;
        assert_eq!((m.max_tokens, m.request.max_length, p.max_length), (5, 5, Some(5)));
        // `n` becomes jobs; each job's params ask its worker for one.
        assert_eq!((p.temperature, p.top_p, p.n, m.request.n), (Some(0.5), Some(0.9), Some(1), 2));
        assert_eq!(p.stop_sequence, Some(vec!["\n".to_string()]));
        assert_eq!(p.sampler_seed, Some((1 << 31) - 1));
        assert_eq!(m.request.models, vec!["m".to_string()]);
        assert!(m.stream && m.include_usage);
        assert_eq!(m.request.messages, None);
    }

    #[test]
    fn defaults_and_bounds() {
        let m = completion(serde_json::from_value(json!({"prompt": ["Hi"]})).expect("json")).expect("valid");
        assert_eq!(m.max_tokens, DEFAULT_COMPLETION_TOKENS);
        assert!(m.request.models.is_empty());
        let bad = |v: serde_json::Value| completion(serde_json::from_value(v).expect("json")).err().map(|e| e.param);
        assert_eq!(bad(json!({"prompt": "x", "max_tokens": 0})), Some(Some("max_tokens")));
        assert_eq!(bad(json!({"prompt": "x", "max_tokens": 5000})), Some(Some("max_tokens")));
        assert_eq!(bad(json!({"prompt": "x", "temperature": 2.5})), Some(Some("temperature")));
        assert_eq!(bad(json!({"prompt": ["a", "b"]})), Some(Some("prompt")));
        assert!(bad(json!({"prompt": ""})).is_some(), "empty prompt refused");
        assert!(bad(json!({"prompt": "x", "n": 21})).is_some(), "n beyond the horde's 20");
    }

    #[test]
    fn chat_messages_travel_with_a_transcript_prompt() {
        let r: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "image_url", "image_url": {}}]},
            ],
            "stop": ["END"]
        }))
        .expect("json");
        let m = chat(r).expect("valid");
        assert_eq!(m.request.prompt, "System: Be brief.\nUser: Hello\nAssistant:");
        let messages = m.request.messages.expect("messages");
        assert_eq!((messages[1].role.as_str(), messages[1].content.as_str()), ("user", "Hello"));
        assert_eq!(
            m.request.params.stop_sequence,
            Some(vec!["END".to_string(), "\nUser:".to_string(), "\nSystem:".to_string()])
        );
        assert_eq!(m.max_tokens, DEFAULT_CHAT_TOKENS);
        let empty: ChatCompletionRequest = serde_json::from_value(json!({"messages": []})).expect("json");
        assert!(chat(empty).is_err());
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason("abcd", 1), "length");
        assert_eq!(finish_reason("abcd", 2), "stop");
    }
}
