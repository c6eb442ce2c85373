// The metrics listener's routes: Chaperone's own metrics in Prometheus text format, and Envoy's stats
// proxied from its admin interface (a Unix socket, or loopback only: a scraper elsewhere could not reach it).
// Both are for a `scraper` (api/route.ts): served on the metrics listener only, never on the HTTP API.
import { adminGet } from '../../lib/envoy-admin.ts';
import type { Route } from '../route.ts';

export interface MetricsRouteDeps {
  /** The exposition text and its content type (telemetry/metrics.ts). */
  render(): Promise<{ contentType: string; text: string }>;
  /** The admin URL of the Envoy this process runs, or null (none, or not started yet). */
  envoyAdminUrl?: () => string | null;
}

/** Envoy's admin answers in milliseconds; a scrape must not hang on a wedged one. */
const ENVOY_STATS_TIMEOUT_MS = 5000;

async function envoyStats(adminUrl: string | null) {
  if (!adminUrl)
    return {
      status: 503,
      body: { error: 'envoy_unavailable', reason: 'no Envoy is running under this process' },
    };
  try {
    // A Unix socket by default (lib/envoy-admin.ts speaks HTTP over it; fetch cannot).
    const res = await adminGet(adminUrl, '/stats/prometheus', ENVOY_STATS_TIMEOUT_MS);
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    return { status: 200, body: res.body, headers: { 'content-type': 'text/plain; version=0.0.4' } };
  } catch {
    return {
      status: 503,
      body: { error: 'envoy_unavailable', reason: "Envoy's admin endpoint did not answer" },
    };
  }
}

export function metricsRoutes(d: MetricsRouteDeps): Route[] {
  const routes: Route[] = [
    {
      method: 'GET',
      path: '/metrics',
      caller: 'scraper',
      handle: async () => {
        const { contentType, text } = await d.render();
        return { status: 200, body: text, headers: { 'content-type': contentType } };
      },
    },
  ];
  const adminUrl = d.envoyAdminUrl;
  if (adminUrl)
    routes.push({
      method: 'GET',
      path: '/metrics/envoy',
      caller: 'scraper',
      handle: () => envoyStats(adminUrl()),
    });
  return routes;
}
