/**
 * The SDK's behaviour suite over `postgres://` against heliosdb's own PostgreSQL wire port
 * (`--pg-port`), on both backends: the same suite that runs straight to PostgreSQL.
 */
import { describeEachBackend } from './helpers/backends.js';
import { useServer } from './helpers/server.js';
import { describePgBehaviour } from './sdkpg-behaviour-suite.js';

describeEachBackend("the client over postgres:// to heliosdb's pg port", (backend) => {
  const server = useServer(backend, { httpPort: -1, pgPort: 0 });
  describePgBehaviour(
    `client behaviour over heliosdb's pg port [${backend.name}]`,
    () => `${server().server.pgUrl}/postgres?user=postgres`,
    backend.name,
  );
});
