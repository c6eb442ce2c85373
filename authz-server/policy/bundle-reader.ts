// Reads an OPA bundle (.tar.gz as written by `opa build -t wasm`) into memory: the WASM module, the
// data document and the manifest. The archive itself is read by bundle-archive.ts, which refuses
// anything ambiguous; a signature, when one is required, is checked by bundle-signing.ts first.
import { createHash } from 'node:crypto';
import { BundleError } from '../../contracts/errors.ts';
import { type BundleFiles, readBundleArchive } from './bundle-archive.ts';

export interface PolicyBundle {
  /**
   * Names the policy in decisions: the first 16 hex chars of the bundle's sha256, or the fleet's
   * revision id (`r7`) when the bundle was published to the shared store.
   */
  revision: string;
  /** sha256 of the bundle bytes (hex). */
  sha256: string;
  /** The manifest's own revision string, if the author set one. */
  manifestRevision: string | null;
  wasm: Uint8Array;
  data: Record<string, unknown>;
  /** Entrypoints declared in the manifest's wasm section. */
  entrypoints: string[];
  /** The key that verified the bundle's signature, when one was checked. */
  verifiedBy?: string;
}

function parseJsonFile<T>(bytes: Buffer, source: string, name: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw new BundleError(
      `${source}: ${name} is not valid JSON`,
      { file: `${source}/${name}` },
      { cause: err },
    );
  }
}

/** The policy parts of an already-read archive; `bytes` is the archive as received (its hash names it). */
export function bundleFromFiles(files: BundleFiles, bytes: Buffer, source = 'bundle'): PolicyBundle {
  const wasm = files.get('/policy.wasm');
  if (!wasm) {
    throw new BundleError(
      `${source}: bundle has no /policy.wasm (build it with \`chaperone policy build\`)`,
      {
        file: source,
      },
    );
  }
  const manifestBytes = files.get('/.manifest');
  const manifest = manifestBytes
    ? parseJsonFile<{ revision?: string; wasm?: { entrypoint?: string }[] }>(
        manifestBytes,
        source,
        '.manifest',
      )
    : {};
  const dataBytes = files.get('/data.json');
  const data =
    dataBytes && dataBytes.length > 0
      ? parseJsonFile<Record<string, unknown>>(dataBytes, source, 'data.json')
      : {};
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return {
    revision: sha256.slice(0, 16),
    sha256,
    manifestRevision: manifest.revision || null,
    wasm: new Uint8Array(wasm),
    data,
    entrypoints: (manifest.wasm ?? []).map((w) => w.entrypoint ?? '').filter(Boolean),
  };
}

export function readBundle(bytes: Buffer, source = 'bundle'): PolicyBundle {
  return bundleFromFiles(readBundleArchive(bytes, source), bytes, source);
}
