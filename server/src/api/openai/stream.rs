//! Builds OpenAI answers from a request's events: whole (`text_completion`,
//! `chat.completion`) or as chunks (`chat.completion.chunk`, or `text_completion` pieces). The
//! horde's jobs become choices: each job takes the lowest free choice index when its text first
//! arrives, and a job that fails before sending text gives its index back.

use std::collections::HashMap;

use axum::http::StatusCode;
use horde_core::text::StreamEvent;
use horde_core::HordeError;
use horde_protocol::openai::{ChatChoice, ChatCompletion, Completion, CompletionChoice, ResponseMessage, Usage};
use horde_protocol::text::TextStatus;
use uuid::Uuid;

use super::convert::{estimate_tokens, finish_reason};
use super::OpenAiError;

/// The object name of a streamed chat chunk.
const CHUNK: &str = "chat.completion.chunk";

/// Which endpoint is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Completion,
    Chat,
}

/// One answer being built.
pub struct Answer {
    flavor: Flavor,
    id: String,
    created: i64,
    model: String,
    max_tokens: i64,
    include_usage: bool,
    prompt_tokens: i64,
    /// Choice index of each job that has sent text.
    choices: HashMap<String, u32>,
    /// Text sent per choice index.
    sent: HashMap<u32, String>,
    finished_choices: Vec<u32>,
    completion_tokens: i64,
    finished: bool,
}

impl Answer {
    pub fn new(flavor: Flavor, request: Uuid, model: String, max_tokens: i64, include_usage: bool, prompt_tokens: i64) -> Self {
        let prefix = match flavor {
            Flavor::Completion => "cmpl",
            Flavor::Chat => "chatcmpl",
        };
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self {
            flavor,
            id: format!("{prefix}-{}", request.simple()),
            created,
            model: if model.is_empty() { "horde".into() } else { model },
            max_tokens,
            include_usage,
            prompt_tokens,
            choices: HashMap::new(),
            sent: HashMap::new(),
            finished_choices: vec![],
            completion_tokens: 0,
            finished: false,
        }
    }

    /// The stream is complete (`[DONE]` was produced).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Chunks sent before any event: chat streams announce the assistant's role at once.
    pub fn opening(&self) -> Vec<String> {
        match self.flavor {
            Flavor::Completion => vec![],
            Flavor::Chat => vec![self.chat_chunk(
                0,
                ResponseMessage {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                },
                None,
            )],
        }
    }

    fn choice_of(&mut self, job: &str) -> u32 {
        if let Some(i) = self.choices.get(job) {
            return *i;
        }
        let mut i = 0;
        while self.choices.values().any(|v| *v == i) {
            i += 1;
        }
        self.choices.insert(job.to_string(), i);
        i
    }

    /// A `text_completion` object (whole, or a chunk) as JSON.
    fn completion(&self, model: &str, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> String {
        let c = Completion {
            id: self.id.clone(),
            object: "text_completion".into(),
            created: self.created,
            model: model.to_string(),
            choices,
            usage,
        };
        serde_json::to_string(&c).unwrap_or_default()
    }

    /// A chat object of kind `object` (`chat.completion` or `chat.completion.chunk`) as JSON.
    fn chat(&self, object: &str, model: &str, choices: Vec<ChatChoice>, usage: Option<Usage>) -> String {
        let c = ChatCompletion {
            id: self.id.clone(),
            object: object.into(),
            created: self.created,
            model: model.to_string(),
            choices,
            usage,
        };
        serde_json::to_string(&c).unwrap_or_default()
    }

    fn text_chunk(&self, index: u32, text: String, finish: Option<&str>) -> String {
        let choice = CompletionChoice {
            text,
            index,
            logprobs: None,
            finish_reason: finish.map(str::to_string),
        };
        self.completion(&self.model, vec![choice], None)
    }

    fn chat_chunk(&self, index: u32, delta: ResponseMessage, finish: Option<&str>) -> String {
        let choice = ChatChoice {
            index,
            message: None,
            delta: Some(delta),
            logprobs: None,
            finish_reason: finish.map(str::to_string),
        };
        self.chat(CHUNK, &self.model, vec![choice], None)
    }

    fn piece(&self, index: u32, text: String, finish: Option<&str>) -> String {
        match self.flavor {
            Flavor::Completion => self.text_chunk(index, text, finish),
            Flavor::Chat => self.chat_chunk(
                index,
                ResponseMessage {
                    role: None,
                    content: (!text.is_empty() || finish.is_none()).then_some(text),
                },
                finish,
            ),
        }
    }

    fn fail(&mut self, e: OpenAiError) -> Vec<String> {
        self.finished = true;
        vec![serde_json::to_string(&e.body()).unwrap_or_default()]
    }

    /// The chunks (SSE `data:` payloads) for one event.
    pub fn chunks(&mut self, event: Result<StreamEvent, HordeError>) -> Vec<String> {
        if self.finished {
            return vec![];
        }
        let event = match event {
            Ok(e) => e,
            Err(e) => return self.fail(e.into()),
        };
        match event {
            StreamEvent::Delta(d) => {
                let i = self.choice_of(&d.job);
                self.sent.entry(i).or_default().push_str(&d.text);
                vec![self.piece(i, d.text, None)]
            }
            StreamEvent::Reset(d) => {
                // Text already sent cannot be taken back: send what extends it, if anything.
                let i = self.choice_of(&d.job);
                let sent = self.sent.entry(i).or_default();
                match d.text.strip_prefix(sent.as_str()).map(str::to_string) {
                    Some(rest) if !rest.is_empty() => {
                        sent.push_str(&rest);
                        vec![self.piece(i, rest, None)]
                    }
                    _ => vec![],
                }
            }
            StreamEvent::Generation(g) => {
                let i = self.choice_of(&g.job);
                self.finished_choices.push(i);
                let text = &g.generation.text;
                self.completion_tokens += estimate_tokens(text);
                if !g.generation.model.is_empty() {
                    self.model = g.generation.model.clone();
                }
                let finish = finish_reason(text, self.max_tokens);
                vec![self.piece(i, String::new(), Some(finish))]
            }
            StreamEvent::Aborted(a) => {
                if let Some(i) = self.choices.remove(&a.job) {
                    if self.sent.get(&i).is_some_and(|s| !s.is_empty()) {
                        return self.fail(OpenAiError {
                            status: StatusCode::SERVICE_UNAVAILABLE,
                            message: "The worker generating this answer failed; its text so far is void.".into(),
                            param: None,
                            code: Some("worker_failed".into()),
                        });
                    }
                }
                vec![]
            }
            StreamEvent::Status(_) => vec![],
            StreamEvent::Done(status) => {
                if status.faulted {
                    return self.fail(faulted());
                }
                self.finished = true;
                let mut out = vec![];
                if self.include_usage {
                    let usage = Usage {
                        prompt_tokens: self.prompt_tokens,
                        completion_tokens: self.completion_tokens,
                        total_tokens: self.prompt_tokens + self.completion_tokens,
                    };
                    out.push(match self.flavor {
                        Flavor::Completion => self.completion(&self.model, vec![], Some(usage)),
                        Flavor::Chat => self.chat(CHUNK, &self.model, vec![], Some(usage)),
                    });
                }
                out.push("[DONE]".into());
                out
            }
        }
    }

    /// The whole answer (JSON) from the final status.
    pub fn whole(&self, status: &TextStatus) -> Result<String, OpenAiError> {
        if status.faulted || status.generations.is_empty() {
            return Err(faulted());
        }
        let model = status
            .generations
            .iter()
            .map(|g| g.model.clone())
            .find(|m| !m.is_empty())
            .unwrap_or_else(|| self.model.clone());
        let completion_tokens: i64 = status.generations.iter().map(|g| estimate_tokens(&g.text)).sum();
        let usage = Some(Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens,
            total_tokens: self.prompt_tokens + completion_tokens,
        });
        let finish = |text: &str| Some(finish_reason(text, self.max_tokens).to_string());
        let generations = status.generations.iter().enumerate();
        Ok(match self.flavor {
            Flavor::Completion => {
                let choices = generations
                    .map(|(i, g)| CompletionChoice {
                        text: g.text.clone(),
                        index: i as u32,
                        logprobs: None,
                        finish_reason: finish(&g.text),
                    })
                    .collect();
                self.completion(&model, choices, usage)
            }
            Flavor::Chat => {
                let choices = generations
                    .map(|(i, g)| ChatChoice {
                        index: i as u32,
                        message: Some(ResponseMessage {
                            role: Some("assistant".into()),
                            content: Some(g.text.clone()),
                        }),
                        delta: None,
                        logprobs: None,
                        finish_reason: finish(&g.text),
                    })
                    .collect();
                self.chat("chat.completion", &model, choices, usage)
            }
        })
    }
}

fn faulted() -> OpenAiError {
    OpenAiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "The request faulted: its workers failed too many times, or it was cancelled before any text.".into(),
        param: None,
        code: Some("request_faulted".into()),
    }
}
