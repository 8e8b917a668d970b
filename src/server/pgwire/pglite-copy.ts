/**
 * One COPY FROM STDIN of a client of the embedded engine's PostgreSQL port, played by the port
 * (./pglite-session.ts): the client's CopyData is gathered (up to `--max-copy-bytes`) and, at
 * CopyDone, run from a blob, PGlite's own way (../backend.ts `copyFromBlob`). CopyFail, or more
 * data than the limit, ends it with an error instead.
 * @packageDocumentation
 */
import { replaceCopyStdio } from '../sql/analyze.js';
import { commandComplete, errorResponse } from './messages.js';

/** What runs the gathered data (the scheduler, on the held session). */
export interface CopyRunner {
  readonly maxCopyBytes: number;
  copyFrom(sql: string, data: Buffer): Promise<{ rowCount: number; txStatus: string }>;
}

/** See the file comment. */
export class CopyIn {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private failed: string | undefined;
  /** CopyDone came: it runs in the engine. */
  running = false;

  constructor(
    private readonly sql: string,
    private readonly runner: CopyRunner,
  ) {}

  /** A message of the client during COPY; true when it ended the COPY (CopyDone or CopyFail). */
  take(msg: Buffer): boolean {
    const type = String.fromCharCode(msg[0]!);
    if (type === 'd') {
      this.bytes += msg.length - 5;
      if (this.bytes > this.runner.maxCopyBytes)
        this.failed ??= `COPY FROM STDIN sent more than --max-copy-bytes (${this.runner.maxCopyBytes} bytes), the most the embedded engine reads into memory`;
      else this.chunks.push(msg.subarray(5));
      return false;
    }
    if (type === 'f') {
      this.failed ??= `COPY from stdin failed: ${msg.toString('utf8', 5, Math.max(5, msg.length - 1))}`;
      return true;
    }
    // Flush and Sync during COPY are ignored, as PostgreSQL does.
    return type === 'c';
  }

  /**
   * Runs it: the answer before the ReadyForQuery, and the transaction status after it (undefined
   * when it failed before reaching the engine: the block, if any, is failed).
   */
  async run(): Promise<{ answer: Buffer; txStatus: string | undefined }> {
    const fail = (code: string, m: string, fields: Record<string, string> = {}) => ({
      answer: errorResponse({ severity: 'ERROR', code, message: m, ...fields }),
      txStatus: undefined,
    });
    if (this.failed) return fail(this.failed.startsWith('COPY from stdin failed') ? '57014' : '54000', this.failed);
    let sql: string;
    try {
      sql = replaceCopyStdio(this.sql, '/dev/blob');
    } catch (e) {
      return fail('0A000', (e as Error).message);
    }
    this.running = true;
    try {
      const r = await this.runner.copyFrom(sql, Buffer.concat(this.chunks));
      return { answer: commandComplete(`COPY ${r.rowCount}`), txStatus: r.txStatus };
    } catch (err) {
      const e = err as { code?: string; message?: string; detail?: string; hint?: string };
      return fail(e.code ?? 'XX000', e.message ?? String(e), {
        ...(e.detail ? { detail: e.detail } : {}),
        ...(e.hint ? { hint: e.hint } : {}),
      });
    }
  }
}
