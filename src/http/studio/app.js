// Troupe Studio: a face over the control API (/v1). Plain DOM, no
// framework: each view builds its static parts once and a refresh()
// that redraws its live parts, called again every few seconds. Every
// value from the API goes into the page as text (never as HTML).

const TOKEN_KEY = 'troupe.token';
const POLL_MS = 2000;
const main = document.getElementById('main');
const live = document.getElementById('live');
let stopView = () => {};
let generation = 0;
// Routes other branches of the API may or may not have: true, false, or
// undefined (not asked yet). A 404 means absent, asked once per load.
const features = {};

class AuthError extends Error {}

// ---------- DOM ----------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function fill(el, ...kids) {
  if (!el) return;
  el.replaceChildren();
  append(el, kids);
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const kid of kids) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

function say(message) {
  live.textContent = message;
}

// ---------- formatting ----------

const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '–');
const fmtUsd = (n) => '$' + (Number(n) || 0).toFixed(4);
const fmtNum = (n) => (Number(n) || 0).toLocaleString();
const shortId = (id) => String(id).slice(0, 8) + '…' + String(id).slice(-4);
const ms = (d) => (d && typeof d === 'object' ? d.secs * 1000 + d.nanos / 1e6 : Number(d) || 0);
const fmtMs = (n) => (n === null || n === undefined ? '–' : n < 10 ? n.toFixed(2) + ' ms' : Math.round(n) + ' ms');

function pretty(value) {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

function badge(status) {
  return h('span', { class: 'badge st-' + status }, status);
}

function code(value) {
  return h('pre', { class: 'code' }, pretty(value));
}

function table(head, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty || 'Nothing yet.');
  return h('div', { class: 'scroll' },
    h('table', {},
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
}

function section(title, id, ...kids) {
  return h('section', { class: 'card', 'aria-labelledby': id + '-h' },
    h('h2', { id: id + '-h' }, title), h('div', { id }, kids));
}

// ---------- the API ----------

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new AuthError('the token was refused');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || 'HTTP ' + res.status);
    err.status = res.status;
    throw err;
  }
  return data;
}

// A route that may not exist on this daemon: null when it answers 404
// (then not asked again during this page's life).
async function optional(name, path) {
  if (features[name] === false) return null;
  try {
    const data = await api(path);
    features[name] = true;
    return data;
  } catch (e) {
    if (e.status === 404 || e.status === 405) {
      features[name] = false;
      return null;
    }
    throw e;
  }
}

const enc = encodeURIComponent;

// ---------- confirmation ----------

// Asks to confirm; with `field` (its label), also asks for a text, and
// answers it (null: cancelled; an empty text keeps OK from confirming).
function confirmAction(text, okLabel, field) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  const ok = document.getElementById('confirm-ok');
  const cancel = document.getElementById('confirm-cancel');
  const box = document.getElementById('confirm-field');
  const input = document.getElementById('confirm-input');
  box.hidden = !field;
  input.value = '';
  if (field) document.getElementById('confirm-label').textContent = field;
  ok.textContent = okLabel || 'Confirm';
  return new Promise((resolve) => {
    const done = (confirmed) => {
      if (confirmed && field && !input.value.trim()) {
        input.focus();
        return;
      }
      const answer = confirmed && field ? input.value.trim() : confirmed;
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onOk = () => done(true);
    const onCancel = () => done(false);
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    (field ? input : cancel).focus();
  });
}

// Runs an action from a button: asks first when `ask` is given, says
// what happened, then refreshes the view.
async function act(button, ask, run, done, refresh) {
  if (ask && !(await confirmAction(ask.text, ask.ok))) return;
  button.disabled = true;
  try {
    const answer = await run();
    say(typeof done === 'function' ? done(answer) : done);
  } catch (e) {
    handleError(e);
  } finally {
    button.disabled = false;
  }
  if (refresh) await refresh();
}

function pauseButton(target, paused, refresh) {
  const what = target.agent ? 'agent ' + target.agent : target.worker ? 'worker ' + target.worker : 'everything';
  const all = !target.agent && !target.worker;
  const label = (paused ? 'Resume ' : 'Pause ') + what;
  const button = h('button', {
    type: 'button',
    class: paused ? 'secondary' : 'warn',
    'aria-label': label,
    'data-action': paused ? 'resume' : 'pause',
    onclick: () => act(button, paused ? null : { text: 'Pause ' + what + '? Queued jobs wait until it is resumed; running jobs finish.', ok: 'Pause' },
      () => api(paused ? '/v1/resume' : '/v1/pause', { method: 'POST', body: target }),
      (paused ? 'Resumed ' : 'Paused ') + what, refresh),
  }, (paused ? 'Resume' : 'Pause') + (all ? ' all' : ''));
  return button;
}

// ---------- charts ----------

function barChart(values, { label, cls, unit }) {
  const W = 600, H = 96, n = Math.max(values.length, 1);
  const max = Math.max(1, ...values);
  const bw = W / n;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H + 22}`, class: 'chart ' + cls, role: 'img', 'aria-label': label });
  svg.append(s('title', {}, label));
  svg.append(s('line', { x1: 0, y1: H, x2: W, y2: H, class: 'axis' }));
  values.forEach((v, i) => {
    const bh = (v / max) * (H - 20);
    if (v > 0) svg.append(s('rect', { x: i * bw + 0.5, y: H - bh, width: Math.max(bw - 1, 1), height: bh, class: 'bar' }, s('title', {}, `${v} ${unit}`)));
  });
  svg.append(s('text', { x: 0, y: H + 19, class: 'tick' }, '60 min ago'));
  svg.append(s('text', { x: W, y: H + 19, class: 'tick end' }, 'now'));
  svg.append(s('text', { x: 0, y: 14, class: 'tick' }, 'max ' + max + ' / min'));
  return svg;
}

function meter(value, max) {
  const pct = max > 0 ? Math.min(100, (value / max) * 100) : 0;
  const cls = pct >= 90 ? 'meter hot' : pct >= 70 ? 'meter warm' : 'meter';
  return h('meter', { class: cls, min: 0, max: 100, low: 70, high: 90, optimum: 0, value: pct.toFixed(1), title: pct.toFixed(0) + '%' });
}

// ---------- views ----------

const views = {
  overview: overviewView,
  jobs: jobsView,
  job: jobView,
  agents: agentsView,
  agent: agentView,
  approvals: approvalsView,
  conversation: conversationView,
};

function overviewView() {
  const actions = h('div', { class: 'row', id: 'ov-actions' });
  fill(main, 
    h('div', { class: 'title-row' }, h('h1', {}, 'Overview'), actions),
    h('div', { class: 'tiles', id: 'ov-tiles' }),
    h('div', { class: 'grid2' },
      section('Jobs completed per minute', 'ov-chart-ok'),
      section('Jobs failed per minute', 'ov-chart-failed')),
    section('Providers', 'ov-providers'),
    section('Agents', 'ov-agents'),
    section('Workers', 'ov-workers'),
    section('Spend today', 'ov-spend'),
    h('div', { id: 'ov-approvals-wrap' }),
    h('div', { id: 'ov-nodes-wrap' }),
  );
  const refresh = async () => {
    const [status, stats] = await Promise.all([api('/v1/status'), api('/v1/stats')]);
    // The list only when the status says something waits (one request
    // fewer every few seconds otherwise).
    const approvals = status.pendingApprovals === 0 && features.approvals !== false ? { approvals: [] }
      : await optional('approvals', '/v1/approvals');
    fill(actions, pauseButton({}, status.pausedAll, refresh));
    const minutes = stats.minutes || [];
    const last = minutes.length ? minutes[minutes.length - 1] : { completed: 0, failed: 0 };
    const hourOk = minutes.reduce((a, m) => a + m.completed, 0);
    const hourFailed = minutes.reduce((a, m) => a + m.failed, 0);
    const openCircuits = status.providers.filter((p) => p.circuit && p.circuit !== 'closed').length;
    fill(document.getElementById('ov-tiles'),
      tile('Ready', status.ready === false ? 'no' : 'yes', status.ready === false ? 'bad' : 'good'),
      tile('Queued', fmtNum(status.queueDepth)),
      // `running` lists a few jobs only; the workers' counts are whole.
      tile('Running', fmtNum(Math.max(status.running.length, status.workers.reduce((n, w) => n + (w.running || 0), 0)))),
      status.pendingApprovals ? tile('Waiting for approval', fmtNum(status.pendingApprovals), 'warn') : null,
      tile('Jobs/s (last min)', (last.completed / 60).toFixed(2)),
      tile('Failed (1 h)', fmtNum(hourFailed), hourFailed ? 'bad' : ''),
      tile('Spend today', fmtUsd(status.spendTodayUsd)),
      tile('Open circuits', String(openCircuits), openCircuits ? 'bad' : 'good'),
      status.pausedAll ? tile('Paused', 'everything', 'warn') : null);
    fill(document.getElementById('ov-chart-ok'),
      barChart(minutes.map((m) => m.completed), { label: `Completed per minute, last hour: ${hourOk} in all`, cls: 'ok', unit: 'completed' }),
      h('p', { class: 'muted' }, `${fmtNum(hourOk)} in the last hour · ${(hourOk / 3600).toFixed(3)} jobs/s`));
    fill(document.getElementById('ov-chart-failed'),
      barChart(minutes.map((m) => m.failed), { label: `Failed per minute, last hour: ${hourFailed} in all`, cls: 'failed', unit: 'failed' }),
      h('p', { class: 'muted' }, `${fmtNum(hourFailed)} failed in the last hour`));
    fill(document.getElementById('ov-providers'), providersTable(status.providers, stats.providers || []));
    fill(document.getElementById('ov-agents'), agentsTable(status.agents, refresh));
    fill(document.getElementById('ov-workers'), table(['Worker', 'Category', 'Queued', 'Running', 'Failed', 'State', ''],
      status.workers.map((w) => h('tr', { 'data-worker': w.name },
        h('td', {}, h('a', { href: '#/jobs?worker=' + enc(w.name) }, w.name)),
        h('td', {}, String(w.category)),
        h('td', { class: 'num' }, fmtNum(w.queued)),
        h('td', { class: 'num' }, fmtNum(w.running)),
        h('td', { class: 'num' }, fmtNum(w.failed)),
        h('td', {}, w.paused ? badge('paused') : badge('active')),
        h('td', {}, pauseButton({ worker: w.name }, w.paused, refresh))))));
    fill(document.getElementById('ov-spend'), table(['Agent', 'Cost', 'Tokens', 'Budget', 'Used'],
      (stats.spend || []).map((sp) => {
        const b = sp.budget || {};
        const limits = [b.dailyCostUsd != null ? fmtUsd(b.dailyCostUsd) : null, b.dailyTokens != null ? fmtNum(b.dailyTokens) + ' tokens' : null].filter(Boolean);
        const used = b.dailyCostUsd ? meter(sp.costUsd, b.dailyCostUsd) : b.dailyTokens ? meter(sp.tokens, b.dailyTokens) : '–';
        return h('tr', {}, h('td', {}, sp.agent), h('td', { class: 'num' }, fmtUsd(sp.costUsd)), h('td', { class: 'num' }, fmtNum(sp.tokens)),
          h('td', {}, limits.length ? limits.join(' · ') : 'none'), h('td', {}, used));
      }), 'No agents configured.'));
    const wrap = document.getElementById('ov-approvals-wrap');
    if (approvals) fill(wrap, section('Waiting for approval', 'ov-approvals', approvalsList(approvals, refresh)));
    else fill(wrap);
    const nodes = status.nodes || [];
    fill(document.getElementById('ov-nodes-wrap'), nodes.length ? section('Nodes', 'ov-nodes', table(['Node', 'Host', 'Version', 'Running', 'Heartbeat', 'State'],
      nodes.map((n) => h('tr', {}, h('td', { class: 'mono' }, shortId(n.id)), h('td', {}, `${n.host} (pid ${n.pid})`), h('td', {}, n.version),
        h('td', { class: 'num' }, fmtNum(n.running)), h('td', {}, fmtTime(n.lastHeartbeat)), h('td', {}, n.alive ? badge('alive') : badge('dead')))))) : null);
  };
  return { refresh };
}

function tile(label, value, cls) {
  return h('div', { class: 'tile ' + (cls || '') }, h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, value));
}

function providersTable(providers, stats) {
  const byName = Object.fromEntries(stats.map((p) => [p.name, p]));
  return table(['Provider', 'Circuit', 'Actor', 'Calls ok', 'Errors by class', 'Mean latency'],
    providers.map((p) => {
      const st = byName[p.name] || {};
      const circuit = p.circuit || 'unknown';
      const errors = Object.entries(st.errors || {});
      return h('tr', { 'data-provider': p.name, class: 'circuit-' + circuit },
        h('td', {}, p.name),
        h('td', {}, h('span', { class: 'badge circuit ' + circuit, 'data-circuit': circuit }, circuit)),
        h('td', {}, p.actor + (p.restarts ? ` (${p.restarts} restarts)` : '')),
        h('td', { class: 'num' }, fmtNum(st.ok)),
        h('td', {}, errors.length ? errors.map(([k, n]) => h('span', { class: 'chip' }, `${k} ${n}`)) : '–'),
        h('td', { class: 'num' }, fmtMs(st.meanLatencyMs)));
    }), 'No providers configured.');
}

function agentsTable(agents, refresh) {
  return table(['Agent', 'Model', 'Queued', 'Running', 'Failed', 'State', ''],
    agents.map((a) => h('tr', { 'data-agent': a.id },
      h('td', {}, h('a', { href: '#/agents/' + enc(a.id) }, a.id), h('div', { class: 'muted small' }, a.name)),
      h('td', {}, `${a.provider} / ${a.model}`),
      h('td', { class: 'num' }, fmtNum(a.queued)),
      h('td', { class: 'num' }, fmtNum(a.running)),
      h('td', { class: 'num' }, h('a', { href: '#/jobs?worker=' + enc(a.id) + '&status=failed' }, fmtNum(a.failed))),
      h('td', {}, a.paused ? badge('paused') : badge('active')),
      h('td', {}, pauseButton({ agent: a.id }, a.paused, refresh)))), 'No agents configured.');
}

// Pending tool calls with Approve (asked to confirm: the call runs) and
// Deny (asks for the reason, which the model reads).
function approvalsList(answer, refresh) {
  const items = Array.isArray(answer) ? answer : answer.approvals || [];
  return table(['Tool call', 'Job', 'Arguments', 'Asked', ''],
    items.map((a) => {
      const what = `${a.tool || 'this tool'} for ${a.agentId || 'the agent'}`;
      const approve = h('button', { type: 'button', 'data-action': 'approve', 'aria-label': 'Approve ' + what, onclick: () => act(approve, { text: `Let ${what} run with these arguments? ${pretty(a.arguments || {})}`, ok: 'Approve' },
        () => api(`/v1/approvals/${enc(a.id)}/approve`, { method: 'POST', body: {} }), `Approved ${what}`, refresh) }, 'Approve');
      const deny = h('button', { type: 'button', class: 'danger', 'data-action': 'deny', 'aria-label': 'Deny ' + what, onclick: async () => {
        const reason = await confirmAction(`Deny ${what}? It does not run; the model is told it was refused, with your reason.`, 'Deny', 'Reason (the model reads it)');
        if (!reason) return;
        await act(deny, null, () => api(`/v1/approvals/${enc(a.id)}/deny`, { method: 'POST', body: { reason } }), `Denied ${what}`, refresh);
      } }, 'Deny');
      // An approval's id is `<job id>.<n>`.
      const job = a.jobId || String(a.id || '').split('.')[0];
      return h('tr', { 'data-approval': a.id }, h('td', {}, h('code', { class: 'tool-name' }, a.tool || '?'), h('div', { class: 'muted small' }, a.agentId || '')),
        h('td', {}, job ? h('a', { href: '#/jobs/' + job, class: 'mono' }, shortId(job)) : '–'),
        h('td', {}, code(a.parameters || a.arguments || {})),
        h('td', {}, fmtTime(a.requestedAt), a.deadline ? h('div', { class: 'muted small' }, 'denied by itself at ' + fmtTime(a.deadline)) : null),
        h('td', {}, h('div', { class: 'row' }, approve, deny)));
    }), 'Nothing waits for approval.');
}

// ----- approvals -----

function approvalsView() {
  fill(main, h('h1', {}, 'Approvals'),
    h('p', { class: 'muted' }, 'Tool calls that wait for a person. The task is parked (it holds no worker) until you decide.'),
    h('div', { id: 'approvals-list' }));
  const refresh = async () => {
    const answer = await optional('approvals', '/v1/approvals');
    fill(document.getElementById('approvals-list'), answer ? approvalsList(answer, refresh) : h('p', { class: 'muted' }, 'This daemon has no approvals.'));
  };
  return { refresh };
}

// ----- jobs -----

const STATUSES = ['queued', 'running', 'waiting', 'completed', 'failed', 'cancelled'];

function jobsView(params) {
  const state = { cursors: [null], page: 0 };
  const status = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'any'), STATUSES.map((st) => h('option', { value: st }, st)));
  const worker = h('select', { id: 'f-worker', name: 'worker' }, h('option', { value: '' }, 'any'));
  const text = h('input', { id: 'f-text', type: 'search', name: 'q', placeholder: 'id, error, prompt…', autocomplete: 'off' });
  status.value = params.get('status') || '';
  text.value = params.get('q') || '';
  const wanted = params.get('worker') || '';
  const older = h('button', { type: 'button', class: 'secondary', id: 'older', onclick: () => { state.page += 1; refresh(); } }, 'Older →');
  const newer = h('button', { type: 'button', class: 'secondary', id: 'newer', onclick: () => { state.page = Math.max(0, state.page - 1); refresh(); } }, '← Newer');
  const info = h('span', { class: 'muted', id: 'page-info' });
  const onFilter = () => {
    state.cursors = [null];
    state.page = 0;
    const q = new URLSearchParams();
    if (status.value) q.set('status', status.value);
    if (worker.value) q.set('worker', worker.value);
    if (text.value) q.set('q', text.value);
    history.replaceState(null, '', '#/jobs' + (q.toString() ? '?' + q : ''));
    refresh();
  };
  status.addEventListener('change', onFilter);
  worker.addEventListener('change', onFilter);
  text.addEventListener('input', () => refresh());
  fill(main, 
    h('h1', {}, 'Jobs'),
    h('div', { class: 'filters', role: 'search' },
      h('label', { for: 'f-status' }, 'Status', status),
      h('label', { for: 'f-worker' }, 'Worker or agent', worker),
      h('label', { for: 'f-text' }, 'Text', text)),
    h('div', { id: 'jobs-list', 'aria-live': 'off' }),
    h('div', { class: 'row pager' }, newer, info, older));
  Promise.all([api('/v1/workers'), api('/v1/agents')]).then(([ws, as]) => {
    const agentIds = new Set(as.agents.map((a) => a.id));
    append(worker, [
      h('optgroup', { label: 'Agents' }, as.agents.map((a) => h('option', { value: a.id }, a.id))),
      h('optgroup', { label: 'Workers' }, ws.workers.filter((w) => !agentIds.has(w.name)).map((w) => h('option', { value: w.name }, w.name)))]);
    worker.value = wanted;
  }).catch(handleError);
  const refresh = async () => {
    const q = new URLSearchParams({ limit: '50' });
    if (status.value) q.set('status', status.value);
    const w = worker.value || wanted;
    if (w) q.set('worker', w);
    const needle = text.value.trim().toLowerCase();
    if (needle) q.set('fields', 'args');
    const cursor = state.cursors[state.page];
    if (cursor) q.set('cursor', cursor);
    const page = await api('/v1/jobs?' + q);
    state.cursors[state.page + 1] = page.nextCursor;
    let jobs = page.jobs;
    if (needle) jobs = jobs.filter((j) => JSON.stringify([j.id, j.workerName, j.error, j.args, j.ctx]).toLowerCase().includes(needle));
    older.disabled = !page.nextCursor;
    newer.disabled = state.page === 0;
    info.textContent = `page ${state.page + 1}` + (needle ? ` · ${jobs.length} of ${page.jobs.length} match` : '');
    fill(document.getElementById('jobs-list'), table(['Job', 'Status', 'Worker', 'Attempt', 'Created', 'Updated', 'Error'],
      jobs.map((j) => h('tr', { 'data-job': j.id },
        h('td', {}, h('a', { href: '#/jobs/' + j.id, class: 'mono' }, shortId(j.id))),
        h('td', {}, badge(j.status)),
        h('td', {}, j.workerName),
        h('td', { class: 'num' }, `${j.attempt}/${j.maxAttempts}`),
        h('td', {}, fmtTime(j.createdAt)),
        h('td', {}, fmtTime(j.updatedAt)),
        h('td', { class: 'err' }, j.error ? j.error.slice(0, 120) : ''))), 'No jobs match.'));
  };
  return { refresh };
}

// Statuses in which a job may still change.
const LIVE = ['queued', 'running', 'waiting'];

// A job's page. While the job may still change it follows the job's event
// stream (`/v1/jobs/{id}/events`) and reloads the job and its steps on
// each event, at most one load at a time (events that come during a load
// make one more afterwards); the every-few-seconds polling only runs while
// no stream is open (a daemon without one, or between reconnects).
function jobView(params, id) {
  fill(main, h('p', { class: 'muted' }, 'Loading job…'));
  let ended = false;
  let stream = null;
  let loading = null;
  let again = false;
  const load = async () => {
    const job = await api('/v1/jobs/' + enc(id));
    const steps = await api('/v1/jobs/' + enc(id) + '/steps');
    const pending = job.status === 'waiting' ? await optional('approvals', '/v1/approvals') : null;
    ended = !LIVE.includes(job.status);
    renderJob(job, steps, pending, schedule);
    if (!ended && !stream) stream = follow(id, schedule, () => { stream = null; });
    if (ended && stream) { stream.stop(); stream = null; }
    document.body.dataset.follow = stream && stream.open ? 'sse' : ended ? 'ended' : 'poll';
  };
  // Loads now, or once more after the load under way.
  function schedule() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      try {
        do { again = false; await load(); } while (again);
      } finally {
        loading = null;
      }
    })();
    return loading;
  }
  const refresh = async () => {
    if (ended && document.getElementById('job-head')) return;
    if (stream && stream.open) return; // the stream drives the page
    await schedule();
  };
  return { refresh, stop: () => { if (stream) stream.stop(); stream = null; } };
}

// Follows a job's event stream (Server-Sent Events read with fetch, which
// can send the token): `changed()` after each event but streamed text, and
// `gone()` when the stream ends or cannot be had. A stream that breaks
// off before the job's end is resumed from the last event seen
// (`Last-Event-ID`); null when this daemon has no stream (404).
function follow(id, changed, gone) {
  if (features.events === false) return null;
  const ctl = new AbortController();
  const handle = { open: false, events: 0, stop: () => ctl.abort() };
  const headers = { Accept: 'text/event-stream' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  let last = null;
  let terminal = false;
  const connect = async () => {
    if (last !== null) headers['Last-Event-ID'] = String(last);
    const res = await fetch('/v1/jobs/' + enc(id) + '/events', { headers, signal: ctl.signal, cache: 'no-store', credentials: 'omit' });
    if (!res.ok || !res.body) {
      if (res.status === 404 || res.status === 405) features.events = false;
      return false;
    }
    features.events = true;
    handle.open = true;
    document.body.dataset.follow = 'sse';
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      let fresh = false;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let name = 'message';
        for (const line of frame.split('\n')) {
          if (line.startsWith('id:')) last = Number(line.slice(3).trim());
          else if (line.startsWith('event:')) name = line.slice(6).trim();
        }
        if (frame.startsWith(':')) continue; // keep-alive
        handle.events++;
        document.body.dataset.events = String(handle.events);
        if (['completed', 'failed', 'cancelled'].includes(name)) terminal = true;
        if (name !== 'textDelta') fresh = true;
      }
      if (fresh) changed();
    }
    return true;
  };
  (async () => {
    // A few tries: a stream that broke off is picked up where it was.
    for (let tries = 0; tries < 5 && !terminal && !ctl.signal.aborted; tries++) {
      try {
        if (!(await connect())) break;
      } catch {
        if (ctl.signal.aborted) break;
      }
      handle.open = false;
      if (!terminal) await new Promise((r) => setTimeout(r, 1000));
    }
    handle.open = false;
    if (!ctl.signal.aborted) {
      if (document.body.dataset.follow === 'sse') document.body.dataset.follow = terminal ? 'ended' : 'poll';
      changed();
      gone();
    }
  })();
  return handle;
}

function renderJob(job, stepsAnswer, pending, refresh) {
  const live = LIVE.includes(job.status);
  const mine = pending ? (pending.approvals || []).filter((a) => String(a.id).split('.')[0] === job.id) : [];
  const actions = h('div', { class: 'row' });
  if (live) {
    const cancel = h('button', { type: 'button', class: 'danger', id: 'cancel-job', onclick: () => act(cancel, { text: 'Cancel this job? A running task stops at its next step.', ok: 'Cancel job' },
      () => api('/v1/jobs/' + enc(job.id) + '/cancel', { method: 'POST', body: {} }), (a) => 'Cancel: ' + a.outcome, refresh) }, 'Cancel');
    actions.append(cancel);
  } else {
    const retry = h('button', { type: 'button', class: 'warn', id: 'retry-job', onclick: () => act(retry, { text: `Run this job again as a new job of ${job.workerName}, with the same args? An agent task calls its model again (and spends).`, ok: 'Run again' },
      () => api('/v1/jobs', { method: 'POST', body: { workerName: job.workerName, args: job.args, ctx: job.ctx, maxAttempts: job.maxAttempts, priority: job.priority } }),
      (j) => { location.hash = '#/jobs/' + j.id; return 'Queued again as ' + j.id; }, null) }, 'Run again');
    actions.append(retry);
  }
  const result = job.result;
  const isTask = result && typeof result === 'object' && 'toolCalls' in result;
  const steps = stepsAnswer.steps || [];
  // Redrawn on each event: what the reader opened stays open.
  const opened = new Set([...main.querySelectorAll('details[open][data-key]')].map((d) => d.dataset.key));
  fill(main, 
    h('div', { class: 'title-row', id: 'job-head' },
      h('h1', {}, 'Job ', h('span', { class: 'mono' }, shortId(job.id)), ' ', badge(job.status)), actions),
    h('dl', { class: 'facts' },
      fact('Id', h('span', { class: 'mono' }, job.id)),
      fact('Worker', job.workerName),
      fact('Attempt', `${job.attempt} of ${job.maxAttempts}`),
      fact('Priority', String(job.priority)),
      fact('Created', fmtTime(job.createdAt)),
      fact('Updated', fmtTime(job.updatedAt)),
      fact('Run at', job.status === 'waiting' ? 'once decided' : fmtTime(job.runAt)),
      job.ctx && job.ctx.conversationId ? fact('Conversation', h('a', { href: '#/conversations/' + enc(job.ctx.conversationId) }, job.ctx.conversationId)) : null,
      job.ctx && job.ctx.userId ? fact('User', job.ctx.userId) : null,
      job.ctx && job.ctx.source ? fact('Source', job.ctx.source) : null),
    job.error ? h('div', { class: 'alert', role: 'alert' }, job.error) : null,
    mine.length ? section('Waiting for your approval', 'job-approvals', approvalsList(mine, refresh)) : null,
    h('div', { class: 'grid2' },
      section('Args', 'job-args', code(job.args)),
      section('Result', 'job-result', result === undefined || result === null ? h('p', { class: 'muted' }, live ? 'Not yet.' : 'None.') :
        isTask ? taskResult(result) : code(result))),
    section('Attempts', 'job-attempts', attemptsTimeline(job)),
    steps.length || isTask || (job.args && job.args.prompt) ? section('Transcript', 'transcript', transcript(steps, job, stepsAnswer.truncated)) : null);
  for (const d of main.querySelectorAll('details[data-key]')) if (opened.has(d.dataset.key)) d.open = true;
}

function fact(label, value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, value));
}

function taskResult(r) {
  const u = r.usage || {};
  return h('div', {},
    h('p', {}, r.success ? badge('completed') : badge('failed'), ` ${r.steps} steps · ${fmtNum(u.inputTokens)} in / ${fmtNum(u.outputTokens)} out tokens` + (r.provider ? ` · ${r.provider} / ${r.model}` : '')),
    r.response ? h('div', { class: 'bubble assistant' }, r.response) : null,
    r.output !== undefined && r.output !== null ? code(r.output) : null,
    r.error ? h('div', { class: 'alert' }, r.error) : null);
}

function attemptsTimeline(job) {
  const items = [h('li', {}, h('time', {}, fmtTime(job.createdAt)), ' queued')];
  for (const e of job.errors || []) items.push(h('li', { class: 'bad' }, h('time', {}, fmtTime(e.at)), ` attempt ${e.attempt} failed: `, h('span', { class: 'err' }, e.message)));
  if (job.status === 'running') items.push(h('li', {}, h('time', {}, fmtTime(job.updatedAt)), ` attempt ${job.attempt} running`));
  else if (job.status === 'waiting') items.push(h('li', {}, h('time', {}, fmtTime(job.updatedAt)), ` attempt ${job.attempt} waiting for approval`));
  else if (!['queued'].includes(job.status)) items.push(h('li', { class: job.status === 'completed' ? 'good' : 'bad' }, h('time', {}, fmtTime(job.updatedAt)), ` ${job.status} after attempt ${job.attempt}`));
  return h('ol', { class: 'timeline' }, items);
}

function transcript(steps, job, truncated) {
  const r = job.result && typeof job.result === 'object' ? job.result : null;
  const answer = r && r.response ? r.response : null;
  if (!steps.length && !answer) return h('p', { class: 'muted' }, job.status === 'queued' ? 'Not started.' : 'No steps saved.');
  const out = [];
  steps.forEach((step, i) => {
    if (step.kind === 'model') {
      if (step.context) out.push(contextStep(step.context, i));
      out.push(modelStep(step.response || {}, i, step.costUsd));
    } else if (step.kind === 'context') {
      out.push(contextStep(step, i));
    } else if (step.kind === 'tools') {
      for (const r of step.results || []) out.push(toolStep(r, i));
    } else if (step.kind === 'correction') {
      out.push(h('li', { class: 'step correction' }, h('div', { class: 'step-head' }, h('strong', {}, 'Sent back'), h('span', { class: 'muted' }, ` step ${i}`)), h('div', { class: 'bubble' }, step.message || '')));
    } else {
      out.push(h('li', { class: 'step' }, h('div', { class: 'step-head' }, `Step ${i}: ${step.kind || 'record'}`), code(step)));
    }
  });
  if (truncated) out.push(h('li', { class: 'muted' }, 'Later steps left out.'));
  // The final answer is no checkpoint (the job's completion is): it
  // comes from the result.
  if (answer) {
    out.push(h('li', { class: 'step model final' },
      h('div', { class: 'step-head' }, h('strong', {}, 'Final answer'),
        r.provider ? h('span', { class: 'chip' }, `${r.provider} / ${r.model}`) : null,
        h('span', { class: 'muted' }, ` ${r.steps} model calls in all`)),
      h('div', { class: 'bubble assistant' }, answer)));
  }
  return h('ol', { class: 'transcript' }, out);
}

function contextStep(ctx, i) {
  const msgs = ctx.messages || [];
  return h('li', { class: 'step context' },
    h('details', { 'data-key': 'context-' + i },
      h('summary', {}, h('strong', {}, 'Context'), ` · system prompt and ${msgs.length} message${msgs.length === 1 ? '' : 's'} (step ${i})`),
      ctx.system ? h('div', { class: 'bubble system' }, ctx.system) : null,
      msgs.map((m) => h('div', { class: 'bubble ' + (m.role || '') }, h('div', { class: 'who' }, m.role || ''), m.content || m.text || pretty(m)))));
}

// `cost`: the call's cost in US dollars by the daemon's price table
// (absent when the model has no price).
function modelStep(r, i, cost) {
  const u = r.usage || {};
  const calls = r.toolCalls || [];
  return h('li', { class: 'step model', 'data-step': i },
    h('div', { class: 'step-head' }, h('strong', {}, 'Model call'),
      h('span', { class: 'chip' }, `${r.provider || '?'} / ${r.model || '?'}`),
      h('span', { class: 'chip' }, `${fmtNum(u.inputTokens)} in · ${fmtNum(u.outputTokens)} out tokens`),
      typeof cost === 'number' ? h('span', { class: 'chip', 'data-cost': '' }, '$' + cost.toFixed(6)) : null,
      h('span', { class: 'chip' }, fmtMs(ms(r.latency))),
      h('span', { class: 'muted' }, ` ${r.finishReason || ''} · step ${i}`)),
    r.text ? h('div', { class: 'bubble assistant' }, r.text) : null,
    calls.length ? h('ul', { class: 'calls' }, calls.map((c) => h('li', {}, 'asks for ', h('code', { class: 'tool-name' }, c.name), h('pre', { class: 'code' }, pretty(c.arguments))))) : null);
}

function toolStep(r, i) {
  return h('li', { class: 'step tool' + (r.isError ? ' bad' : ''), 'data-tool': r.tool },
    h('div', { class: 'step-head' }, h('strong', {}, 'Tool call '), h('code', { class: 'tool-name' }, r.tool),
      r.isError ? h('span', { class: 'badge st-failed' }, 'error') : h('span', { class: 'badge st-completed' }, 'ok'),
      h('span', { class: 'muted' }, ` step ${i}`)),
    h('div', { class: 'grid2 tight' },
      h('div', {}, h('div', { class: 'label' }, 'Arguments'), code(r.parameters)),
      h('div', {}, h('div', { class: 'label' }, 'Result'), code(r.result !== undefined && r.result !== null ? r.result : r.content))));
}

// ----- agents -----

function agentsView() {
  fill(main, h('h1', {}, 'Agents'), h('div', { id: 'agents-list' }));
  const refresh = async () => {
    const answer = await api('/v1/agents');
    fill(document.getElementById('agents-list'), agentsTable(answer.agents, refresh));
  };
  return { refresh };
}

function agentView(params, id) {
  const head = h('div', { class: 'title-row' }, h('h1', {}, 'Agent ', id), h('div', { class: 'row', id: 'agent-actions' }));
  const prompt = h('textarea', { id: 't-prompt', rows: 3, required: true });
  const conv = h('input', { id: 't-conv', autocomplete: 'off' });
  const user = h('input', { id: 't-user', autocomplete: 'off' });
  const send = h('button', { type: 'button', id: 't-send' }, 'Queue task');
  send.addEventListener('click', () => {
    if (!prompt.value.trim()) { say('Write a task first.'); prompt.focus(); return; }
    const body = { prompt: prompt.value };
    if (conv.value.trim()) body.conversationId = conv.value.trim();
    if (user.value.trim()) body.userId = user.value.trim();
    act(send, { text: `Queue this task for ${id}? It calls the agent's model (and spends).`, ok: 'Queue task' },
      () => api('/v1/agents/' + enc(id) + '/tasks', { method: 'POST', body }),
      (job) => { location.hash = '#/jobs/' + job.id; return 'Queued ' + job.id; }, null);
  });
  const query = h('input', { id: 'm-query', type: 'search', autocomplete: 'off', placeholder: 'what to recall' });
  const muser = h('input', { id: 'm-user', autocomplete: 'off', placeholder: 'the agent’s own' });
  const recall = h('button', { type: 'button', id: 'm-recall' }, 'Recall');
  const convId = h('input', { id: 'c-id', autocomplete: 'off' });
  const openConv = h('button', { type: 'button', class: 'secondary', onclick: () => { if (convId.value.trim()) location.hash = '#/conversations/' + enc(convId.value.trim()); } }, 'Open');
  fill(main, head,
    h('div', { class: 'grid2' },
      section('Settings', 'agent-config'),
      section('Give a task', 'agent-task',
        h('label', { for: 't-prompt' }, 'Task', prompt),
        h('div', { class: 'grid2 tight' }, h('label', { for: 't-conv' }, 'Conversation id (optional)', conv), h('label', { for: 't-user' }, 'User id (optional)', user)),
        send)),
    section('Memories', 'agent-memories-box',
      h('div', { class: 'filters' }, h('label', { for: 'm-query' }, 'Recall for', query), h('label', { for: 'm-user' }, 'User id', muser), recall),
      h('div', { id: 'agent-memories' })),
    section('Conversations', 'agent-convs-box',
      h('div', { class: 'filters' }, h('label', { for: 'c-id' }, 'Conversation id', convId), openConv),
      h('div', { id: 'agent-convs' })));
  const loadMemories = async () => {
    const q = query.value.trim();
    const u = muser.value.trim();
    const box = document.getElementById('agent-memories');
    if (q) {
      const p = new URLSearchParams({ q });
      if (u) p.set('userId', u);
      const ans = await api('/v1/agents/' + enc(id) + '/recall?' + p);
      fill(box, table(['Memory', 'Type', 'Score', 'Relevance', 'Importance', 'Recency'], ans.memories.map((m) => h('tr', {},
        h('td', {}, m.memory.content), h('td', {}, m.memory.type), h('td', { class: 'num' }, m.score.toFixed(3)),
        h('td', { class: 'num' }, m.relevance.toFixed(2)), h('td', { class: 'num' }, m.importance.toFixed(2)), h('td', { class: 'num' }, m.recency.toFixed(2)))), 'Nothing recalled.'));
    } else {
      const p = new URLSearchParams();
      if (u) p.set('userId', u);
      const ans = await api('/v1/agents/' + enc(id) + '/memories?' + p);
      fill(box, table(['Memory', 'Type', 'Importance', 'Created'], ans.memories.slice(-200).reverse().map((m) => h('tr', {},
        h('td', {}, m.content), h('td', {}, m.type), h('td', { class: 'num' }, String(m.importance)), h('td', {}, fmtTime(m.createdAt)))), 'No memories yet.'));
    }
  };
  recall.addEventListener('click', () => loadMemories().catch(handleError));
  query.addEventListener('keydown', (e) => { if (e.key === 'Enter') loadMemories().catch(handleError); });
  let first = true;
  const refresh = async () => {
    const a = await api('/v1/agents/' + enc(id));
    fill(document.getElementById('agent-actions'), pauseButton({ agent: id }, a.paused, refresh),
      h('a', { class: 'button secondary', href: '#/jobs?worker=' + enc(id) }, 'Its jobs'));
    const mc = a.modelConfig || {};
    const b = a.budget || {};
    fill(document.getElementById('agent-config'), h('dl', { class: 'facts' },
      fact('Name', a.name),
      fact('State', a.paused ? badge('paused') : badge('active')),
      fact('Model', `${mc.provider} / ${mc.model}`),
      fact('Temperature', mc.temperature ?? 'provider default'),
      fact('Max tokens', mc.maxTokens ?? 'model default'),
      fact('Fallbacks', (mc.fallbacks || []).map((f) => `${f.provider} / ${f.model}`).join(', ') || 'none'),
      fact('Tools', (a.tools || []).join(', ') || 'none'),
      fact('Concurrency', String(a.concurrency)),
      fact('Max steps', String(a.maxSteps)),
      fact('Reflects', a.reflect ? 'yes' : 'no'),
      fact('Budget', [b.dailyCostUsd != null ? fmtUsd(b.dailyCostUsd) + '/day' : null, b.dailyTokens != null ? fmtNum(b.dailyTokens) + ' tokens/day' : null].filter(Boolean).join(' · ') || 'none'),
      fact('Jobs', `${a.queued} queued · ${a.running} running · ${a.completed} completed · ${a.failed} failed`)),
      h('details', {}, h('summary', {}, 'System prompt'), h('div', { class: 'bubble system' }, a.systemPrompt)));
    if (first) {
      first = false;
      loadMemories().catch(handleError);
      const page = await api('/v1/jobs?worker=' + enc(id) + '&limit=200');
      const ids = [...new Set(page.jobs.map((j) => j.ctx && j.ctx.conversationId).filter(Boolean))];
      fill(document.getElementById('agent-convs'), ids.length ? h('ul', {}, ids.map((c) => h('li', {}, h('a', { href: '#/conversations/' + enc(c) }, c))))
        : h('p', { class: 'muted' }, 'No conversations among its recent tasks.'));
    }
  };
  return { refresh };
}

function conversationView(params, id) {
  fill(main, h('h1', {}, 'Conversation ', id), h('div', { id: 'chat' }));
  const refresh = async () => {
    let ans;
    try {
      ans = await api('/v1/conversations/' + enc(id) + '/messages');
    } catch (e) {
      if (e.status === 404) { fill(document.getElementById('chat'), h('p', { class: 'muted' }, 'No messages in this conversation.')); return; }
      throw e;
    }
    fill(document.getElementById('chat'), h('ol', { class: 'chat' }, ans.messages.map((m) => h('li', { class: 'bubble ' + m.role },
      h('div', { class: 'who' }, `${m.author} (${m.role}) · ${fmtTime(m.createdAt)}`), m.content))));
  };
  return { refresh };
}

// ---------- login, errors, routing ----------

function loginView(message) {
  stopView();
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true });
  const go = h('button', { type: 'submit', id: 'token-go' }, 'Open the Studio');
  const form = h('form', { class: 'card login', onsubmit: (e) => {
    e.preventDefault();
    if (!input.value.trim()) return;
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    route();
  } },
  h('h1', {}, 'Troupe Studio'),
  message ? h('p', { class: 'alert', role: 'alert' }, message) : null,
  h('p', {}, 'This daemon’s API needs its token. It is in ', h('code', {}, 'http.token'), ' in the data directory (or ', h('code', {}, 'TROUPE_HTTP_TOKEN'), '). It is kept in this tab only, until you close it.'),
  h('label', { for: 'token' }, 'API token', input), go);
  fill(main, form);
  input.focus();
}

function handleError(e) {
  if (e instanceof AuthError) {
    loginView('The token was refused; enter it again.');
    return;
  }
  say('Error: ' + e.message);
  const box = document.getElementById('view-error');
  if (box) box.textContent = e.message;
}

function route() {
  stopView();
  const [path, qs] = (location.hash.slice(1) || '/').split('?');
  const params = new URLSearchParams(qs || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  let name = 'overview', arg;
  if (parts[0] === 'jobs') [name, arg] = parts[1] ? ['job', parts[1]] : ['jobs'];
  else if (parts[0] === 'agents') [name, arg] = parts[1] ? ['agent', parts[1]] : ['agents'];
  else if (parts[0] === 'conversations' && parts[1]) [name, arg] = ['conversation', parts[1]];
  else if (parts[0] === 'approvals') name = 'approvals';
  for (const a of document.querySelectorAll('[data-nav]')) {
    const on = a.dataset.nav === name || (a.dataset.nav === 'jobs' && name === 'job') || (a.dataset.nav === 'agents' && name === 'agent');
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    loginView();
    return;
  }
  const mine = ++generation;
  const view = views[name](params, arg);
  main.prepend(h('p', { id: 'view-error', class: 'alert-slot', role: 'status' }));
  let timer = null;
  const tick = async () => {
    if (mine !== generation) return;
    try {
      await view.refresh();
      if (mine === generation) {
        const slot = document.getElementById('view-error');
        if (slot) slot.textContent = '';
        else main.prepend(h('p', { id: 'view-error', class: 'alert-slot', role: 'status' }));
        document.body.dataset.loaded = name;
      }
    } catch (e) {
      if (mine === generation) handleError(e);
      if (e instanceof AuthError) return;
    }
    if (mine === generation && !document.hidden) timer = setTimeout(tick, POLL_MS);
  };
  stopView = () => {
    generation++;
    clearTimeout(timer);
    if (view.stop) view.stop();
    stopView = () => {};
  };
  tick();
}

// The skip link moves focus to the content; it must not change the hash
// (the hash is the route).
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) route();
});
window.addEventListener('hashchange', () => {
  route();
  window.scrollTo(0, 0);
  main.focus({ preventScroll: true });
});
route();
