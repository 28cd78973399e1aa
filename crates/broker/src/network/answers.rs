//! The answers a connection owes, in the order its requests came.
//!
//! Kafka mutes a channel while one request is handled, so a producer's pipelined
//! Produce requests each wait out the previous one's fsync (`flush.messages`): with
//! one connection, one request per fsync. Here a Produce handler appends, then
//! answers [`Reply::Later`] with what is left (waiting for the group commit and the
//! ISR); the connection takes the next Produce while that waits, so its appends
//! join the same or the next sync. Appends still happen one at a time, in request
//! order, and the answers go out in request order (a client matches them to its
//! requests by order as much as by correlation id). Only a Produce overlaps an
//! earlier answer still waiting: any other request is handled once every earlier
//! answer is ready, as Kafka would handle it. Every waiting answer holds its
//! request's slot ([`super::inflight::RequestSlot`]), so a connection still has at
//! most [`super::inflight::MAX_INFLIGHT_REQUESTS`] in flight.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use protocol::kafka::messages::ApiKey;
use tokio::task::JoinHandle;

use crate::handlers::Reply;

/// The rest of a handler's work: waits, then gives the reply.
pub struct Later {
    future: Pin<Box<dyn Future<Output = Reply> + Send + 'static>>,
    /// Whether a Produce after this one may be handled while it waits.
    overlaps: bool,
}

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Later")
            .field("overlaps", &self.overlaps)
            .finish()
    }
}

impl Later {
    /// A wait that later Produce requests on the connection may overlap.
    pub fn overlapping(future: impl Future<Output = Reply> + Send + 'static) -> Later {
        Later {
            future: Box::pin(future),
            overlaps: true,
        }
    }

    /// A wait that nothing after it overlaps (as if the handler had not returned).
    pub fn exclusive(future: impl Future<Output = Reply> + Send + 'static) -> Later {
        Later {
            future: Box::pin(future),
            overlaps: false,
        }
    }

    /// Waits here (where the reply must be known before going on).
    pub async fn resolve(self) -> Reply {
        self.future.await
    }
}

enum Answer {
    Ready(Reply),
    /// Runs as its own task, so its timers run while it is not at the front.
    Waiting {
        task: JoinHandle<Reply>,
        overlaps: bool,
    },
}

/// The answers owed, in request order, each with what it holds (`T`) until it is
/// written. Dropping the queue abandons the waits still running.
pub struct Answers<T> {
    queue: VecDeque<(Answer, T)>,
}

impl<T> Default for Answers<T> {
    fn default() -> Self {
        Answers {
            queue: VecDeque::new(),
        }
    }
}

impl<T> Drop for Answers<T> {
    fn drop(&mut self) {
        for (answer, _) in &self.queue {
            if let Answer::Waiting { task, .. } = answer {
                task.abort();
            }
        }
    }
}

/// The API key of a request frame (its first two bytes), if it has one.
fn api_key(frame: &[u8]) -> Option<i16> {
    frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]))
}

impl<T> Answers<T> {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the request in `frame` may be handled now: when nothing is owed, or
    /// when it is a Produce and every answer owed is ready or a Produce's wait.
    pub fn may_handle(&self, frame: &[u8]) -> bool {
        self.queue.is_empty()
            || (api_key(frame) == Some(ApiKey::Produce as i16)
                && self.queue.iter().all(|(answer, _)| match answer {
                    Answer::Ready(_) => true,
                    Answer::Waiting { overlaps, .. } => *overlaps,
                }))
    }

    /// Owes `reply` after those owed already; a [`Reply::Later`] starts waiting
    /// now (call within the runtime).
    pub fn push(&mut self, reply: Reply, held: T) {
        let answer = match reply {
            Reply::Later(later) => Answer::Waiting {
                task: tokio::spawn(later.future),
                overlaps: later.overlaps,
            },
            ready => Answer::Ready(ready),
        };
        self.queue.push_back((answer, held));
    }

    /// The first answer owed, once it is ready; never completes when nothing is
    /// owed. Cancel-safe: an answer is taken only when this completes.
    pub async fn next(&mut self) -> (Reply, T) {
        let Some((front, _)) = self.queue.front_mut() else {
            return std::future::pending().await;
        };
        let reply = match front {
            Answer::Ready(_) => None,
            Answer::Waiting { task, .. } => Some(match task.await {
                Ok(reply) => reply,
                Err(e) if e.is_panic() => {
                    tracing::error!("a request's handler panicked; closing the connection");
                    Reply::Close("the handler panicked".into())
                }
                Err(_) => Reply::Close("the handler was cancelled".into()),
            }),
        };
        let (answer, held) = self.queue.pop_front().expect("the front was just seen");
        match (answer, reply) {
            (_, Some(reply)) | (Answer::Ready(reply), None) => (reply, held),
            (Answer::Waiting { .. }, None) => unreachable!("a waiting answer gives a reply"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use std::time::Duration;
    use tokio::sync::oneshot;

    fn frame(tag: u8) -> Reply {
        Reply::Frame(BytesMut::from(&[tag][..]))
    }

    fn tag(reply: &Reply) -> u8 {
        match reply {
            Reply::Frame(bytes) => bytes[0],
            other => panic!("not a frame: {other:?}"),
        }
    }

    /// A wait released by the sender.
    fn gated(tag: u8, overlaps: bool) -> (Reply, oneshot::Sender<()>) {
        let (release, released) = oneshot::channel::<()>();
        let future = async move {
            released.await.expect("released");
            frame(tag)
        };
        let later = if overlaps {
            Later::overlapping(future)
        } else {
            Later::exclusive(future)
        };
        (Reply::Later(later), release)
    }

    fn produce_frame() -> Vec<u8> {
        (ApiKey::Produce as i16).to_be_bytes().to_vec()
    }

    fn fetch_frame() -> Vec<u8> {
        (ApiKey::Fetch as i16).to_be_bytes().to_vec()
    }

    async fn not_ready<T>(answers: &mut Answers<T>) {
        let next = tokio::time::timeout(Duration::from_millis(20), answers.next()).await;
        assert!(next.is_err(), "an answer came before the one ahead of it");
    }

    #[tokio::test]
    async fn answers_go_out_in_request_order_whichever_is_ready_first() {
        let mut answers = Answers::default();
        let (first, release_first) = gated(1, true);
        let (second, release_second) = gated(2, true);
        answers.push(first, "one");
        answers.push(second, "two");
        answers.push(frame(3), "three");
        release_second.send(()).unwrap();
        not_ready(&mut answers).await;
        release_first.send(()).unwrap();
        let mut order = Vec::new();
        while !answers.is_empty() {
            let (reply, held) = answers.next().await;
            order.push((tag(&reply), held));
        }
        assert_eq!(order, vec![(1, "one"), (2, "two"), (3, "three")]);
    }

    #[tokio::test]
    async fn only_a_produce_overlaps_a_waiting_produce_and_nothing_overlaps_an_exclusive_wait() {
        let mut answers = Answers::default();
        assert!(answers.may_handle(&fetch_frame()), "nothing owed");
        assert!(answers.may_handle(&[]), "nothing owed: even a short frame");
        let (waiting, release) = gated(1, true);
        answers.push(waiting, ());
        assert!(answers.may_handle(&produce_frame()));
        assert!(!answers.may_handle(&fetch_frame()));
        assert!(!answers.may_handle(&[0]), "no api key: waits its turn");
        answers.push(frame(2), ());
        assert!(answers.may_handle(&produce_frame()), "a ready answer");
        let (exclusive, release_exclusive) = gated(3, false);
        answers.push(exclusive, ());
        assert!(!answers.may_handle(&produce_frame()));
        release.send(()).unwrap();
        release_exclusive.send(()).unwrap();
        for expected in 1..=3 {
            assert_eq!(tag(&answers.next().await.0), expected);
        }
        assert!(answers.may_handle(&fetch_frame()));
    }

    #[tokio::test]
    async fn a_panicking_wait_closes_and_dropping_the_queue_abandons_the_waits() {
        let mut answers = Answers::default();
        answers.push(
            Reply::Later(Later::overlapping(async { panic!("a bug") })),
            (),
        );
        assert!(matches!(answers.next().await.0, Reply::Close(_)));
        let (dropped_tx, dropped) = oneshot::channel::<()>();
        let (waiting, _release) = gated(1, true);
        // Holds `dropped_tx` until the task is aborted.
        answers.push(
            Reply::Later(Later::overlapping(async move {
                let _held = dropped_tx;
                std::future::pending::<Reply>().await
            })),
            (),
        );
        answers.push(waiting, ());
        drop(answers);
        tokio::time::timeout(Duration::from_secs(10), dropped)
            .await
            .expect("the wait was abandoned")
            .expect_err("the sender was dropped, not used");
    }
}
