//! A text request's events as an async stream, shared by the SSE endpoint and the
//! OpenAI-compatible streaming answers. The stream wakes on each change of the request (and once
//! a second, for queue position), computes what its client has not seen, and ends after the
//! final event, when the request leaves memory, or when the horde shuts down. It holds only a
//! cursor (a length per job), so memory per client is bounded and a slow reader never holds up
//! the worker or other readers: what piles up while it is not reading arrives as one delta.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use horde_core::text::{StreamCursor, StreamEvent};
use horde_core::{Horde, HordeError};
use tokio::sync::watch;
use uuid::Uuid;

/// How often the queue position is refreshed while nothing else changes.
pub const STATUS_REFRESH: Duration = Duration::from_secs(1);

/// Tells open streams the server is shutting down, so graceful shutdown does not wait for them.
#[derive(Debug, Clone)]
pub struct Closing(Arc<watch::Sender<bool>>);

impl Default for Closing {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Closing {
    /// Ends every open stream.
    pub fn close(&self) {
        self.0.send_replace(true);
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

struct Follower {
    horde: Arc<Horde>,
    id: Uuid,
    changes: watch::Receiver<()>,
    closing: watch::Receiver<bool>,
    cursor: StreamCursor,
    pending: VecDeque<StreamEvent>,
    ended: bool,
    /// The request's change channel closed.
    gone: bool,
}

/// The events of text request `id`, from its beginning. Fails at once if the request is unknown.
pub async fn follow_text(
    horde: Arc<Horde>,
    id: &str,
    closing: &Closing,
) -> Result<impl Stream<Item = Result<StreamEvent, HordeError>>, HordeError> {
    let (id, changes) = horde.subscribe_text(id).await?;
    let follower = Follower {
        horde,
        id,
        changes,
        closing: closing.subscribe(),
        cursor: StreamCursor::default(),
        pending: VecDeque::new(),
        ended: false,
        gone: false,
    };
    Ok(futures_util::stream::unfold(follower, |mut f| async move {
        loop {
            if let Some(e) = f.pending.pop_front() {
                return Some((Ok(e), f));
            }
            if f.ended || f.cursor.is_done() || *f.closing.borrow() {
                return None;
            }
            match f.horde.text_stream_events(&f.id, &mut f.cursor) {
                Ok(events) if !events.is_empty() => {
                    f.pending.extend(events);
                    continue;
                }
                // Nothing new, and the request already left memory: nothing will come.
                Ok(_) if f.gone => return None,
                Ok(_) => {}
                Err(e) => {
                    f.ended = true;
                    return Some((Err(e), f));
                }
            }
            tokio::select! {
                // A closed channel: the request left memory, which the next look reports.
                changed = f.changes.changed() => f.gone = changed.is_err(),
                _ = f.closing.changed() => {}
                _ = tokio::time::sleep(STATUS_REFRESH) => {}
            }
        }
    }))
}
