/**
 * LISTEN / NOTIFY: a listener that gets notifications from any session (and hears about gaps
 * after a lost connection). `HELIOSDB_URL=grpc://127.0.0.1:7700 npx tsx examples/listen.ts`
 */
import { createClient } from '@heliosdb/client';

await using client = createClient({ applicationName: 'example-listen' });
const received: string[] = [];
let done = () => {};
const all = new Promise<void>((resolve) => {
  done = resolve;
});
await using listener = await client.listen(['orders', 'refunds'], (n) => {
  if (n.missed) console.warn('notifications may have been lost:', n.reason);
  else received.push(`${n.channel}: ${n.payload}`);
  if (received.length === 3) done();
});
await client.execute("SELECT pg_notify('orders', 'order 1 placed')");
await client.execute("SELECT pg_notify('orders', 'order 1 shipped')");
await client.execute("SELECT pg_notify('refunds', 'order 1 refunded')");
await all;
console.log(received.join('\n'));
console.log('listening on', listener.closed ? 'nothing' : 'orders, refunds');
