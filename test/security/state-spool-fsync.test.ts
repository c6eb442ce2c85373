// The spool's durability promise, observed at the system-call level: a real Node process appends to a
// spool (rotating segments) and acknowledges it (renaming ack.json, deleting old segments) under
// strace. Each new segment's directory entry is fsynced before anything is written into the segment;
// the directory is fsynced after the rename and after the deletions. (The order of the spool's calls
// is also tested through its injectable layer in test/component/audit-spool.test.ts.)
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';

const run = promisify(execFile);
const STRACE = await run('strace', ['-V']).then(
  () => true,
  () => false,
);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-strace-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Call {
  name: string;
  args: string;
  result: string;
}

/** strace -f output as complete calls, in order (an interrupted call joined with its resumption). */
function parse(text: string): Call[] {
  const pending = new Map<string, string>();
  const calls: Call[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, tid, rest] = m as unknown as [string, string, string];
    let full = rest;
    const unfinished = /^(.*) <unfinished \.\.\.>$/.exec(rest);
    if (unfinished) {
      pending.set(tid, unfinished[1]!);
      continue;
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
    if (resumed) {
      full = `${pending.get(tid) ?? ''}${resumed[1]}`;
      pending.delete(tid);
    }
    const call = /^(\w+)\((.*)\)\s+=\s+(.*)$/.exec(full);
    if (call) calls.push({ name: call[1]!, args: call[2]!, result: call[3]! });
  }
  return calls;
}

describe.skipIf(!STRACE)(
  `spool directory fsync under strace${STRACE ? '' : ' (skipped: strace not installed)'}`,
  () => {
    it('fsyncs the directory after creating a segment (before writing it), renaming the ack and deleting segments', async () => {
      const spoolDir = join(dir, 'spool');
      const script = join(dir, 'spool-run.mjs');
      await writeFile(
        script,
        `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))};
register();
const { Spool } = await import(${JSON.stringify(join(PROJECT_ROOT, 'audit/spool.ts'))});
const spool = await Spool.open({ dir: ${JSON.stringify(spoolDir)}, segmentBytes: 100 });
await spool.append({ n: 1, pad: 'x'.repeat(120) });
await spool.append({ n: 2, pad: 'x'.repeat(120) });
await spool.close();
const again = await Spool.open({ dir: ${JSON.stringify(spoolDir)}, segmentBytes: 100 });
const { next } = await again.read(await again.readAck(), 10);
process.stdout.write('ACK-BEGIN\\n');
await again.ack(next, 2);
process.stdout.write('ACK-END\\n');
await again.close();
`,
      );
      const trace = join(dir, 'trace.txt');
      await run(
        'strace',
        [
          '-f',
          '-qq',
          '-e',
          'trace=openat,fsync,fdatasync,write,writev,pwrite64,pwritev,rename,renameat,renameat2,unlink,unlinkat,close',
          '-o',
          trace,
          process.execPath,
          script,
        ],
        { cwd: PROJECT_ROOT, timeout: 60_000 },
      );
      const calls = parse(await readFile(trace, 'utf8'));
      // Which fd is which file, as the process goes.
      const fdPath = new Map<string, string>();
      const events: string[] = [];
      for (const c of calls) {
        if (c.name === 'openat' && /^\d+$/.test(c.result)) {
          const path = /"([^"]*)"/.exec(c.args)?.[1] ?? '';
          fdPath.set(c.result, path);
          // Files the spool creates (the directory itself is opened only to be fsynced).
          if (path.startsWith(`${spoolDir}/`) && /O_CREAT/.test(c.args))
            events.push(`create ${path.slice(dir.length + 1)}`);
        } else if (c.name === 'close') {
          fdPath.delete(c.args.trim());
        } else if (c.name === 'fsync' || c.name === 'fdatasync') {
          const path = fdPath.get(c.args.trim()) ?? '?';
          if (path.startsWith(spoolDir)) events.push(`${c.name} ${path.slice(dir.length + 1)}`);
        } else if (/^(write|writev|pwrite64|pwritev)$/.test(c.name)) {
          const fd = /^(\d+)/.exec(c.args)?.[1] ?? '';
          const path = fdPath.get(fd) ?? '';
          if (/\.jsonl$/.test(path)) events.push(`write ${path.slice(dir.length + 1)}`);
          if (fd === '1' && /ACK-(BEGIN|END)/.test(c.args))
            events.push(/ACK-BEGIN/.test(c.args) ? 'ack begins' : 'ack ends');
        } else if (/^rename/.test(c.name) && c.args.includes(spoolDir)) {
          events.push(`rename ${/ack\.json\.tmp/.test(c.args) ? 'ack.json.tmp -> ack.json' : c.args}`);
        } else if (/^unlink/.test(c.name) && c.args.includes(spoolDir)) {
          events.push(`unlink ${/"([^"]*)"/.exec(c.args)?.[1]?.slice(dir.length + 1)}`);
        }
      }
      const text = events.join('\n');
      // A new segment: created, its name made durable, then written.
      expect(text).toMatch(
        /create spool\/0000000001\.jsonl\nfsync spool\nwrite spool\/0000000001\.jsonl\nfdatasync spool\/0000000001\.jsonl\ncreate spool\/0000000002\.jsonl\nfsync spool\nwrite spool\/0000000002\.jsonl/,
      );
      // The acknowledgement: the new ack.json is synced, renamed into place, the directory synced; the
      // segments behind it deleted and the directory synced again.
      const ack = text.slice(text.indexOf('ack begins'), text.indexOf('ack ends'));
      expect(ack).toMatch(
        /create spool\/ack\.json\.tmp\nfsync spool\/ack\.json\.tmp\nrename ack\.json\.tmp -> ack\.json\nfsync spool\nunlink spool\/0000000001\.jsonl\nunlink spool\/0000000002\.jsonl\nfsync spool/,
      );
    });
  },
);
