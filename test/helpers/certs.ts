/**
 * Test certificates made at test time with the `openssl` command: a CA, a server certificate for
 * localhost / 127.0.0.1, client certificates (their common name names a HeliosDB user), a server
 * certificate for the wrong host, an expired one, and a second CA nobody trusts.
 * @packageDocumentation
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, PEM, and the files holding them. */
export interface CertPair {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

/** Everything a TLS test needs. */
export interface TestCerts {
  dir: string;
  ca: CertPair;
  /** SAN localhost, 127.0.0.1, ::1; signed by `ca`. */
  server: CertPair;
  /** SAN wrong.example.test only; signed by `ca`. */
  wrongHost: CertPair;
  /** SAN localhost, 127.0.0.1; expired yesterday; signed by `ca`. */
  expired: CertPair;
  /** A self-signed CA the tests never trust, and a server certificate from it. */
  otherCa: CertPair;
  untrustedServer: CertPair;
  /** A client certificate with common name `cn`, signed by `ca` (made on demand). */
  client(cn: string): CertPair;
  /** A client certificate signed by `otherCa`. */
  untrustedClient(cn: string): CertPair;
  cleanup(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function pairOf(dir: string, name: string): CertPair {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}

const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function makeCa(dir: string, name: string, cn: string): CertPair {
  openssl(dir, [
    'req',
    '-x509',
    ...keyArgs,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-subj',
    `/CN=${cn}`,
    '-days',
    '2',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return pairOf(dir, name);
}

let serial = 1000;

function makeLeaf(dir: string, name: string, cn: string, ca: string, ext: string, days = 2): CertPair {
  openssl(dir, ['req', ...keyArgs, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-set_serial',
    String(serial++),
    '-out',
    `${name}.crt`,
    '-days',
    String(days),
    '-extfile',
    `${name}.ext`,
  ]);
  return pairOf(dir, name);
}

const serverExt = (san: string) =>
  `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`;
const clientExt = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';

/** Makes the certificates in a fresh temporary directory. */
export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'heliosdb-certs-'));
  const ca = makeCa(dir, 'ca', 'HeliosDB Test CA');
  const otherCa = makeCa(dir, 'other-ca', 'Untrusted Test CA');
  const localSan = 'DNS:localhost,IP:127.0.0.1,IP:::1';
  const clients = new Map<string, CertPair>();
  let n = 0;
  return {
    dir,
    ca,
    otherCa,
    server: makeLeaf(dir, 'server', 'localhost', 'ca', serverExt(localSan)),
    wrongHost: makeLeaf(dir, 'wrong-host', 'wrong.example.test', 'ca', serverExt('DNS:wrong.example.test')),
    expired: makeLeaf(dir, 'expired', 'localhost', 'ca', serverExt(localSan), -1),
    untrustedServer: makeLeaf(dir, 'untrusted-server', 'localhost', 'other-ca', serverExt(localSan)),
    client(cn) {
      let c = clients.get(cn);
      if (!c) clients.set(cn, (c = makeLeaf(dir, `client-${n++}`, cn, 'ca', clientExt)));
      return c;
    },
    untrustedClient(cn) {
      return makeLeaf(dir, `untrusted-client-${n++}`, cn, 'other-ca', clientExt);
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
