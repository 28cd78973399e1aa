// kafkajs admin client driven by pytest.
//
// args: { brokers: ["127.0.0.1:9092"], retries: 2, ops: [ {op: "...", ...}, ... ] }
// ops (each runs in order on one connected admin client):
//   {op:"createTopics", topics:[{topic, numPartitions, replicationFactor, configEntries:[{name,value}]}],
//                       validateOnly, waitForLeaders, timeout}
//   {op:"deleteTopics", topics:[names], timeout}
//   {op:"listTopics"}
//   {op:"fetchTopicMetadata", topics:[names]}         (omit topics for all topics)
//   {op:"describeCluster"}
//   {op:"fetchTopicOffsets", topic}
//   {op:"fetchTopicOffsetsByTimestamp", topic, timestamp}
// result: [ {ok:true, result} | {ok:false, error} ]  (one entry per op)
import { main, makeKafka, serializeError } from './lib.mjs';

const OPS = {
  createTopics: (admin, o) =>
    admin.createTopics({
      topics: o.topics,
      validateOnly: o.validateOnly ?? false,
      // kafkajs waits for leaders via a Metadata request; never do that for validate-only.
      waitForLeaders: o.waitForLeaders ?? !(o.validateOnly ?? false),
      timeout: o.timeout ?? 10000,
    }),
  deleteTopics: (admin, o) => admin.deleteTopics({ topics: o.topics, timeout: o.timeout ?? 10000 }),
  listTopics: (admin) => admin.listTopics(),
  fetchTopicMetadata: (admin, o) =>
    admin.fetchTopicMetadata(o.topics === undefined ? undefined : { topics: o.topics }),
  describeCluster: (admin) => admin.describeCluster(),
  fetchTopicOffsets: (admin, o) => admin.fetchTopicOffsets(o.topic),
  fetchTopicOffsetsByTimestamp: (admin, o) => admin.fetchTopicOffsetsByTimestamp(o.topic, o.timestamp),
};

await main(async (args) => {
  const kafka = makeKafka(args);
  const admin = kafka.admin({ retry: { retries: args.retries ?? 2, initialRetryTime: 100, maxRetryTime: 1000 } });
  await admin.connect();
  const results = [];
  try {
    for (const o of args.ops ?? []) {
      const fn = OPS[o.op];
      if (!fn) {
        const err = new Error(`unknown op ${o.op}`);
        err.harnessBug = true;
        throw err;
      }
      try {
        results.push({ ok: true, result: await fn(admin, o) });
      } catch (e) {
        results.push({ ok: false, error: serializeError(e) });
      }
    }
  } finally {
    await admin.disconnect();
  }
  return results;
});
