// JUnit XML for CI systems that render test reports (GitHub, GitLab, Jenkins).
export interface JUnitCase {
  suite: string;
  name: string;
  file?: string;
  timeMs: number;
  failure?: string;
  skipped?: boolean;
}

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function junitXml(name: string, cases: JUnitCase[]): string {
  const suites = new Map<string, JUnitCase[]>();
  for (const c of cases) suites.set(c.suite, [...(suites.get(c.suite) ?? []), c]);
  const out = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const failures = cases.filter((c) => c.failure !== undefined).length;
  out.push(`<testsuites name="${esc(name)}" tests="${cases.length}" failures="${failures}">`);
  for (const [suite, list] of suites) {
    const f = list.filter((c) => c.failure !== undefined).length;
    const s = list.filter((c) => c.skipped).length;
    const time = list.reduce((t, c) => t + c.timeMs, 0) / 1000;
    out.push(
      `  <testsuite name="${esc(suite)}" tests="${list.length}" failures="${f}" skipped="${s}" time="${time.toFixed(3)}">`,
    );
    for (const c of list) {
      const attrs = `classname="${esc(suite)}" name="${esc(c.name)}"${c.file ? ` file="${esc(c.file)}"` : ''} time="${(c.timeMs / 1000).toFixed(3)}"`;
      if (c.failure !== undefined) {
        out.push(
          `    <testcase ${attrs}><failure message="${esc(c.failure.split('\n')[0] ?? '')}">${esc(c.failure)}</failure></testcase>`,
        );
      } else if (c.skipped) out.push(`    <testcase ${attrs}><skipped/></testcase>`);
      else out.push(`    <testcase ${attrs}/>`);
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return `${out.join('\n')}\n`;
}
