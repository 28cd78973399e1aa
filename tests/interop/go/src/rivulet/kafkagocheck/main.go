// kafkagocheck drives segmentio/kafka-go (Debian's 0.2.1: message format 1, no
// headers) against a broker and prints what happened as one JSON object, for
// tests/interop/test_go_clients.py: CreateTopics, ReadPartitions, DeleteTopics,
// keyed records with a codec, a consumer group of two committing synchronously,
// and a later member of the group that resumes at the committed offsets.
//
// Usage: kafkagocheck BOOTSTRAP TOPIC CODEC   (none, gzip, snappy)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/gzip"
	"github.com/segmentio/kafka-go/snappy"
)

const records = 20

type consumed struct {
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
}

type result struct {
	Partitions int        `json:"partitions"`
	Consumed   []consumed `json:"consumed"`
	Members    []int      `json:"member_partition_counts"`
	Resumed    []consumed `json:"resumed"`
	Deleted    bool       `json:"deleted"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// byKey puts record kN on partition N % 2.
type byKey struct{}

func (byKey) Balance(msg kafka.Message, partitions ...int) int {
	n, _ := strconv.Atoi(string(msg.Key[1:]))
	return partitions[n%len(partitions)]
}

func write(bootstrap, topic string, codec kafka.CompressionCodec, from, to int) {
	w := kafka.NewWriter(kafka.WriterConfig{Brokers: []string{bootstrap}, Topic: topic,
		Balancer: byKey{}, CompressionCodec: codec, BatchSize: 1, RequiredAcks: -1})
	for i := from; i < to; i++ {
		msg := kafka.Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i))}
		if err := w.WriteMessages(context.Background(), msg); err != nil {
			fail("WriteMessages: %v", err)
		}
	}
	w.Close()
}

func sorted(c []consumed) []consumed {
	sort.Slice(c, func(i, j int) bool {
		return c[i].Partition < c[j].Partition || (c[i].Partition == c[j].Partition && c[i].Offset < c[j].Offset)
	})
	return c
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: kafkagocheck BOOTSTRAP TOPIC CODEC")
	}
	bootstrap, topic := os.Args[1], os.Args[2]
	codec := map[string]kafka.CompressionCodec{"none": nil, "gzip": gzip.NewCompressionCodec(),
		"snappy": snappy.NewCompressionCodec()}[os.Args[3]]
	res := result{}
	conn, err := kafka.Dial("tcp", bootstrap)
	if err != nil {
		fail("Dial: %v", err)
	}
	err = conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 2, ReplicationFactor: 1},
		kafka.TopicConfig{Topic: topic + "-doomed", NumPartitions: 1, ReplicationFactor: 1})
	if err != nil {
		fail("CreateTopics: %v", err)
	}
	partitions, err := conn.ReadPartitions(topic)
	if err != nil {
		fail("ReadPartitions: %v", err)
	}
	res.Partitions = len(partitions)

	write(bootstrap, topic, codec, 0, records)

	var mu sync.Mutex
	seen := map[[2]int64]bool{}
	memberParts := []map[int]bool{{}, {}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	var wg sync.WaitGroup
	readers := []*kafka.Reader{}
	for m := 0; m < 2; m++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, GroupID: topic + "-group",
			Topic: topic, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond,
			HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 10 * time.Second})
		readers = append(readers, r)
		wg.Add(1)
		go func(m int, r *kafka.Reader) {
			defer wg.Done()
			for {
				msg, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				if err := r.CommitMessages(ctx, msg); err != nil {
					return
				}
				mu.Lock()
				memberParts[m][msg.Partition] = true
				key := [2]int64{int64(msg.Partition), msg.Offset}
				if !seen[key] {
					seen[key] = true
					res.Consumed = append(res.Consumed, consumed{msg.Partition, msg.Offset, string(msg.Key), string(msg.Value)})
				}
				n := len(res.Consumed)
				mu.Unlock()
				if n >= records {
					cancel()
				}
			}
		}(m, r)
	}
	wg.Wait()
	if len(res.Consumed) < records {
		fail("consumed %d of %d records", len(res.Consumed), records)
	}
	for _, r := range readers {
		r.Close()
	}
	for _, parts := range memberParts {
		res.Members = append(res.Members, len(parts))
	}
	sort.Ints(res.Members)
	res.Consumed = sorted(res.Consumed)

	// Two more records; a new member of the group starts at the committed offsets.
	write(bootstrap, topic, codec, records, records+2)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, GroupID: topic + "-group",
		Topic: topic, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 60*time.Second)
	for len(res.Resumed) < 2 {
		msg, err := r.FetchMessage(ctx2)
		if err != nil {
			fail("resumed FetchMessage: %v", err)
		}
		res.Resumed = append(res.Resumed, consumed{msg.Partition, msg.Offset, string(msg.Key), string(msg.Value)})
		r.CommitMessages(ctx2, msg)
	}
	cancel2()
	r.Close()
	res.Resumed = sorted(res.Resumed)

	if err := conn.DeleteTopics(topic + "-doomed"); err != nil {
		fail("DeleteTopics: %v", err)
	}
	res.Deleted = true
	conn.Close()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fail("encode: %v", err)
	}
}
