// Reads an OPA bundle (.tar.gz as written by `opa build -t wasm`) into memory: the WASM module, the
// data document and the manifest. A tiny ustar reader is enough here: bundles are flat, small and
// produced by OPA itself; anything unexpected is rejected rather than guessed at.
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { BundleError } from '../../contracts/errors.ts';

export interface PolicyBundle {
  /** sha256 of the bundle bytes (hex, first 16 chars): names the policy revision in decisions. */
  revision: string;
  /** The manifest's own revision string, if the author set one. */
  manifestRevision: string | null;
  wasm: Uint8Array;
  data: Record<string, unknown>;
  /** Entrypoints declared in the manifest's wasm section. */
  entrypoints: string[];
}

const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;

function readTar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let offset = 0;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const prefix = header.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const sizeField = header
      .subarray(124, 136)
      .toString('utf8')
      .replace(/[\0 ]+$/g, '');
    const size = Number.parseInt(sizeField || '0', 8);
    const type = String.fromCharCode(header[156] ?? 0);
    if (!Number.isFinite(size) || size < 0) throw new BundleError(`corrupt tar header for ${name}`);
    const start = offset + 512;
    if (start + size > tar.length) throw new BundleError(`truncated bundle entry ${name}`);
    if (type === '0' || type === '\0') {
      const full = (prefix ? `${prefix}/${name}` : name).replace(/^\.?\/+/, '/');
      files.set(full.startsWith('/') ? full : `/${full}`, tar.subarray(start, start + size));
    }
    offset = start + Math.ceil(size / 512) * 512;
  }
  return files;
}

export function readBundle(bytes: Buffer, source = 'bundle'): PolicyBundle {
  if (bytes.length > MAX_BUNDLE_BYTES) throw new BundleError(`${source}: bundle larger than 64 MiB`);
  let tar: Buffer;
  try {
    tar = gunzipSync(bytes);
  } catch (err) {
    throw new BundleError(`${source}: not a gzip-compressed OPA bundle`, { file: source }, { cause: err });
  }
  const files = readTar(tar);
  const wasm = files.get('/policy.wasm');
  if (!wasm) {
    throw new BundleError(
      `${source}: bundle has no /policy.wasm (build it with \`chaperone policy build\`)`,
      {
        file: source,
      },
    );
  }
  let manifest: { revision?: string; wasm?: { entrypoint?: string }[] } = {};
  const manifestBytes = files.get('/.manifest');
  if (manifestBytes) {
    try {
      manifest = JSON.parse(manifestBytes.toString('utf8'));
    } catch (err) {
      throw new BundleError(
        `${source}: .manifest is not valid JSON`,
        { file: `${source}/.manifest` },
        { cause: err },
      );
    }
  }
  let data: Record<string, unknown> = {};
  const dataBytes = files.get('/data.json');
  if (dataBytes && dataBytes.length > 0) {
    try {
      data = JSON.parse(dataBytes.toString('utf8'));
    } catch (err) {
      throw new BundleError(
        `${source}: data.json is not valid JSON`,
        { file: `${source}/data.json` },
        { cause: err },
      );
    }
  }
  return {
    revision: createHash('sha256').update(bytes).digest('hex').slice(0, 16),
    manifestRevision: manifest.revision || null,
    wasm: new Uint8Array(wasm),
    data,
    entrypoints: (manifest.wasm ?? []).map((w) => w.entrypoint ?? '').filter(Boolean),
  };
}
