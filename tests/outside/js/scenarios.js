// kafkajs 2.2.4 scenarios against `riverbed serve`; run by tests/outside/run.sh.
//
//   node scenarios.js produce OUT.jsonl   codecs none, gzip (built in), snappy (kafkajs-snappy);
//                                         idempotent and not, acks -1/0/1; exact read-back
//   node scenarios.js fill TOPIC N | commit GROUP TOPIC N | resume GROUP TOPIC FIRST TOTAL
//   node scenarios.js member NAME GROUP TOPIC   (tests/outside/py/group_driver.py)
//   node scenarios.js admin
//
// kafkajs has no lz4 or zstd codec of its own; its codec packages for them (kafkajs-lz4,
// @kafkajs/zstd) build native modules against headers fetched from outside the package
// registries, so they are not used here.
'use strict'
const fs = require('fs')
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

const BOOTSTRAP = process.env.BOOTSTRAP || '127.0.0.1:9092'
const TS0 = 1700000000000
const kafka = new Kafka({
  clientId: 'outside-kafkajs',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.WARN,
  retry: { retries: 8, initialRetryTime: 100 },
})

function fail (msg) {
  console.log('FAIL: ' + msg)
  process.exit(1)
}
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// n records: keys (one null), values (one null), headers (a repeated name, as an array), and
// explicit CreateTime timestamps. Returns the messages to send and the records to expect.
function recordsFor (topic, label, n, partitions) {
  const msgs = []
  const want = []
  for (let i = 0; i < n; i++) {
    const key = i === 3 ? null : `${label}-k${i}`
    const value = i === 5 ? null : `${label}-v${i}-` + 'x'.repeat((i * 7) % 50)
    const headers = i % 4 === 1 ? {} : { h1: [`${label}-${i}`, 'again'], h2: 'two' }
    const ts = TS0 + i * 1000 + label.length
    const partition = i % partitions
    msgs.push({ key, value, headers, partition, timestamp: String(ts) })
    const hs = []
    for (const [k, v] of Object.entries(headers)) {
      for (const x of Array.isArray(v) ? v : [v]) hs.push([k, x])
    }
    want.push({ topic, partition, key, value, headers: hs, timestamp: ts })
  }
  return { msgs, want }
}

function asRec (topic, partition, m) {
  const hs = []
  for (const [k, v] of Object.entries(m.headers || {})) {
    for (const x of Array.isArray(v) ? v : [v]) hs.push([k, x === null ? null : x.toString()])
  }
  return {
    topic,
    partition,
    key: m.key === null ? null : m.key.toString(),
    value: m.value === null ? null : m.value.toString(),
    headers: hs,
    timestamp: Number(m.timestamp),
  }
}

function compare (want, got, what) {
  const group = recs => {
    const m = new Map()
    for (const r of recs) {
      const k = `${r.topic}/${r.partition}`
      if (!m.has(k)) m.set(k, [])
      m.get(k).push(JSON.stringify([r.key, r.value, r.headers, r.timestamp]))
    }
    return m
  }
  const w = group(want)
  const g = group(got)
  let ok = w.size === g.size
  for (const [k, list] of w) {
    const other = g.get(k) || []
    if (JSON.stringify(list) !== JSON.stringify(other)) {
      ok = false
      console.log(`${what}: ${k}: expected ${list.length} records, got ${other.length}`)
      for (let i = 0; i < list.length; i++) {
        if (list[i] !== other[i]) {
          console.log(`  first difference at #${i}:\n    expected ${list[i]}\n    got      ${other[i]}`)
          break
        }
      }
    }
  }
  if (!ok) fail(`${what}: records differ`)
  console.log(`${what}: ${want.length} records match exactly`)
}

// Every record of `topic` from the beginning through a fresh group (kafkajs reads only in
// groups), until `count` records or `timeoutMs`.
async function readAll (topic, count, timeoutMs = 30000) {
  const c = kafka.consumer({ groupId: `readback-${topic}-${Date.now()}`, maxWaitTimeInMs: 200 })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  const got = []
  await c.run({
    eachMessage: async ({ partition, message }) => {
      got.push(asRec(topic, partition, message))
    },
  })
  const end = Date.now() + timeoutMs
  while (got.length < count && Date.now() < end) await sleep(100)
  await sleep(500)
  await c.disconnect()
  return got
}

async function createTopics (topics, configs = {}) {
  const admin = kafka.admin()
  await admin.connect()
  const ok = await admin.createTopics({
    topics: topics.map(([topic, n]) => ({
      topic,
      numPartitions: n,
      replicationFactor: 1,
      configEntries: Object.entries(configs[topic] || {}).map(([name, value]) => ({ name, value })),
    })),
    waitForLeaders: true,
  })
  await admin.disconnect()
  if (!ok) fail(`createTopics ${topics} returned false`)
  console.log(`created ${topics.map(t => t[0])}`)
}

async function produce (outPath) {
  const topic = 'produced'
  const parts = 3
  await createTopics([[topic, parts]])
  const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy }
  const modes = {
    idem: { idempotent: true, acks: -1 },
    acks0: { idempotent: false, acks: 0 },
    acks1: { idempotent: false, acks: 1 },
    acksall: { idempotent: false, acks: -1 },
  }
  const want = []
  for (const [codec, compression] of Object.entries(codecs)) {
    for (const [mode, conf] of Object.entries(modes)) {
      const label = `${codec}-${mode}`
      const p = kafka.producer({ idempotent: conf.idempotent, maxInFlightRequests: conf.idempotent ? 1 : 5 })
      await p.connect()
      const r = recordsFor(topic, label, 20, parts)
      await p.send({ topic, acks: conf.acks, compression, messages: r.msgs })
      await p.disconnect()
      want.push(...r.want)
    }
  }
  console.log(`produced ${want.length} records`)
  const got = await readAll(topic, want.length)
  compare(want, got, 'kafkajs read-back')
  fs.writeFileSync(outPath, want.map(r => JSON.stringify(r)).join('\n') + '\n')
}

async function fill (topic, n) {
  await createTopics([[topic, 1]])
  const p = kafka.producer()
  await p.connect()
  const messages = []
  for (let i = 0; i < Number(n); i++) messages.push({ key: `k${i}`, value: `r${i}`, partition: 0 })
  await p.send({ topic, messages })
  await p.disconnect()
  console.log(`${topic}: ${n} records`)
}

// Consumes `n` records (autoCommit off), commits exactly those, leaves.
async function commit (group, topic, n) {
  n = Number(n)
  const c = kafka.consumer({ groupId: group, maxWaitTimeInMs: 200 })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  const got = []
  await c.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      if (got.length < n) got.push(Number(message.offset))
      if (got.length === n) c.pause([{ topic }])
    },
  })
  const end = Date.now() + 60000
  while (got.length < n && Date.now() < end) await sleep(100)
  if (got.length < n) fail(`consumed ${got.length} of ${n}`)
  await c.commitOffsets([{ topic, partition: 0, offset: String(got[n - 1] + 1) }])
  await c.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const offs = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  await admin.disconnect()
  const committed = Number(offs[0].partitions[0].offset)
  if (committed !== got[n - 1] + 1) fail(`fetchOffsets = ${committed}, expected ${got[n - 1] + 1}`)
  console.log(`group ${group} committed offset ${committed}`)
}

async function resume (group, topic, first, total) {
  first = Number(first)
  total = Number(total)
  const c = kafka.consumer({ groupId: group, maxWaitTimeInMs: 200 })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  const got = []
  await c.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      got.push([Number(message.offset), message.value.toString()])
    },
  })
  const end = Date.now() + 60000
  while (got.length < total - first && Date.now() < end) await sleep(100)
  await sleep(500)
  await c.disconnect()
  const want = []
  for (let i = first; i < total; i++) want.push([i, `r${i}`])
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    fail(`after the restart the group read ${JSON.stringify(got.slice(0, 5))}... (${got.length}), expected offsets ${first}..${total - 1}`)
  }
  console.log(`group ${group} resumed at ${first} and read ${got.length} records`)
}

async function member (name, group, topic) {
  const emit = o => process.stdout.write(JSON.stringify(Object.assign({ member: name }, o)) + '\n')
  const c = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 200 })
  c.on(c.events.GROUP_JOIN, e => {
    const parts = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
    emit({ event: 'assigned', partitions: parts })
  })
  let stopping = false
  process.on('SIGTERM', async () => {
    if (stopping) return
    stopping = true
    await c.disconnect()
    emit({ event: 'closed' })
    process.exit(0)
  })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  await c.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
      for (const m of batch.messages) {
        emit({ partition: batch.partition, offset: Number(m.offset), key: m.key.toString() })
        resolveOffset(m.offset)
      }
      await c.commitOffsets([{ topic, partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }])
    },
  })
  await sleep(200000)
}

async function adminScenario () {
  await createTopics([['adm-a', 2], ['adm-b', 1]], { 'adm-b': { 'retention.ms': '3600000' } })
  const admin = kafka.admin()
  await admin.connect()
  const topics = await admin.listTopics()
  if (!topics.includes('adm-a') || !topics.includes('adm-b')) fail(`listTopics: ${topics}`)
  if (await admin.createTopics({ topics: [{ topic: 'adm-a', numPartitions: 2 }] }) !== false) {
    fail('creating an existing topic returned true')
  }
  await admin.createPartitions({ topicPartitions: [{ topic: 'adm-a', count: 4 }] })
  const md = await admin.fetchTopicMetadata({ topics: ['adm-a'] })
  if (md.topics[0].partitions.length !== 4) fail(`adm-a has ${md.topics[0].partitions.length} partitions after createPartitions`)
  const retention = async () => {
    const r = await admin.describeConfigs({ resources: [{ type: 2, name: 'adm-b', configNames: ['retention.ms'] }], includeSynonyms: false })
    return r.resources[0].configEntries.find(e => e.configName === 'retention.ms').configValue
  }
  if (await retention() !== '3600000') fail(`retention.ms = ${await retention()}`)
  await admin.deleteTopics({ topics: ['adm-b'] })
  if ((await admin.listTopics()).includes('adm-b')) fail('adm-b still listed after delete')
  let threw = false
  try {
    await admin.deleteTopics({ topics: ['adm-b'], timeout: 5000 })
  } catch (e) {
    threw = /UNKNOWN_TOPIC_OR_PARTITION|does not host this topic-partition/.test(String(e) + JSON.stringify(e.errors || ''))
    if (!threw) fail(`delete unknown: ${e}`)
  }
  if (!threw) fail('deleting a deleted topic succeeded')
  await admin.disconnect()
  console.log('admin: create, create existing, create partitions, describe, delete: ok')
}

const [cmd, ...args] = process.argv.slice(2)
const cmds = { produce, fill, commit, resume, member, admin: adminScenario }
cmds[cmd](...args).then(() => process.exit(0), e => fail(`${cmd}: ${e && e.stack ? e.stack : e}`))
