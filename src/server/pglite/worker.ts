/**
 * The embedded engine's worker thread: owns the PGlite instance, runs the messages the main thread
 * posts one at a time (in order), and posts the raw backend protocol bytes back. A statement that
 * runs for seconds blocks this thread only. Started by {@link startPgliteEngine}.
 * @packageDocumentation
 */
import { inspect } from 'node:util';
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { loadModule } from 'libpg-query';
import { guardFrontendMessages } from './copy-guard.js';
import { type FromWorker, type PgErrorFields, reportedParameters, type ToWorker, type WorkerInit } from './messages.js';

if (!parentPort) throw new Error('the embedded engine worker must run in a worker thread (see startPgliteEngine)');
const port = parentPort;

/** Output is posted in pieces of about this size while a statement runs, the rest at its end. */
const flushBytes = 64 * 1024;

const post = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);

function errorFields(err: unknown): PgErrorFields {
  const e = (err ?? {}) as Record<string, unknown>;
  const fields: PgErrorFields = { message: typeof e.message === 'string' ? e.message : String(err) };
  for (const k of [
    'severity',
    'code',
    'detail',
    'hint',
    'position',
    'internalPosition',
    'internalQuery',
    'where',
    'schema',
    'table',
    'column',
    'dataType',
    'constraint',
    'file',
    'line',
    'routine',
  ] as const) {
    if (typeof e[k] === 'string') fields[k] = e[k] as string;
  }
  return fields;
}

/** A Query message. */
function queryMessage(sql: string): Uint8Array {
  const text = Buffer.from(`${sql}\0`, 'utf8');
  const msg = Buffer.alloc(5 + text.length);
  msg.write('Q', 0, 'latin1');
  msg.writeInt32BE(4 + text.length, 1);
  text.copy(msg, 5);
  return msg;
}

/** Sync (outside an exchange a no-op that answers ReadyForQuery) to learn the transaction status. */
const syncMessage = new Uint8Array([0x53, 0, 0, 0, 4]);

async function main(): Promise<void> {
  const init = workerData as WorkerInit;
  let db: PGlite;
  try {
    [db] = await Promise.all([PGlite.create(init.dataDir ?? 'memory://'), loadModule()]);
  } catch (err) {
    post({ t: 'startFailed', error: errorFields(err) });
    return;
  }

  const txStatus = async (): Promise<string> => {
    const out = await db.execProtocolRaw(syncMessage);
    // The answer ends with ReadyForQuery: 'Z', length 5, status.
    return out.length >= 6 ? String.fromCharCode(out[out.length - 1]!) : 'I';
  };

  const runProtocol = async (conn: number, data: Uint8Array): Promise<void> => {
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const flush = (): void => {
      if (pendingBytes === 0) return;
      const out = new Uint8Array(pendingBytes);
      let at = 0;
      for (const c of pending) {
        out.set(c, at);
        at += c.length;
      }
      pending = [];
      pendingBytes = 0;
      post({ t: 'data', conn, data: out }, [out.buffer]);
    };
    await db.execProtocolRawStream(guardFrontendMessages(data), {
      onRawData: (chunk) => {
        // The chunk may be a view of the engine's memory: copy it before the next call reuses it.
        pending.push(chunk.slice());
        pendingBytes += chunk.length;
        if (pendingBytes >= flushBytes) flush();
      },
    });
    flush();
  };

  const open = async (conn: number, settings: [string, string][]): Promise<void> => {
    try {
      for (const [name, value] of settings) {
        await db.query('SELECT set_config($1, $2, false)', [name, value]);
      }
      const res = await db.query<{ n: string; v: string }>('SELECT n, current_setting(n) AS v FROM unnest($1::text[]) AS n', [
        [...reportedParameters],
      ]);
      post({ t: 'opened', conn, params: res.rows.map((r) => [r.n, r.v]) });
    } catch (err) {
      await reset();
      post({ t: 'opened', conn, error: errorFields(err) });
    }
  };

  /** A fresh session for the next connection, as PostgreSQL gives every new connection. */
  const reset = async (): Promise<void> => {
    if ((await txStatus()) !== 'I') await db.exec('ROLLBACK');
    await db.exec('DISCARD ALL');
  };

  /** Listens again on those of `channels` the session dropped; reports them. */
  const relisten = async (channels: string[]): Promise<void> => {
    const res = await db.query<{ c: string }>('SELECT pg_listening_channels() AS c');
    const listening = new Set(res.rows.map((r) => r.c));
    const dropped = channels.filter((c) => !listening.has(c));
    if (dropped.length === 0) return;
    await db.exec(dropped.map((c) => `LISTEN "${c.replaceAll('"', '""')}"`).join('; '));
    post({ t: 'relistened', channels: dropped });
  };

  const copyFrom = async (id: number, sql: string, data: Uint8Array): Promise<void> => {
    try {
      const res = await db.query(sql, [], { blob: new Blob([data as Uint8Array<ArrayBuffer>]) });
      post({ t: 'copied', id, rowCount: res.affectedRows ?? 0, txStatus: await txStatus() });
    } catch (err) {
      post({ t: 'copied', id, error: errorFields(err), txStatus: await txStatus() });
    }
  };

  const handle = async (msg: ToWorker): Promise<void> => {
    switch (msg.t) {
      case 'proto':
        return runProtocol(msg.conn, msg.data);
      case 'open':
        return open(msg.conn, msg.settings);
      case 'close':
        return reset();
      case 'copyFrom':
        return copyFrom(msg.id, msg.sql, msg.data);
      case 'reset':
        try {
          await db.exec(msg.sql);
        } catch (err) {
          // The script only clears session state: it cannot fail in a sound session.
          process.stderr.write(`embedded engine: the session reset failed: ${err instanceof Error ? err.message : inspect(err)}\n`);
          await reset();
        }
        if (msg.listen && msg.listen.length > 0) await relisten(msg.listen);
        return;
      case 'shutdown':
        await db.close();
        process.exit(0);
        return;
      case 'crash':
        if (msg.how === 'exit') process.exit(1);
        // What the copy guard prevents: PGlite ends the thread itself.
        await db.exec('CREATE TEMP TABLE IF NOT EXISTS heliosdb_crash (a int)');
        await db.execProtocolRaw(queryMessage('COPY heliosdb_crash FROM STDIN'));
        return;
    }
  };

  let chain = Promise.resolve();
  port.on('message', (msg: ToWorker) => {
    chain = chain
      .then(() => handle(msg))
      .catch((err) => {
        // An engine failure outside a statement's own error (those come back as ErrorResponse):
        // the instance cannot be trusted any more. The main thread sees the exit.
        process.stderr.write(`embedded engine worker failed: ${err instanceof Error ? err.stack : inspect(err)}\n`);
        process.exit(1);
      });
  });
  const version = (await db.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v;
  post({ t: 'ready', version });
}

void main();
