// mediajobs dashboard: a plain ES module, no dependencies, no build step. It uses only the
// public HTTP API (the same one curl and the CLI use), with the profile and the bearer token
// of the page on every request.

const main = document.getElementById('main');
const notice = document.getElementById('notice');

// ------------------------------------------------------------------ small helpers

/** Builds an element: `h('a', {href, text, onclick}, ...children)`. Text is never parsed as HTML. */
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (typeof v !== 'string' && k in el) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

const short = (id) => (id || '').slice(0, 8);

function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

function fmtSecs(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '';
  const t = Math.max(0, Math.round(s));
  const hh = Math.floor(t / 3600);
  const mm = Math.floor((t % 3600) / 60);
  const ss = String(t % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

const fmtMs = (ms) => (ms === null || ms === undefined ? '' : fmtSecs(ms / 1000));

function fmtCueTime(ms) {
  const m = Math.floor(ms / 60000);
  const s = ((ms % 60000) / 1000).toFixed(1).padStart(4, '0');
  return `${m}:${s}`;
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

// ------------------------------------------------------------------ profile and token

const store = {
  get profile() { return localStorage.getItem('mediajobs.profile') || 'default'; },
  set profile(v) { localStorage.setItem('mediajobs.profile', v); },
  // The token lives for the browser session only (sessionStorage), never in local storage.
  get token() { return sessionStorage.getItem('mediajobs.token') || ''; },
  set token(v) {
    if (v) sessionStorage.setItem('mediajobs.token', v);
    else sessionStorage.removeItem('mediajobs.token');
  },
};

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

function headers(extra) {
  const out = { 'X-Profile-ID': store.profile, ...(extra || {}) };
  if (store.token) out.Authorization = `Bearer ${store.token}`;
  return out;
}

function errorFrom(status, text) {
  try {
    const j = JSON.parse(text);
    if (j && j.error) return new ApiError(status, j.error.code, j.error.message, j.error.details);
  } catch (_) { /* not the envelope */ }
  return new ApiError(status, `HTTP${status}`, text || `request failed (${status})`, null);
}

async function errorOf(resp) {
  return errorFrom(resp.status, await resp.text().catch(() => ''));
}

let tokenWait = null;

/** Asks for a bearer token (once, however many requests were refused); resolves when given. */
function askToken(err) {
  if (tokenWait) return tokenWait;
  const dlg = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  document.getElementById('token-profile').textContent = store.profile;
  document.getElementById('token-error').textContent = store.token ? (err?.message || 'The token was refused.') : '';
  tokenWait = new Promise((resolve) => {
    const onSubmit = (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (!v) return;
      store.token = v;
      form.removeEventListener('submit', onSubmit);
      dlg.close();
      tokenWait = null;
      resolve();
    };
    form.addEventListener('submit', onSubmit);
    input.value = '';
    dlg.showModal();
    input.focus();
  });
  return tokenWait;
}

document.getElementById('token-dialog').addEventListener('cancel', (ev) => ev.preventDefault());

/** One API call: JSON in and out, the error envelope as an `ApiError`, a 401 asks for a token. */
async function api(method, path, body) {
  for (let tries = 0; ; tries += 1) {
    const init = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const r = await fetch(path, init);
    if (r.status === 401 && tries < 5) { await askToken(await errorOf(r)); continue; }
    if (!r.ok) throw await errorOf(r);
    const ct = r.headers.get('content-type') || '';
    if (ct.includes('json')) return r.json();
    return r.text();
  }
}

/**
 * Follows a server-sent event stream (read with fetch so that the headers go along), calling
 * `onEvent(name, data)`; reconnects after a drop unless `once` (a job's stream ends by itself
 * after its terminal event). `onState('live' | 'reconnecting')` reports the connection.
 */
async function follow(path, onEvent, signal, { once = false, onState = () => {} } = {}) {
  while (!signal.aborted) {
    try {
      const r = await fetch(path, { headers: headers({ Accept: 'text/event-stream' }), signal, cache: 'no-store' });
      if (r.status === 401) { await askToken(await errorOf(r)); continue; }
      if (!r.ok) throw await errorOf(r);
      onState('live');
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i = buf.indexOf('\n\n');
        while (i >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let name = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (!line || line.startsWith(':')) continue;
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            let v = c < 0 ? '' : line.slice(c + 1);
            if (v.startsWith(' ')) v = v.slice(1);
            if (field === 'event') name = v;
            else if (field === 'data') data.push(v);
          }
          if (data.length) {
            let payload = data.join('\n');
            try { payload = JSON.parse(payload); } catch (_) { /* plain text */ }
            onEvent(name, payload);
          }
          i = buf.indexOf('\n\n');
        }
      }
      if (once) return;
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500) { showError(e); return; }
    }
    onState('reconnecting');
    await sleep(1000, signal);
  }
}

// ------------------------------------------------------------------ notices

function showError(e) {
  notice.hidden = false;
  notice.className = 'notice error';
  notice.replaceChildren(
    h('strong', { text: e.code || 'Error' }), ': ', e.message || String(e),
    e.details ? h('pre', { class: 'small', text: JSON.stringify(e.details, null, 2) }) : null,
  );
}

function flash(text) {
  notice.hidden = false;
  notice.className = 'notice';
  notice.textContent = text;
}

function clearNotice() {
  notice.hidden = true;
  notice.replaceChildren();
}

/** A button that asks for a second click before doing something destructive. */
function confirmButton(label, run) {
  let armed = null;
  const b = h('button', { type: 'button', class: 'danger', text: label });
  b.addEventListener('click', async () => {
    if (!armed) {
      b.textContent = `Confirm ${label.toLowerCase()}`;
      armed = setTimeout(() => { armed = null; b.textContent = label; }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    b.textContent = label;
    await run();
  });
  return b;
}

// ------------------------------------------------------------------ shared data

let serverCache = null;
let docCache = null;

async function serverInfo(fresh) {
  if (!serverCache || fresh) serverCache = await api('GET', '/server');
  return serverCache;
}

async function openapi() {
  if (!docCache) {
    const r = await fetch('/openapi.json');
    if (!r.ok) throw await errorOf(r);
    docCache = await r.json();
  }
  return docCache;
}

async function fileMap() {
  const files = await api('GET', '/profiles/files?limit=1000');
  return new Map(files.map((f) => [f.id, f]));
}

async function downloadFile(f) {
  try {
    const link = await api('POST', `/profiles/files/${f.id}/link`);
    const a = h('a', { href: link.url, download: f.name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (e) { showError(e); }
}

/** The output files named in a job's result. */
function outputsOf(job) {
  const r = job.result || {};
  const out = [];
  if (r.srt_file_id) out.push(r.srt_file_id);
  if (job.type === 'convert' && r.file_id) out.push(r.file_id);
  return out;
}

// ------------------------------------------------------------------ jobs

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

function statusCell(j) {
  const txt = j.cancel_requested && j.status === 'running' ? 'cancelling' : j.status;
  return h('span', { class: `status status-${j.status}`, text: txt });
}

function progressCell(j) {
  const pct = Math.round((j.progress || 0) * 100);
  return [
    h('progress', { class: 'job-progress', max: 1, value: j.progress || 0, 'aria-label': `progress ${pct}%` }),
    ' ', h('span', { class: 'pct', text: `${pct}%` }),
  ];
}

const etaText = (j) => (j.eta_seconds === null || j.eta_seconds === undefined || TERMINAL.has(j.status) ? '' : fmtSecs(j.eta_seconds));

function actionsFor(j) {
  const a = [];
  if (!j.parent_id) {
    if (!TERMINAL.has(j.status) && !j.cancel_requested) a.push('cancel');
    if (j.status === 'failed' || j.status === 'cancelled') a.push('retry');
    if (TERMINAL.has(j.status)) a.push('delete');
  }
  return a;
}

async function jobAction(j, action, after) {
  try {
    if (action === 'cancel') await api('POST', `/jobs/${j.id}/cancel`);
    if (action === 'retry') await api('POST', `/jobs/${j.id}/retry`);
    if (action === 'delete') await api('DELETE', `/jobs/${j.id}`);
    flash(`Job ${short(j.id)}: ${action} sent.`);
    if (after) after(action);
  } catch (e) { showError(e); }
}

function actionButtons(j, after) {
  return actionsFor(j).map((a) => {
    const label = a[0].toUpperCase() + a.slice(1);
    if (a === 'delete') return confirmButton(label, () => jobAction(j, a, after));
    return h('button', { type: 'button', class: `act-${a}`, text: label, onclick: () => jobAction(j, a, after) });
  });
}

function fileLabel(files, id) {
  if (!id) return '';
  const f = files.get(id);
  return f ? f.name : short(id);
}

/** Fills a job's table row (in place, so that a live update keeps the row where it is). */
function fillJobRow(tr, j, files, after) {
  tr.dataset.jobId = j.id;
  tr.dataset.status = j.status;
  const batch = j.total > 1 || j.type.startsWith('batch_');
  const cells = [
    h('td', {}, h('a', { href: `#/jobs/${j.id}`, text: j.type }), batch ? h('span', { class: 'muted small', text: ` ${j.completed}/${j.total}` }) : null),
    h('td', { class: 'opt' }, j.file_id ? fileLabel(files, j.file_id) : ''),
    h('td', {}, statusCell(j)),
    h('td', {}, progressCell(j)),
    h('td', { class: 'stage small', text: TERMINAL.has(j.status) ? '' : j.stage || '' }),
    h('td', { class: 'eta num small', text: etaText(j) }),
    h('td', { class: 'opt small', text: fmtTime(j.created_at) }),
  ];
  const key = actionsFor(j).join(',');
  const old = tr.querySelector('td.acts');
  const acts = old && old.dataset.key === key ? old : h('td', { class: 'acts', dataset: { key } }, h('div', { class: 'actions' }, actionButtons(j, after)));
  tr.replaceChildren(...cells, acts);
}

function jobsTable(body) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {},
      h('th', { text: 'Type' }), h('th', { class: 'opt', text: 'File' }), h('th', { text: 'Status' }),
      h('th', { text: 'Progress' }), h('th', { text: 'Stage' }), h('th', { text: 'ETA' }),
      h('th', { class: 'opt', text: 'Created' }), h('th', { text: 'Actions' }))),
    body));
}

async function jobsView(q, signal) {
  const server = await serverInfo();
  const files = await fileMap();
  const status = q.get('status') || '';
  const type = q.get('type') || '';
  const pageSize = Number(q.get('limit')) || 25;
  const go = (s, t) => {
    const p = new URLSearchParams();
    if (s) p.set('status', s);
    if (t) p.set('type', t);
    location.hash = `#/jobs${p.toString() ? `?${p}` : ''}`;
  };
  const statusSel = h('select', { id: 'filter-status', onchange: () => go(statusSel.value, typeSel.value) },
    h('option', { value: '', text: 'any' }), STATUSES.map((s) => h('option', { value: s, text: s, selected: s === status })));
  const typeSel = h('select', { id: 'filter-type', onchange: () => go(statusSel.value, typeSel.value) },
    h('option', { value: '', text: 'any' }), server.job_types.map((t) => h('option', { value: t.type, text: t.type, selected: t.type === type })));
  const live = h('span', { class: 'muted small', id: 'live', text: 'connecting…' });
  const body = h('tbody', { id: 'jobs-body' });
  const empty = h('p', { class: 'muted', text: 'No jobs yet. Upload a file and submit a job.', hidden: true });
  const more = h('button', { type: 'button', id: 'older', text: 'Older jobs', hidden: true });
  main.replaceChildren(
    h('h1', {}, 'Jobs ', live),
    h('div', { class: 'toolbar' },
      h('div', {}, h('label', { for: 'filter-status', text: 'Status' }), statusSel),
      h('div', {}, h('label', { for: 'filter-type', text: 'Type' }), typeSel),
      h('div', {}, h('a', { class: 'button', href: '#/submit', text: 'New job' }))),
    jobsTable(body), empty, h('p', {}, more));

  const rows = new Map();
  const after = (action) => { if (action === 'delete') { /* the deleted event removes the row */ } };
  const matches = (j) => !j.parent_id && (!status || j.status === status) && (!type || j.type === type);
  const put = (j, top) => {
    let tr = rows.get(j.id);
    if (!tr) {
      tr = h('tr', {});
      rows.set(j.id, tr);
      if (top) body.prepend(tr); else body.append(tr);
    }
    fillJobRow(tr, j, files, after);
    empty.hidden = rows.size > 0;
  };
  let before = null;
  const load = async () => {
    const p = new URLSearchParams({ limit: String(pageSize) });
    if (status) p.set('status', status);
    if (type) p.set('type', type);
    if (before) p.set('before', before);
    const jobs = await api('GET', `/jobs?${p}`);
    for (const j of jobs) put(j, false);
    if (jobs.length) before = jobs[jobs.length - 1].id;
    more.hidden = jobs.length < pageSize;
    empty.hidden = rows.size > 0;
  };
  more.addEventListener('click', () => load().catch(showError));
  await load();
  follow('/jobs/events', (name, data) => {
    if (name === 'snapshot') { for (const j of data) if (rows.has(j.id)) put(j); return; }
    if (name === 'deleted') {
      rows.get(data.id)?.remove();
      rows.delete(data.id);
      empty.hidden = rows.size > 0;
      return;
    }
    if (rows.has(data.id)) put(data);
    else if (name === 'created' && matches(data)) put(data, true);
  }, signal, { onState: (s) => { live.textContent = s; live.dataset.state = s; } });
}

function factsList(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]));
}

async function jobView(id, signal) {
  let job = await api('GET', `/jobs/${id}`);
  const files = await fileMap();
  const head = h('h1', {});
  const facts = h('section', { 'aria-label': 'Job' });
  const errorBox = h('section', { 'aria-label': 'Error' });
  const acts = h('div', { class: 'actions', id: 'job-actions' });
  const resultBox = h('section', { 'aria-label': 'Result' });
  const childBody = h('tbody', { id: 'children-body' });
  const childBox = h('section', { hidden: true }, h('h2', { text: 'Children' }), jobsTable(childBody));
  const fileLink = (fid) => {
    if (!fid) return null;
    const f = files.get(fid);
    if (!f) return h('code', { text: short(fid) });
    return h('span', {}, h('a', { href: f.kind === 'subtitle' || f.kind === 'video' || f.kind === 'audio' ? `#/preview/${fid}` : '#/files', text: f.name }), ' ',
      h('button', { type: 'button', class: 'small', text: 'Download', onclick: () => downloadFile(f) }));
  };
  const rerender = () => route();
  const render = () => {
    head.replaceChildren(`Job ${job.type} `, h('span', { class: 'muted small', text: short(job.id) }));
    facts.replaceChildren(factsList([
      ['Status', statusCell(job)],
      ['Progress', h('span', {}, progressCell(job))],
      ['Stage', job.stage],
      ['ETA', etaText(job)],
      ['Attempts', job.max_attempts ? `${job.attempts} of ${job.max_attempts}` : String(job.attempts)],
      ['Priority', job.priority ? String(job.priority) : null],
      ['Next run', job.next_run_at ? fmtTime(job.next_run_at) : null],
      ['Last error', job.last_error && job.status !== 'failed'
        ? `attempt ${job.last_error.attempt}: ${job.last_error.code}: ${job.last_error.message}` : null],
      ['Webhook', job.webhook ? `${job.webhook.status}${job.webhook.attempts ? ` after ${job.webhook.attempts} tries` : ''}${job.webhook.last_error ? ` (${job.webhook.last_error})` : ''}` : null],
      ['Reused from', job.result && job.result.reused_from ? h('a', { href: `#/jobs/${job.result.reused_from}`, text: short(job.result.reused_from) }) : null],
      ['Input', fileLink(job.file_id)],
      ['Batch', job.parent_id ? h('a', { href: `#/jobs/${job.parent_id}`, text: short(job.parent_id) }) : null],
      ['Children', job.total > 1 ? `${job.completed} of ${job.total} done` : null],
      ['Created', fmtTime(job.created_at)],
      ['Started', fmtTime(job.started_at)],
      ['Finished', fmtTime(job.finished_at)],
      ['Options', h('pre', { text: JSON.stringify(job.params, null, 2) })],
    ]));
    errorBox.replaceChildren(...(job.error_code ? [h('h2', { text: 'Error' }),
      h('p', { class: 'error', id: 'job-error' }, h('strong', { text: job.error_code }), ': ', job.error || ''),
      job.error_details ? h('pre', { text: JSON.stringify(job.error_details, null, 2) }) : null].filter(Boolean) : []));
    acts.replaceChildren(...actionButtons(job, (a) => { if (a === 'delete') location.hash = '#/jobs'; else rerender(); }));
    const outs = outputsOf(job);
    resultBox.replaceChildren(...(job.result ? [h('h2', { text: 'Result' }),
      outs.length ? h('p', {}, 'Output: ', outs.map((o) => fileLink(o))) : null,
      h('pre', { id: 'job-result', text: JSON.stringify(job.result, null, 2) })].filter(Boolean) : []));
  };
  main.replaceChildren(head, acts, facts, errorBox, resultBox, childBox);
  render();
  const children = new Map();
  const putChild = (c) => {
    let tr = children.get(c.id);
    if (!tr) { tr = h('tr', {}); children.set(c.id, tr); childBody.append(tr); }
    fillJobRow(tr, c, files);
    childBox.hidden = false;
  };
  if (job.type.startsWith('batch_') || job.total > 1) {
    for (const c of await api('GET', `/jobs/${id}/children`)) putChild(c);
  }
  follow(`/jobs/${id}/events`, (name, data) => {
    if (name.startsWith('child_')) { putChild(data); return; }
    if (name === 'deleted') { flash('This job was deleted.'); return; }
    job = data;
    render();
  }, signal, { once: true });
}

// ------------------------------------------------------------------ files

function uploadOne(file, bar, pct) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/profiles/files');
    for (const [k, v] of Object.entries(headers({ 'X-File-Name': encodeURIComponent(file.name) }))) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener('progress', (e) => {
      if (!e.lengthComputable) return;
      bar.max = e.total;
      bar.value = e.loaded;
      pct.textContent = `${Math.round((100 * e.loaded) / e.total)}%`;
    });
    xhr.addEventListener('load', () => {
      if (xhr.status === 201) resolve(JSON.parse(xhr.responseText));
      else reject(errorFrom(xhr.status, xhr.responseText));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'NetworkError', 'the upload was interrupted', null)));
    xhr.send(file);
  });
}

async function uploadAll(list, uploads, done) {
  for (const file of list) {
    const bar = h('progress', { max: file.size || 1, value: 0, 'aria-label': `upload ${file.name}` });
    const pct = h('span', { class: 'small', text: '0%' });
    const state = h('span', { class: 'small' });
    uploads.append(h('li', {}, h('span', { text: file.name }), bar, pct, state));
    for (let tries = 0; ; tries += 1) {
      try {
        const rec = await uploadOne(file, bar, pct);
        state.textContent = `uploaded as ${rec.kind}`;
        state.className = 'small status-succeeded';
        break;
      } catch (e) {
        if (e.status === 401 && tries < 5) { await askToken(e); continue; }
        state.textContent = `${e.code}: ${e.message}`;
        state.className = 'small error';
        break;
      }
    }
  }
  done();
}

async function filesView(signal) {
  const files = await api('GET', '/profiles/files?limit=1000');
  const byId = new Map(files.map((f) => [f.id, f]));
  // Which job made each generated file (from the recent jobs' results).
  const madeBy = new Map();
  for (const j of await api('GET', '/jobs?status=succeeded&limit=500')) for (const o of outputsOf(j)) madeBy.set(o, j);
  const uploads = h('ul', { class: 'uploads', id: 'uploads' });
  const pick = h('input', { type: 'file', id: 'file-pick', multiple: true });
  const reload = () => { if (!signal.aborted) route(); };
  pick.addEventListener('change', () => uploadAll([...pick.files], uploads, reload));
  const drop = h('div', { class: 'drop', id: 'drop' },
    h('p', {}, 'Drop media or subtitle files here, or choose them: '), h('label', { for: 'file-pick', class: 'visually-hidden', text: 'Files to upload' }), pick);
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); uploadAll([...e.dataTransfer.files], uploads, reload); });
  const selected = new Set();
  const submitSel = h('button', { type: 'button', class: 'primary', id: 'submit-selected', text: 'Submit a job for the selected files', disabled: true,
    onclick: () => { location.hash = `#/submit?files=${[...selected].join(',')}`; } });
  const body = h('tbody', { id: 'files-body' });
  for (const f of files) {
    const box = h('input', { type: 'checkbox', 'aria-label': `select ${f.name}`, dataset: { fileId: f.id } });
    box.addEventListener('change', () => { if (box.checked) selected.add(f.id); else selected.delete(f.id); submitSel.disabled = selected.size === 0; });
    const src = f.source_file_id ? byId.get(f.source_file_id) : null;
    const job = madeBy.get(f.id);
    const preview = f.kind === 'video' || f.kind === 'audio' || f.kind === 'subtitle'
      ? h('a', { class: 'button', href: `#/preview/${f.id}`, text: 'Preview' }) : null;
    const del = confirmButton('Delete', async () => {
      try {
        const r = await api('DELETE', `/profiles/files/${f.id}`);
        flash(`Deleted ${f.name}${r.deleted_job_ids?.length ? ` and ${r.deleted_job_ids.length} job(s) that used it` : ''}.`);
        reload();
      } catch (e) {
        if (e.status === 409) e.message = `${e.message}. A running job uses this file: cancel it or wait until it ends, then delete.`;
        showError(e);
      }
    });
    body.append(h('tr', { dataset: { fileId: f.id, kind: f.kind } },
      h('td', {}, box),
      h('td', {}, h('span', { class: 'name', text: f.name }), f.folder ? h('span', { class: 'muted small', text: ` (${f.folder})` }) : null),
      h('td', { text: f.kind }),
      h('td', { class: 'num', text: fmtBytes(f.size_bytes) }),
      h('td', { class: 'num opt', text: fmtMs(f.duration_ms) }),
      h('td', { class: 'opt', text: f.origin }),
      h('td', { class: 'opt small' },
        src ? ['from ', h('a', { href: `#/preview/${src.id}`, text: src.name })] : (f.source_file_id ? `from ${short(f.source_file_id)} (deleted)` : ''),
        job ? [h('br'), 'by ', h('a', { href: `#/jobs/${job.id}`, text: `${job.type} ${short(job.id)}` })] : null),
      h('td', {}, h('div', { class: 'actions' },
        h('button', { type: 'button', text: 'Download', onclick: () => downloadFile(f) }), preview, del))));
  }
  main.replaceChildren(
    h('h1', { text: 'Files' }), drop, uploads,
    h('div', { class: 'toolbar' }, h('div', {}, submitSel)),
    files.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { text: 'Select' }), h('th', { text: 'Name' }), h('th', { text: 'Kind' }), h('th', { text: 'Size' }),
        h('th', { class: 'opt', text: 'Duration' }), h('th', { class: 'opt', text: 'Origin' }), h('th', { class: 'opt', text: 'Lineage' }), h('th', { text: 'Actions' }))),
      body)) : h('p', { class: 'muted', text: 'No files in this profile yet.' }));
}

// ------------------------------------------------------------------ submit

function resolveSchema(doc, s) {
  let cur = s;
  for (let i = 0; cur && cur.$ref && i < 8; i += 1) cur = doc.components.schemas[cur.$ref.split('/').pop()];
  const alts = cur && (cur.oneOf || cur.anyOf);
  if (alts) {
    const real = alts.find((a) => a.type !== 'null');
    return { ...resolveSchema(doc, real), description: cur.description };
  }
  return cur || {};
}

/** One form control per property of an options schema. */
function optionFields(doc, schemaName) {
  const schema = doc.components.schemas[schemaName];
  const fields = [];
  for (const [name, raw] of Object.entries(schema.properties || {})) {
    const p = { ...resolveSchema(doc, raw), description: raw.description || resolveSchema(doc, raw).description };
    const types = [].concat(p.type || []).filter((t) => t !== 'null');
    const id = `opt-${name}`;
    const help = p.description ? h('span', { class: 'help', id: `${id}-help`, text: p.description }) : null;
    let control;
    if (p.enum) {
      control = h('select', { id, name, 'aria-describedby': help ? `${id}-help` : null },
        h('option', { value: '', text: '(default)' }), p.enum.map((v) => h('option', { value: v, text: v })));
    } else if (types.includes('boolean')) {
      control = h('input', { type: 'checkbox', id, name, 'aria-describedby': help ? `${id}-help` : null });
      fields.push(h('div', { class: 'field check' }, control, h('label', { for: id, text: name }), help));
      continue;
    } else if (types.includes('integer') || types.includes('number')) {
      control = h('input', { type: 'number', id, name, min: p.minimum ?? null, max: p.maximum ?? null, step: types.includes('integer') ? '1' : 'any', 'aria-describedby': help ? `${id}-help` : null });
    } else {
      control = h('input', { type: 'text', id, name, maxlength: p.maxLength ?? null, placeholder: p.example ?? null, 'aria-describedby': help ? `${id}-help` : null });
    }
    control.dataset.kind = types.includes('integer') ? 'integer' : types.includes('number') ? 'number' : 'string';
    fields.push(h('div', { class: 'field' }, h('label', { for: id, text: name }), control, help));
  }
  return fields;
}

function collectOptions(box) {
  const opts = {};
  for (const el of box.querySelectorAll('input, select')) {
    if (!el.name) continue;
    if (el.type === 'checkbox') { if (el.checked) opts[el.name] = true; continue; }
    if (el.value === '') continue;
    opts[el.name] = el.dataset.kind === 'integer' || el.dataset.kind === 'number' ? Number(el.value) : el.value;
  }
  return opts;
}

async function submitView(q) {
  const [server, doc, files] = await Promise.all([serverInfo(), openapi(), api('GET', '/profiles/files?limit=1000')]);
  const pre = new Set((q.get('files') || '').split(',').filter(Boolean));
  const singles = server.job_types.filter((t) => !t.batch);
  const preKinds = new Set(files.filter((f) => pre.has(f.id)).map((f) => f.kind));
  const firstFit = singles.find((t) => [...preKinds].every((k) => t.input_kinds.includes(k)));
  let typeName = q.get('type') || (preKinds.size ? firstFit?.type : 'generate_srt') || singles[0].type;
  const typeSel = h('select', { id: 'job-type', name: 'type' }, singles.map((t) => h('option', { value: t.type, text: t.type, selected: t.type === typeName })));
  const fileBox = h('fieldset', { id: 'job-files' });
  const optBox = h('fieldset', { id: 'job-options' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'job-submit', text: 'Submit' });
  const chosen = new Set(pre);
  const render = () => {
    const t = singles.find((x) => x.type === typeName);
    const fit = files.filter((f) => t.input_kinds.includes(f.kind));
    fileBox.replaceChildren(h('legend', { text: `Files (${t.input_kinds.join(' or ')}); several make a batch` }),
      fit.length ? h('ul', { class: 'pick' }, fit.map((f) => {
        const box = h('input', { type: 'checkbox', id: `pick-${f.id}`, value: f.id, checked: chosen.has(f.id) });
        box.addEventListener('change', () => { if (box.checked) chosen.add(f.id); else chosen.delete(f.id); });
        return h('li', {}, box, ' ', h('label', { for: `pick-${f.id}`, text: `${f.name} (${f.kind}, ${fmtBytes(f.size_bytes)})` }));
      })) : h('p', { class: 'muted' }, 'No suitable file in this profile: ', h('a', { href: '#/files', text: 'upload one' }), '.'));
    if (t.llm) {
      const providers = server.llm_providers;
      optBox.replaceChildren(h('legend', { text: 'LLM' }),
        ...(providers.length ? [
          h('div', { class: 'field' }, h('label', { for: 'llm-provider', text: 'Provider' }),
            h('select', { id: 'llm-provider', name: 'provider' }, providers.map((p) => h('option', { value: p, text: p })))),
          h('div', { class: 'field' }, h('label', { for: 'llm-model', text: 'Model' }),
            h('input', { id: 'llm-model', name: 'model', required: true, placeholder: 'the provider\'s model name' })),
          h('div', { class: 'field' }, h('label', { for: 'llm-sys', text: 'System prompt (optional)' }),
            h('textarea', { id: 'llm-sys', name: 'sys_msg' })),
        ] : [h('p', { class: 'error', text: 'No LLM provider is configured on this server (set OPENAI_API_KEY or MEDIAJOBS_LLM_<NAME>_BASE_URL).' })]));
    } else {
      optBox.replaceChildren(h('legend', { text: `Options (${t.options_schema})` }), ...optionFields(doc, t.options_schema));
    }
  };
  typeSel.addEventListener('change', () => { typeName = typeSel.value; render(); });
  const form = h('form', { id: 'submit-form' },
    h('div', { class: 'field' }, h('label', { for: 'job-type', text: 'Job type' }), typeSel), fileBox, optBox, h('p', {}, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = singles.find((x) => x.type === typeName);
    const ids = [...chosen].filter((id) => files.some((f) => f.id === id && t.input_kinds.includes(f.kind)));
    if (!ids.length) { showError(new ApiError(0, 'ValidationError', 'choose at least one file', null)); return; }
    const body = {};
    if (t.llm) {
      const prov = form.querySelector('#llm-provider');
      const model = form.querySelector('#llm-model');
      if (!prov) { showError(new ApiError(0, 'LLMProviderUnavailable', 'no LLM provider is configured', null)); return; }
      body.model = `${prov.value}:${model.value.trim()}`;
      const sys = form.querySelector('#llm-sys').value.trim();
      if (sys) body.sys_msg = sys;
    } else {
      const opts = collectOptions(optBox);
      if (Object.keys(opts).length) body.opts = opts;
    }
    submit.disabled = true;
    try {
      let job;
      if (ids.length === 1) job = await api('POST', '/jobs', { type: t.type, file_id: ids[0], ...body });
      else job = await api('POST', '/jobs/batch', { type: `batch_${t.type}`, file_ids: ids, ...body });
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      showError(e);
      submit.disabled = false;
    }
  });
  main.replaceChildren(h('h1', { text: 'Submit a job' }), form);
  render();
}

// ------------------------------------------------------------------ subtitle preview

/** Words of `a` and `b` marked where they differ (a longest common subsequence of words). */
function wordDiff(a, b) {
  const x = a.split(/\s+/).filter(Boolean);
  const y = b.split(/\s+/).filter(Boolean);
  const n = x.length;
  const m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i -= 1) for (let j = m - 1; j >= 0; j -= 1) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const left = [];
  const right = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { left.push(x[i]); right.push(y[j]); i += 1; j += 1; } else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) { right.push(h('mark', { text: y[j] })); j += 1; } else { left.push(h('mark', { text: x[i] })); i += 1; }
  }
  const join = (parts) => parts.flatMap((p, k) => (k ? [' ', p] : [p]));
  return [join(left), join(right)];
}

async function cuesOf(linkUrl) {
  const r = await fetch(`${linkUrl}?format=json`);
  if (!r.ok) throw await errorOf(r);
  return (await r.json()).cues;
}

async function previewView(id, q, signal) {
  const files = await api('GET', '/profiles/files?limit=1000');
  const byId = new Map(files.map((f) => [f.id, f]));
  const media = files.filter((f) => f.kind === 'video' || f.kind === 'audio');
  if (!id) {
    main.replaceChildren(h('h1', { text: 'Preview' }),
      media.length ? h('ul', {}, media.map((f) => h('li', {}, h('a', { href: `#/preview/${f.id}`, text: f.name }), h('span', { class: 'muted small', text: ` ${f.kind}, ${fmtMs(f.duration_ms)}` }))))
        : h('p', { class: 'muted' }, 'No video or audio file yet: ', h('a', { href: '#/files', text: 'upload one' }), '.'));
    return;
  }
  let file = byId.get(id);
  if (!file) throw new ApiError(404, 'NotFound', `file ${id} not found`, null);
  let player = null;
  if (file.kind === 'subtitle') {
    // A subtitle file previews on the media it was made from; one without (an uploaded SRT)
    // shows its cues and its fixed version alone.
    let root = file;
    for (let i = 0; root && root.kind === 'subtitle' && root.source_file_id && i < 16; i += 1) root = byId.get(root.source_file_id);
    if (root && root.kind !== 'subtitle') { location.hash = `#/preview/${root.id}?sub=${file.id}`; return 'redirected'; }
    if (root) file = root;
  }
  const descends = (f) => {
    for (let cur = f, i = 0; cur && i < 16; i += 1) {
      if (cur.source_file_id === file.id) return true;
      cur = byId.get(cur.source_file_id);
    }
    return false;
  };
  const subs = files.filter((f) => f.kind === 'subtitle' && (f.id === file.id || descends(f)));
  if (file.kind !== 'subtitle') {
    player = h('video', { id: 'player', controls: true, preload: 'metadata', playsInline: true });
    player.src = (await api('POST', `/profiles/files/${file.id}/link`)).url;
  }
  const cueList = h('ol', { class: 'cues', id: 'cue-list', 'aria-label': 'Cues' });
  const compare = h('section', { id: 'compare' });
  const subSel = h('select', { id: 'sub-select' }, subs.map((s) => h('option', { value: s.id, text: `${s.name} (${s.origin})`, selected: s.id === (q.get('sub') || (file.kind === 'subtitle' ? file.id : null)) })));
  let cues = [];
  let current = -1;
  const showSub = async (subId) => {
    for (const t of player ? player.querySelectorAll('track') : []) t.remove();
    cueList.replaceChildren();
    compare.replaceChildren();
    if (!subId) return;
    const sub = byId.get(subId);
    const l = await api('POST', `/profiles/files/${subId}/link`);
    const track = h('track', { kind: 'subtitles', label: sub.name, srclang: 'en', src: `${l.url}?format=vtt`, default: true });
    if (player) {
      player.append(track);
      track.track.mode = 'showing';
    }
    cues = await cuesOf(l.url);
    current = -1;
    cueList.replaceChildren(...cues.map((c, i) => h('li', {}, h('button', {
      type: 'button', dataset: { index: i, start: c.start_ms },
      onclick: () => { if (player) { player.currentTime = c.start_ms / 1000 + 0.001; player.play().catch(() => {}); } },
    }, h('span', { class: 't', text: fmtCueTime(c.start_ms) }), c.text))));
    if (!cues.length) cueList.append(h('li', { class: 'muted', text: 'No cues.' }));
    // Raw and fixed versions of the same source, side by side.
    let raw = null;
    let fixed = null;
    if (sub.origin === 'fixed' && byId.get(sub.source_file_id)?.kind === 'subtitle') { raw = byId.get(sub.source_file_id); fixed = sub; } else {
      raw = sub;
      fixed = files.find((f) => f.origin === 'fixed' && f.source_file_id === sub.id) || null;
    }
    if (raw && fixed) {
      const [a, b] = await Promise.all([raw === sub ? cues : cuesOf((await api('POST', `/profiles/files/${raw.id}/link`)).url),
        fixed === sub ? cues : cuesOf((await api('POST', `/profiles/files/${fixed.id}/link`)).url)]);
      const rows = [];
      let changed = 0;
      for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
        const [l1, r1] = wordDiff(a[i]?.text || '', b[i]?.text || '');
        if ((a[i]?.text || '') !== (b[i]?.text || '')) changed += 1;
        rows.push(h('tr', {}, h('td', { class: 'num small', text: String(i + 1) }), h('td', {}, l1), h('td', {}, r1)));
      }
      compare.replaceChildren(h('h2', { text: `Raw and fixed (${changed} of ${rows.length} cues changed)` }),
        h('div', { class: 'table-wrap' }, h('table', { class: 'compare', id: 'compare-table' },
          h('thead', {}, h('tr', {}, h('th', { text: '#' }), h('th', { text: raw.name }), h('th', { text: fixed.name }))), h('tbody', {}, rows))));
    }
  };
  player?.addEventListener('timeupdate', () => {
    const t = player.currentTime * 1000;
    const i = cues.findIndex((c) => t >= c.start_ms && t < c.end_ms);
    if (i === current) return;
    const btns = cueList.querySelectorAll('button');
    if (current >= 0 && btns[current]) btns[current].removeAttribute('aria-current');
    current = i;
    if (i >= 0 && btns[i]) { btns[i].setAttribute('aria-current', 'true'); btns[i].scrollIntoView({ block: 'nearest' }); }
  });
  subSel.addEventListener('change', () => showSub(subSel.value).catch(showError));
  main.replaceChildren(h('h1', {}, 'Preview ', h('span', { class: 'muted small', text: file.name })),
    h('div', { class: 'toolbar' }, subs.length
      ? h('div', {}, h('label', { for: 'sub-select', text: 'Subtitles' }), subSel)
      : h('p', { class: 'muted' }, 'No subtitles for this file yet: ', h('a', { href: `#/submit?files=${file.id}&type=generate_srt`, text: 'generate them' }), '.')),
    player ? h('div', { class: 'preview' }, h('div', {}, player), h('div', {}, h('h2', { text: 'Cues' }), cueList))
      : h('div', {}, h('h2', { text: 'Cues' }), cueList),
    compare);
  if (subs.length) await showSub(subSel.value);
  signal.addEventListener('abort', () => { if (player) { player.pause(); player.removeAttribute('src'); player.load(); } });
}

// ------------------------------------------------------------------ server

async function serverView(signal) {
  const box = h('div', { id: 'server-info' });
  main.replaceChildren(h('h1', { text: 'Server' }), box);
  const render = async () => {
    const s = await serverInfo(true);
    box.replaceChildren(h('div', { class: 'grid2' },
      h('section', { class: 'card' }, h('h2', { text: 'This node' }), factsList([
        ['Version', s.version], ['Node', s.node_id], ['Tokens', s.auth ? 'required' : 'not configured'],
        ['API', h('span', {}, h('a', { href: '/openapi.json', text: 'OpenAPI document' }), ' · ', h('a', { href: '/metrics', text: 'metrics' }))]])),
      h('section', { class: 'card' }, h('h2', { text: 'Transcription' }), factsList([
        ['Backend', s.transcription.backend || 'none'], ['Model', s.transcription.model], ['Runs', s.transcription.local ? 'on this machine' : 'remotely'],
        ['Usable', s.transcription.available ? 'yes' : h('span', { class: 'error', text: s.transcription.error || 'no' })]])),
      h('section', { class: 'card' }, h('h2', { text: 'LLM providers' }),
        s.llm_providers.length ? h('ul', {}, s.llm_providers.map((p) => h('li', { text: p }))) : h('p', { class: 'muted', text: 'None configured.' }))),
    h('h2', { text: 'Lanes' }),
    h('div', { class: 'table-wrap' }, h('table', { id: 'lanes' },
      h('thead', {}, h('tr', {}, ['Lane', 'Permits here', 'In use here', 'Running (all nodes)', 'Queued (all nodes)'].map((t) => h('th', { text: t })))),
      h('tbody', {}, s.lanes.map((l) => h('tr', { dataset: { lane: l.name } }, h('td', { text: l.name }), h('td', { class: 'num', text: String(l.permits) }),
        h('td', { class: 'num', text: String(l.in_use) }), h('td', { class: 'num', text: String(l.running) }), h('td', { class: 'num', text: String(l.queued) })))))),
    h('h2', { text: 'Job types' }),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Type', 'Takes', 'Options'].map((t) => h('th', { text: t })))),
      h('tbody', {}, s.job_types.map((t) => h('tr', {}, h('td', { text: t.type }), h('td', { text: t.input_kinds.join(', ') }),
        h('td', { text: t.llm ? 'model, sys_msg' : t.options_schema })))))));
  };
  await render();
  // Lane figures change with jobs: refresh on the profile's job events, at most twice a second.
  let pending = null;
  follow('/jobs/events', () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; if (!signal.aborted) render().catch(showError); }, 500);
  }, signal);
}

// ------------------------------------------------------------------ routing

let viewCtl = null;

async function route() {
  viewCtl?.abort();
  viewCtl = new AbortController();
  const { signal } = viewCtl;
  const hash = location.hash || '#/jobs';
  const [path, query] = hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean);
  const q = new URLSearchParams(query || '');
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.nav === parts[0]) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  clearNotice();
  document.title = `${parts[0] ? parts[0][0].toUpperCase() + parts[0].slice(1) : 'Jobs'} · mediajobs (${store.profile})`;
  main.replaceChildren(h('p', { class: 'muted', id: 'loading', text: 'Loading…' }));
  delete main.dataset.view;
  try {
    let outcome;
    switch (parts[0]) {
      case 'jobs': await (parts[1] ? jobView(parts[1], signal) : jobsView(q, signal)); break;
      case 'files': await filesView(signal); break;
      case 'submit': await submitView(q, signal); break;
      case 'preview': outcome = await previewView(parts[1], q, signal); break;
      case 'server': await serverView(signal); break;
      default: location.hash = '#/jobs'; return;
    }
    if (outcome !== 'redirected' && !signal.aborted) main.dataset.view = parts[0];
  } catch (e) {
    if (signal.aborted) return;
    main.replaceChildren(h('h1', { text: 'Something went wrong' }));
    showError(e);
  }
}

const profileForm = document.getElementById('profile-form');
const profileInput = document.getElementById('profile-input');
profileInput.value = store.profile;
profileForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const v = profileInput.value.trim();
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(v)) { showError(new ApiError(0, 'BadRequest', 'a profile is 1-64 of A-Z a-z 0-9 _ -', null)); return; }
  store.profile = v;
  serverCache = null;
  route();
});

window.addEventListener('hashchange', route);
route();
