// ckgcheck drives confluent-kafka-go (Debian's 0.11.6, cgo over Debian's
// librdkafka) against a broker and prints what happened as one JSON object, for
// tests/interop/test_go_clients.py: admin calls (CreateTopics, DescribeConfigs,
// AlterConfigs, DeleteTopics), keyed records with headers and a codec, a consumer
// group of two, and the committed offsets.
//
// Usage: ckgcheck BOOTSTRAP TOPIC CODEC
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/kafka"
)

const records = 20

type consumed struct {
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers"`
}

type result struct {
	Librdkafka  string          `json:"librdkafka"`
	RetentionMs string          `json:"retention_ms"`
	AlteredMs   string          `json:"altered_retention_ms"`
	Produced    [][2]int64      `json:"produced"`
	Consumed    []consumed      `json:"consumed"`
	Members     []int           `json:"member_partition_counts"`
	Committed   map[int32]int64 `json:"committed"`
	Deleted     bool            `json:"deleted"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: ckgcheck BOOTSTRAP TOPIC CODEC")
	}
	bootstrap, topic, codec := os.Args[1], os.Args[2], os.Args[3]
	res := result{Committed: map[int32]int64{}}
	_, res.Librdkafka = kafka.LibraryVersion()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		fail("admin: %v", err)
	}
	created, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{
		{Topic: topic, NumPartitions: 2, ReplicationFactor: 1},
		{Topic: topic + "-doomed", NumPartitions: 1, ReplicationFactor: 1}})
	if err != nil {
		fail("CreateTopics: %v", err)
	}
	for _, r := range created {
		if r.Error.Code() != kafka.ErrNoError {
			fail("CreateTopics %s: %v", r.Topic, r.Error)
		}
	}
	describe := func() string {
		results, err := admin.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic}})
		if err != nil {
			fail("DescribeConfigs: %v", err)
		}
		return results[0].Config["retention.ms"].Value
	}
	res.RetentionMs = describe()
	altered, err := admin.AlterConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic,
		Config: []kafka.ConfigEntry{{Name: "retention.ms", Value: "86400000"}}}})
	if err != nil || altered[0].Error.Code() != kafka.ErrNoError {
		fail("AlterConfigs: %v %v", err, altered)
	}
	res.AlteredMs = describe()

	producer, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "compression.codec": codec,
		"linger.ms": 0, "acks": "all"})
	if err != nil {
		fail("producer: %v", err)
	}
	deliveries := make(chan kafka.Event, records)
	for i := 0; i < records; i++ {
		t := topic
		err := producer.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &t, Partition: int32(i % 2)},
			Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i)),
			Headers: []kafka.Header{{Key: "h", Value: []byte(fmt.Sprintf("%d", i))}}}, deliveries)
		if err != nil {
			fail("Produce: %v", err)
		}
		m := (<-deliveries).(*kafka.Message)
		if m.TopicPartition.Error != nil {
			fail("delivery: %v", m.TopicPartition.Error)
		}
		res.Produced = append(res.Produced, [2]int64{int64(m.TopicPartition.Partition), int64(m.TopicPartition.Offset)})
	}
	producer.Close()

	var mu sync.Mutex
	seen := map[[2]int64]bool{}
	consumers := []*kafka.Consumer{}
	memberParts := []map[int32]bool{{}, {}}
	for m := 0; m < 2; m++ {
		c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": topic + "-group",
			"auto.offset.reset": "earliest", "enable.auto.commit": false})
		if err != nil {
			fail("consumer: %v", err)
		}
		if err := c.Subscribe(topic, nil); err != nil {
			fail("Subscribe: %v", err)
		}
		consumers = append(consumers, c)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		done := len(seen) >= records && len(memberParts[0]) > 0 && len(memberParts[1]) > 0
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			fail("timed out: %d records", len(seen))
		}
		for i, c := range consumers {
			msg, err := c.ReadMessage(100 * time.Millisecond)
			if assigned, aerr := c.Assignment(); aerr == nil {
				for _, tp := range assigned {
					memberParts[i][tp.Partition] = true
				}
			}
			if err != nil {
				continue
			}
			if _, err := c.CommitMessage(msg); err != nil {
				fail("CommitMessage: %v", err)
			}
			key := [2]int64{int64(msg.TopicPartition.Partition), int64(msg.TopicPartition.Offset)}
			if seen[key] {
				continue
			}
			seen[key] = true
			headers := map[string]string{}
			for _, h := range msg.Headers {
				headers[h.Key] = string(h.Value)
			}
			res.Consumed = append(res.Consumed, consumed{msg.TopicPartition.Partition, int64(msg.TopicPartition.Offset),
				string(msg.Key), string(msg.Value), headers})
		}
	}
	t := topic
	committed, err := consumers[0].Committed([]kafka.TopicPartition{{Topic: &t, Partition: 0}, {Topic: &t, Partition: 1}}, 10000)
	if err != nil {
		fail("Committed: %v", err)
	}
	for _, tp := range committed {
		res.Committed[tp.Partition] = int64(tp.Offset)
	}
	for i, c := range consumers {
		c.Close()
		res.Members = append(res.Members, len(memberParts[i]))
	}
	sort.Ints(res.Members)
	sort.Slice(res.Consumed, func(i, j int) bool {
		a, b := res.Consumed[i], res.Consumed[j]
		return a.Partition < b.Partition || (a.Partition == b.Partition && a.Offset < b.Offset)
	})
	deleted, err := admin.DeleteTopics(ctx, []string{topic + "-doomed"})
	if err != nil || deleted[0].Error.Code() != kafka.ErrNoError {
		fail("DeleteTopics: %v %v", err, deleted)
	}
	res.Deleted = true
	admin.Close()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fail("encode: %v", err)
	}
}
