/**
 * The code blocks of the Markdown documentation, for test/docs-examples.test.ts: every ```ts,
 * ```js and ```sh block of README.md and docs/*.md, with the `docs-test` directives written in
 * HTML comments right before it (blank lines between are allowed). One directive per comment; its
 * argument is the rest of the comment and may span lines:
 *
 * - `<!-- docs-test: sql CREATE TABLE users (...); INSERT ... -->` SQL run on the fresh server
 *   before the block (several statements allowed).
 * - `<!-- docs-test: before const day = '2026-12-01'; -->` code put before a ts/js block, for the
 *   names a fragment uses but does not define.
 * - `<!-- docs-test: expect SELECT count(*)::int AS n FROM users => [{"n": 3}] -->` after the
 *   block, the SQL's rows (through a separate client) must equal the JSON.
 * - `<!-- docs-test: replace grpcs://db.example.com:7700 => $GRPC_URL -->` text replaced in the
 *   block before it runs (`$GRPC_URL`, `$HTTP_URL`, `$DATABASE_URL`, `$CQL_ADDRESS` name the fresh server's).
 * - `<!-- docs-test: postgres -->` run on a server over PostgreSQL rather than PGlite.
 * - `<!-- docs-test: typecheck reason -->` type-check only: the block is not run (it talks to
 *   hosts that do not exist here); the reason is listed.
 * - `<!-- docs-test: skip reason -->` neither run nor type-checked; counted and listed.
 *
 * @packageDocumentation
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** The languages whose blocks are run. */
export type BlockLanguage = 'ts' | 'js' | 'sh';

/** A directive's name. */
export type DirectiveName = 'sql' | 'before' | 'expect' | 'replace' | 'postgres' | 'typecheck' | 'skip';

const directiveNames: readonly DirectiveName[] = ['sql', 'before', 'expect', 'replace', 'postgres', 'typecheck', 'skip'];

/** One `docs-test` directive. */
export interface Directive {
  name: DirectiveName;
  /** The rest of the comment, trimmed ('' when none). */
  arg: string;
}

/** One fenced code block. */
export interface DocBlock {
  /** The Markdown file, relative to the repository root. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  language: BlockLanguage;
  code: string;
  directives: Directive[];
}

const languages: Record<string, BlockLanguage> = {
  ts: 'ts',
  typescript: 'ts',
  js: 'js',
  javascript: 'js',
  sh: 'sh',
  bash: 'sh',
  shell: 'sh',
};

/** The Markdown files whose blocks run: README.md and docs/*.md (not the generated docs/api/). */
export function docFiles(root: string): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => join(root, 'docs', f));
  return [join(root, 'README.md'), ...docs];
}

/** The comments right before line `index` (skipping blank lines), nearest last. */
function commentsBefore(lines: readonly string[], index: number): string[] {
  const out: string[] = [];
  let i = index - 1;
  while (i >= 0) {
    if (lines[i].trim() === '') {
      i--;
      continue;
    }
    if (!lines[i].trimEnd().endsWith('-->')) break;
    let start = i;
    while (start >= 0 && !lines[start].includes('<!--')) start--;
    if (start < 0) break;
    out.unshift(lines.slice(start, i + 1).join('\n'));
    i = start - 1;
  }
  return out;
}

/** The directive a comment holds, if it is one. Throws on an unknown directive name (a typo must not pass). */
export function parseDirective(comment: string, where: string): Directive | undefined {
  const m = /^\s*<!--\s*docs-test:\s*([a-z-]+)([\s\S]*?)-->\s*$/.exec(comment);
  if (!m) return undefined;
  const name = m[1] as DirectiveName;
  if (!directiveNames.includes(name)) throw new Error(`${where}: unknown docs-test directive ${JSON.stringify(m[1])}`);
  return { name, arg: m[2].trim() };
}

/** Every ts/js/sh block of `file`, with its directives. */
export function blocksOf(root: string, file: string): DocBlock[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]);
    if (!open) continue;
    const fence = open[2];
    let end = i + 1;
    while (end < lines.length && !lines[end].trim().startsWith(fence)) end++;
    const language = languages[open[3].toLowerCase()];
    const rel = relative(root, file);
    if (language) {
      const where = `${rel}:${i + 1}`;
      const directives = commentsBefore(lines, i)
        .map((c) => parseDirective(c, where))
        .filter((d): d is Directive => d !== undefined);
      const indent = open[1].length;
      const code = lines
        .slice(i + 1, end)
        .map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)))
        .join('\n');
      out.push({ file: rel, line: i + 1, language, code, directives });
    }
    i = end;
  }
  return out;
}

/** Every block of every documentation file. */
export function allBlocks(root: string): DocBlock[] {
  return docFiles(root).flatMap((f) => blocksOf(root, f));
}

/** The arguments of the block's directives named `name`. */
export function args(block: DocBlock, name: DirectiveName): string[] {
  return block.directives.filter((d) => d.name === name).map((d) => d.arg);
}

/** What the harness does with a block. */
export function disposition(block: DocBlock): 'run' | 'typecheck' | 'skip' {
  if (args(block, 'skip').length > 0) return 'skip';
  if (args(block, 'typecheck').length > 0) return block.language === 'sh' ? 'skip' : 'typecheck';
  return 'run';
}

/** `replace A => B` pairs, with the fresh server's URLs put in. */
export function replacements(block: DocBlock, urls: Record<string, string>): [string, string][] {
  return args(block, 'replace').map((a) => {
    const at = a.indexOf('=>');
    if (at < 0) throw new Error(`${block.file}:${block.line}: replace needs "FROM => TO"`);
    const to = a.slice(at + 2).trim();
    return [a.slice(0, at).trim(), to.replace(/\$(GRPC_URL|HTTP_URL|DATABASE_URL|CQL_ADDRESS)\b/g, (_, k: string) => urls[k] ?? '')];
  });
}

/** `expect SQL => JSON` pairs. */
export function expectations(block: DocBlock): { sql: string; rows: unknown }[] {
  return args(block, 'expect').map((a) => {
    const at = a.lastIndexOf('=>');
    if (at < 0) throw new Error(`${block.file}:${block.line}: expect needs "SQL => JSON"`);
    return { sql: a.slice(0, at).trim(), rows: JSON.parse(a.slice(at + 2)) };
  });
}
