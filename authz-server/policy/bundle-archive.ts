// The container of an OPA bundle: a gzip-compressed tar read into a map of files ("/policy.wasm" →
// bytes), and written back (publishing adds /.signatures.json). A small ustar reader and writer are
// enough — bundles are flat, small and produced by OPA — and keeping them here lets us refuse what a
// general-purpose library would accept: the same path twice (a second entry could shadow a signed
// file), links, devices and unknown extension headers. OPA's own writer (Go's archive/tar) uses plain
// ustar, and a PAX or GNU long-name header only for paths too long for it; both are understood.
import { gunzipSync, gzipSync } from 'node:zlib';
import { BundleError } from '../../contracts/errors.ts';

/** Bundle files by absolute path inside the bundle ("/data.json"). */
export type BundleFiles = Map<string, Buffer>;

export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;
/** Bounds what a small gzip may expand to (a gzip bomb). */
const MAX_TAR_BYTES = 512 * 1024 * 1024;
const BLOCK = 512;

const field = (header: Buffer, start: number, length: number) =>
  header
    .subarray(start, start + length)
    .toString('utf8')
    .replace(/\0.*$/s, '');

const octal = (header: Buffer, start: number, length: number) =>
  Number.parseInt(field(header, start, length).trim() || '0', 8);

/** "./a/b", "a/b" and "/a/b" are one file: "/a/b". */
function normalisePath(name: string): string {
  const p = name.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
  return `/${p}`;
}

/** The `path` record of a PAX extended header ("<len> path=<value>\n" records). */
function paxPath(data: Buffer): string | null {
  let at = 0;
  let path: string | null = null;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const len = Number(data.subarray(at, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0 || at + len > data.length) break;
    const record = data.subarray(space + 1, at + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0 && record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    at += len;
  }
  return path;
}

function gunzip(bytes: Buffer, source: string): Buffer {
  if (bytes.length > MAX_BUNDLE_BYTES) throw new BundleError(`${source}: bundle larger than 64 MiB`);
  try {
    return gunzipSync(bytes, { maxOutputLength: MAX_TAR_BYTES });
  } catch (err) {
    throw new BundleError(`${source}: not a gzip-compressed OPA bundle`, { file: source }, { cause: err });
  }
}

/** Every regular file of the bundle; anything ambiguous or unexpected is a BundleError. */
export function readBundleArchive(bytes: Buffer, source = 'bundle'): BundleFiles {
  const tar = gunzip(bytes, source);
  const files: BundleFiles = new Map();
  let offset = 0;
  let longName: string | null = null;
  while (offset + BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break;
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] ?? 0);
    const start = offset + BLOCK;
    const name = field(header, 0, 100);
    if (!Number.isSafeInteger(size) || size < 0)
      throw new BundleError(`${source}: corrupt tar header for ${name}`);
    if (start + size > tar.length) throw new BundleError(`${source}: truncated bundle entry ${name}`);
    const data = tar.subarray(start, start + size);
    offset = start + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x' || type === 'L') {
      longName = type === 'x' ? paxPath(data) : data.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (type === 'g' || type === '5') continue; // global PAX defaults, directories
    if (type !== '0' && type !== '\0') {
      throw new BundleError(
        `${source}: bundle entry ${name} is not a regular file (tar type ${JSON.stringify(type)})`,
      );
    }
    const prefix = field(header, 345, 155);
    const path = normalisePath(longName ?? (prefix ? `${prefix}/${name}` : name));
    longName = null;
    if (files.has(path)) throw new BundleError(`${source}: bundle has ${path} twice`, { file: source });
    files.set(path, data);
  }
  return files;
}

function header(path: string, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  // Absolute, as OPA writes them: OPA matches the manifest's "/policy.wasm" against these names.
  const rel = `/${path.replace(/^\/+/, '')}`;
  let name = rel;
  let prefix = '';
  if (Buffer.byteLength(rel) > 100) {
    const cut = rel.lastIndexOf('/', rel.length - 1);
    prefix = rel.slice(0, cut);
    name = rel.slice(cut + 1);
    if (cut <= 0 || Buffer.byteLength(prefix) > 155 || Buffer.byteLength(name) > 100)
      throw new BundleError(`bundle path too long to write: ${path}`);
  }
  h.write(name, 0, 100, 'utf8');
  h.write('0000600\0', 100, 'ascii');
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  h.write('00000000000\0', 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** A .tar.gz of `files`, in the order given, with the fixed mode and time OPA writes. */
export function writeBundleArchive(files: BundleFiles): Buffer {
  const parts: Buffer[] = [];
  for (const [path, data] of files) {
    parts.push(header(path, data.length), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return gzipSync(Buffer.concat(parts));
}
