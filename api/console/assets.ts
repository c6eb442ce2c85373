// The console's only stylesheet and script, served from /console/assets/ (the CSP allows nothing else).
// Kept as text here rather than files so the production build (dist/) carries them without a copy step.
// Colours meet WCAG AA contrast (4.5:1 for text) on their backgrounds; focus is always visible. The
// script does one thing: the live tail (EventSource → table rows built with textContent, never HTML).

export const CONSOLE_CSS = `
:root { --fg: #1a1a1a; --muted: #4a4a4a; --bg: #ffffff; --line: #c8c8c8; --accent: #0b57d0;
  --allow: #0a6a2f; --deny: #a4141b; --pending: #7a4d00; --panel: #f4f6f8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem; }
.skip:focus { left: .5rem; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; padding: .6rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--panel); }
.brand { font-weight: 700; text-decoration: none; color: var(--fg); font-size: 1.1rem; }
nav { display: flex; flex: 1; flex-wrap: wrap; align-items: center; gap: 1rem; }
nav ul { display: flex; flex-wrap: wrap; gap: .9rem; list-style: none; margin: 0; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
.signout { margin-left: auto; display: flex; gap: .6rem; align-items: center; }
.roles { color: var(--muted); }
main { max-width: 1280px; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.45rem; margin: .4rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .6rem; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
.scroll { overflow-x: auto; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
caption { text-align: left; color: var(--muted); padding: .3rem 0; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .88rem; }
pre { background: var(--panel); border: 1px solid var(--line); padding: .7rem; overflow: auto; max-height: 28rem; }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem 1rem; align-items: end; margin-bottom: 1rem; }
form.filters label, .field label { display: block; font-size: .85rem; color: var(--muted); }
input, select, textarea, button { font: inherit; }
input, select, textarea { border: 1px solid #767676; border-radius: 4px; padding: .3rem .45rem; background: #fff; color: var(--fg); }
button { border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; padding: .35rem .8rem; cursor: pointer; }
a.button { display: inline-block; background: var(--accent); color: #fff; border-radius: 4px; padding: .45rem 1rem; text-decoration: none; font-weight: 600; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--deny); border-color: var(--deny); }
.verdict-allow { color: var(--allow); font-weight: 600; }
.verdict-deny, .verdict-error, .status-denied, .status-failed, .status-revoked { color: var(--deny); font-weight: 600; }
.verdict-approval_required, .status-pending { color: var(--pending); font-weight: 600; }
.status-approved, .status-delivered { color: var(--allow); font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; background: #fff; }
.decide { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 1rem; margin-top: 1rem; }
.decide form { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; }
.field { margin-bottom: .6rem; }
.notice { border-left: 4px solid var(--accent); background: var(--panel); padding: .6rem .9rem; }
.error { border-left-color: var(--deny); }
.muted { color: var(--muted); }
.inline { display: inline; }
`;

export const CONSOLE_JS = `
'use strict';
(function () {
  var table = document.querySelector('table[data-live-tail]');
  if (!table || !window.EventSource) return;
  var body = table.tBodies[0];
  var state = document.getElementById('tail-state');
  var say = function (text) { if (state) state.textContent = text; };
  var cell = function (tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text == null ? '' : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  };
  var source = new EventSource(table.getAttribute('data-src'));
  source.onopen = function () { say('Live: new decisions appear at the top.'); };
  source.onerror = function () { say('Reconnecting…'); };
  source.addEventListener('decision', function (e) {
    var d = JSON.parse(e.data);
    var tr = document.createElement('tr');
    tr.setAttribute('data-decision-id', d.decision_id);
    cell(tr, d.time);
    cell(tr, d.subject);
    cell(tr, d.agent);
    cell(tr, d.target);
    cell(tr, d.method + ' ' + d.path, 'mono');
    cell(tr, d.decision, 'verdict-' + d.decision);
    cell(tr, d.reason_code, 'mono');
    var link = document.createElement('a');
    link.href = '/console/decision?id=' + encodeURIComponent(d.decision_id);
    link.textContent = 'details';
    cell(tr, '').appendChild(link);
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
  });
})();
`;
