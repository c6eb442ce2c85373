// A Kubernetes ConfigMap volume as the kubelet lays it out and updates it (its AtomicWriter): the files
// live in a `..<timestamp>` directory, `..data` is a symlink to it, and each key is a symlink
// `<key> -> ..data/<key>`. An update writes a new timestamped directory, points a `..data_tmp` symlink
// at it, renames that over `..data` (the one atomic step), adds symlinks for new keys and removes the
// old directory. No file a program opens by its name is ever written in place.
import { mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

let generation = 0;

async function writeGeneration(dir: string, files: Record<string, string>): Promise<string> {
  generation += 1;
  const name = `..2026_12_02_12_00_00.${process.pid}${String(generation).padStart(4, '0')}`;
  await mkdir(join(dir, name));
  for (const [key, text] of Object.entries(files)) await writeFile(join(dir, name, key), text);
  return name;
}

/** Creates the volume in `dir` (which must exist and be empty) holding `files` (flat keys). */
export async function createConfigMap(dir: string, files: Record<string, string>): Promise<void> {
  const gen = await writeGeneration(dir, files);
  await symlink(gen, join(dir, '..data'));
  for (const key of Object.keys(files)) await symlink(join('..data', key), join(dir, key));
}

/** Replaces the volume's content with `files` the way the kubelet does. */
export async function updateConfigMap(dir: string, files: Record<string, string>): Promise<void> {
  const old = await readlink(join(dir, '..data'));
  const gen = await writeGeneration(dir, files);
  await symlink(gen, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const key of Object.keys(files))
    await symlink(join('..data', key), join(dir, key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  await rm(join(dir, old), { recursive: true, force: true });
}
