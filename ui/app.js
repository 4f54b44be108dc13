// The SLO page: signs in with a token kept in sessionStorage (sent as a bearer header, never in a URL), polls
// /v1/slo and draws it with uPlot. Every shown number carries its raw value in data-value (the browser test
// compares them with /v1/slo).
'use strict';
(() => {
  const TOKEN_KEY = 'unikctl.token';
  const POLL_MS = 5000;
  const $ = (id) => document.getElementById(id);
  let timer = null;
  const charts = {};

  const fmt = {
    ms: (v) => (v === null ? '–' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`),
    pct: (v) => (v === null ? '–' : `${(v * 100).toFixed(v >= 0.99 && v < 1 ? 2 : 1)} %`),
    x: (v) => (v === null ? '–' : `${v.toFixed(1)}×`),
    int: (v) => (v === null ? '–' : String(Math.round(v))),
    money: (v) => (v === null ? '–' : v === 0 ? '0' : Math.abs(v) < 0.01 ? v.toExponential(2) : v.toFixed(4)),
    rate: (v) => (v === null ? '–' : v.toFixed(2)),
  };

  /** Each number of the page and where it is in /v1/slo's answer. */
  const FIELDS = [
    ['boot-p50', (s) => s.boot.p50Ms], ['boot-p95', (s) => s.boot.p95Ms], ['boot-objective', (s) => s.boot.objective.p95Ms],
    ['boot-budget', (s) => s.boot.budgetRemaining], ['boot-burn-1h', (s) => s.boot.burnRate['1h']], ['boot-burn-5m', (s) => s.boot.burnRate['5m']],
    ['deploy-rate', (s) => s.deploys.successRate], ['deploy-objective', (s) => s.deploys.objective], ['deploy-succeeded', (s) => s.deploys.succeeded],
    ['deploy-platform', (s) => s.deploys.platformFailures], ['deploy-user', (s) => s.deploys.userErrors], ['deploy-budget', (s) => s.deploys.budgetRemaining],
    ['deploy-burn-1h', (s) => s.deploys.burnRate['1h']], ['deploy-burn-5m', (s) => s.deploys.burnRate['5m']],
    ['cost-total', (s) => s.cost.total], ['cost-vm-seconds', (s) => s.cost.vmSeconds], ['cost-per-request', (s) => s.cost.perRequest], ['rps', (s) => s.requests.perSecond],
  ];

  function show(id, value) {
    const el = $(id);
    el.dataset.value = value === null ? 'null' : String(value);
    el.textContent = fmt[el.dataset.format](value);
  }

  function query() {
    const p = new URLSearchParams({ window: $('window').value });
    if ($('app').value.trim()) p.set('app', $('app').value.trim());
    if ($('tenant').value.trim()) p.set('tenant', $('tenant').value.trim());
    return `/v1/slo?${p}`;
  }

  async function fetchSlo(token) {
    const res = await fetch(query(), { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error(body && body.message ? `${body.code}: ${body.message}` : `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function chart(id, series, data) {
    const el = $(id);
    const width = Math.max(240, el.clientWidth);
    if (!charts[id]) {
      charts[id] = new uPlot({
        width, height: 200, series: [{}, ...series],
        axes: [{ stroke: '#8a939c', grid: { stroke: '#2c343d' } }, { stroke: '#8a939c', grid: { stroke: '#2c343d' } }],
        scales: { x: { time: true } },
      }, data, el);
    } else {
      charts[id].setData(data);
    }
  }

  function rows(tableId, list, cells) {
    const body = $(tableId).querySelector('tbody');
    body.replaceChildren(...list.map((item) => {
      const tr = document.createElement('tr');
      for (const c of cells(item)) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      return tr;
    }));
    if (list.length === 0) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = $(tableId).querySelectorAll('th').length;
      td.className = 'dim';
      td.textContent = 'none';
      tr.append(td);
      body.append(tr);
    }
  }

  function render(s) {
    for (const [id, pick] of FIELDS) show(id, pick(s));
    $('requests-note').textContent = s.requests.note || '';

    const t = s.boot.series.map((b) => b.t / 1000);
    chart('chart-boot', [{ label: 'p50', stroke: '#4aa3ff', width: 2, spanGaps: true, points: { show: true } }, { label: 'p95', stroke: '#ffb84a', width: 2, spanGaps: true, points: { show: true } }],
      [t, s.boot.series.map((b) => b.p50Ms), s.boot.series.map((b) => b.p95Ms)]);
    chart('chart-deploys', [{ label: 'success %', stroke: '#5ad17a', width: 2, spanGaps: true, points: { show: true } }, { label: 'objective %', stroke: '#8a939c', dash: [4, 4] }],
      [s.deploys.series.map((b) => b.t / 1000), s.deploys.series.map((b) => (b.successRate === null ? null : b.successRate * 100)), s.deploys.series.map(() => s.deploys.objective * 100)]);
    // requests per second in each bucket; without a request source (no service yet) the chart keeps its axes and the
    // tile says why
    chart('chart-requests', [{ label: 'req/s', stroke: '#c792ea', width: 2, points: { show: true } }],
      [s.requests.series.map((b) => b.t / 1000), s.requests.series.map((b) => b.perSecond)]);

    rows('cost-apps', s.cost.perApp, (a) => [a.tenant || '–', a.app, fmt.int(a.vmSeconds), fmt.money(a.cost)]);
    rows('codes', [...s.deploys.platformByCode.map((c) => ({ ...c, fault: 'platform' })), ...s.deploys.userByCode.map((c) => ({ ...c, fault: 'user' }))], (c) => [c.code, c.fault, String(c.count)]);
    rows('apps', s.apps, (a) => [a.tenant || '–', a.name, a.state, a.node, fmt.ms(a.bootMs)]);
    rows('nodes', s.nodes, (n) => [n.name, n.cordoned ? `${n.status} (cordoned)` : n.status]);
    $('status').textContent = `${s.window} window, updated ${new Date(s.to).toLocaleTimeString()}${s.filter.tenant ? ` · tenant ${s.filter.tenant}` : ''}${s.filter.app ? ` · app ${s.filter.app}` : ''}`;
    document.body.dataset.updated = String(s.to);
  }

  async function refresh() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return signedOut('');
    try {
      render(await fetchSlo(token));
    } catch (e) {
      if (e.status === 401) return signedOut('the token was refused');
      $('status').textContent = String(e.message);
    }
  }

  function signedOut(message) {
    clearInterval(timer);
    timer = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('dashboard').classList.add('hidden');
    $('controls').classList.add('hidden');
    $('signin').classList.remove('hidden');
    $('signin-error').textContent = message;
  }

  /** `first`: the answer the sign-in already fetched (rendered at once, not fetched twice). */
  function signedIn(first) {
    $('signin').classList.add('hidden');
    $('dashboard').classList.remove('hidden');
    $('controls').classList.remove('hidden');
    if (first) render(first);
    else void refresh();
    timer = setInterval(refresh, POLL_MS);
  }

  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    $('signin-error').textContent = '';
    try {
      const s = await fetchSlo(token);
      sessionStorage.setItem(TOKEN_KEY, token);
      $('token').value = '';
      signedIn(s);
    } catch (e) {
      $('signin-error').textContent = e.status === 401 || e.status === 403 ? 'the token was refused' : String(e.message);
    }
  });
  $('signout').addEventListener('click', () => signedOut(''));
  $('controls').addEventListener('change', () => void refresh());
  $('controls').addEventListener('submit', (ev) => { ev.preventDefault(); void refresh(); });
  new ResizeObserver(() => {
    for (const [id, c] of Object.entries(charts)) c.setSize({ width: Math.max(240, $(id).clientWidth), height: 200 });
  }).observe(document.body);
  if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
})();
