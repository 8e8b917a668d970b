/**
 * Transactions with retry: concurrent transfers at SERIALIZABLE. `client.transaction()` runs the
 * callback again on serialization failures and deadlocks, so the callback holds only statements
 * (side effects go after it). `HELIOSDB_URL=grpc://127.0.0.1:7700 npx tsx examples/transactions.ts`
 */
import { createClient, IsolationLevel } from '@heliosdb/client';

await using client = createClient({ applicationName: 'example-transactions' });
await client.execute('DROP TABLE IF EXISTS example_accounts');
await client.execute('CREATE TABLE example_accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))');
await client.execute('INSERT INTO example_accounts VALUES (1, 1000), (2, 1000)');

async function transfer(from: number, to: number, amount: number): Promise<void> {
  await client.transaction(
    async (tx) => {
      await tx.execute('UPDATE example_accounts SET balance = balance - $1 WHERE id = $2', [amount, from]);
      await tx.execute('UPDATE example_accounts SET balance = balance + $1 WHERE id = $2', [amount, to]);
    },
    { isolationLevel: IsolationLevel.Serializable, maxRetries: 10 },
  );
  console.log(`moved ${amount} from ${from} to ${to}`); // after the commit: runs once
}

await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? transfer(1, 2, 10) : transfer(2, 1, 5))));
const { rows } = await client.query('SELECT sum(balance)::int AS total FROM example_accounts');
console.log('total', rows[0].total, 'retries', client.stats().transactionRetries);
