// saramacheck drives Shopify/sarama (Debian's 1.22.1) against a broker and prints
// what happened as one JSON object, for tests/interop/test_go_clients.py to check:
// admin calls (create, list, describe config, alter config, delete), keyed records
// (headers from Kafka 0.11's format on) with a compression codec, a consumer group
// of two, and the group's committed offsets.
//
// Usage: saramacheck BOOTSTRAP TOPIC VERSION CODEC   (VERSION as sarama parses it)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const records = 20

type result struct {
	AdminVersion string          `json:"admin_version"`
	Topics       []string        `json:"topics"`
	Partitions   int             `json:"partitions"`
	RetentionMs  string          `json:"retention_ms"`
	AlteredMs    string          `json:"altered_retention_ms"`
	Produced     [][2]int64      `json:"produced"`
	Consumed     []consumed      `json:"consumed"`
	Members      []int           `json:"member_partition_counts"`
	Committed    map[int32]int64 `json:"committed"`
	Deleted      bool            `json:"deleted"`
	Errors       []string        `json:"errors"`
}

type consumed struct {
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

type handler struct {
	mu     *sync.Mutex
	out    *[]consumed
	claims map[int32]bool
	done   chan struct{}
	once   *sync.Once
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ps := range s.Claims() {
		for _, p := range ps {
			h.claims[p] = true
		}
	}
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		headers := map[string]string{}
		for _, hd := range m.Headers {
			headers[string(hd.Key)] = string(hd.Value)
		}
		h.mu.Lock()
		*h.out = append(*h.out, consumed{m.Partition, m.Offset, string(m.Key), string(m.Value), headers})
		n := len(*h.out)
		h.mu.Unlock()
		s.MarkMessage(m, "")
		if n >= records {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: saramacheck BOOTSTRAP TOPIC VERSION CODEC")
	}
	bootstrap, topic := []string{os.Args[1]}, os.Args[2]
	version, err := sarama.ParseKafkaVersion(os.Args[3])
	if err != nil {
		fail("version: %v", err)
	}
	codec := map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
		"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}[os.Args[4]]
	conf := sarama.NewConfig()
	conf.Version = version
	conf.ClientID = "sarama-check"
	conf.Producer.Return.Successes = true
	conf.Producer.RequiredAcks = sarama.WaitForAll
	conf.Producer.Compression = codec
	conf.Producer.Partitioner = sarama.NewManualPartitioner
	conf.Consumer.Offsets.Initial = sarama.OffsetOldest
	conf.Consumer.Return.Errors = true
	res := result{Committed: map[int32]int64{}, Errors: []string{}}

	// sarama's admin refuses, client-side, to send DescribeConfigs below 0.11.0.0:
	// an older VERSION still produces and consumes at its own level.
	adminConf := *conf
	if !version.IsAtLeast(sarama.V0_11_0_0) {
		adminConf.Version = sarama.V0_11_0_0
	}
	res.AdminVersion = adminConf.Version.String()
	admin, err := sarama.NewClusterAdmin(bootstrap, &adminConf)
	if err != nil {
		fail("admin: %v", err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
		fail("CreateTopic: %v", err)
	}
	if err := admin.CreateTopic(topic+"-doomed", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		fail("CreateTopic doomed: %v", err)
	}
	listed, err := admin.ListTopics()
	if err != nil {
		fail("ListTopics: %v", err)
	}
	for name, detail := range listed {
		if name == topic || name == topic+"-doomed" {
			res.Topics = append(res.Topics, name)
		}
		if name == topic {
			res.Partitions = int(detail.NumPartitions)
		}
	}
	sort.Strings(res.Topics)
	describe := func() string {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}})
		if err != nil {
			fail("DescribeConfig: %v", err)
		}
		for _, e := range entries {
			if e.Name == "retention.ms" {
				return e.Value
			}
		}
		return ""
	}
	res.RetentionMs = describe()
	day := "86400000"
	if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &day}, false); err != nil {
		fail("AlterConfig: %v", err)
	}
	res.AlteredMs = describe()

	producer, err := sarama.NewSyncProducer(bootstrap, conf)
	if err != nil {
		fail("producer: %v", err)
	}
	for i := 0; i < records; i++ {
		msg := &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2),
			Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))}
		if version.IsAtLeast(sarama.V0_11_0_0) {
			msg.Headers = []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(fmt.Sprintf("%d", i))}}
		}
		p, o, err := producer.SendMessage(msg)
		if err != nil {
			fail("SendMessage: %v", err)
		}
		res.Produced = append(res.Produced, [2]int64{int64(p), o})
	}
	producer.Close()

	// A group of two: both join, the two partitions are split, all records read.
	var mu sync.Mutex
	done := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	handlers := []*handler{}
	for m := 0; m < 2; m++ {
		group, err := sarama.NewConsumerGroup(bootstrap, topic+"-group", conf)
		if err != nil {
			fail("consumer group: %v", err)
		}
		h := &handler{mu: &mu, out: &res.Consumed, claims: map[int32]bool{}, done: done, once: &once}
		handlers = append(handlers, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := group.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					mu.Lock()
					res.Errors = append(res.Errors, err.Error())
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
			}
			group.Close()
		}()
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		fail("timed out consuming: %d records", len(res.Consumed))
	}
	// Wait until both members hold a partition (the second join rebalances).
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		both := len(handlers[0].claims) > 0 && len(handlers[1].claims) > 0
		mu.Unlock()
		if both || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for _, h := range handlers {
		res.Members = append(res.Members, len(h.claims))
	}
	sort.Ints(res.Members)
	sort.Slice(res.Consumed, func(i, j int) bool {
		a, b := res.Consumed[i], res.Consumed[j]
		return a.Partition < b.Partition || (a.Partition == b.Partition && a.Offset < b.Offset)
	})
	// Duplicates across the rebalance are legal at-least-once; keep the first.
	dedup := []consumed{}
	for i, c := range res.Consumed {
		if i == 0 || c.Partition != res.Consumed[i-1].Partition || c.Offset != res.Consumed[i-1].Offset {
			dedup = append(dedup, c)
		}
	}
	res.Consumed = dedup

	offsets, err := admin.ListConsumerGroupOffsets(topic+"-group", map[string][]int32{topic: {0, 1}})
	if err != nil {
		fail("ListConsumerGroupOffsets: %v", err)
	}
	for p := int32(0); p < 2; p++ {
		if b := offsets.GetBlock(topic, p); b != nil {
			res.Committed[p] = b.Offset
		}
	}
	if err := admin.DeleteTopic(topic + "-doomed"); err != nil {
		fail("DeleteTopic: %v", err)
	}
	res.Deleted = true
	admin.Close()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fail("encode: %v", err)
	}
}
