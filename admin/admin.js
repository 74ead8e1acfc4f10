// wsgate admin page: vanilla JS, no build step. Everything it shows comes
// from the management API of the listener that served it (same origin):
//   GET /@apis, GET /metrics, GET /[{stage}/]@connections?limit=&cursor=&channel=,
//   GET|POST|DELETE /@connections/{id}
// With managementAuth, each request is signed here with SigV4 (WebCrypto
// HMAC-SHA256) by a key typed into the page and kept in memory only.
'use strict';

const $ = (id) => document.getElementById(id);
const te = new TextEncoder();
let creds = null;         // { akid, secret, region } while signed in
let apis = [];            // from /@apis
let cursor = null;        // the current page's cursor (null: first page)
let nextCursor = null;
const pagesBack = [];     // the cursors of the pages before this one
let selected = null;      // the connection shown in the detail panel
const samples = [];       // { open, inRate, outRate }, one a second
let lastTotals = null;

// --- SigV4 (the Authorization header form, as the AWS SDKs sign) ---

// RFC 3986: everything but unreserved characters escaped.
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g,
  (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
const sha256 = async (data) => hex(await crypto.subtle.digest('SHA-256', te.encode(data)));
async function hmac(key, msg) {
  const k = await crypto.subtle.importKey('raw', typeof key === 'string' ? te.encode(key) : key,
    { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, te.encode(msg)));
}

async function sign(method, segs, query, body) {
  if (!crypto.subtle) throw new Error('Signing needs a secure context: open the page over https or on localhost / 127.0.0.1 (an SSH tunnel will do).');
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  const date = amzDate.slice(0, 8);
  const scope = `${date}/${creds.region}/execute-api/aws4_request`;
  // Each segment is sent fully escaped and, as for every service but S3,
  // escaped once more in the canonical URI.
  const canonicalUri = '/' + segs.map((s) => enc(enc(s))).join('/');
  const canonicalQuery = query.map(([k, v]) => `${enc(k)}=${enc(v)}`).sort().join('&');
  const headers = `host:${location.host}\nx-amz-date:${amzDate}\n`;
  const creq = [method, canonicalUri, canonicalQuery, headers, 'host;x-amz-date', await sha256(body)].join('\n');
  const sts = ['AWS4-HMAC-SHA256', amzDate, scope, await sha256(creq)].join('\n');
  let k = await hmac('AWS4' + creds.secret, date);
  k = await hmac(k, creds.region);
  k = await hmac(k, 'execute-api');
  k = await hmac(k, 'aws4_request');
  const signature = hex(await hmac(k, sts));
  return {
    'x-amz-date': amzDate,
    authorization: `AWS4-HMAC-SHA256 Credential=${creds.akid}/${scope}, SignedHeaders=host;x-amz-date, Signature=${signature}`,
  };
}

class ApiError extends Error {
  constructor(status, type, message) { super(`${status} ${type || ''} ${message || ''}`.trim()); this.status = status; this.type = type; }
}

// One management call: segs are the path's segments (unescaped), query a
// list of [name, value]. Resolves with the response's text.
async function call(method, segs, query = [], body = '') {
  const path = '/' + segs.map(enc).join('/');
  const qs = query.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');
  const headers = creds ? await sign(method, segs, query, body) : {};
  const res = await fetch(path + (qs ? '?' + qs : ''), {
    method, headers, body: method === 'POST' ? body : undefined, cache: 'no-store',
  });
  const text = await res.text();
  if (!res.ok) {
    let msg = text;
    try { msg = JSON.parse(text).message || ''; } catch { /* not JSON */ }
    throw new ApiError(res.status, res.headers.get('x-amzn-ErrorType'), msg);
  }
  return text;
}

// --- sign-in ---

const needsKey = (e) => e instanceof ApiError && e.status === 403;

function showLogin(message) {
  $('login').hidden = false;
  $('main').hidden = true;
  $('login-error').textContent = message || '';
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  creds = { akid: $('akid').value.trim(), secret: $('secret').value, region: $('region').value.trim() };
  $('secret').value = '';
  try {
    await start();
  } catch (e) {
    creds = null;
    showLogin(e.message);
  }
});

$('sign-out').addEventListener('click', () => { creds = null; location.reload(); });

// --- APIs ---

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function renderApis(openByApi) {
  const body = $('apis').tBodies[0];
  body.replaceChildren();
  for (const a of apis) {
    const tr = document.createElement('tr');
    tr.append(el('td', a.name), el('td', a.stage), el('td', a.basePath || '/'),
      el('td', String(openByApi?.get(`${a.name}\u0000${a.stage}`) ?? '–'), 'open'));
    const ul = el('ul', undefined, 'routes');
    for (const r of a.routes) ul.append(el('li', `${r.routeKey} → ${r.integration || '?'} (${r.integrationType || ''})`));
    for (const r of a.restRoutes) ul.append(el('li', `${r.routeKey} → ${r.integration || '?'} (${r.integrationType || ''})`));
    const td = el('td');
    td.append(ul);
    tr.append(td);
    body.append(tr);
  }
}

function fillFilters() {
  const api = $('f-api'), stage = $('f-stage');
  apis.forEach((a, i) => {
    const o = el('option', `${a.name} (${a.stage})`);
    o.value = String(i);
    api.append(o);
  });
  for (const s of [...new Set(apis.map((a) => a.stage))]) stage.append(el('option', s));
}

// --- live chart, from /metrics once a second ---

function parseMetrics(text) {
  let open = 0, inTotal = 0, outTotal = 0;
  const openByApi = new Map();
  for (const line of text.split('\n')) {
    const m = /^(wsgate_[a-z_]+)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    const v = Number(m[4]);
    if (m[1] === 'wsgate_connections_open') {
      open += v;
      openByApi.set(`${labels.api}\u0000${labels.stage}`, v);
    } else if (m[1] === 'wsgate_messages_total') {
      if (labels.direction === 'in') inTotal += v; else if (labels.direction === 'out') outTotal += v;
    }
  }
  return { open, inTotal, outTotal, openByApi };
}

async function tick() {
  let sample;
  try {
    const m = parseMetrics(await call('GET', ['metrics']));
    const t = performance.now();
    let inRate = 0, outRate = 0;
    if (lastTotals) {
      const dt = (t - lastTotals.t) / 1000;
      inRate = Math.max(0, (m.inTotal - lastTotals.inTotal) / dt);
      outRate = Math.max(0, (m.outTotal - lastTotals.outTotal) / dt);
    }
    lastTotals = { t, inTotal: m.inTotal, outTotal: m.outTotal };
    sample = { open: m.open, inRate, outRate };
    renderApis(m.openByApi);
    $('chart-note').textContent = '';
  } catch (e) {
    // No /metrics (an older gateway): the count of the connection listing.
    $('chart-note').textContent = `(metrics unavailable: ${e.message})`;
    sample = { open: null, inRate: null, outRate: null };
  }
  samples.push(sample);
  if (samples.length > 120) samples.shift();
  $('stat-open').textContent = sample.open ?? '–';
  $('stat-in').textContent = sample.inRate === null ? '–' : sample.inRate.toFixed(1);
  $('stat-out').textContent = sample.outRate === null ? '–' : sample.outRate.toFixed(1);
  drawChart();
}

function drawChart() {
  const c = $('chart'), g = c.getContext('2d');
  const w = c.width, h = c.height, pad = 4, n = 120;
  g.clearRect(0, 0, w, h);
  const series = [['open', '#0969da'], ['inRate', '#1a7f37'], ['outRate', '#bf8700']];
  const max = Math.max(1, ...samples.flatMap((s) => series.map(([k]) => s[k] || 0)));
  g.fillStyle = '#57606a';
  g.font = '11px system-ui';
  g.fillText(String(Math.round(max)), pad, 12);
  for (const [k, color] of series) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    samples.forEach((s, i) => {
      if (s[k] === null) return;
      const x = pad + ((n - samples.length + i) / (n - 1)) * (w - 2 * pad);
      const y = h - pad - (s[k] / max) * (h - 2 * pad - 12);
      if (i === 0 || samples[i - 1][k] === null) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
    // The latest value as a dot: visible from the first sample on.
    const last = samples[samples.length - 1];
    if (last && last[k] !== null) {
      g.fillStyle = color;
      g.beginPath();
      g.arc(w - pad - 2, h - pad - (last[k] / max) * (h - 2 * pad - 12), 3, 0, 2 * Math.PI);
      g.fill();
    }
  }
}

// --- connections ---

// The stage prefix that API or stage filters ask for ('' for none).
function stagePrefix() {
  const a = $('f-api').value;
  return a !== '' ? apis[Number(a)].stage : $('f-stage').value;
}

async function loadConnections() {
  const stage = stagePrefix();
  const segs = stage ? [stage, '@connections'] : ['@connections'];
  const query = [['limit', $('f-limit').value]];
  if (cursor) query.push(['cursor', cursor]);
  const channel = $('f-channel').value.trim();
  if (channel) query.push(['channel', channel]);
  const page = JSON.parse(await call('GET', segs, query));
  nextCursor = page.cursor;
  // The source IP filter applies to the page fetched (the listing has no
  // such parameter).
  const ip = $('f-ip').value.trim();
  const items = page.items.filter((c) => !ip || (c.identity?.sourceIp || '').includes(ip));
  const body = $('conns').tBodies[0];
  body.replaceChildren();
  for (const c of items) {
    const tr = document.createElement('tr');
    tr.dataset.id = c.connectionId;
    if (c.connectionId === selected) tr.className = 'selected';
    tr.append(el('td', c.connectionId, 'id'), el('td', c.identity?.sourceIp ?? ''),
      el('td', c.connectedAt ?? ''), el('td', c.lastActiveAt ?? ''), el('td', (c.channels || []).join(', ')));
    const td = el('td');
    const b = el('button', 'Open', 'open-conn');
    b.type = 'button';
    b.addEventListener('click', () => showConnection(c.connectionId));
    td.append(b);
    tr.append(td);
    body.append(tr);
  }
  $('next-page').disabled = !nextCursor;
  $('prev-page').disabled = !cursor;
  $('page-info').textContent = `${items.length} shown${ip ? ` of ${page.items.length} on this page` : ''}${cursor ? ' (not the first page)' : ''}`;
}

async function refreshConnections() {
  try {
    await loadConnections();
    $('error').textContent = '';
  } catch (e) {
    $('error').textContent = `Connections: ${e.message}`;
  }
}

function firstPage() {
  cursor = null;
  pagesBack.length = 0;
  refreshConnections();
}

$('filters').addEventListener('submit', (ev) => { ev.preventDefault(); firstPage(); });
$('first-page').addEventListener('click', firstPage);
$('prev-page').addEventListener('click', () => { cursor = pagesBack.pop() ?? null; refreshConnections(); });
$('next-page').addEventListener('click', () => { pagesBack.push(cursor); cursor = nextCursor; refreshConnections(); });
// An API names its stage: the stage filter follows it.
$('f-api').addEventListener('change', () => {
  const a = $('f-api').value;
  $('f-stage').value = a === '' ? '' : apis[Number(a)].stage;
  $('f-stage').disabled = a !== '';
  firstPage();
});

// --- one connection ---

function status(text, isError) {
  $('d-status').textContent = text;
  $('d-status').className = isError ? 'error' : 'muted';
}

async function showConnection(id) {
  selected = id;
  $('detail').hidden = false;
  $('d-id').textContent = id;
  for (const tr of $('conns').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.id === id);
  try {
    $('d-record').textContent = JSON.stringify(JSON.parse(await call('GET', ['@connections', id])), null, 2);
    status('');
  } catch (e) {
    $('d-record').textContent = '';
    status(e.type === 'GoneException' ? 'Gone: the connection is closed.' : e.message, true);
  }
}

$('post-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    await call('POST', ['@connections', selected], [], $('d-message').value);
    status(`Posted ${te.encode($('d-message').value).length} bytes.`);
  } catch (e) {
    status(e.type === 'GoneException' ? 'Gone: the connection is closed.' : e.message, true);
  }
});

$('d-refresh').addEventListener('click', () => showConnection(selected));

$('d-delete').addEventListener('click', async () => {
  try {
    await call('DELETE', ['@connections', selected]);
    status('Disconnected.');
    refreshConnections();
  } catch (e) {
    status(e.type === 'GoneException' ? 'Gone: the connection is closed.' : e.message, true);
  }
});

// --- start ---

let timers = [];

async function start() {
  const info = JSON.parse(await call('GET', ['@apis']));
  apis = info.apis;
  $('login').hidden = true;
  $('main').hidden = false;
  $('auth-state').textContent = info.managementAuth ? `signed as ${creds.akid} (${creds.region})` : 'management API without authentication';
  $('sign-out').hidden = !creds;
  fillFilters();
  renderApis(null);
  await refreshConnections();
  await tick();
  timers.forEach(clearInterval);
  timers = [setInterval(tick, 1000),
    setInterval(() => { if ($('auto').checked) refreshConnections(); }, 2000)];
}

start().catch((e) => {
  if (needsKey(e)) showLogin();
  else $('error').textContent = e.message;
});
