/**
 * Two real server processes on one PostgreSQL database, each behind a fault-injecting proxy, and
 * an admin connection to the database: the set-up of the failover and bank fault tests.
 * @packageDocumentation
 */
import pg from 'pg';
import { FaultProxy } from './fault-proxy.js';
import { freePort, ServerProcess } from './processes.js';

/** See the file comment. */
export interface ServerPair {
  a: ServerProcess;
  b: ServerProcess;
  /** The proxies in front of `a` and `b`; clients connect to their `grpcUrl`. */
  pa: FaultProxy;
  pb: FaultProxy;
  admin: pg.Client;
  /** Ends the admin connection, closes the proxies and kills both servers. */
  close(): Promise<void>;
}

/** Starts both servers and proxies and connects the admin client. */
export async function startServerPair(databaseUrl: string): Promise<ServerPair> {
  const a = new ServerProcess(await freePort(), databaseUrl);
  const b = new ServerProcess(await freePort(), databaseUrl);
  await Promise.all([a.start(), b.start()]);
  const [pa, pb] = await Promise.all([FaultProxy.start(a.port), FaultProxy.start(b.port)]);
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  return {
    a,
    b,
    pa,
    pb,
    admin,
    async close() {
      await admin.end();
      await Promise.all([pa.close(), pb.close()]);
      await Promise.all([a.kill(), b.kill()]);
    },
  };
}
