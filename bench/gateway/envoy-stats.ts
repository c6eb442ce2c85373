// Envoy's own counters around each measured rate (admin `/stats?format=json`): what the ext_authz and
// ext_proc filters and the gRPC clusters saw — timeouts, failed streams, overflows — is the evidence
// for where a side loses requests.
export type Counters = Record<string, number>;

interface StatsJson {
  stats: { name: string; value?: number }[];
}

export async function envoyCounters(adminUrl: string): Promise<Counters> {
  const res = await fetch(`${adminUrl}/stats?format=json`);
  if (!res.ok) throw new Error(`envoy admin /stats answered ${res.status}`);
  const body = (await res.json()) as StatsJson;
  const out: Counters = {};
  for (const s of body.stats) if (typeof s.value === 'number') out[s.name] = s.value;
  return out;
}

/** The counters worth reading after a run; anything else Envoy counts is left out of the results. */
const INTERESTING =
  /ext_authz|ext_proc|\.grpc\.|upstream_rq_timeout|upstream_rq_per_try_timeout|overflow|downstream_rq_[245]xx|upstream_rq_[45]xx|upstream_cx_connect_fail|upstream_rq_pending_failure_eject|access_log/;

/** Counters matching INTERESTING that moved between two scrapes, by name. */
export function movedCounters(before: Counters, after: Counters): Counters {
  const out: Counters = {};
  for (const [name, value] of Object.entries(after)) {
    if (!INTERESTING.test(name) || name.startsWith('http.admin.')) continue;
    const delta = value - (before[name] ?? 0);
    if (delta !== 0) out[name] = delta;
  }
  return out;
}

/** Downstream requests Envoy is still working on (all HTTP listeners, admin excluded). */
export async function activeDownstreamRequests(adminUrl: string): Promise<number> {
  const counters = await envoyCounters(adminUrl);
  let active = 0;
  for (const [name, value] of Object.entries(counters)) {
    if (/^http\.(?!admin\.).*\.downstream_rq_active$/.test(name)) active += value;
  }
  return active;
}
