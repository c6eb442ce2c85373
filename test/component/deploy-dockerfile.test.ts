// The container image recipe (deploy/docker/Dockerfile). No container engine runs here, so it is
// linted (hadolint, every rule, failing on any finding) and checked against what the rest of the
// deployment assumes: a build stage apart from the runtime stage, a numeric non-root user that matches
// the Helm chart's runAsUser, the package where the chart looks for the shipped policies, and Envoy and
// OPA on PATH where Chaperone looks for them.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';

const DOCKERFILE = join(PROJECT_ROOT, 'deploy', 'docker', 'Dockerfile');
const CHART = join(PROJECT_ROOT, 'deploy', 'helm', 'chaperone');

/** The Dockerfile's stages: the FROM line and the instructions under it (continuations joined). */
async function stages(): Promise<{ from: string; lines: string[] }[]> {
  const text = (await readFile(DOCKERFILE, 'utf8')).replace(/\\\n/g, ' ');
  const out: { from: string; lines: string[] }[] = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    if (/^FROM\s/i.test(line)) out.push({ from: line, lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

describe('Dockerfile', () => {
  it('passes hadolint with no finding at all', async () => {
    const res = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(
        locateTool('hadolint'),
        ['--failure-threshold', 'style', '--no-color', DOCKERFILE],
        { timeout: 30_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` }),
      );
    });
    expect(res).toEqual({ code: 0, out: '' });
  });

  it("builds in one stage and runs from another, as the chart's non-root user", async () => {
    const all = await stages();
    const runtime = all.at(-1)!;
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(all.some((s) => / AS build$/i.test(s.from))).toBe(true);
    // The runtime stage installs nothing itself: it copies the built package in.
    expect(runtime.lines.filter((l) => /\bnpm (ci|install)\b/.test(l))).toEqual([]);
    expect(runtime.lines).toContain('COPY --from=build /opt/chaperone /opt/chaperone');
    const user = runtime.lines.filter((l) => l.startsWith('USER ')).at(-1);
    const uid = Number(/^USER (\d+)(?::\d+)?$/.exec(user ?? '')?.[1]);
    expect(uid).toBeGreaterThan(0);
    const values = yaml.load(await readFile(join(CHART, 'values.yaml'), 'utf8')) as {
      podSecurityContext: { runAsUser: number };
    };
    expect(values.podSecurityContext.runAsUser).toBe(uid);
  });

  it('puts the package where the chart looks for it, and Envoy and OPA on PATH', async () => {
    const runtime = (await stages()).at(-1)!;
    const helpers = await readFile(join(CHART, 'templates', '_helpers.tpl'), 'utf8');
    expect(helpers).toContain('/opt/chaperone/lib/node_modules/chaperone');
    expect(runtime.lines).toContain('COPY --from=envoy /usr/local/bin/envoy /usr/local/bin/envoy');
    expect(runtime.lines).toContain('COPY --from=opa /opa /usr/local/bin/opa');
    expect(runtime.lines).toContain('ENTRYPOINT ["chaperone"]');
  });
});
