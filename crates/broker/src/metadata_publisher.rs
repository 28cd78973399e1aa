//! The broker's view of the cluster metadata, and the publisher that keeps it.
//!
//! The controller quorum (`quorum::Quorum`) applies committed records to its
//! image and announces each new one on a watch. The publisher takes each
//! image, acts on it first (the replica manager hosts, changes or deletes
//! partitions), and only then publishes it to [`PublishedMetadata`], which every
//! handler reads: a topic in the image readers see always has its logs (Kafka's
//! `ReplicaManager.applyDelta` before `MetadataCache` update, the
//! `BrokerMetadataPublisher` order).
//!
//! A controller decision is answered once its last record is published, so a
//! client that created a topic can use it at once.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use metadata::ClusterImage;
use quorum::AppliedImage;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::configs::resolve_log_config;
use crate::replica_manager::ReplicaManager;
use crate::runtime::blocking;

/// The last image published: its offset, and whether acting on it failed.
#[derive(Debug, Clone)]
pub struct Published {
    /// The offset of the last metadata log entry in it (-1: nothing yet).
    pub offset: i64,
    /// Why the replica manager could not act on it (the image is published
    /// anyway: the records are committed).
    pub error: Option<Arc<str>>,
}

/// Why waiting for a publication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("acting on the metadata change failed: {0}")]
    Act(String),
    #[error("the metadata change at offset {0} was not published in time")]
    Timeout(i64),
    #[error("the metadata publisher stopped")]
    Stopped,
}

/// The image handlers read: the newest one the broker has acted on.
pub struct PublishedMetadata {
    image: RwLock<Arc<ClusterImage>>,
    published: watch::Sender<Published>,
}

impl std::fmt::Debug for PublishedMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedMetadata")
            .field("offset", &self.published.borrow().offset)
            .finish_non_exhaustive()
    }
}

impl Default for PublishedMetadata {
    fn default() -> Self {
        PublishedMetadata::new()
    }
}

impl PublishedMetadata {
    /// Nothing published yet: the empty image.
    pub fn new() -> PublishedMetadata {
        let (published, _) = watch::channel(Published {
            offset: -1,
            error: None,
        });
        PublishedMetadata {
            image: RwLock::new(Arc::new(ClusterImage::default())),
            published,
        }
    }

    /// The current image.
    pub fn image(&self) -> Arc<ClusterImage> {
        Arc::clone(&self.image.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The offset of the last entry published (-1: none).
    pub fn offset(&self) -> i64 {
        self.published.borrow().offset
    }

    fn publish(&self, image: Arc<ClusterImage>, offset: i64, error: Option<Arc<str>>) {
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = image;
        self.published.send_replace(Published { offset, error });
    }

    /// Waits until the entry at `offset` is published; the image then. An
    /// error when acting on the publication that covered it failed.
    pub async fn wait_published(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Arc<ClusterImage>, PublishError> {
        let mut published = self.published.subscribe();
        let wait = async {
            loop {
                {
                    let p = published.borrow_and_update();
                    if p.offset >= offset {
                        return match &p.error {
                            Some(e) => Err(PublishError::Act(e.to_string())),
                            None => Ok(self.image()),
                        };
                    }
                }
                if published.changed().await.is_err() {
                    return Err(PublishError::Stopped);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| PublishError::Timeout(offset))?
    }
}

/// Whether the publisher acts on an image at `offset`: one it has not acted on
/// yet, and not older than the metadata had caught up to at start-up.
fn acts_on(offset: i64, caught_up: i64, last: Option<i64>) -> bool {
    offset >= caught_up && last.is_none_or(|l| offset > l)
}

/// Acts on every image the quorum applies from `caught_up` on, then publishes
/// it, until shutdown.
///
/// `caught_up` is the offset the metadata had caught up to at start-up. An
/// older image (the snapshot's, before openraft re-applies the log after it)
/// is never acted on: the replica manager deletes the logs of partitions an
/// image does not show, and that image does not show what was created since.
pub async fn run_publisher(
    metadata: Arc<PublishedMetadata>,
    mut images: watch::Receiver<AppliedImage>,
    caught_up: i64,
    replicas: Arc<ReplicaManager>,
    config: Arc<BrokerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last: Option<i64> = None;
    loop {
        let applied = images.borrow_and_update().clone();
        if acts_on(applied.offset, caught_up, last) {
            last = Some(applied.offset);
            let replicas = Arc::clone(&replicas);
            let config = Arc::clone(&config);
            let image = Arc::clone(&applied.image);
            let acted = blocking(move || {
                let defaults = crate::configs::topic_defaults(&config, &image);
                replicas.apply_image(&image, &move |topic| resolve_log_config(&defaults, topic))
            })
            .await;
            let error = acted.err().map(|e| {
                tracing::error!(offset = applied.offset, error = %e, "acting on the metadata image failed");
                Arc::<str>::from(e.to_string())
            });
            metadata.publish(applied.image, applied.offset, error);
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_older_than_the_start_up_catch_up_is_acted_on() {
        // The snapshot's image before the log after it is re-applied.
        assert!(!acts_on(3, 9, None));
        assert!(acts_on(9, 9, None));
        assert!(
            acts_on(-1, -1, None),
            "a new node has nothing to catch up with"
        );
        assert!(!acts_on(9, 9, Some(9)), "acted on already");
        assert!(acts_on(10, 9, Some(9)));
    }

    #[tokio::test]
    async fn a_waiter_sees_the_publication_that_covers_its_offset() {
        let metadata = Arc::new(PublishedMetadata::new());
        assert_eq!(metadata.offset(), -1);
        let waiter = {
            let metadata = Arc::clone(&metadata);
            tokio::spawn(async move {
                metadata
                    .wait_published(3, Duration::from_secs(30))
                    .await
                    .map(|image| image.last_offset)
            })
        };
        let image = |last_offset| {
            Arc::new(ClusterImage {
                last_offset,
                ..ClusterImage::default()
            })
        };
        metadata.publish(image(2), 2, None);
        metadata.publish(image(4), 4, None);
        assert_eq!(waiter.await.unwrap(), Ok(4));
        metadata.publish(image(5), 5, Some("disk full".into()));
        assert_eq!(
            metadata
                .wait_published(5, Duration::from_secs(30))
                .await
                .map(|_| ()),
            Err(PublishError::Act("disk full".into()))
        );
        assert_eq!(
            metadata
                .wait_published(6, Duration::from_millis(1))
                .await
                .map(|_| ()),
            Err(PublishError::Timeout(6))
        );
    }
}
