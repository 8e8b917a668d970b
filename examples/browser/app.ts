/**
 * The example page's script (bundled by ./serve.ts): runs the SQL typed into the text box and shows
 * the rows in a table, streams a large result with a live row counter and a cancel button, and
 * shows the pool and metrics statistics. A real application imports from `@heliosdb/client`: the
 * `browser` export condition gives it this same build.
 */
import { CancelledError, createClient, type Field, HeliosDBError, QueryError, type ResultStream } from '@heliosdb/client/web';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** Renders any value the client returns as table text. */
function cell(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return `\\x${Array.from(v, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  if (typeof v === 'object') return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x));
  return String(v);
}

function renderTable(fields: Field[], rows: unknown[][]): HTMLTableElement {
  const table = document.createElement('table');
  table.id = 'result-table';
  const head = table.createTHead().insertRow();
  for (const f of fields) {
    const th = document.createElement('th');
    th.append(f.name, ' ');
    const type = document.createElement('small');
    type.textContent = f.type;
    th.append(type);
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const v of row) tr.insertCell().textContent = cell(v);
  }
  return table;
}

function describeError(e: unknown): string {
  if (e instanceof QueryError) {
    return `${e.name} (${e.code}${e.sqlstate ? `, SQLSTATE ${e.sqlstate}` : ''}${e.position ? `, at character ${e.position}` : ''}): ${e.message}`;
  }
  if (e instanceof HeliosDBError) return `${e.name} (${e.code}): ${e.message}`;
  return String(e);
}

const { url } = (await (await fetch('/config.json')).json()) as { url: string };
$('server-url').textContent = url;
const client = createClient({ url, applicationName: 'browser-example' });

function showStats(): void {
  $('pool-stats').textContent = JSON.stringify(client.pool.getStats(), null, 2);
  const metrics = client.metrics.snapshot();
  const lines = Object.entries(metrics).map(
    ([op, m]) =>
      `${op.padEnd(12)} ${String(m.count).padStart(5)} calls ${String(m.errors).padStart(3)} errors  p50 ${m.p50.toFixed(1)} ms  p99 ${m.p99.toFixed(1)} ms`,
  );
  $('metrics').textContent = lines.join('\n') || '(no calls yet)';
}
setInterval(showStats, 250);
showStats();

client.serverInfo().then(
  (info) => ($('server-info').textContent = `(HeliosDB ${info.version} on ${info.engine})`),
  (e) => ($('server-info').textContent = `(unreachable: ${describeError(e)})`),
);

$('run').addEventListener('click', async () => {
  const button = $<HTMLButtonElement>('run');
  button.disabled = true;
  $('query-error').textContent = '';
  $('query-status').textContent = 'running…';
  try {
    const r = await client.query<unknown[]>($<HTMLTextAreaElement>('sql').value, [], { rowMode: 'array' });
    $('results').replaceChildren(renderTable(r.fields, r.rows));
    $('query-status').textContent =
      `${r.command} ${r.rowCount} rows in ${r.roundTripMs.toFixed(1)} ms (server ${r.executionTimeMs.toFixed(1)} ms)`;
  } catch (e) {
    $('results').replaceChildren();
    $('query-status').textContent = '';
    $('query-error').textContent = describeError(e);
  } finally {
    button.disabled = false;
    showStats();
  }
});

let current: { stream: ResultStream; abort: AbortController } | undefined;

$('stream').addEventListener('click', async () => {
  const abort = new AbortController();
  const stream = client.stream($<HTMLInputElement>('stream-sql').value, [], { signal: abort.signal, rowMode: 'array', batchRows: 5000 });
  current = { stream, abort };
  $<HTMLButtonElement>('stream').disabled = true;
  $<HTMLButtonElement>('cancel').disabled = false;
  $('stream-status').textContent = 'streaming…';
  const counter = $('row-counter');
  const t0 = performance.now();
  let rows = 0;
  let painted = performance.now();
  try {
    for await (const batch of stream.batches()) {
      rows += batch.length;
      counter.textContent = rows.toLocaleString('en-US');
      // Batches can arrive faster than frames: give the page a chance to paint the counter and
      // to handle a click on Cancel.
      if (performance.now() - painted > 50) {
        await new Promise((r) => setTimeout(r, 0));
        painted = performance.now();
      }
    }
    const s = (performance.now() - t0) / 1000;
    $('stream-status').textContent =
      `done: ${rows.toLocaleString('en-US')} rows in ${s.toFixed(1)} s (${Math.round(rows / s).toLocaleString('en-US')} rows/s)`;
  } catch (e) {
    $('stream-status').textContent =
      e instanceof CancelledError ? `cancelled after ${rows.toLocaleString('en-US')} rows` : `failed: ${describeError(e)}`;
  } finally {
    counter.textContent = rows.toLocaleString('en-US');
    current = undefined;
    $<HTMLButtonElement>('stream').disabled = false;
    $<HTMLButtonElement>('cancel').disabled = true;
    showStats();
  }
});

$('cancel').addEventListener('click', () => current?.abort.abort());

document.body.dataset.ready = 'true';
