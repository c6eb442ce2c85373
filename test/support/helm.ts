// The Helm chart (deploy/helm/chaperone) as `helm template` renders it, and a rendered pod laid out on
// disk the way the kubelet would mount it, so a test can run a container's command line as written.
import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';

export const CHART = join(PROJECT_ROOT, 'deploy', 'helm', 'chaperone');

/** A rendered Kubernetes object, read field by field. */
export type K8sObject = Record<string, any>;

export function run(
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { maxBuffer: 16 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, out: `${stdout}${stderr}` }),
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** `helm template demo <chart> --namespace agents …args`; throws with helm's output when it fails. */
export async function renderChart(args: string[] = []): Promise<{ text: string; objects: K8sObject[] }> {
  const res = await run(locateTool('helm'), ['template', 'demo', CHART, '--namespace', 'agents', ...args]);
  if (res.code !== 0) throw new Error(`helm template failed (${res.code}):\n${res.out}`);
  const objects = yaml.loadAll(res.stdout).filter((o): o is K8sObject => o !== null && typeof o === 'object');
  return { text: res.stdout, objects };
}

export function byKindName(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o['kind'] === kind && o['metadata']?.['name'] === name);
  if (!found) throw new Error(`no ${kind} ${name} in the rendering`);
  return found;
}

/** What a pod's volumes hold when the chart did not render them (the operator's Secrets and ConfigMaps). */
export interface ExternalVolumes {
  /** Secret name → key → content. */
  secrets?: Record<string, Record<string, string>>;
  /** ConfigMap name → a directory standing for it. */
  configMapDirs?: Record<string, string>;
}

export interface MountedContainer {
  /** A path inside the container → the same file on this machine (unchanged outside every mount). */
  path(inContainer: string): string;
  /** The mount paths, longest first. */
  mounts: string[];
}

/**
 * Lays out `container`'s volume mounts under `root` as the kubelet would: a Secret's keys as files of its
 * `defaultMode`, a ConfigMap's keys as files, an emptyDir or a claim as an empty directory. Rendered
 * Secrets and ConfigMaps come from `objects`, others from `external` (a missing one is an error).
 */
export async function mountContainer(
  objects: K8sObject[],
  podSpec: K8sObject,
  container: K8sObject,
  root: string,
  external: ExternalVolumes = {},
): Promise<MountedContainer> {
  const at = new Map<string, string>();
  for (const m of container['volumeMounts'] ?? []) {
    const volume = (podSpec['volumes'] as K8sObject[]).find((v) => v['name'] === m['name']);
    if (!volume) throw new Error(`volumeMount ${m['name']} has no volume`);
    const dir = join(root, m['name']);
    if (volume['secret']) {
      const name = volume['secret']['secretName'] as string;
      const rendered = objects.find((o) => o['kind'] === 'Secret' && o['metadata']['name'] === name);
      const data: Record<string, string> = rendered
        ? Object.fromEntries(
            Object.entries(rendered['data'] as Record<string, string>).map(([k, v]) => [
              k,
              Buffer.from(v, 'base64').toString('utf8'),
            ]),
          )
        : (external.secrets?.[name] ??
          (() => {
            throw new Error(`Secret ${name} is neither rendered nor given`);
          })());
      await mkdir(dir, { recursive: true });
      const mode = (volume['secret']['defaultMode'] as number | undefined) ?? 0o644;
      for (const [key, text] of Object.entries(data)) {
        await writeFile(join(dir, key), text);
        await chmod(join(dir, key), mode);
      }
      at.set(m['mountPath'], dir);
    } else if (volume['configMap']) {
      const name = volume['configMap']['name'] as string;
      const rendered = objects.find((o) => o['kind'] === 'ConfigMap' && o['metadata']['name'] === name);
      if (rendered) {
        await mkdir(dir, { recursive: true });
        for (const [key, text] of Object.entries(rendered['data'] as Record<string, string>))
          await writeFile(join(dir, key), text);
        at.set(m['mountPath'], dir);
      } else {
        const given = external.configMapDirs?.[name];
        if (!given) throw new Error(`ConfigMap ${name} is neither rendered nor given`);
        at.set(m['mountPath'], given);
      }
    } else if (volume['emptyDir'] || volume['persistentVolumeClaim']) {
      await mkdir(dir, { recursive: true });
      at.set(m['mountPath'], dir);
    } else {
      throw new Error(`volume ${m['name']}: a kind this helper does not lay out`);
    }
  }
  const mounts = [...at.keys()].sort((a, b) => b.length - a.length);
  return {
    mounts,
    path: (p) => {
      const mount = mounts.find((m) => p === m || p.startsWith(`${m}/`));
      return mount ? `${at.get(mount)}${p.slice(mount.length)}` : p;
    },
  };
}
