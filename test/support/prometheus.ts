// Scrapes a metrics endpoint and reads it with a real Prometheus text-format parser
// (parse-prometheus-text-format 1.1.1, prom2json's shape), so a test sees what Prometheus would.
//
// That parser merges every sample of a histogram or summary into one, dropping their labels and
// `_count`/`_sum` (checked: `h_count{target="demo"} 2` comes back as `{buckets}` alone). So the text is
// parsed with histogram and summary families declared untyped — their `_bucket`, `_count` and `_sum`
// series then come back as separate families with their labels, which is what Prometheus stores — and
// the declared types are kept from the `# TYPE` lines.
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

export interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}

export interface Scrape {
  families: Family[];
  /** Declared types by family name (`histogram`, `counter`…), from the `# TYPE` lines. */
  types: Map<string, string>;
  /** The families by name. */
  get(name: string): Family | undefined;
  /** The sum of the values of the samples whose labels include `labels` (0 when there is none). */
  value(name: string, labels?: Record<string, string>): number;
  /** Every label value of every sample. */
  labelValues(): string[];
}

export function parseScrape(text: string): Scrape {
  const types = new Map<string, string>();
  const flat = text.replace(/^# TYPE (\S+) (\S+)$/gm, (_line, name: string, type: string) => {
    types.set(name, type);
    return `# TYPE ${name} ${type === 'histogram' || type === 'summary' ? 'untyped' : type}`;
  });
  // Interleaved series (`_bucket`, `_sum`, `_count` per label set) come back as several families of
  // one name: merged here.
  const byName = new Map<string, Family>();
  for (const f of parsePrometheusTextFormat(flat) as Family[]) {
    const seen = byName.get(f.name);
    if (seen) seen.metrics.push(...f.metrics);
    else byName.set(f.name, f);
  }
  const families = [...byName.values()];
  return {
    families,
    types,
    get: (name) => byName.get(name),
    value(name, labels = {}) {
      const samples = (byName.get(name)?.metrics ?? []).filter((m) =>
        Object.entries(labels).every(([k, v]) => m.labels?.[k] === v),
      );
      return samples.reduce((sum, m) => sum + Number(m.value ?? 0), 0);
    },
    labelValues: () => families.flatMap((f) => f.metrics.flatMap((m) => Object.values(m.labels ?? {}))),
  };
}

/** GET a metrics URL with an optional bearer token; the parsed scrape, or the failed status. */
export async function scrape(url: string, token?: string): Promise<Scrape> {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`scrape ${url}: HTTP ${res.status} ${text}`);
  return parseScrape(text);
}
