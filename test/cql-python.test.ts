/**
 * The DataStax Python driver (Debian's python3-cassandra, /usr/bin/python3) against the CQL
 * listener on both backends: it steps down to protocol v4, loads system_schema, runs prepared
 * inserts, a paged select, conditional updates, a batch and counters, sees the table's metadata,
 * and gets InvalidRequest for a refused query. CI=true: the driver must be installed.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { describeEachBackend } from './helpers/backends.js';
import { cqlServer, keyspaceName } from './cql-support.js';

const python = '/usr/bin/python3';
const script = fileURLToPath(new URL('./cql-python-client.py', import.meta.url));
const missing = spawnSync(python, ['-c', 'import cassandra'], { encoding: 'utf8' }).status !== 0;
const skip =
  missing && process.env.CI !== 'true' ? 'install python3-cassandra (apt-get install python3-cassandra) to run this test' : undefined;
if (skip) process.stderr.write(`\n*** CQL Python driver test SKIPPED: ${skip} ***\n\n`);

describeEachBackend('CQL with the DataStax Python driver', (backend) => {
  test('connects, writes, pages, and reads the metadata', { skip, timeout: 180_000 }, async (t) => {
    const f = await cqlServer(t, backend);
    const ks = keyspaceName('py');
    // Asynchronously: the server runs in this process.
    const { stdout } = await promisify(execFile)(python, [script, String(f.server.cqlPort), ks], { encoding: 'utf8', timeout: 150_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
    assert.equal(out.protocol, 4);
    assert.equal(out.rows, 250);
    assert.deepEqual(out.first, [1, 0, 'v0']);
    assert.equal(out.applied_wrong, false);
    assert.equal(out.applied_right, true);
    assert.equal(out.batch_count, 2);
    assert.equal(out.counter, 6);
    assert.deepEqual(out.columns, ['k', 'c', 'v']);
    assert.deepEqual(out.partition_key, ['k']);
    assert.equal(out.error, 'InvalidRequest');
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.t`), [{ n: 252 }]);
    assert.deepEqual(await f.verify(`SELECT v FROM ${ks}.t WHERE k = 1 AND c = 0`), [{ v: 'x' }]);
  });
});
