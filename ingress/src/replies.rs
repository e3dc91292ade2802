//! Waiting for command outcomes: every ingress instance subscribes to its own Redis channel
//! (`tcom:replies:<instance>`); processors publish there after their transaction commits.
//! A request registers its command id before publishing the command, so a reply can never
//! arrive before someone waits for it. Several requests may wait for one command id (a client
//! retrying with the same Idempotency-Key while the first attempt still waits): the reply
//! reaches every one of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tcom_processors::outcome::{ReplyMessage, reply_channel};
use tokio::sync::oneshot;

/// A request waiting for a reply: its number and where the reply goes.
type Waiter = (u64, oneshot::Sender<ReplyMessage>);

/// Routes replies arriving on this instance's channel to the requests waiting for them.
#[derive(Debug)]
pub struct ReplyRouter {
    instance_id: String,
    /// Per command id, every request waiting for it (with the waiter's number, so a request
    /// that gives up removes only itself).
    waiting: Mutex<HashMap<String, Vec<Waiter>>>,
    next_waiter: AtomicU64,
    subscribed: AtomicBool,
}

/// A registered wait; dropping it forgets the command id.
#[derive(Debug)]
pub struct PendingReply<'a> {
    router: &'a ReplyRouter,
    command_id: String,
    waiter: u64,
    receiver: Option<oneshot::Receiver<ReplyMessage>>,
}

impl PendingReply<'_> {
    /// The reply, or `None` when it does not come within `timeout`.
    pub async fn wait(mut self, timeout: Duration) -> Option<ReplyMessage> {
        let receiver = self.receiver.take()?;
        tokio::time::timeout(timeout, receiver).await.ok()?.ok()
    }
}

impl Drop for PendingReply<'_> {
    fn drop(&mut self) {
        let mut waiting = self.router.waiting.lock().expect("reply table lock");
        if let Some(waiters) = waiting.get_mut(&self.command_id) {
            waiters.retain(|(waiter, _)| *waiter != self.waiter);
            if waiters.is_empty() {
                waiting.remove(&self.command_id);
            }
        }
    }
}

impl ReplyRouter {
    /// A router for this instance (its id is the `reply-to` of its commands).
    pub fn new(instance_id: String) -> Self {
        Self {
            instance_id,
            waiting: Mutex::new(HashMap::new()),
            next_waiter: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
        }
    }

    /// The `reply-to` header value of this instance's commands.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Whether the subscription is live (readiness).
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Registers interest in a command's reply; call before publishing the command.
    pub fn expect(&self, command_id: &str) -> PendingReply<'_> {
        let (sender, receiver) = oneshot::channel();
        let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        self.waiting
            .lock()
            .expect("reply table lock")
            .entry(command_id.to_owned())
            .or_default()
            .push((waiter, sender));
        PendingReply {
            router: self,
            command_id: command_id.to_owned(),
            waiter,
            receiver: Some(receiver),
        }
    }

    fn deliver(&self, message: ReplyMessage) {
        let waiters = self
            .waiting
            .lock()
            .expect("reply table lock")
            .remove(&message.command_id);
        match waiters {
            Some(waiters) => {
                for (_, sender) in waiters {
                    let _ = sender.send(message.clone());
                }
            }
            // The request gave up (answered 202); the outcome is in the views.
            None => tracing::debug!(command = %message.command_id, "Reply for nobody waiting."),
        }
    }

    /// Listens on this instance's channel until the task is dropped, re-subscribing after a
    /// lost connection.
    pub async fn listen(&self, redis: redis::Client) {
        let channel = reply_channel(&self.instance_id);
        loop {
            match self.listen_once(&redis, &channel).await {
                Ok(()) => tracing::warn!("Reply subscription ended; re-subscribing."),
                Err(e) => tracing::warn!(error = %e, "Reply subscription failed; retrying."),
            }
            self.subscribed.store(false, Ordering::Release);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn listen_once(&self, redis: &redis::Client, channel: &str) -> redis::RedisResult<()> {
        let mut pubsub = redis.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        self.subscribed.store(true, Ordering::Release);
        tracing::info!(channel, "Listening for command replies.");
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let payload: Vec<u8> = match message.get_payload() {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "Unreadable reply payload.");
                    continue;
                }
            };
            match serde_json::from_slice::<ReplyMessage>(&payload) {
                Ok(reply) => self.deliver(reply),
                Err(e) => tracing::warn!(error = %e, "Reply that does not parse."),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: &str) -> ReplyMessage {
        ReplyMessage {
            command_id: id.to_owned(),
            outcome: None,
            dead_lettered: Some("x".to_owned()),
            key_reused: false,
        }
    }

    #[tokio::test]
    async fn every_request_waiting_for_a_command_gets_its_reply() {
        let router = ReplyRouter::new("i".to_owned());
        let first = router.expect("c1");
        let second = router.expect("c1");
        let gave_up = router.expect("c1");
        drop(gave_up);
        router.deliver(reply("c1"));
        let timeout = Duration::from_millis(100);
        assert_eq!(first.wait(timeout).await, Some(reply("c1")));
        assert_eq!(second.wait(timeout).await, Some(reply("c1")));
        assert!(router.waiting.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_request_that_gives_up_leaves_the_others_waiting() {
        let router = ReplyRouter::new("i".to_owned());
        let stays = router.expect("c1");
        drop(router.expect("c1"));
        router.deliver(reply("c1"));
        assert!(stays.wait(Duration::from_millis(100)).await.is_some());
    }
}
