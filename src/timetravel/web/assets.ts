/**
 * The page of `iotrail serve`: HTML, style and script, served as they are (no build step). The script builds
 * every piece of the page with DOM calls and text nodes, never from HTML strings: what comes from the trace is
 * shown as text, always. (No backquotes and no dollar-brace in the script below: it lives in a String.raw literal.)
 */

export const PAGE_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>iotrail</title>
<link rel="stylesheet" href="/app.css">
</head>
<body>
<header>
  <h1><span class="brand">iotrail</span> <span id="title"></span></h1>
  <div id="source"></div>
  <div id="stats"></div>
</header>
<section id="timeline" aria-label="timeline">
  <div id="marks" aria-label="divergences and errors"></div>
  <input type="range" id="slider" min="-1" max="0" value="-1" step="1" aria-label="position in the log">
  <div id="controls">
    <button id="start" title="initial state (Home)">|&lt;</button>
    <button id="prevmark" title="previous divergence or error">&lt;&lt; mark</button>
    <button id="back" title="one entry back (Left)">&lt;</button>
    <button id="step" title="one entry forward (Right)">&gt;</button>
    <button id="nextmark" title="next divergence or error">mark &gt;&gt;</button>
    <button id="end" title="last entry (End)">&gt;|</button>
    <label>entry <input id="goto" type="number" min="-1" step="1"></label>
    <span id="pos"></span>
  </div>
  <div id="legend"><span class="key divergence"></span> divergence <span class="key internal"></span> model error <span class="key trace-error"></span> trace error</div>
</section>
<main>
  <section id="entry-panel" class="panel">
    <h2>Entry</h2>
    <div id="entry"></div>
    <h3>What it changed</h3>
    <ul id="changes"></ul>
  </section>
  <section id="events-panel" class="panel">
    <h2>Events</h2>
    <table id="events"><tbody></tbody></table>
  </section>
  <section id="graph-panel" class="panel wide">
    <h2>Objects</h2>
    <div id="graph"></div>
    <h3>Lifecycles</h3>
    <table id="lifecycles"><tbody></tbody></table>
  </section>
  <section id="iova-panel" class="panel wide">
    <h2>IOVA spaces</h2>
    <div id="iova"></div>
    <h2>Domains</h2>
    <div id="domains"></div>
  </section>
  <section id="state-panel" class="panel wide">
    <h2>Files and memory</h2>
    <div id="files"></div>
    <details><summary>the whole state (JSON view)</summary><pre id="state"></pre></details>
  </section>
</main>
<script src="/app.js"></script>
</body>
</html>
`;

export const APP_CSS = String.raw`
:root { --bg: #fbfbfa; --fg: #1d1f21; --muted: #6b7075; --line: #d8dadc; --accent: #2f6fd6;
  --alloc: #e5a50a; --final: #2e9b57; --gone: #9aa0a6; --abort: #c0392b; --div: #d93025; --int: #e8710a; --terr: #8e44ad; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
header { padding: 10px 16px 4px; border-bottom: 1px solid var(--line); }
h1 { margin: 0; font-size: 18px; } .brand { color: var(--accent); }
#source, #stats { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
h2 { font-size: 14px; margin: 4px 0 6px; } h3 { font-size: 12px; margin: 10px 0 4px; color: var(--muted); }
#timeline { padding: 8px 16px; border-bottom: 1px solid var(--line); background: #fff; position: sticky; top: 0; z-index: 2; }
#marks { position: relative; height: 14px; margin: 0 8px; background: #f1f3f4; border-radius: 3px; }
.tick { position: absolute; top: 0; width: 3px; height: 14px; margin-left: -1px; cursor: pointer; }
.tick.divergence, .key.divergence { background: var(--div); } .tick.internal, .tick.invariant, .key.internal { background: var(--int); }
.tick.trace-error, .key.trace-error { background: var(--terr); }
#slider { width: 100%; margin: 6px 0; }
#controls { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
#controls button { font: inherit; padding: 2px 8px; border: 1px solid var(--line); background: #fff; border-radius: 4px; cursor: pointer; }
#goto { width: 90px; } #pos { color: var(--muted); margin-left: 8px; }
#legend { color: var(--muted); font-size: 11px; margin-top: 4px; } .key { display: inline-block; width: 10px; height: 10px; margin-left: 8px; vertical-align: -1px; }
main { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 12px; padding: 12px 16px; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 0; }
.panel.wide { grid-column: 1 / -1; }
#entry .label { font-weight: 600; } #entry .event { font-family: ui-monospace, Menlo, monospace; font-size: 12px; overflow-wrap: anywhere; margin: 4px 0; }
#entry .note { color: var(--muted); font-style: italic; overflow-wrap: anywhere; }
.markbox { border-left: 4px solid var(--div); background: #fdecea; padding: 4px 8px; margin: 6px 0; overflow-wrap: anywhere; }
.markbox.internal, .markbox.invariant { border-color: var(--int); background: #fef1e6; } .markbox.trace-error { border-color: var(--terr); background: #f4ecf7; }
#changes { margin: 0; padding-left: 16px; font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
#changes li { overflow-wrap: anywhere; } .added { color: #1e7e34; } .removed { color: #b3261e; } .changed { color: #7a5d00; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
td, th { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
#events-panel { max-height: 340px; overflow: auto; padding-top: 0; } #events-panel h2 { position: sticky; top: 0; background: #fff; margin: 0; padding: 8px 0 6px; z-index: 1; } #entry-panel { max-height: 340px; overflow: auto; }
#events td.text { font-family: ui-monospace, Menlo, monospace; overflow-wrap: anywhere; }
#events tr { cursor: pointer; } #events tr.current { background: #e8f0fe; } #events tr.divergence { box-shadow: inset 4px 0 var(--div); }
#events tr.internal, #events tr.invariant { box-shadow: inset 4px 0 var(--int); }
#events tr.later { color: var(--muted); }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
.node rect { stroke: #444; stroke-width: 1; rx: 4; } .node.allocated rect { fill: #fdf0c9; } .node.finalized rect { fill: #d8f0e0; }
.node.destroyed rect { fill: #eceff1; } .node.aborted rect { fill: #f9d6d2; } .node.tombstoned rect { fill: #e0e0e0; stroke-dasharray: 3 2; }
.node .sub { fill: var(--muted); font-size: 10px; }
.edge { stroke: #888; stroke-width: 1.2; fill: none; marker-end: url(#arrow); }
.ctxlabel { font-weight: 600; }
.life-allocated { color: var(--alloc); font-weight: 600; } .life-finalized { color: var(--final); font-weight: 600; }
.life-destroyed { color: var(--gone); } .life-aborted { color: var(--abort); }
.space { margin: 6px 0 14px; } .space .name { font-weight: 600; }
rect.allowed { fill: #cdebd3; } rect.reserved { fill: #f6c9c4; } rect.area { fill: #9bbcf0; stroke: #2f5fb3; }
rect.area.unpublished { fill: #dbe6f8; stroke-dasharray: 3 2; } rect.aperture { fill: #eef1f4; } rect.map { fill: #b7a1e6; stroke: #6a4fb3; }
rect.lane { fill: #f7f7f7; } line.tickline { stroke: #bbb; } text.addr { font-size: 9px; fill: var(--muted); } text.lanename { font-size: 10px; fill: var(--muted); }
pre#state { max-height: 400px; overflow: auto; font-size: 11px; background: #f6f8fa; padding: 6px; }
.muted { color: var(--muted); }
`;

export const APP_JS = String.raw`'use strict';
(function () {
  var SVGNS = 'http://www.w3.org/2000/svg';
  var meta = null, cur = -1, busy = false, again = false;
  function $(id) { return document.getElementById(id); }
  function text(s) { return document.createTextNode(s === null || s === undefined ? '' : String(s)); }
  function el(tag, cls) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    for (var i = 2; i < arguments.length; i++) { var c = arguments[i]; e.appendChild(c instanceof Node ? c : text(c)); }
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    for (var i = 2; i < arguments.length; i++) { var c = arguments[i]; e.appendChild(c instanceof Node ? c : text(c)); }
    return e;
  }
  function titled(node, s) { node.appendChild(sv('title', {}, s)); return node; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function short(v, max) { var s = v === undefined ? '(absent)' : JSON.stringify(v); max = max || 140; return s.length > max ? s.slice(0, max - 1) + '\u2026' : s; }
  function getJson(url) {
    return fetch(url, { headers: { Accept: 'application/json' } }).then(function (r) {
      if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
      return r.json();
    });
  }
  function big(s) { try { return BigInt(s); } catch (e) { return null; } }
  function hex(b) { return '0x' + b.toString(16); }

  function go(n) {
    if (!meta) return;
    n = Math.max(-1, Math.min(meta.count - 1, n | 0));
    cur = n;
    $('slider').value = String(n);
    $('goto').value = String(n);
    refresh();
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var n = cur;
    document.body.setAttribute('data-loading', '1');
    Promise.all([getJson('/api/at?n=' + n), getJson('/api/entries?from=' + Math.max(0, n - 12) + '&to=' + Math.max(0, n + 14))]).then(function (r) {
      render(r[0]);
      renderEvents(r[1], n);
      try { history.replaceState(null, '', '#n=' + n); } catch (e) { /* file: or sandbox */ }
    }).catch(function (e) {
      clear($('entry')).appendChild(el('div', 'markbox', 'could not load entry ' + n + ': ' + e.message));
    }).then(function () {
      busy = false;
      if (again) { again = false; refresh(); } else document.body.setAttribute('data-loaded', String(cur));
      document.body.removeAttribute('data-loading');
    });
  }

  function markBox(m) { return el('div', 'markbox ' + m.kind, m.kind.toUpperCase() + ' (line ' + m.line + '): ' + m.message); }

  function render(at) {
    var n = at.n;
    var pos = n < 0 ? 'initial state' : 'entry ' + n + ' of ' + (meta.count - 1) + ' \u00b7 trace line ' + at.entry.line + ' of ' + meta.lines;
    $('pos').textContent = pos;
    var box = clear($('entry'));
    if (n < 0) box.appendChild(el('div', 'muted', 'The initial state, before the first entry of the log.'));
    else {
      box.appendChild(el('div', 'label', '#' + n + ' \u00b7 line ' + at.entry.line + (at.entry.tid !== 1 ? ' \u00b7 tid ' + at.entry.tid : '') + (at.entry.label ? ' \u00b7 ' + at.entry.label : '')));
      box.appendChild(el('div', 'event', at.entry.text));
      if (at.note) box.appendChild(el('div', 'note', 'note: ' + at.note));
    }
    at.marks.forEach(function (m) { box.appendChild(markBox(m)); });
    var ul = clear($('changes'));
    if (n >= 0 && at.changes.length === 0) ul.appendChild(el('li', 'muted', 'nothing in the state (a call outcome, or a check)'));
    at.changes.forEach(function (c) {
      var s = c.op === 'added' ? '+ ' + c.path + ': ' + short(c.after) : c.op === 'removed' ? '- ' + c.path + ': ' + short(c.before) : '~ ' + c.path + ': ' + short(c.before) + ' \u2192 ' + short(c.after);
      ul.appendChild(el('li', c.op, s));
    });
    if (at.changesTotal > at.changes.length) ul.appendChild(el('li', 'muted', '\u2026 ' + (at.changesTotal - at.changes.length) + ' more'));
    renderGraph(at.view);
    renderLifetimes(at);
    renderSpaces(at.view);
    renderDomains(at.view);
    renderFiles(at.view);
    var json = JSON.stringify(at.view, null, 1);
    $('state').textContent = json.length > 400000 ? json.slice(0, 400000) + '\n\u2026 (cut: iotrail state --json prints it all)' : json;
  }

  function renderEvents(r, n) {
    var tb = clear($('events').tBodies[0]);
    r.entries.forEach(function (e) {
      var tr = el('tr', (e.n === n ? 'current ' : '') + (e.n > n ? 'later ' : '') + (e.mark || ''));
      tr.setAttribute('data-n', String(e.n));
      tr.appendChild(el('td', '', '#' + e.n));
      tr.appendChild(el('td', '', 'L' + e.line));
      tr.appendChild(el('td', '', e.label));
      tr.appendChild(el('td', 'text', e.text));
      tr.addEventListener('click', function () { go(e.n); });
      tb.appendChild(tr);
    });
    var row = tb.querySelector('tr.current'), panel = $('events-panel');
    if (row) panel.scrollTop += row.getBoundingClientRect().top - panel.getBoundingClientRect().top - panel.clientHeight / 2;
  }

  var ORDER = ['IOAS', 'HWPT_PAGING', 'HWPT_NESTED', 'DEVICE', 'SELFTEST', 'ACCESS', 'VIOMMU', 'VDEVICE', 'FAULT', 'VEVENTQ', 'HW_QUEUE'];
  var MAX_NODES = 160;
  function renderGraph(view) {
    var host = clear($('graph'));
    var ctxs = Array.isArray(view.contexts) ? view.contexts : [];
    if (ctxs.length === 0) { host.appendChild(el('div', 'muted', 'no iommufd context is open')); return; }
    var W = 150, H = 40, GX = 46, GY = 10, y0 = 0, parts = [], width = 0;
    ctxs.forEach(function (c) {
      var objs = (c.objects || []).slice(0, MAX_NODES);
      var cols = {};
      objs.forEach(function (o) {
        var k = ORDER.indexOf(o.kind); if (k < 0) k = ORDER.length;
        (cols[k] = cols[k] || []).push(o);
      });
      var keys = Object.keys(cols).map(Number).sort(function (a, b) { return a - b; });
      var pos = {}, rows = 0;
      keys.forEach(function (k, ci) {
        cols[k].forEach(function (o, ri) { pos[o.id] = { x: ci * (W + GX), y: y0 + 20 + ri * (H + GY) }; });
        rows = Math.max(rows, cols[k].length);
      });
      width = Math.max(width, keys.length * (W + GX));
      parts.push({ c: c, objs: objs, pos: pos, y: y0, more: (c.objects || []).length - objs.length });
      y0 += 20 + Math.max(1, rows) * (H + GY) + 16;
    });
    var s = sv('svg', { width: Math.max(width, 300), height: y0, role: 'img', 'aria-label': 'object graph' });
    var defs = sv('defs', {});
    var mk = sv('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    mk.appendChild(sv('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#888' }));
    defs.appendChild(mk); s.appendChild(defs);
    parts.forEach(function (p) {
      s.appendChild(sv('text', { x: 0, y: p.y + 13, 'class': 'ctxlabel' }, 'iommufd context ' + p.c.id + ' \u00b7 ' + (p.c.objects || []).length + ' objects' + (p.more > 0 ? ' (first ' + p.objs.length + ' shown)' : '')));
      p.objs.forEach(function (o) {
        (o.holds || []).forEach(function (h) {
          var a = p.pos[o.id], b = p.pos[h];
          if (!a || !b) return;
          var x1 = a.x + (b.x >= a.x ? W : 0), x2 = b.x + (b.x >= a.x ? 0 : W);
          if (a.x === b.x) { x1 = a.x + W; x2 = b.x + W; }
          var mid = (x1 + x2) / 2 + (a.x === b.x ? 30 : 0);
          s.appendChild(titled(sv('path', { 'class': 'edge', d: 'M ' + x1 + ' ' + (a.y + H / 2) + ' C ' + mid + ' ' + (a.y + H / 2) + ' ' + mid + ' ' + (b.y + H / 2) + ' ' + x2 + ' ' + (b.y + H / 2) }), o.kind + ' ' + o.id + ' holds a reference on ' + h));
        });
      });
      p.objs.forEach(function (o) {
        var q = p.pos[o.id];
        var g = sv('g', { 'class': 'node ' + o.life, 'data-id': o.id, 'data-life': o.life, transform: 'translate(' + q.x + ',' + q.y + ')' });
        g.appendChild(sv('rect', { width: W, height: H }));
        g.appendChild(sv('text', { x: 8, y: 16 }, o.kind + ' ' + o.id));
        g.appendChild(sv('text', { x: 8, y: 31, 'class': 'sub' }, o.life + ' \u00b7 users ' + o.users + (o.ioas ? ' \u00b7 ' + o.ioas.areas.length + ' areas' : '')));
        titled(g, 'object ' + o.id + ' (' + o.kind + '), ' + o.life + ', users ' + o.users + ((o.holds || []).length ? ', holds ' + o.holds.join(', ') : ''));
        s.appendChild(g);
      });
    });
    host.appendChild(s);
  }

  function renderLifetimes(at) {
    var tb = clear($('lifecycles').tBodies[0]);
    var head = el('tr', ''); ['ctx', 'id', 'kind', 'state', 'allocated', 'finalized', 'ended'].forEach(function (h) { head.appendChild(el('th', '', h)); });
    tb.appendChild(head);
    at.lifetimes.slice(0, 300).forEach(function (l) {
      var tr = el('tr', '');
      [l.ctx, l.id, l.kind].forEach(function (v) { tr.appendChild(el('td', '', v)); });
      tr.appendChild(el('td', 'life-' + l.state, l.state));
      [l.allocated, l.finalized, l.ended].forEach(function (v) {
        var td = el('td', '', v === null ? '' : '#' + v);
        if (v !== null) { td.style.cursor = 'pointer'; td.addEventListener('click', function () { go(v); }); }
        tr.appendChild(td);
      });
      tb.appendChild(tr);
    });
    if (at.endedTotal > 60) tb.appendChild(el('tr', 'muted', el('td', '', '\u2026 ' + (at.endedTotal - 60) + ' earlier lifetimes ended')));
  }

  var U64_END = (BigInt(1) << BigInt(64));
  function log2(b) { return b <= BigInt(0) ? 0 : b.toString(2).length - 1; }
  /** Lanes of [start, last] intervals over a piecewise scale: each run between boundaries gets a width by its log size. */
  function spaceSvg(lanes, label) {
    var W = Math.max(480, ($('iova').clientWidth || 980) - 20), LH = 16, LX = 70;
    var bounds = [BigInt(0), U64_END];
    lanes.forEach(function (ln) { ln.items.forEach(function (it) { bounds.push(it.s); bounds.push(it.l + BigInt(1)); }); });
    bounds = bounds.filter(function (b) { return b >= BigInt(0) && b <= U64_END; }).sort(function (a, b) { return a < b ? -1 : a > b ? 1 : 0; });
    var uniq = []; bounds.forEach(function (b) { if (!uniq.length || uniq[uniq.length - 1] !== b) uniq.push(b); });
    var weights = [], total = 0;
    for (var i = 0; i + 1 < uniq.length; i++) { var w = Math.max(1, log2(uniq[i + 1] - uniq[i]) - 10); weights.push(w); total += w; }
    var xs = [LX], acc = 0;
    weights.forEach(function (w) { acc += w; xs.push(LX + (acc / total) * (W - LX)); });
    function xOf(b) { var k = uniq.indexOf(b); return k < 0 ? LX : xs[k]; }
    var h = lanes.length * (LH + 4) + 26;
    var s = sv('svg', { width: W + 10, height: h, role: 'img', 'aria-label': label });
    lanes.forEach(function (ln, li) {
      var y = li * (LH + 4);
      s.appendChild(sv('text', { x: 0, y: y + 12, 'class': 'lanename' }, ln.name));
      s.appendChild(sv('rect', { x: LX, y: y, width: W - LX, height: LH, 'class': 'lane' }));
      ln.items.forEach(function (it) {
        var x1 = xOf(it.s), x2 = xOf(it.l + BigInt(1));
        var r = sv('rect', { x: x1, y: y + 1, width: Math.max(2, x2 - x1), height: LH - 2, 'class': it.cls });
        if (it.data) for (var k in it.data) r.setAttribute('data-' + k, String(it.data[k]));
        s.appendChild(titled(r, it.title));
      });
    });
    var yAxis = lanes.length * (LH + 4) + 2, lastX = -1e9;
    uniq.forEach(function (b, k) {
      var x = xs[k];
      s.appendChild(sv('line', { x1: x, x2: x, y1: 0, y2: yAxis, 'class': 'tickline' }));
      if (x - lastX > 78 && k < uniq.length - 1) { s.appendChild(sv('text', { x: x + 2, y: yAxis + 12, 'class': 'addr' }, hex(b))); lastX = x; }
    });
    s.appendChild(sv('text', { x: W - 40, y: yAxis + 22, 'class': 'addr' }, '2^64'));
    return s;
  }
  function interval(pair) { var s = big(pair[0]), l = big(pair[1]); return s === null || l === null ? null : { s: s, l: l }; }

  function renderSpaces(view) {
    var host = clear($('iova')), any = false;
    (view.contexts || []).forEach(function (c) {
      (c.objects || []).forEach(function (o) {
        if (!o.ioas) return;
        any = true;
        var io = o.ioas;
        var allowed = (io.allowed || []).map(interval).filter(Boolean).map(function (r) { return { s: r.s, l: r.l, cls: 'allowed', title: 'allowed [' + hex(r.s) + ', ' + hex(r.l) + ']' }; });
        var reserved = (io.reserved || []).map(function (r) { var v = interval(r); return v && { s: v.s, l: v.l, cls: 'reserved', title: 'reserved [' + hex(v.s) + ', ' + hex(v.l) + ']' + (r[2] ? ' by ' + r[2] : '') }; }).filter(Boolean);
        var areas = (io.areas || []).map(function (a) {
          var v = interval([a.start, a.last]);
          return v && { s: v.s, l: v.l, cls: 'area' + (a.published === false ? ' unpublished' : ''), data: { area: a.id },
            title: 'area ' + a.id + ' [' + a.start + ', ' + a.last + '] \u2192 pages ' + a.pages + ' [' + a.pagesStart + '-' + a.pagesLast + '], prot ' + a.prot + (a.published === false ? ', not published' : '') };
        }).filter(Boolean);
        var box = el('div', 'space');
        box.setAttribute('data-ioas', String(o.id));
        box.appendChild(el('div', 'name', 'IOAS ' + o.id + ' (context ' + c.id + ')'));
        box.appendChild(el('div', 'muted', areas.length + ' areas \u00b7 ' + (allowed.length ? allowed.length + ' allowed ranges' : 'every IOVA allowed') + ' \u00b7 ' + reserved.length + ' reserved \u00b7 alignment ' + io.iovaAlignment));
        box.appendChild(spaceSvg([{ name: 'allowed', items: allowed }, { name: 'reserved', items: reserved }, { name: 'areas', items: areas }], 'IOVA space of IOAS ' + o.id));
        host.appendChild(box);
      });
    });
    if (!any) host.appendChild(el('div', 'muted', 'no IOAS'));
  }

  function renderDomains(view) {
    var host = clear($('domains'));
    var ds = Array.isArray(view.domains) ? view.domains : [];
    if (ds.length === 0) { host.appendChild(el('div', 'muted', 'no IOMMU domain')); return; }
    ds.forEach(function (d) {
      var ap = interval(d.aperture || []);
      var maps = (d.map || []).map(function (m) { var v = interval(m); return v && { s: v.s, l: v.l, cls: 'map', title: '[' + m[0] + ', ' + m[1] + '] \u2192 phys ' + m[2] }; }).filter(Boolean);
      var box = el('div', 'space');
      box.setAttribute('data-domain', String(d.id));
      box.appendChild(el('div', 'name', 'domain ' + d.id + ' (' + d.kind + ', ' + d.driver + ')'));
      box.appendChild(el('div', 'muted', maps.length + ' mappings \u00b7 page sizes ' + d.pgsizeBitmap));
      box.appendChild(spaceSvg([{ name: 'aperture', items: ap ? [{ s: ap.s, l: ap.l, cls: 'aperture', title: 'aperture [' + hex(ap.s) + ', ' + hex(ap.l) + ']' }] : [] }, { name: 'mapped', items: maps }], 'mappings of domain ' + d.id));
      host.appendChild(box);
    });
  }

  function table(headers, rows) {
    var t = el('table', ''), tb = el('tbody', ''), hr = el('tr', '');
    headers.forEach(function (h) { hr.appendChild(el('th', '', h)); });
    tb.appendChild(hr);
    rows.forEach(function (r) { var tr = el('tr', ''); r.forEach(function (c) { tr.appendChild(el('td', '', c === null || c === undefined ? '' : typeof c === 'object' ? JSON.stringify(c) : c)); }); tb.appendChild(tr); });
    t.appendChild(tb);
    return t;
  }
  function renderFiles(view) {
    var host = clear($('files'));
    var fds = Array.isArray(view.fds) ? view.fds : [];
    host.appendChild(el('h3', '', 'fds'));
    host.appendChild(fds.length ? table(['fd', 'kind', 'refers to'], fds.map(function (f) {
      var rest = Object.keys(f).filter(function (k) { return k !== 'fd' && k !== 'kind'; }).map(function (k) { return k + '=' + (typeof f[k] === 'string' ? f[k] : JSON.stringify(f[k])); }).join(' ');
      return [f.fd, f.kind, rest];
    })) : el('div', 'muted', 'none'));
    var mm = view.mm || view;
    var memfds = Array.isArray(mm.memfds) ? mm.memfds : Array.isArray(view.memfds) ? view.memfds : [];
    host.appendChild(el('h3', '', 'memfds'));
    host.appendChild(memfds.length ? table(['id', 'name', 'size'], memfds.map(function (m) { return [m.id, m.name, m.size]; })) : el('div', 'muted', 'none'));
    var vmas = Array.isArray(mm.vmas) ? mm.vmas : [];
    host.appendChild(el('h3', '', 'VMAs'));
    host.appendChild(vmas.length ? table(['start', 'last', 'prot', 'flags', 'memfd'], vmas.map(function (v) { return [v.start, v.last, v.prot, v.flags, v.memfd]; })) : el('div', 'muted', 'none'));
  }

  function nextMark(dir) {
    var ms = meta.marks, best = null;
    for (var i = 0; i < ms.length; i++) {
      var m = ms[i].n;
      if (dir > 0 && m > cur && (best === null || m < best)) best = m;
      if (dir < 0 && m < cur && (best === null || m > best)) best = m;
    }
    if (best !== null) go(best);
  }

  function init() {
    getJson('/api/meta').then(function (m) {
      meta = m;
      document.title = 'iotrail \u2014 ' + m.title;
      $('title').textContent = m.title;
      $('source').textContent = m.source || '';
      $('stats').textContent = m.lines + ' trace lines \u00b7 ' + m.count + ' log entries \u00b7 ' + m.marksTotal + ' divergences and errors \u00b7 ' + m.snapshots + ' snapshots';
      var sl = $('slider');
      sl.min = '-1'; sl.max = String(m.count - 1);
      var strip = clear($('marks'));
      m.marks.forEach(function (mk) {
        var t = el('div', 'tick ' + mk.kind);
        t.style.left = (m.count > 1 ? ((mk.n + 1) / m.count) * 100 : 0) + '%';
        t.title = mk.kind + ' at entry ' + mk.n + ', line ' + mk.line + ': ' + mk.message;
        t.addEventListener('click', function () { go(mk.n); });
        strip.appendChild(t);
      });
      sl.addEventListener('input', function () { go(Number(sl.value)); });
      $('goto').addEventListener('change', function () { go(Number($('goto').value)); });
      $('start').addEventListener('click', function () { go(-1); });
      $('end').addEventListener('click', function () { go(meta.count - 1); });
      $('back').addEventListener('click', function () { go(cur - 1); });
      $('step').addEventListener('click', function () { go(cur + 1); });
      $('prevmark').addEventListener('click', function () { nextMark(-1); });
      $('nextmark').addEventListener('click', function () { nextMark(1); });
      document.addEventListener('keydown', function (e) {
        if (e.target && (e.target.tagName === 'INPUT' && e.target.type !== 'range')) return;
        if (e.key === 'ArrowRight') { go(cur + 1); e.preventDefault(); }
        else if (e.key === 'ArrowLeft') { go(cur - 1); e.preventDefault(); }
        else if (e.key === 'Home') { go(-1); e.preventDefault(); }
        else if (e.key === 'End') { go(meta.count - 1); e.preventDefault(); }
      });
      var h = /^#n=(-?[0-9]+)$/.exec(location.hash);
      go(h ? Number(h[1]) : -1);
    }).catch(function (e) {
      clear($('entry')).appendChild(el('div', 'markbox', 'could not load the trace: ' + e.message));
    });
  }
  init();
})();
`;
