/**
 * The README's table of server flags, made from the option table (src/server/options.ts):
 * `npx tsx scripts/options-table.ts --write` rewrites it between its markers; a test checks the
 * README holds exactly this.
 * @packageDocumentation
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { shownDefault } from '../src/server/bin/serve-args.js';
import { type ServerOptionName, serverOptionTable } from '../src/server/options.js';

/** The markers around the table in README.md. */
export const markers = ['<!-- server-options:start (made by scripts/options-table.ts) -->', '<!-- server-options:end -->'] as const;

/** The table, as markdown. */
export function optionsTable(): string {
  const rows = (Object.keys(serverOptionTable) as ServerOptionName[]).map((k) => {
    const s = serverOptionTable[k];
    return `| \`${s.flag}\` | \`${s.env}\` | ${shownDefault(k).replace(/\|/g, '\\|')} | ${s.description.replace(/\|/g, '\\|')} |`;
  });
  return ['| flag | environment | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** README.md with the table between the markers replaced. */
export function withTable(readme: string): string {
  const i = readme.indexOf(markers[0]);
  const j = readme.indexOf(markers[1]);
  if (i < 0 || j < i) throw new Error('README.md has no server-options markers');
  return `${readme.slice(0, i + markers[0].length)}\n${optionsTable()}\n${readme.slice(j)}`;
}

if (process.argv.includes('--write')) {
  const path = new URL('../README.md', import.meta.url);
  writeFileSync(path, withTable(readFileSync(path, 'utf8')));
}
