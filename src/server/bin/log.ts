/**
 * The command's logger: pino's JSON lines when the output is a file or a pipe (for log
 * collectors), one readable line per entry on a terminal. A small destination instead of
 * pino-pretty, which would add a worker thread and a dozen packages for the same line.
 * @packageDocumentation
 */
import pino, { type Logger } from 'pino';

const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const colors: Record<number, string> = { 40: '\u001b[33m', 50: '\u001b[31m', 60: '\u001b[31m' };
const skip = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'service']);

/** One entry as a line: `12:00:01 INFO  message key=value ...`. */
export function prettyLine(entry: Record<string, unknown>, color: boolean): string {
  const time = new Date(Number(entry.time) || Date.now()).toTimeString().slice(0, 8);
  const level = Number(entry.level);
  const name = (levels[level] ?? String(level)).padEnd(5);
  const fields = Object.entries(entry)
    .filter(([k]) => !skip.has(k))
    .map(([k, v]) => {
      if (k === 'err' && v && typeof v === 'object') return `err=${JSON.stringify((v as { message?: string }).message ?? v)}`;
      return `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`;
    });
  const c = color ? (colors[level] ?? '') : '';
  return `${time} ${c}${name}${c ? '\u001b[0m' : ''} ${String(entry.msg ?? '')}${fields.length ? '  ' + fields.join(' ') : ''}\n`;
}

/** The logger of `heliosdb serve` at `level`. */
export function createLogger(level: string, out: NodeJS.WriteStream = process.stdout): Logger {
  const base = { level, base: { service: 'heliosdb' } };
  if (!out.isTTY) return pino(base, out);
  return pino(base, {
    write(line: string) {
      try {
        out.write(prettyLine(JSON.parse(line) as Record<string, unknown>, true));
      } catch {
        out.write(line);
      }
    },
  });
}
