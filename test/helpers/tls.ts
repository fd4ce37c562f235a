/**
 * Throwaway certificates for TLS tests, made with the openssl command line: a certificate
 * authority and a server certificate it signs for 127.0.0.1 / localhost.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  /** PEM files. */
  certFile: string;
  keyFile: string;
}

export interface Cert {
  /** PEM files: the certificate alone, its unencrypted PKCS#8 key, and both in one file (a Kafka PEM keystore). */
  certFile: string;
  keyFile: string;
  keystoreFile: string;
}

const openssl = (args: string[], cwd: string): void => {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
};

/** A self-signed CA named `name` in `dir` (EC P-256: fast to generate). */
export function makeCa(dir: string, name: string): TestCa {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`], dir);
  return { certFile, keyFile };
}

/** A certificate for 127.0.0.1 and localhost signed by `ca`, for a server or a client. */
export function makeCert(dir: string, ca: TestCa, name: string): Cert {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', extFile], dir);
  // openssl 3 writes PKCS#8 ("BEGIN PRIVATE KEY"), the form Kafka's PEM keystore reads.
  const keystoreFile = join(dir, `${name}.keystore.pem`);
  writeFileSync(keystoreFile, readFileSync(keyFile, 'utf8') + readFileSync(certFile, 'utf8') + readFileSync(ca.certFile, 'utf8'));
  return { certFile, keyFile, keystoreFile };
}
