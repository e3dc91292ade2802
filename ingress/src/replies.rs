//! Waiting for command outcomes: every ingress instance subscribes to its own Redis channel
//! (`tcom:replies:<instance>`); processors publish there after their transaction commits.
//! A request registers its command id before publishing the command, so a reply can never
//! arrive before someone waits for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tcom_processors::outcome::{ReplyMessage, reply_channel};
use tokio::sync::oneshot;

/// Routes replies arriving on this instance's channel to the requests waiting for them.
#[derive(Debug)]
pub struct ReplyRouter {
    instance_id: String,
    waiting: Mutex<HashMap<String, oneshot::Sender<ReplyMessage>>>,
    subscribed: AtomicBool,
}

/// A registered wait; dropping it forgets the command id.
#[derive(Debug)]
pub struct PendingReply<'a> {
    router: &'a ReplyRouter,
    command_id: String,
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
        self.router
            .waiting
            .lock()
            .expect("reply table lock")
            .remove(&self.command_id);
    }
}

impl ReplyRouter {
    /// A router for this instance (its id is the `reply-to` of its commands).
    pub fn new(instance_id: String) -> Self {
        Self {
            instance_id,
            waiting: Mutex::new(HashMap::new()),
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
        self.waiting
            .lock()
            .expect("reply table lock")
            .insert(command_id.to_owned(), sender);
        PendingReply {
            router: self,
            command_id: command_id.to_owned(),
            receiver: Some(receiver),
        }
    }

    fn deliver(&self, message: ReplyMessage) {
        let waiter = self
            .waiting
            .lock()
            .expect("reply table lock")
            .remove(&message.command_id);
        match waiter {
            Some(sender) => {
                let _ = sender.send(message);
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
