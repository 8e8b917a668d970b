#!/usr/bin/env node
// The `heliosdb` command. Installed from the package it runs the build (../dist/bin/heliosdb.js);
// in a clone of the repository it runs the TypeScript sources through tsx, so `npx heliosdb`
// works right after `npm install`, before (and without) any build.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const inRepository = existsSync(here('../../../buf.gen.yaml')) && existsSync(here('./heliosdb.ts'));
if (inRepository) {
  const { register } = await import('tsx/esm/api');
  register({ tsconfig: here('../../../tsconfig.json') });
  await import('./heliosdb.ts');
} else {
  await import('../dist/bin/heliosdb.js');
}
