// `heliosdb serve ARGS` as test/docs-examples.test.ts runs it from a documentation block: starts
// the server as written, waits until it says it is listening (at most 60 s), stops it with
// SIGTERM (a moment later) and exits with its exit code (0 when it started and shut down cleanly).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const child = spawn(
  process.execPath,
  ['--import', import.meta.resolve('tsx'), join(root, 'src/server/bin/heliosdb.ts'), ...process.argv.slice(2)],
  {
    stdio: ['ignore', 'pipe', 'pipe'],
  },
);
let output = '';
let listening = false;
const timer = setTimeout(() => {
  process.stderr.write('docs-serve-once: the server did not say it was listening within 60 s\n');
  child.kill('SIGKILL');
}, 60_000);
const onData = (chunk) => {
  output += chunk;
  if (!listening && output.includes('HeliosDB server listening')) {
    listening = true;
    clearTimeout(timer);
    // heliosdb.ts installs its SIGTERM handler after startServer resolves, a moment after the
    // "listening" line: a SIGTERM in between ends the process without draining.
    setTimeout(() => child.kill('SIGTERM'), 1500);
  }
};
child.stdout.on('data', onData);
child.stderr.on('data', onData);
child.on('exit', (code, signal) => {
  clearTimeout(timer);
  process.stdout.write(output);
  if (code !== 0) process.stderr.write(`docs-serve-once: the server exited with ${signal ?? `code ${code}`} (listening: ${listening})\n`);
  if (!listening) process.exit(code || 1);
  process.exit(code ?? (signal ? 1 : 0));
});
