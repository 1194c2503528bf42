// topfib dashboard: polls the API with a viewer token and draws what an operator reads at a glance.
//
// No data is in the page: everything comes from the JSON API with the token the operator gives
// (kept in this tab's sessionStorage only). History for the over-time charts lives here, in the
// browser: one point per /v1/status poll, the last hour kept. Every value from the API is written
// with textContent, never as HTML.
"use strict";

(() => {
  const STATUS_EVERY_MS = 2000;
  const TABLES_EVERY_MS = 5000;
  const CURVE_EVERY_MS = 15000;
  const HISTORY_POINTS = 1800; // one hour at one point per 2 s
  const STALE_AFTER_S = 10;
  const TOP_ROWS = 25;
  const CHANGES_ROWS = 50;
  const TOKEN_KEY = "topfib.dashboard.token";
  const FAMILIES = [
    ["ipv4", "IPv4", "#1f77b4"],
    ["ipv6", "IPv6", "#2ca02c"],
    ["ipv4_24", "IPv4 /24", "#9467bd"],
  ];

  class HttpError extends Error {
    constructor(status, detail) {
      super(`HTTP ${status}: ${detail}`);
      this.status = status;
    }
  }

  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    switchName: null,
    switchNames: [],
    history: new Map(), // switch -> {t, coverage, <family>, <family>_cap}: arrays of equal length
    caps: new Map(), // switch -> {family: cap}
    lastOkAt: null, // Date.now() of the last successful status poll
    lastError: null,
    timer: null,
    generation: 0, // bumped on connect/disconnect, so a stale poll loop stops
    changesAvailable: true,
    lastTablesAt: 0,
    lastCurveAt: 0,
    curve: null,
  };

  // ---- formatting ------------------------------------------------------------------------------

  function formatBps(bps) {
    if (bps === null || bps === undefined || !Number.isFinite(bps)) return "–";
    const units = ["b/s", "kb/s", "Mb/s", "Gb/s", "Tb/s"];
    let value = bps;
    let unit = 0;
    while (Math.abs(value) >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${value.toFixed(value < 10 && unit > 0 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
  }

  function formatPct(fraction, digits = 1) {
    return fraction === null || fraction === undefined ? "–" : `${(fraction * 100).toFixed(digits)} %`;
  }

  function formatUtc(unixSeconds) {
    if (!unixSeconds) return "–";
    return new Date(unixSeconds * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  function formatAge(seconds) {
    if (seconds < 0) return "0 s";
    if (seconds < 120) return `${Math.round(seconds)} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
    return `${Math.round(seconds / 86400)} d`;
  }

  function formatCount(n) {
    return Number.isFinite(n) ? n.toLocaleString("en-US") : "–";
  }

  // ---- DOM helpers -----------------------------------------------------------------------------

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillTable(tableId, rows, emptyText) {
    const body = $(tableId).tBodies[0];
    const fresh = document.createElement("tbody");
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = cell(emptyText, "empty");
      td.colSpan = $(tableId).tHead.rows[0].cells.length;
      tr.append(td);
      fresh.append(tr);
    }
    for (const cells of rows) {
      const tr = document.createElement("tr");
      tr.append(...cells);
      fresh.append(tr);
    }
    body.replaceWith(fresh);
  }

  function showAlert(text) {
    const alert = $("alert");
    alert.textContent = text || "";
    alert.hidden = !text;
  }

  // ---- API -------------------------------------------------------------------------------------

  async function api(path) {
    // Relative URLs: the dashboard also works behind a reverse proxy under a sub-path.
    let response;
    try {
      response = await fetch(path, {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (_) {
      throw new Error("API unreachable (no answer from the server)");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        if (typeof body.detail === "string") detail = body.detail;
      } catch (_) {
        // not JSON: keep the status text
      }
      throw new HttpError(response.status, detail);
    }
    return response.json();
  }

  function switchQuery() {
    return `switch=${encodeURIComponent(state.switchName)}`;
  }

  // ---- charts ----------------------------------------------------------------------------------

  const charts = {};

  function chartWidth(el) {
    return Math.max(280, el.clientWidth - 4);
  }

  // Time axes and legends in UTC, 24 h: what the logs and the other NOC tools say.
  function utcTicks(u, splits) {
    const span = u.scales.x.max - u.scales.x.min;
    return splits.map((ts) => new Date(ts * 1000).toISOString().slice(11, span > 600 ? 16 : 19));
  }

  const timeSeries = {
    label: "time (UTC)",
    value: (u, ts) => (ts === null ? "–" : new Date(ts * 1000).toISOString().slice(11, 19)),
  };
  const timeAxis = { values: utcTicks, space: 60 };

  function makeOccupancyChart() {
    const el = $("chart-occupancy");
    const series = [timeSeries];
    for (const [, label, color] of FAMILIES) {
      series.push({ label: `${label} installed`, stroke: color, width: 2, spanGaps: false });
      series.push({ label: `${label} cap`, stroke: color, width: 1, dash: [6, 4], spanGaps: false });
    }
    return new uPlot({
      width: chartWidth(el), height: 240, series,
      scales: { y: { range: (u, min, max) => [0, Math.max(10, (max ?? 0) * 1.05)] } },
      axes: [timeAxis, { label: "routes", size: 70, values: (u, splits) => splits.map(formatCount) }],
      legend: { live: true },
    }, emptyTimeData(series.length), el);
  }

  function makeCoverageChart() {
    const el = $("chart-coverage");
    const series = [timeSeries,
      { label: "coverage", stroke: "#d62728", fill: "rgba(214,39,40,0.08)", width: 2,
        value: (u, v) => (v === null ? "–" : `${v.toFixed(2)} %`) }];
    return new uPlot({
      width: chartWidth(el), height: 240, series,
      scales: { y: { range: (u, min, max) => [Math.max(0, Math.min(min ?? 0, 90) - 5), 100] } },
      axes: [timeAxis, { label: "%", size: 60 }],
    }, emptyTimeData(series.length), el);
  }

  function drawCapMarker(u) {
    const cap = state.curve ? state.curve.cap : null;
    if (!cap || cap < u.scales.x.min || cap > u.scales.x.max) return;
    const x = Math.round(u.valToPos(cap, "x", true));
    const { ctx } = u;
    ctx.save();
    ctx.strokeStyle = "#555";
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.restore();
  }

  function makeCurveChart() {
    const el = $("chart-curve");
    return new uPlot({
      width: chartWidth(el), height: 240,
      scales: { x: { time: false }, y: { range: [0, 100] } },
      series: [
        { label: "routes", value: (u, v) => (v === null ? "–" : formatCount(v)) },
        { label: "share of traffic", stroke: "#ff7f0e", fill: "rgba(255,127,14,0.08)", width: 2,
          value: (u, v) => (v === null ? "–" : `${v.toFixed(2)} %`) },
      ],
      axes: [{ label: "routes installed (top N by score)", values: (u, splits) => splits.map(formatCount) },
        { label: "% of ranked traffic", size: 60 }],
      hooks: { draw: [drawCapMarker] },
    }, [[], []], el);
  }

  function emptyTimeData(seriesCount) {
    return Array.from({ length: seriesCount }, () => []);
  }

  function resizeCharts() {
    for (const [name, chart] of Object.entries(charts)) {
      const el = $(`chart-${name}`);
      chart.setSize({ width: chartWidth(el), height: 240 });
    }
  }

  // ---- history (client-side) -------------------------------------------------------------------

  function historyFor(name) {
    let h = state.history.get(name);
    if (!h) {
      h = { t: [], coverage: [] };
      for (const [family] of FAMILIES) {
        h[family] = [];
        h[`${family}_cap`] = [];
      }
      state.history.set(name, h);
    }
    return h;
  }

  function recordStatus(report, nowSeconds) {
    for (const sw of report.switches) {
      const h = historyFor(sw.name);
      h.t.push(nowSeconds);
      h.coverage.push(sw.coverage === null || sw.coverage === undefined ? null : sw.coverage * 100);
      const caps = {};
      for (const [family] of FAMILIES) {
        const occ = sw.occupancy[family];
        // A family with no cap (e.g. no separate /24 table) is not drawn.
        const present = occ !== undefined && (occ.cap > 0 || occ.installed > 0);
        h[family].push(present ? occ.installed : null);
        h[`${family}_cap`].push(present && occ.cap > 0 ? occ.cap : null);
        caps[family] = occ ? occ.cap : 0;
      }
      state.caps.set(sw.name, caps);
      while (h.t.length > HISTORY_POINTS) {
        for (const key of Object.keys(h)) h[key].shift();
      }
    }
  }

  // A failed poll leaves a gap in the over-time charts instead of a line drawn across the outage.
  function recordGap(nowSeconds) {
    for (const h of state.history.values()) {
      if (h.t.length === 0) continue;
      for (const key of Object.keys(h)) h[key].push(key === "t" ? nowSeconds : null);
      while (h.t.length > HISTORY_POINTS) {
        for (const key of Object.keys(h)) h[key].shift();
      }
    }
    if (state.switchName) redrawHistory();
  }

  function redrawHistory() {
    const h = historyFor(state.switchName);
    const occupancy = [h.t];
    for (const [family] of FAMILIES) occupancy.push(h[family], h[`${family}_cap`]);
    charts.occupancy.setData(occupancy);
    // Families without data are hidden from the legend too.
    FAMILIES.forEach(([family], i) => {
      const shown = h[family].some((v) => v !== null);
      for (const idx of [1 + 2 * i, 2 + 2 * i]) {
        if (charts.occupancy.series[idx].show !== shown) charts.occupancy.setSeries(idx, { show: shown });
      }
    });
    charts.coverage.setData([h.t, h.coverage]);
  }

  // ---- panels ----------------------------------------------------------------------------------

  function occupancyText(occ) {
    if (!occ || (occ.cap === 0 && occ.installed === 0)) return "–";
    if (occ.cap === 0) return formatCount(occ.installed);
    return `${formatCount(occ.installed)} / ${formatCount(occ.cap)} (${formatPct(occ.installed / occ.cap, 0)})`;
  }

  function occupancyClass(occ) {
    if (!occ || occ.cap === 0) return "num";
    return occ.installed > occ.cap ? "num bad" : occ.installed >= 0.98 * occ.cap ? "num warn" : "num";
  }

  function renderStatus(report) {
    const now = Date.now() / 1000;
    fillTable("sessions", report.switches.map((sw) => [
      cell(sw.name),
      cell(sw.session_state, sw.session_state === "up" ? "ok" : "bad"),
      cell(sw.session_since ? `${formatAge(now - sw.session_since)} ago` : "–"),
      cell(sw.active ? "active" : "standby", sw.active ? "" : "warn"),
      ...FAMILIES.map(([family]) => cell(occupancyText(sw.occupancy[family]),
        occupancyClass(sw.occupancy[family]))),
      cell(formatPct(sw.coverage), "num"),
      cell(sw.churn_per_hour.toFixed(0), "num"),
      cell(formatCount(sw.requests_active), "num"),
    ]), "no switches configured");
    const c = report.collector;
    $("collector").textContent = `collector: ${c.datagrams_per_s.toFixed(1)} datagrams/s, `
      + `${c.samples_per_s.toFixed(1)} samples/s, ${c.bad_datagrams_per_s.toFixed(1)} bad datagrams/s`;
    $("collector").className = c.bad_datagrams_per_s > 0 ? "note warn" : "note";
  }

  function updateSwitchList(report) {
    const names = report.switches.map((sw) => sw.name);
    if (names.join("\n") === state.switchNames.join("\n")) return;
    state.switchNames = names;
    const select = $("switch");
    select.replaceChildren(...names.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }));
    if (!names.includes(state.switchName)) state.switchName = names[0] ?? null;
    select.value = state.switchName ?? "";
    select.disabled = names.length < 2;
    for (const el of document.querySelectorAll("[data-switch-label]")) el.textContent = state.switchName ?? "";
  }

  function renderTop(top) {
    const now = Date.now() / 1000;
    fillTable("top", top.prefixes.map((row, i) => [
      cell(String(i + 1), "num"),
      cell(row.prefix, "mono"),
      cell(formatBps(row.score), "num"),
      cell(formatBps(row.rate_fast_bps), "num"),
      cell(formatBps(row.rate_slow_bps), "num"),
      cell(row.error_pct === null ? "no samples" : `± ${row.error_pct.toFixed(1)} %`,
        row.error_pct !== null && row.error_pct > 50 ? "num warn" : "num"),
      cell(formatCount(row.samples), "num"),
      cell(row.next_hop ?? "–", "mono"),
      cell(row.reason ?? (row.installed ? "installed" : "not installed"), row.reason ? `reason-${row.reason}` : "muted"),
      cell(row.installed_since ? `${formatAge(now - row.installed_since)} ago` : "–"),
    ]), "no traffic measured yet");
    fillTable("fib-reasons", [[
      cell(formatCount(top.fib_by_reason.pinned ?? 0), "num"),
      cell(formatCount(top.fib_by_reason.request ?? 0), "num"),
      cell(formatCount(top.fib_by_reason.topn ?? 0), "num"),
    ]], "");
  }

  function renderRequests(list) {
    const now = Date.now() / 1000;
    $("requests-count").textContent = `${list.requests.length} on ${state.switchName}`;
    fillTable("requests", list.requests.map((r) => [
      cell(r.ip, "mono"),
      cell(r.ap),
      cell(`${formatAge(now - r.requested_at)} ago`),
      cell(formatAge(r.expires_at - now), "num"),
    ]), "no active requests");
  }

  function renderChanges(changes) {
    fillTable("changes", changes.changes.map((c) => [
      cell(formatUtc(c.at), "mono"),
      cell(c.action, c.action === "announce" ? "ok" : "warn"),
      cell(c.prefix, "mono"),
      cell(c.next_hop ?? "–", "mono"),
      cell(c.reason),
    ]), "no announces or withdraws yet");
    $("changes-note").textContent = "";
  }

  function renderCurve(curve) {
    const caps = state.caps.get(curve.switch) || {};
    const cap = (caps.ipv4 || 0) + (caps.ipv6 || 0);
    state.curve = { ...curve, cap };
    const xs = curve.points.map((p) => p.routes);
    const ys = curve.points.map((p) => p.share * 100);
    charts.curve.setData([xs, ys]);
    let note = `${formatCount(curve.ranked)} prefixes ranked, ${formatBps(curve.total_bps)} in all`;
    if (curve.truncated) note += " (ranking cut: shares are of the top prefixes only)";
    if (cap > 0 && xs.length > 0) {
      note += `; the current caps (IPv4 + IPv6: ${formatCount(cap)} routes, dashed line) carry `
        + `${shareAt(xs, ys, cap).toFixed(1)} %`;
    }
    $("curve-note").textContent = note;
  }

  function shareAt(xs, ys, n) {
    if (n >= xs[xs.length - 1]) return ys[ys.length - 1];
    let previous = [0, 0];
    for (let i = 0; i < xs.length; i += 1) {
      if (xs[i] >= n) {
        const [x0, y0] = previous;
        return y0 + ((ys[i] - y0) * (n - x0)) / (xs[i] - x0);
      }
      previous = [xs[i], ys[i]];
    }
    return ys[ys.length - 1];
  }

  // ---- polling ---------------------------------------------------------------------------------

  function renderFreshness() {
    const el = $("freshness");
    if (!state.token) {
      el.textContent = "not connected";
      el.className = "freshness";
      return;
    }
    if (state.lastOkAt === null) {
      el.textContent = state.lastError ? `no data: ${state.lastError}` : "connecting…";
      el.className = state.lastError ? "freshness stale" : "freshness";
      return;
    }
    const age = (Date.now() - state.lastOkAt) / 1000;
    const stale = age > STALE_AFTER_S;
    el.textContent = stale
      ? `STALE: last update ${formatAge(age)} ago${state.lastError ? ` (${state.lastError})` : ""}`
      : `live, updated ${formatAge(age)} ago (UTC ${formatUtc(state.lastOkAt / 1000).slice(11)})`;
    el.className = stale ? "freshness stale" : "freshness live";
  }

  async function pollStatus() {
    const report = await api("v1/status");
    const now = Date.now();
    recordStatus(report, now / 1000);
    updateSwitchList(report);
    renderStatus(report);
    if (state.switchName) redrawHistory();
    state.lastOkAt = now;
  }

  // Renders an answer only if the operator has not picked another switch in the meantime.
  function forSwitch(name, render) {
    return (body) => {
      if (state.switchName === name) render(body);
    };
  }

  async function pollTables() {
    const name = state.switchName;
    if (!name) return;
    const jobs = [
      api(`v1/dashboard/top?${switchQuery()}&n=${TOP_ROWS}`).then(forSwitch(name, renderTop)),
      api(`v1/requests?${switchQuery()}`).then(forSwitch(name, renderRequests)),
    ];
    if (state.changesAvailable) {
      jobs.push(api(`v1/changes?${switchQuery()}&n=${CHANGES_ROWS}`).then(forSwitch(name, renderChanges), (err) => {
        if (err instanceof HttpError && err.status === 501) {
          state.changesAvailable = false; // asked once; this controller keeps no change log
          fillTable("changes", [], "not reported by this controller");
          $("changes-note").textContent = err.message;
          return;
        }
        throw err;
      }));
    }
    await settleAll(jobs);
  }

  async function pollCurve() {
    if (!state.switchName) return;
    const name = state.switchName;
    forSwitch(name, renderCurve)(await api(`v1/dashboard/curve?${switchQuery()}&points=200`));
  }

  async function settleAll(jobs) {
    const results = await Promise.allSettled(jobs);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  async function tick(generation) {
    if (generation !== state.generation) return;
    const now = Date.now();
    const jobs = [pollStatus()];
    // Tables and the curve need the switch list, known after the first status poll.
    if (state.switchName && now - state.lastTablesAt >= TABLES_EVERY_MS) {
      state.lastTablesAt = now;
      jobs.push(pollTables());
    }
    if (state.switchName && now - state.lastCurveAt >= CURVE_EVERY_MS) {
      state.lastCurveAt = now;
      jobs.push(pollCurve());
    }
    let delay = STATUS_EVERY_MS;
    try {
      await settleAll(jobs);
      state.lastError = null;
      showAlert("");
    } catch (err) {
      if (generation !== state.generation) return;
      state.lastError = err.message;
      if (err instanceof HttpError && err.status === 401) {
        disconnect("The API refused this token (401). Enter a valid viewer token.");
        return;
      }
      if (err instanceof HttpError && err.status === 403) {
        disconnect("This token's role may not read the dashboard data (403): use a viewer or operator token.");
        return;
      }
      if (err instanceof HttpError && err.status === 429) delay = STATUS_EVERY_MS * 5;
      showAlert(`Last poll failed: ${err.message}. Retrying.`);
      recordGap(Date.now() / 1000);
      // The first poll after a switch appears may lack it: let the next tick fetch tables again.
      state.lastTablesAt = 0;
    }
    renderFreshness();
    if (generation === state.generation) state.timer = setTimeout(() => tick(generation), delay);
  }

  // ---- token handling --------------------------------------------------------------------------

  function tokenFromFragment() {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (!match) return null;
    // Take it out of the address bar and history: it should not linger on screen or in bookmarks.
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
    return decodeURIComponent(match[1]);
  }

  function connect(token) {
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    state.generation += 1;
    state.lastOkAt = null;
    state.lastError = null;
    state.lastTablesAt = 0;
    state.lastCurveAt = 0;
    state.changesAvailable = true;
    $("token-form").hidden = true;
    $("disconnect").hidden = false;
    showAlert("");
    clearTimeout(state.timer);
    renderFreshness();
    tick(state.generation);
  }

  function disconnect(message) {
    state.generation += 1;
    clearTimeout(state.timer);
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    $("token-form").hidden = false;
    $("disconnect").hidden = true;
    showAlert(message || "");
    renderFreshness();
  }

  function start() {
    charts.occupancy = makeOccupancyChart();
    charts.coverage = makeCoverageChart();
    charts.curve = makeCurveChart();
    new ResizeObserver(() => resizeCharts()).observe(document.querySelector("main"));

    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (token) connect(token);
    });
    $("disconnect").addEventListener("click", () => disconnect(""));
    $("switch").addEventListener("change", (event) => {
      state.switchName = event.target.value;
      for (const el of document.querySelectorAll("[data-switch-label]")) el.textContent = state.switchName;
      redrawHistory();
      state.lastTablesAt = 0;
      state.lastCurveAt = 0;
      state.changesAvailable = true;
      state.generation += 1;
      clearTimeout(state.timer);
      tick(state.generation);
    });
    setInterval(renderFreshness, 1000);

    const token = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
    if (token) connect(token);
    else renderFreshness();
  }

  // For tests and the curious: the chart objects and the state they draw.
  window.topfibDashboard = { charts, state };
  start();
})();
