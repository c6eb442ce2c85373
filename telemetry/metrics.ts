// Chaperone's Prometheus metrics (prom-client), one registry per process: the metric families the Check
// path and the control plane update as things happen, and gauges read from the components' own state
// when Prometheus scrapes. docs/observability.md lists every family.
//
// The Check path pays for an increment and an observation on children looked up once per label set:
// no I/O, no allocation beyond the first time. Label values are bounded — targets, verdicts, reason
// codes, Envoy node ids and xDS types only, never a user, a path or an id — and each label keeps at most
// MAX_LABEL_VALUES distinct values (then `other`), since a local process can send the authz server or
// the ADS port any target or node name it likes.
import {
  type CollectFunction,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  Registry,
} from 'prom-client';
import type { DecisionEvent } from '../contracts/decision.ts';

/** Distinct values one label keeps before further ones are counted as `other`. */
export const MAX_LABEL_VALUES = 100;
/** Longer label values are cut: a reason code is a short identifier, not a sentence. */
const MAX_LABEL_LENGTH = 64;

/** Check latency buckets (seconds): the decision path is ~1-5 ms; Envoy's ext_authz timeout is 200 ms. */
export const CHECK_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1];

/** A label whose values come from outside: the first `max` distinct values, then `other`. */
export class BoundedLabel {
  private readonly seen = new Set<string>();
  constructor(private readonly max = MAX_LABEL_VALUES) {}

  value(v: string | null | undefined): string {
    const s = v ? v.slice(0, MAX_LABEL_LENGTH) : 'none';
    if (this.seen.has(s)) return s;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(s);
    return s;
  }
}

/** One sample of a gauge read at scrape time. */
export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

type Read = () => number | Sample[] | Promise<number | Sample[]>;

interface DecisionChildren {
  count: { inc(): void };
  latency: { observe(v: number): void };
}

export class Metrics {
  readonly registry = new Registry();
  private readonly decisions: Counter<'target' | 'decision' | 'reason_code'>;
  private readonly checkSeconds: Histogram<'target' | 'decision'>;
  private readonly policyReloads: Counter<'result'>;
  private readonly configPublishes: Counter<'result'>;
  private readonly xdsCounters: Record<'push' | 'ack' | 'nack', Counter<'node' | 'type'>>;
  private readonly byDecision = new Map<string, DecisionChildren>();
  private readonly targets = new BoundedLabel();
  private readonly reasonCodes = new BoundedLabel();
  private readonly nodes = new BoundedLabel();
  private processMetricsOn = false;

  constructor() {
    const registers = [this.registry];
    this.decisions = new Counter({
      name: 'chaperone_decisions_total',
      help: 'Decisions of the authz server by target, verdict and reason code.',
      labelNames: ['target', 'decision', 'reason_code'],
      registers,
    });
    this.checkSeconds = new Histogram({
      name: 'chaperone_check_duration_seconds',
      help: 'Time from receiving a Check to answering it (recording included), by target and verdict.',
      labelNames: ['target', 'decision'],
      buckets: CHECK_BUCKETS,
      registers,
    });
    this.policyReloads = new Counter({
      name: 'chaperone_policy_reloads_total',
      help: 'Policy loads and reloads by result (failed: the last good policy kept serving).',
      labelNames: ['result'],
      registers,
    });
    this.configPublishes = new Counter({
      name: 'chaperone_config_reloads_total',
      help: 'Config file reloads by result (failed: the last good config kept serving).',
      labelNames: ['result'],
      registers,
    });
    const xds = (kind: string, help: string) =>
      new Counter({ name: `chaperone_xds_${kind}_total`, help, labelNames: ['node', 'type'], registers });
    this.xdsCounters = {
      push: xds('pushes', 'Discovery responses sent to Envoy, by node id and resource type.'),
      ack: xds('acks', 'Discovery responses Envoy accepted (ACK), by node id and resource type.'),
      nack: xds('nacks', 'Discovery responses Envoy rejected (NACK), by node id and resource type.'),
    };
  }

  /** The Check path: one decision, counted and timed from memory. */
  decided(e: DecisionEvent): void {
    const decision = e.verdict.decision;
    const key = `${e.target ?? ''}\u0000${decision}\u0000${e.verdict.reasonCode}`;
    let c = this.byDecision.get(key);
    if (!c) {
      const target = this.targets.value(e.target);
      const reason = this.reasonCodes.value(e.verdict.reasonCode);
      c = {
        count: this.decisions.labels(target, decision, reason),
        latency: this.checkSeconds.labels(target, decision),
      };
      // Bounded like the labels: beyond the limit, combinations are looked up each time.
      if (this.byDecision.size < MAX_LABEL_VALUES * 10) this.byDecision.set(key, c);
    }
    c.count.inc();
    c.latency.observe(e.latencyUs / 1e6);
  }

  policyReload(ok: boolean): void {
    this.policyReloads.inc({ result: ok ? 'ok' : 'failed' });
  }

  configReload(ok: boolean): void {
    this.configPublishes.inc({ result: ok ? 'ok' : 'failed' });
  }

  /** An ADS event of one Envoy node: a response pushed, acknowledged or rejected. */
  xds(kind: 'push' | 'ack' | 'nack', node: string, type: string): void {
    this.xdsCounters[kind].inc({ node: this.nodes.value(node), type });
  }

  /** A gauge read when Prometheus scrapes (a number, or one sample per label set). */
  gauge(name: string, help: string, read: Read, labelNames: string[] = []): void {
    const collect: CollectFunction<Gauge<string>> = async function (this: Gauge<string>) {
      const v = await read();
      this.reset();
      if (typeof v === 'number') this.set(v);
      else for (const s of v) this.set(s.labels ?? {}, s.value);
    };
    new Gauge({ name, help, labelNames, registers: [this.registry], collect });
  }

  /** A counter whose running total another component keeps (read when Prometheus scrapes). */
  counterOf(name: string, help: string, read: () => number): void {
    const collect: CollectFunction<Counter<string>> = function (this: Counter<string>) {
      this.reset();
      this.inc(read());
    };
    new Counter({ name, help, registers: [this.registry], collect });
  }

  /** Node.js process metrics (CPU, memory, event-loop delay, GC), once per registry. */
  withProcessMetrics(): this {
    if (!this.processMetricsOn) collectDefaultMetrics({ register: this.registry });
    this.processMetricsOn = true;
    return this;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of every family. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
