/**
 * The behaviour suite (test/behaviour/suite.ts) in Node, on both runtimes of the Node entry:
 * native gRPC (`grpc://`, the grpc-js channel pool) and Connect (`http://`, connect-node with the
 * concurrency limiter), against every backend. The same cases run in Chromium in
 * test/client-browser.test.ts.
 */
import { test } from 'node:test';
import * as lib from '@heliosdb/client';
import { cases, type ClientModule, runCase, type Runtime, skipReason } from './behaviour/suite.js';
import { describeEachBackend } from './helpers/backends.js';
import { useServer } from './helpers/server.js';

// The Node entry must offer the browser entry's API (checked by the compiler here).
const nodeEntry: ClientModule = lib;

describeEachBackend('client behaviour', (backend) => {
  const s = useServer(backend);
  const runtimes: { runtime: Runtime; url: () => string }[] = [
    { runtime: 'node-grpc', url: () => s().server.grpcUrl },
    { runtime: 'node-connect', url: () => s().server.httpUrl! },
  ];
  for (const { runtime, url } of runtimes) {
    for (const c of cases) {
      const skip = skipReason(c, runtime, nodeEntry);
      test(`[${runtime}] ${c.name}`, { skip }, async () => {
        const r = await runCase(c, { lib: nodeEntry, url: url(), runtime, backend: backend.name });
        if (r.status === 'failed') throw r.error;
      });
    }
  }
});
