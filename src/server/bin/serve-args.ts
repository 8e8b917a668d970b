/**
 * `heliosdb serve` flags, read with node:util's parseArgs from the server's option table
 * (../server/options.ts), over the `HELIOSDB_*` environment; and the `--help` text made from the
 * same table.
 * @packageDocumentation
 */
import { parseArgs } from 'node:util';
import { optionsFromEnv, parseOption, type ServerOptionName, type ServerOptions, serverOptionTable, suggestion } from '../options.js';

/** A flag error the CLI prints with the usage. */
export class UsageError extends Error {}

const names = Object.keys(serverOptionTable) as ServerOptionName[];
const byFlag = new Map(names.map((k) => [serverOptionTable[k].flag.slice(2), k]));

/** The default as `--help` and the README show it. */
export function shownDefault(key: ServerOptionName): string {
  const s = serverOptionTable[key];
  if ('shown' in s && s.shown) return s.shown;
  if (Array.isArray(s.default)) return s.default.length ? s.default.join(',') : 'none';
  return s.default === undefined ? 'none' : String(s.default);
}

/** The flags part of `heliosdb serve --help`. */
export function flagsHelp(): string {
  return names
    .map((k) => {
      const s = serverOptionTable[k];
      const value = s.kind === 'boolean' ? '' : ' VALUE';
      return `  ${(s.flag + value).padEnd(40)} ${s.description}\n  ${''.padEnd(40)} default ${shownDefault(k)}; env ${s.env}`;
    })
    .join('\n');
}

/** Parses `serve` flags over the environment's options; `help` when -h / --help was given. */
export function parseServeArgs(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): { options: ServerOptions; help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const k of names)
    options[serverOptionTable[k].flag.slice(2)] = { type: serverOptionTable[k].kind === 'boolean' ? 'boolean' : 'string' };
  // parseArgs takes a value that starts with a dash for a flag: `--http-port -1` is a value here.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = args[i + 1];
    if (a.startsWith('--') && !a.includes('=') && options[a.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      joined.push(`${a}=${next}`);
      i++;
    } else joined.push(a);
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: joined, options, strict: true, allowPositionals: false }) as {
      values: Record<string, string | boolean | undefined>;
    });
  } catch (e) {
    const m = /Unknown option '(-{1,2}[^']+)'/.exec((e as Error).message);
    if (m)
      throw new UsageError(
        `unknown flag ${m[1]}${suggestion(
          m[1].replace(/^-+/, '--'),
          names.map((k) => serverOptionTable[k].flag),
        )}`,
      );
    throw new UsageError((e as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  const out: Record<string, unknown> = { ...optionsFromEnv(env) };
  for (const [flag, v] of Object.entries(values)) {
    if (flag === 'help' || v === undefined) continue;
    const key = byFlag.get(flag)!;
    try {
      out[key] = typeof v === 'boolean' ? v : parseOption(key, v);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return { options: out as ServerOptions, help: values.help === true };
}
