// Drives the oldest kafkajs releases against a broker for tests/interop/test_old_clients.py
// and prints one JSON object on stdout (logs go to stderr).
//
//   node oldcheck.mjs BOOTSTRAP TOPIC CLIENT_VERSION
//
// CLIENT_VERSION (0.8.1 or 1.3.0, package aliases in package.json) produces, consumes in a
// group of two and commits. Releases before 1.3.0 have no admin client, so the admin calls
// (CreateTopics, OffsetFetch for fetchOffsets, setOffsets through a group member) are made
// with 1.3.0, the oldest release on npm that has one (the admin client came in 1.1.0; 1.1.0
// and 1.2.0 are not on npm). 0.8.1 speaks Produce v2 and Fetch v3, so the records travel as
// message sets of format 1 (no headers) compressed with gzip, and JoinGroup v0.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [bootstrap, topic, clientVersion] = process.argv.slice(2);
const client = require(`kafkajs-${clientVersion}`);
const adminRelease = require('kafkajs-1.3.0');
const RECORDS = 20;
const DEADLINE_MS = 60000;

const logCreator = () => ({ namespace, label, log }) => {
  const { message, ...extra } = log;
  process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`);
};
const kafka = (release) => new release.Kafka({
  clientId: `rivulet-old-kafkajs-${clientVersion}`, brokers: [bootstrap], logLevel: release.logLevel.WARN,
  logCreator, connectionTimeout: 5000, retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 },
});
const t0 = Date.now();
const phase = (name) => process.stderr.write(`[oldcheck] ${name} at ${Date.now() - t0} ms\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, check) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
const byPartition = (offsets) => Object.fromEntries(
  offsets.map(({ partition, offset }) => [String(partition), Number(offset)]).sort());

async function main() {
  const version = (name) => require(`${name}/package.json`).version;
  const out = { client: version(`kafkajs-${clientVersion}`), admin: version('kafkajs-1.3.0') };
  const admin = kafka(adminRelease).admin({ retry: { retries: 10 } });
  await admin.connect();
  out.created = await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] });

  // A group of two, both running before anything is produced; the wrapped assigner tells
  // when the leader has assigned the topic to both members.
  const groupId = `${topic}-group`;
  let twoMembers = false;
  const { roundRobin } = client.PartitionAssigners;
  const watched = (args) => {
    const inner = roundRobin(args);
    return { ...inner, assign: async (a) => { if (a.members.length === 2) twoMembers = true; return inner.assign.call(inner, a); } };
  };
  const seen = new Map();
  const memberPartitions = [new Set(), new Set()];
  const consumers = [0, 1].map(() => kafka(client).consumer({
    groupId, partitionAssigners: [watched], sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 100,
  }));
  for (const [i, c] of consumers.entries()) {
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      eachMessage: async ({ partition, message }) => {
        memberPartitions[i].add(partition);
        seen.set(`${partition}/${message.offset}`, {
          partition, offset: Number(message.offset), key: message.key.toString(), value: message.value.toString(),
        });
      },
    });
  }
  await waitFor('both members in the group', () => twoMembers);
  phase('group of two formed');

  const producer = kafka(client).producer();
  await producer.connect();
  out.produced = [];
  for (let i = 0; i < RECORDS; i++) {
    const [res] = await producer.send({
      topic, acks: -1, compression: client.CompressionTypes.GZIP,
      messages: [{ key: `k${i}`, value: `v${i}`, partition: i % 2 }],
    });
    out.produced.push([res.partition, Number(res.offset ?? res.baseOffset)]);
  }
  await producer.disconnect();
  phase('produced');

  await waitFor('all records consumed', () => seen.size >= RECORDS);
  phase('consumed');
  out.consumed = [...seen.values()].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  out.member_partitions = memberPartitions.map((s) => [...s].sort()).sort();
  // The members commit after each batch; read the commits back (OffsetFetch).
  await waitFor('offsets committed', async () => {
    out.committed = byPartition(await admin.fetchOffsets({ groupId, topic }));
    return out.committed['0'] === 10 && out.committed['1'] === 10;
  });
  for (const c of consumers) await c.disconnect();
  phase('members left');

  // setOffsets on the now empty group, then read back.
  await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '3' }, { partition: 1, offset: '7' }] });
  out.set_offsets = byPartition(await admin.fetchOffsets({ groupId, topic }));
  phase('offsets set');
  await admin.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`oldcheck failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
