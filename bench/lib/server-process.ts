/**
 * The HeliosDB server in its own process, so that its CPU and memory are measured apart from the
 * client's. Its listeners (gRPC, HTTP, pg port, CQL) take free ports. Started by bench/run.ts with the server options as JSON in argv[2]; answers `begin`
 * (reset the peak RSS, note the CPU) and `end` (CPU and peak RSS since `begin`) over IPC.
 * @packageDocumentation
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { startServer } from '../../src/server/server.js';
import { Ipc } from './ipc.js';
import { startUsage } from './proc.js';
import type { ProcessUsage } from './types.js';

const options = JSON.parse(process.argv[2] ?? '{}') as { databaseUrl?: string; poolSize?: number };
const server = await startServer({ port: 0, httpPort: 0, logLevel: 'silent', ...options });

let meter: { stop(): ProcessUsage } | undefined;
let session: Session | undefined;
const ipc = new Ipc(process, {
  begin: () => {
    meter = startUsage();
    return true;
  },
  end: (): ProcessUsage | undefined => {
    const u = meter?.stop();
    meter = undefined;
    return u;
  },
  poolStats: () => server.poolStats(),
  /** Starts the V8 CPU profiler (bench/profile-simple.ts --prof). */
  profileStart: async () => {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    return true;
  },
  /** Stops the profiler and writes the profile to the given file. */
  profileStop: async (file: unknown) => {
    if (!session) return false;
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(String(file), JSON.stringify(profile));
    session.disconnect();
    session = undefined;
    return true;
  },
  stop: async () => {
    await server.close();
    setImmediate(() => process.exit(0));
    return true;
  },
});
ipc.emit('ready', {
  grpcUrl: server.grpcUrl,
  httpUrl: server.httpUrl,
  pgUrl: server.pgUrl,
  cqlPort: server.cqlPort,
  engine: server.engine,
  pid: process.pid,
});
process.on('disconnect', () => {
  void server.close().finally(() => process.exit(0));
});
