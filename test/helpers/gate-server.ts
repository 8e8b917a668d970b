/**
 * Listeners for the stalled-request tests: both listeners (ports 0) serving the Health service and
 * a DatabaseService whose CopyFrom only counts the messages it reads (no database), either in this
 * process ({@link startGateListeners}) or in a child process of its own
 * ({@link startGateServer}), so that a test can measure the server's memory alone. Run as a
 * script, this file is the child (run with `--expose-gc`).
 * @packageDocumentation
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import pino from 'pino';
import type { CopyFromRequest } from '../../gen/heliosdb/v1/database_pb.js';
import { DatabaseService } from '../../gen/heliosdb/v1/database_pb.js';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import type { ConnectionLimits } from '../../src/server/listeners/connection-limits.js';
import { type LimitedGrpcServer, startGrpcListener } from '../../src/server/listeners/grpc-listener.js';
import { createHealthService, HealthState } from '../../src/server/health-service.js';
import { type HttpListener, startHttpListener } from '../../src/server/listeners/http-listener.js';

/** Options of the listeners. */
export interface GateOptions {
  limits: ConnectionLimits;
  maxIncompleteRequests?: number;
  requestTimeoutMs?: number;
}

/** What one CopyFrom call read before it ended. */
export interface CopyOutcome {
  messages: number;
  bytes: number;
  /** The error the request stream ended with (a cut call), if any. */
  error?: string;
}

/**
 * A DatabaseService whose CopyFrom reads its request stream and answers with the number of
 * messages (rowsAffected) and bytes (executionTimeMs) it read. A first message whose `sql` is
 * `pause N` makes it wait N ms before reading on (a slow consumer). Every other method is
 * UNIMPLEMENTED.
 */
export function countingDatabaseService(copies: CopyOutcome[]): object {
  const copyFrom = async (requests: AsyncIterable<CopyFromRequest>, ctx: HandlerContext) => {
    const outcome: CopyOutcome = { messages: 0, bytes: 0 };
    copies.push(outcome);
    try {
      for await (const r of requests) {
        if (outcome.messages === 0 && r.sql.startsWith('pause ')) await new Promise((res) => setTimeout(res, Number(r.sql.slice(6))));
        outcome.messages++;
        outcome.bytes += r.data.length;
      }
    } catch (e) {
      outcome.error = String((e as Error)?.message ?? e);
      throw e;
    }
    if (ctx.signal.aborted) outcome.error = 'aborted';
    return { rowsAffected: BigInt(outcome.messages), executionTimeMs: outcome.bytes };
  };
  const unimplemented = () => {
    throw new ConnectError('not served by this test server', Code.Unimplemented);
  };
  return new Proxy({ copyFrom } as Record<string, unknown>, { get: (t, p) => (typeof p === 'string' && p in t ? t[p] : unimplemented) });
}

/** Both listeners in this process. */
export interface GateListeners {
  readonly grpc: LimitedGrpcServer;
  readonly http: HttpListener;
  readonly grpcPort: number;
  readonly httpPort: number;
  /** What each CopyFrom call read, in the order they started (both listeners). */
  readonly copies: CopyOutcome[];
  close(): Promise<void>;
}

/** Starts both listeners in this process. */
export async function startGateListeners(options: GateOptions): Promise<GateListeners> {
  const log = pino({ level: 'silent' });
  const health = new HealthState(new Set());
  const copies: CopyOutcome[] = [];
  const services = [
    { service: Health, impl: createHealthService(health) },
    { service: DatabaseService, impl: countingDatabaseService(copies) },
  ];
  const common = { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20, ...options };
  const { server: grpc, port: grpcPort } = await startGrpcListener(common, services, log);
  const http = await startHttpListener({ ...common, corsOrigins: [] }, services, log);
  return {
    grpc,
    http,
    grpcPort,
    httpPort: http.port,
    copies,
    async close() {
      health.shutDown();
      grpc.forceShutdown();
      await http.close(0);
    },
  };
}

/** The server's memory (after a full GC), descriptors and requests receiving their body. */
export interface GateStats {
  heapUsed: number;
  rss: number;
  external: number;
  fds: number;
  incomplete: { grpc: number; http: number };
  connections: { grpc: number };
}

/** Both listeners in a child process. */
export interface GateServer {
  readonly grpcPort: number;
  readonly httpPort: number;
  stats(): Promise<GateStats>;
  close(): Promise<void>;
}

type Reply = { ready: { grpcPort: number; httpPort: number } } | { stats: GateStats } | { error: string };

/** Starts both listeners in a child process. */
export async function startGateServer(options: GateOptions): Promise<GateServer> {
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
  const listeners = await startGateListeners(JSON.parse(process.argv[2] ?? '{}') as GateOptions);
  const gc = (globalThis as { gc?: () => void }).gc;
  const close = () => void listeners.close().then(() => process.exit(0));
  process.on('message', (m) => {
    if (m === 'stats') {
      gc?.();
      gc?.();
      const mem = process.memoryUsage();
      process.send!({
        stats: {
          heapUsed: mem.heapUsed,
          rss: mem.rss,
          external: mem.external,
          fds: readdirSync('/proc/self/fd').length,
          incomplete: { grpc: listeners.grpc.incompleteRequests, http: listeners.http.incompleteRequests },
          connections: { grpc: listeners.grpc.connectionCount },
        },
      });
    } else if (m === 'close') close();
  });
  process.on('disconnect', close);
  process.send!({ ready: { grpcPort: listeners.grpcPort, httpPort: listeners.httpPort } });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  child().catch((e: unknown) => {
    process.send!({ error: String((e as Error)?.stack ?? e) });
    process.exit(1);
  });
}
