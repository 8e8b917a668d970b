/**
 * A HeliosDB server (`startServer` on PGlite, ports 0) in a child process of its own, so that a
 * test can measure the server's memory and file descriptors without its clients' ones. Start it
 * with {@link startLimitsServer}; run as a script, it is the child (run with `--expose-gc`).
 * @packageDocumentation
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ServerOptions } from '../../src/server/options.js';

/** The server's memory (after a full GC) and open file descriptors. */
export interface ServerStats {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  fds: number;
}

/** A server in a child process. */
export interface LimitsServer {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Memory after `global.gc()` and the number of open descriptors, in the server's process. */
  stats(): Promise<ServerStats>;
  /** Closes the server and waits for its process to exit. */
  close(): Promise<void>;
}

type Reply = { ready: { grpcPort: number; httpPort: number } } | { stats: ServerStats } | { error: string };

/** Starts a server with `options` (plus ports 0 and logging off) in a child process. */
export async function startLimitsServer(options: ServerOptions): Promise<LimitsServer> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [JSON.stringify(options)], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const next = async (): Promise<Reply> => {
    const [msg] = (await once(child, 'message')) as [Reply];
    if ('error' in msg) throw new Error(msg.error);
    return msg;
  };
  const first = await next();
  if (!('ready' in first)) throw new Error('the server process did not start');
  return {
    ...first.ready,
    async stats() {
      child.send('stats');
      const r = await next();
      if (!('stats' in r)) throw new Error('unexpected reply');
      return r.stats;
    },
    async close() {
      if (child.exitCode !== null) return;
      child.send('close');
      await once(child, 'exit');
      process.removeListener('exit', kill);
    },
  };
}

async function child(): Promise<void> {
  const { startServer } = await import('../../src/server/server.js');
  const options = JSON.parse(process.argv[2] ?? '{}') as ServerOptions;
  const server = await startServer({ ...options, port: 0, httpPort: 0, logLevel: 'silent' });
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on('message', (m) => {
    if (m === 'stats') {
      gc?.();
      gc?.();
      const mem = process.memoryUsage();
      const fds = readdirSync('/proc/self/fd').length;
      process.send!({ stats: { rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers, fds } });
    } else if (m === 'close') {
      void server.close().then(() => process.exit(0));
    }
  });
  process.on('disconnect', () => void server.close().then(() => process.exit(0)));
  process.send!({ ready: { grpcPort: server.port, httpPort: server.httpPort! } });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  child().catch((e: unknown) => {
    process.send!({ error: String((e as Error)?.stack ?? e) });
    process.exit(1);
  });
}
