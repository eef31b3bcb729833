import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Throwaway TLS material for tests (openssl must be installed: see ensureDebianPackage): a CA,
 * and one certificate for 127.0.0.1 and localhost signed by it, for both server and client use.
 * Answers the files' paths in `folder`.
 */
export function makeTestCertificates(folder: string): { caFile: string; certFile: string; keyFile: string } {
  const file = (name: string): string => join(folder, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'pipe', cwd: folder });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=ringkv throwaway test CA');
  openssl('req', ...ec, '-keyout', file('node.key'), '-out', file('node.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(
    file('node.ext'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ].join('\n'),
  );
  openssl(
    'x509',
    '-req',
    '-in',
    file('node.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-out',
    file('node.pem'),
    '-days',
    '2',
    '-extfile',
    file('node.ext'),
  );
  return { caFile: file('ca.pem'), certFile: file('node.pem'), keyFile: file('node.key') };
}
