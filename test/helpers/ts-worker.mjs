// Starts a worker thread on a TypeScript module: worker threads do not inherit tsx's loader
// from `node --import tsx`, so the worker registers it before importing the module named in
// workerData.module.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
