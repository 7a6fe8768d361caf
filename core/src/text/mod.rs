//! Text requests: the validated form of what a client sent.

pub mod request;

pub use request::TextRequest;
