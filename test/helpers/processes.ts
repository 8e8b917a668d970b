/**
 * Real HeliosDB server processes for the fault tests: spawned with `heliosdb serve`, killed with
 * SIGKILL, restarted on the same port. Every process started here is killed when the test file
 * ends, whatever happened.
 * @packageDocumentation
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** A server process on a fixed port (so that it can be restarted where clients expect it). */
export class ServerProcess {
  private child: ChildProcess | undefined;
  /** Output of the current process (for failure messages). */
  output = '';

  constructor(
    readonly port: number,
    readonly databaseUrl: string | undefined,
    readonly extraArgs: string[] = [],
  ) {}

  get grpcUrl(): string {
    return `grpc://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process; resolves once it listens (at most 30 s). */
  async start(): Promise<void> {
    const args = [
      '--import',
      'tsx',
      'src/server/bin/heliosdb.ts',
      'serve',
      '--port',
      String(this.port),
      '--http-port',
      '-1',
      // Several of these run at once: no fixed-port listeners besides the gRPC one.
      '--pg-port',
      '-1',
      '--cql-port',
      '-1',
      '--log-level',
      'info',
      ...this.extraArgs,
    ];
    if (this.databaseUrl) args.push('--database-url', this.databaseUrl);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    this.output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start within 30 s: ${this.output}`)), 30_000);
      child.stdout!.on('data', (b: Buffer) => {
        this.output += b.toString();
        if (this.output.includes('listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.on('data', (b: Buffer) => (this.output += b.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited early (${code}): ${this.output}`));
      });
    });
  }

  /** SIGKILL: no drain, no rollback; its database connections just vanish. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || !this.running) return;
    c.kill('SIGKILL');
    await once(c, 'exit');
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }
}
