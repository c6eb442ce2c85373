// The config and policy watchers against the real file system, laid out the ways operators change
// files: an editor's save-by-rename, a symlink to a file elsewhere, and a Kubernetes ConfigMap volume
// (`..data` swapped to a new timestamped directory, keys as symlinks through it). A change of content
// fires once; a swap to identical content is no change. The policy store builds a ConfigMap-mounted
// policy directory with the real OPA and serves an update.
import { mkdir, mkdtemp, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PolicyStore } from '../../authz-server/policy/policy-store.ts';
import { SourceWatch } from '../../lib/source-watch.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { createConfigMap, updateConfigMap } from '../support/configmap.ts';
import { waitFor } from '../support/wait.ts';

let root: string;
const open: { close(): void }[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'chaperone-watch-'));
});
afterEach(() => {
  for (const w of open.splice(0)) w.close();
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function fresh(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir);
  return dir;
}

/** A watch counting its changes. */
async function counting(path: string, kind: 'file' | 'dir') {
  const seen = { changes: 0 };
  const w = await SourceWatch.start({ path, kind, debounceMs: 50, onChange: () => seen.changes++ });
  open.push(w);
  return seen;
}

const changes = (seen: { changes: number }, n: number) =>
  waitFor(() => seen.changes >= n, { what: `${n} change(s)`, timeoutMs: 5000 });

describe('a watched file', () => {
  it('sees an editor save by rename, and not a touch', async () => {
    const dir = await fresh('editor');
    const file = join(dir, 'chaperone.yaml');
    await writeFile(file, 'a: 1\n');
    const seen = await counting(file, 'file');
    await writeFile(join(dir, '.chaperone.yaml.swp'), 'x');
    await writeFile(join(dir, 'chaperone.yaml.tmp'), 'a: 2\n');
    await rename(join(dir, 'chaperone.yaml.tmp'), file);
    await changes(seen, 1);
    // Same content, new mtime: no change. The edit after it is exactly one more.
    await utimes(file, new Date(), new Date(Date.now() + 5000));
    await writeFile(file, 'a: 3\n');
    await changes(seen, 2);
    expect(seen.changes).toBe(2);
  });

  it('follows a symlink to a file edited in place in another directory', async () => {
    const real = await fresh('real-config');
    const linked = await fresh('linked-config');
    await writeFile(join(real, 'chaperone.yaml'), 'a: 1\n');
    await symlink(join(real, 'chaperone.yaml'), join(linked, 'chaperone.yaml'));
    const seen = await counting(join(linked, 'chaperone.yaml'), 'file');
    await writeFile(join(real, 'chaperone.yaml'), 'a: 2\n');
    await changes(seen, 1);
  });

  it('follows a ConfigMap update (..data swapped), and ignores one with the same content', async () => {
    const dir = await fresh('cm-file');
    await createConfigMap(dir, { 'chaperone.yaml': 'a: 1\n', 'other.txt': 'x' });
    const seen = await counting(join(dir, 'chaperone.yaml'), 'file');
    await updateConfigMap(dir, { 'chaperone.yaml': 'a: 2\n', 'other.txt': 'x' });
    await changes(seen, 1);
    expect(await readFile(join(dir, 'chaperone.yaml'), 'utf8')).toBe('a: 2\n');
    // Another key changed, this one did not: then a real edit again — exactly one more change.
    await updateConfigMap(dir, { 'chaperone.yaml': 'a: 2\n', 'other.txt': 'y' });
    await updateConfigMap(dir, { 'chaperone.yaml': 'a: 3\n', 'other.txt': 'y' });
    await changes(seen, 2);
    expect(seen.changes).toBe(2);
  });
});

describe('a watched directory', () => {
  it('sees files added in new subdirectories and edits in them', async () => {
    const dir = await fresh('tree');
    await writeFile(join(dir, 'a.rego'), 'package a\n');
    const seen = await counting(dir, 'dir');
    await mkdir(join(dir, 'lib'));
    await writeFile(join(dir, 'lib', 'b.rego'), 'package b\n');
    await changes(seen, 1);
    await writeFile(join(dir, 'lib', 'b.rego'), 'package b\n\nx := 1\n');
    await changes(seen, 2);
  });

  it('follows a ConfigMap update of a mounted policy directory', async () => {
    const dir = await fresh('cm-dir');
    await createConfigMap(dir, { 'a.rego': 'package a\n' });
    const seen = await counting(dir, 'dir');
    await updateConfigMap(dir, { 'a.rego': 'package a\n\nx := 1\n', 'b.rego': 'package b\n' });
    await changes(seen, 1);
  });
});

describe('the policy store on a ConfigMap-mounted policy directory', () => {
  const policy = (reason: string) => `package chaperone.authz

import rego.v1

decision := {"allowed": false, "reason": "${reason}"}
`;

  it('builds it (the ..data copies are not policy) and serves an update', async () => {
    const dir = await fresh('cm-policy');
    await createConfigMap(dir, { 'decision.rego': policy('first') });
    const store = new PolicyStore({
      kind: 'dir',
      path: dir,
      entrypoint: 'chaperone/authz/decision',
      capabilities: join(PROJECT_ROOT, 'policies', 'capabilities.json'),
    });
    open.push(store);
    expect(await store.reload(), store.lastError()?.message).toBe(true);
    const first = store.current()!.revision;
    await store.watch(50);
    await updateConfigMap(dir, { 'decision.rego': policy('second') });
    await waitFor(() => store.current()?.revision !== first, {
      what: 'the updated policy',
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    const out = store.current()!.engine.evaluate({});
    expect(JSON.stringify(out)).toContain('second');
  }, 90_000);
});
