// A real Envoy for end-to-end tests: renders a bootstrap template into a temp dir and runs it with
// the product's own process manager (gateway/envoy-process.ts), so tests and `chaperone up`
// start Envoy the same way.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEnvoy as startEnvoyProcess } from '../../gateway/envoy-process.ts';

export { EnvoyStartError } from '../../gateway/envoy-process.ts';

export interface StartEnvoyOptions {
  /** A complete, rendered bootstrap (YAML or JSON text, or an object). */
  bootstrapYaml: string | Record<string, unknown>;
  /** The admin port the bootstrap binds on 127.0.0.1 (used to poll /ready). */
  adminPort: number;
  /** Envoy's -l level. Default warn. */
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Listener ports on 127.0.0.1 that must accept TCP connections before start resolves. */
  listenPorts?: number[];
  /** Start-up deadline. Default 15 s. */
  timeoutMs?: number;
}

export interface RunningEnvoy {
  adminUrl: string;
  /** SIGTERM, then SIGKILL if Envoy has not exited within 5 s; removes the temp config. */
  close(): Promise<void>;
  /** What Envoy printed lately (its log and stdout access log). */
  logs(): string;
}

/** Replaces every `{{NAME}}` with vars[NAME]; a placeholder without a value is an error. */
export function renderTemplate(text: string, vars: Record<string, string | number>): string {
  const missing = new Set<string>();
  const out = text.replace(/\{\{\s*([A-Z0-9_]+)\s*\}\}/g, (_m, name: string) => {
    const value = vars[name];
    if (value === undefined) {
      missing.add(name);
      return '';
    }
    return String(value);
  });
  if (missing.size > 0) throw new Error(`template placeholders without a value: ${[...missing].join(', ')}`);
  return out;
}

export async function startEnvoy(opts: StartEnvoyOptions): Promise<RunningEnvoy> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-envoy-'));
  const isText = typeof opts.bootstrapYaml === 'string';
  try {
    const envoy = await startEnvoyProcess({
      bootstrap: opts.bootstrapYaml,
      bootstrapPath: join(dir, isText ? 'bootstrap.yaml' : 'bootstrap.json'),
      adminUrl: `http://127.0.0.1:${opts.adminPort}`,
      logLevel: opts.logLevel ?? 'warn',
      readyTimeoutMs: opts.timeoutMs ?? 15_000,
      ...(opts.listenPorts ? { listenPorts: opts.listenPorts } : {}),
    });
    return {
      adminUrl: envoy.adminUrl,
      logs: () => envoy.recentLog(),
      close: async () => {
        await envoy.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
