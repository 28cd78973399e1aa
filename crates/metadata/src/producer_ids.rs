//! AllocateProducerIds (67): a broker takes producer ids from the controller in
//! blocks, so two brokers never hand out the same id. Kafka's
//! `ProducerIdControlManager.generateNextProducerId`: the block starts at the
//! image's next producer id, and a `ProducerIdsRecord` moves that past it.
//! Decisions read the image with every earlier decision applied, so blocks
//! follow each other without a gap or an overlap.
//!
//! The record's BrokerEpoch field is still written as -1 (`metadata::records`
//! does not carry it yet); the epoch is checked here before anything is written.

use crate::cluster_control::check_broker_epoch;
use crate::error::BrokerRequestError;
use crate::image::ClusterImage;
use crate::records::MetadataRecord;

/// Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// The ids `first_producer_id .. first_producer_id + size`, for one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdsBlock {
    pub assigned_broker_id: i32,
    pub first_producer_id: i64,
    pub size: i32,
}

impl ProducerIdsBlock {
    /// The first id after this block.
    pub fn next_block_first_id(&self) -> i64 {
        self.first_producer_id + i64::from(self.size)
    }
}

/// Decides an AllocateProducerIds request from `broker` at `broker_epoch`.
pub fn allocate_producer_ids(
    image: &ClusterImage,
    broker: i32,
    broker_epoch: i64,
) -> Result<(Vec<MetadataRecord>, ProducerIdsBlock), BrokerRequestError> {
    check_broker_epoch(image, broker, broker_epoch)?;
    let first = image.next_producer_id;
    if first > i64::MAX - i64::from(PRODUCER_ID_BLOCK_SIZE) {
        return Err(BrokerRequestError::ProducerIdsExhausted);
    }
    let block = ProducerIdsBlock {
        assigned_broker_id: broker,
        first_producer_id: first,
        size: PRODUCER_ID_BLOCK_SIZE,
    };
    let record = MetadataRecord::ProducerIds {
        broker_id: broker,
        next_producer_id: block.next_block_first_id(),
    };
    Ok((vec![record], block))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn two_brokers() -> ClusterImage {
        let mut image = ClusterImage::default();
        for id in 1..=2 {
            let record = MetadataRecord::RegisterBroker {
                node_id: id,
                incarnation_id: Uuid::from_u128(id as u128),
                broker_epoch: image.last_offset + 1,
                endpoints: Vec::new(),
                features: Vec::new(),
                rack: None,
                fenced: false,
                in_controlled_shutdown: false,
            };
            image.apply(image.last_offset + 1, &record).unwrap();
        }
        image
    }

    #[test]
    fn blocks_handed_to_two_brokers_never_overlap() {
        let mut image = two_brokers();
        let mut blocks = Vec::new();
        for round in 0..10 {
            for (broker, epoch) in [(1, 0), (2, 1)] {
                let (records, block) = allocate_producer_ids(&image, broker, epoch).unwrap();
                assert_eq!(
                    records,
                    vec![MetadataRecord::ProducerIds {
                        broker_id: broker,
                        next_producer_id: block.next_block_first_id()
                    }],
                    "round {round}"
                );
                for record in &records {
                    image.apply(image.last_offset + 1, record).unwrap();
                }
                blocks.push(block);
            }
        }
        assert_eq!(blocks[0].first_producer_id, 0);
        for pair in blocks.windows(2) {
            assert_eq!(pair[1].first_producer_id, pair[0].next_block_first_id());
            assert_ne!(pair[0].assigned_broker_id, pair[1].assigned_broker_id);
        }
        assert_eq!(image.next_producer_id, 20 * 1000);
    }

    #[test]
    fn a_stale_epoch_or_no_ids_left_is_refused() {
        let mut image = two_brokers();
        assert_eq!(
            allocate_producer_ids(&image, 1, 5).unwrap_err().to_string(),
            "Expected broker epoch 0, but got broker epoch 5"
        );
        assert!(allocate_producer_ids(&image, 3, 0).is_err());
        let last = MetadataRecord::ProducerIds {
            broker_id: 1,
            next_producer_id: i64::MAX - 1000,
        };
        image.apply(image.last_offset + 1, &last).unwrap();
        let (_, block) = allocate_producer_ids(&image, 1, 0).unwrap();
        assert_eq!(block.next_block_first_id(), i64::MAX);
        let beyond = MetadataRecord::ProducerIds {
            broker_id: 1,
            next_producer_id: i64::MAX - 999,
        };
        image.apply(image.last_offset + 1, &beyond).unwrap();
        assert_eq!(
            allocate_producer_ids(&image, 2, 1).unwrap_err().to_string(),
            "Exhausted all producerIds as the next block's end producerId has exceeded the int64 type limit"
        );
    }
}
