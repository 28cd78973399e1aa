// A kafkajs group member driven by tests/interop/test_groups_*.py, as a long-running process.
//
//   node group_consumer.mjs '<json args>'
// args: { brokers, groupId, topics: [..], name, sessionTimeout, rebalanceTimeout,
//         heartbeatInterval, fromBeginning: true, commit: "batch" | "none",
//         sleepPerRecordMs: 0, maxBytesPerPartition }
//
// stdout: one JSON event per line (the same events as the Python workers in
// test_groups_support.py), each with `ts` = CLOCK_MONOTONIC in seconds (the clock Python's
// time.monotonic() reads, so events of different processes can be ordered):
//   {ev:"ready"} {ev:"assigned", tps:[[topic,p],...], gen, member}  (the full assignment)
//   {ev:"revoked", tps:[...]}  (kafkajs is eager: a rebalance revokes everything)
//   {ev:"rec", t, p, o, k, v}  (k/v as UTF-8 text)
//   {ev:"committed", offsets:[[topic,p,next_offset],...]}
//   {ev:"error", msg} {ev:"closed"}
// stdin: "close\n" disconnects cleanly (LeaveGroup) and exits 0. SIGKILL is the crash test.
import { createInterface } from 'node:readline';
import { makeKafka, serializeError } from './lib.mjs';

const args = JSON.parse(process.argv[2]);
const now = () => Number(process.hrtime.bigint()) / 1e9;
const emit = (ev) => process.stdout.write(JSON.stringify({ ...ev, ts: now(), name: args.name }) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const kafka = makeKafka({ ...args, logLevel: args.logLevel ?? 'NOTHING', retries: args.retries ?? 10 });
const consumer = kafka.consumer({
  groupId: args.groupId,
  sessionTimeout: args.sessionTimeout ?? 10000,
  rebalanceTimeout: args.rebalanceTimeout ?? 10000,
  heartbeatInterval: args.heartbeatInterval ?? 500,
  maxWaitTimeInMs: args.maxWaitTimeInMs ?? 100,
  maxBytesPerPartition: args.maxBytesPerPartition ?? 1048576,
  retry: { retries: args.retries ?? 10, initialRetryTime: 100, maxRetryTime: 1000 },
});

let owned = [];
consumer.on(consumer.events.GROUP_JOIN, (e) => {
  const tps = [];
  for (const [topic, partitions] of Object.entries(e.payload.memberAssignment ?? {})) {
    for (const p of partitions) tps.push([topic, p]);
  }
  tps.sort();
  owned = tps;
  emit({ ev: 'assigned', tps, owned: tps, member: e.payload.memberId, leader: e.payload.isLeader });
});
consumer.on(consumer.events.REBALANCING, () => {
  if (owned.length) emit({ ev: 'revoked', tps: owned, owned: [] });
  owned = [];
});
consumer.on(consumer.events.CRASH, (e) => emit({ ev: 'error', msg: String(e.payload.error?.message ?? e.payload.error) }));

let closing = false;
async function close(code) {
  if (closing) return;
  closing = true;
  // From here on it takes no new batch: say so before it leaves the group.
  emit({ ev: 'revoked', closing: true, tps: owned, owned: [] });
  owned = [];
  try {
    await consumer.disconnect();
  } catch (e) {
    emit({ ev: 'error', msg: JSON.stringify(serializeError(e)) });
  }
  emit({ ev: 'closed' });
  process.exit(code);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'close') close(0);
});

try {
  await consumer.connect();
  await consumer.subscribe({ topics: args.topics, fromBeginning: args.fromBeginning ?? true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary }) => {
      let last = null;
      for (const m of batch.messages) {
        if (!isRunning() || isStale() || closing) break;
        emit({
          ev: 'rec', t: batch.topic, p: batch.partition, o: Number(m.offset),
          k: m.key === null ? null : m.key.toString(), v: m.value === null ? null : m.value.toString(),
        });
        if (args.sleepPerRecordMs) await sleep(args.sleepPerRecordMs);
        resolveOffset(m.offset);
        last = Number(m.offset);
      }
      if (last !== null && (args.commit ?? 'batch') === 'batch') {
        const next = String(last + 1);
        try {
          // Not consumer.commitOffsets(): kafkajs 2.2.4 resolves that without committing
          // anything once the consumer is stopping (runner.commitOffsets: `if (!this.running)
          // return`), which would report a commit that never happened. The batch's own commit
          // goes to the coordinator (and throws if it is refused).
          await commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
          emit({ ev: 'committed', offsets: [[batch.topic, batch.partition, last + 1]] });
        } catch (e) {
          emit({ ev: 'commit_failed', msg: String(e.type ?? e.message) });
        }
      }
      await heartbeat();
    },
  });
  emit({ ev: 'ready' });
} catch (e) {
  emit({ ev: 'error', msg: JSON.stringify(serializeError(e)) });
  process.exit(1);
}
