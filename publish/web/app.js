// SPDX-License-Identifier: Apache-2.0
// wattpipe's live page (docs/web.md): updates come pushed over a WebSocket
// (JSON text: window, health, transactions; binary: the scope). Plain canvas,
// nothing fetched from anywhere but the daemon.
'use strict';

const state = { last: null, updates: 0, scopes: 0, scope: null, trend: [], errors: [] };
window.wattpipe = state;  // for the browser test

const COLORS = ['#d62728', '#2ca02c', '#1f77b4', '#7f7f7f'];
const $ = (id) => document.getElementById(id);
const fmt = (v, d) => (typeof v === 'number' && isFinite(v) ? v.toFixed(d) : '–');

// ---- connection ----------------------------------------------------------
function connect() {
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { $('link').textContent = 'live'; $('link').className = 'ok'; };
  ws.onclose = () => { $('link').textContent = 'disconnected'; $('link').className = 'bad'; setTimeout(connect, 1000); };
  ws.onmessage = (ev) => {
    try {
      if (typeof ev.data === 'string') onUpdate(JSON.parse(ev.data));
      else onScope(ev.data);
    } catch (e) { state.errors.push(String(e)); throw e; }
  };
}

// ---- updates -------------------------------------------------------------
function onUpdate(m) {
  state.last = m;
  state.updates++;
  $('meter').textContent = `${m.meter_id} · module ${m.module_id} · ${m.version}`;
  const w = m.window;
  if (w) {
    $('clock').textContent = w.timestamp;
    const dc = w.voltage_V && 'DC' in w.voltage_V;
    values(w, dc, 'values');
    trend(w, dc);
    if (dc) rippleView(w, m.steps || []); else harmonicsView(w);
    phasors(w, dc);
  }
  points(m);
  efficiencyMap(m.efficiency_map);
  transactions(m.transactions || []);
  health(m.health || {}, m.web || {});
}

// A stream of several measuring points: this one (the charger's DC output)
// and beside it the others (its grid input), each an EVerest module.
const POINT_NAMES = { car: 'DC output', grid: 'Grid input' };
function points(m) {
  const others = m.points || [];
  $('values-title').textContent = m.point ? `${POINT_NAMES[m.point] || m.point} · module ${m.module_id}` : 'Values';
  $('grid-panel').hidden = !others.length;
  if (!others.length) return;
  const p = others[0], w = p.window;
  $('grid-title').textContent = `${POINT_NAMES[p.name] || p.name} · module ${p.module_id}`;
  if (!w) return;
  const dc = w.voltage_V && 'DC' in w.voltage_V;
  values(w, dc, 'grid-values');
  $('grid-note').textContent = w.thd_I_percent
    ? `THD I ${['L1', 'L2', 'L3'].filter((k) => k in w.thd_I_percent).map((k) => `${k} ${fmt(w.thd_I_percent[k], 2)} %`).join(', ')}; unbalance u2 ${fmt(w.unbalance_u2_percent, 3)} %`
    : '';
}

// Efficiency by output power over the run: a bar per bin, its energies as the title.
function efficiencyMap(map) {
  $('map-panel').hidden = !map;
  if (!map) return;
  const c = $('effmap'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const bins = map.bins;
  $('map-note').textContent = bins.length
    ? `${bins.length} bins of ${fmt(map.bin_W / 1000, 1)} kW; best ${fmt(100 * Math.max(...bins.map((b) => b.efficiency)), 2)} %`
    : 'no charging window yet';
  if (!bins.length) return;
  const lo = Math.max(0, Math.min(...bins.map((b) => b.efficiency)) - 0.02), hi = 1;
  const x0 = 50, bw = (c.width - x0 - 10) / bins.length, h = c.height - 30;
  g.font = '11px sans-serif'; g.fillStyle = '#333';
  g.fillText(`${fmt(100 * hi, 0)} %`, 2, 12); g.fillText(`${fmt(100 * lo, 0)} %`, 2, h);
  bins.forEach((b, k) => {
    const bh = Math.max(1, ((b.efficiency - lo) / (hi - lo)) * (h - 10));
    g.fillStyle = COLORS[2]; g.fillRect(x0 + k * bw + 1, h - bh, Math.max(1, bw - 2), bh);
    if (bins.length <= 16 || k % Math.ceil(bins.length / 16) === 0) {
      g.fillStyle = '#333'; g.fillText(fmt(b.p_lo_W / 1000, 0), x0 + k * bw + 1, c.height - 14);
    }
  });
  g.fillStyle = '#333'; g.fillText('kW', c.width - 24, c.height - 2);
}

const phasesOf = (w, dc) => (dc ? ['DC'] : ['L1', 'L2', 'L3'].filter((p) => w.voltage_V && p in w.voltage_V));

function values(w, dc, id) {
  const ph = phasesOf(w, dc);
  const cols = dc ? ['DC'] : [...ph, 'total'];
  const key = (o, p) => (o ? (p === 'DC' ? (o.DC ?? o.total ?? o.L1) : o[p]) : undefined);
  const rows = [
    ['U', 'V', 2, (p) => key(w.voltage_V, p)],
    ['I', 'A', 3, (p) => key(w.current_A, p)],
    ['P', 'W', 1, (p) => (p === 'DC' ? w.power_W?.total : w.power_W?.[p])],
    ['Q', 'var', 1, (p) => (dc ? undefined : w.VAR?.[p])],
    ['S', 'VA', 1, (p) => (p === 'DC' ? w.S_VA?.total : w.S_VA?.[p])],
    ['PF', '', 4, (p) => (p === 'DC' ? w.PF?.total : w.PF?.[p])],
    ['f', 'Hz', 3, (p) => (dc ? undefined : w.frequency_Hz?.[p])],
    ['E import', 'Wh', 3, (p) => (p === 'DC' ? w.energy_Wh_import?.total : w.energy_Wh_import?.[p])],
    ['E export', 'Wh', 3, (p) => (p === 'DC' ? w.energy_Wh_export?.total : w.energy_Wh_export?.[p])],
  ];
  // Measured against the charger's input on the same samples (two points: docs/wprb.md).
  if ('P_in_W' in w || 'efficiency' in w)
    rows.push(['P input', 'W', 1, (p) => (p === 'DC' || p === 'total' ? w.P_in_W : undefined)],
              ['Loss', 'W', 1, (p) => (p === 'DC' || p === 'total' ? w.loss_W : undefined)],
              ['Efficiency', '%', 3, (p) => (p === 'DC' || p === 'total' ? (w.efficiency ?? NaN) * 100 : undefined)]);
  let h = '<tr><th></th>' + cols.map((c) => `<th>${c}</th>`).join('') + '<th></th></tr>';
  for (const [name, unit, d, get] of rows)
    h += `<tr><td>${name}</td>` + cols.map((c) => `<td data-q="${name}" data-p="${c}">${fmt(get(c), d)}</td>`).join('') + `<td>${unit}</td></tr>`;
  $(id).innerHTML = h;
}

function trend(w, dc) {
  const ph = phasesOf(w, dc);
  const p0 = ph[0];
  state.trend.push({
    t: Date.parse(w.timestamp) / 1000,
    P: w.power_W?.total,
    U: dc ? w.voltage_V?.DC : w.voltage_V?.[p0],
    I: dc ? w.current_A?.DC : w.current_A?.[p0],
    f: dc ? undefined : w.frequency_Hz?.[p0],
    eff: typeof w.efficiency === 'number' ? 100 * w.efficiency : undefined,
  });
  const cut = state.trend[state.trend.length - 1].t - 300;
  while (state.trend.length && state.trend[0].t < cut) state.trend.shift();
  const c = $('trends'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const series = [['P', 'W'], ['U', 'V'], ['I', 'A'], ['f', 'Hz'], ['eff', '%']].filter(([k]) => state.trend.some((s) => typeof s[k] === 'number'));
  const h = c.height / series.length;
  const t0 = state.trend[0].t, t1 = Math.max(t0 + 1, state.trend[state.trend.length - 1].t);
  series.forEach(([k, unit], i) => {
    const ys = state.trend.map((s) => s[k]).filter((v) => typeof v === 'number');
    let lo = Math.min(...ys), hi = Math.max(...ys);
    if (hi - lo < 1e-9 * Math.max(1, Math.abs(hi))) { lo -= 0.5; hi += 0.5; }
    const top = i * h + 14, bot = (i + 1) * h - 4;
    g.strokeStyle = '#ddd'; g.strokeRect(60, top, c.width - 70, bot - top);
    g.fillStyle = '#333'; g.font = '12px sans-serif';
    g.fillText(`${k} ${unit}`, 4, top + 10);
    g.fillText(fmt(hi, 2), 4, top + 24); g.fillText(fmt(lo, 2), 4, bot);
    g.strokeStyle = COLORS[i]; g.beginPath();
    state.trend.forEach((s, j) => {
      if (typeof s[k] !== 'number') return;
      const x = 60 + ((s.t - t0) / (t1 - t0)) * (c.width - 70);
      const y = bot - ((s[k] - lo) / (hi - lo)) * (bot - top);
      if (j === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  });
}

function phasors(w, dc) {
  const c = $('phasors'), g = c.getContext('2d');
  $('phasor-panel').style.display = dc ? 'none' : '';
  g.clearRect(0, 0, c.width, c.height);
  if (dc) return;
  if (!w.harmonics_U_V) { $('phasor-note').textContent = 'Phasors need the analysis (--analysis on).'; return; }
  $('phasor-note').textContent = 'U solid, I dashed (scaled to its own largest).';
  const cx = c.width / 2, cy = c.height / 2, r = c.width / 2 - 20;
  g.strokeStyle = '#ddd'; g.beginPath(); g.arc(cx, cy, r, 0, 2 * Math.PI); g.stroke();
  const ph = ['L1', 'L2', 'L3'].filter((p) => w.harmonics_U_V[p]);
  const umax = Math.max(...ph.map((p) => w.harmonics_U_V[p][0])) || 1;
  const imax = Math.max(...ph.map((p) => w.harmonics_I_A[p][0])) || 1;
  const arrow = (mag, deg, color, dash) => {
    const a = (deg * Math.PI) / 180, x = cx + mag * Math.cos(a), y = cy - mag * Math.sin(a);
    g.setLineDash(dash ? [6, 4] : []); g.strokeStyle = color; g.lineWidth = 2;
    g.beginPath(); g.moveTo(cx, cy); g.lineTo(x, y); g.stroke();
    g.setLineDash([]); g.fillStyle = color; g.beginPath(); g.arc(x, y, 3, 0, 2 * Math.PI); g.fill();
  };
  ph.forEach((p, k) => {
    arrow((r * w.harmonics_U_V[p][0]) / umax, w.harmonics_U_deg[p][0], COLORS[k], false);
    arrow((0.8 * r * w.harmonics_I_A[p][0]) / imax, w.harmonics_I_deg[p][0], COLORS[k], true);
  });
  g.lineWidth = 1;
}

function harmonicsView(w) {
  $('analysis-title').textContent = 'Harmonics of I, % of the fundamental (orders 2..50)';
  const c = $('bars'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  if (!w.harmonics_I_A) { $('analysis-text').textContent = 'Harmonics need the analysis (--analysis on).'; return; }
  const ph = ['L1', 'L2', 'L3'].filter((p) => w.harmonics_I_A[p]);
  const pct = ph.map((p) => w.harmonics_I_A[p].map((v) => (100 * v) / (w.harmonics_I_A[p][0] || 1)));
  const top = Math.max(1, ...pct.flatMap((a) => a.slice(1)));
  const x0 = 40, bw = (c.width - x0 - 10) / 49;
  g.fillStyle = '#333'; g.font = '11px sans-serif';
  g.fillText(fmt(top, 1) + ' %', 2, 12);
  for (let h = 2; h <= 50; h++) {
    ph.forEach((p, k) => {
      const v = pct[k][h - 1], bh = (v / top) * (c.height - 30);
      g.fillStyle = COLORS[k];
      g.fillRect(x0 + (h - 2) * bw + (k * bw) / ph.length, c.height - 18 - bh, bw / ph.length - 1, bh);
    });
    if (h % 5 === 0 || h === 2) { g.fillStyle = '#333'; g.fillText(String(h), x0 + (h - 2) * bw, c.height - 4); }
  }
  let t = '<table><tr><th></th>' + ph.map((p) => `<th>${p}</th>`).join('') + '</tr>';
  t += '<tr><td>THD U %</td>' + ph.map((p) => `<td>${fmt(w.thd_U_percent?.[p], 2)}</td>`).join('') + '</tr>';
  t += '<tr><td>THD I %</td>' + ph.map((p) => `<td>${fmt(w.thd_I_percent?.[p], 2)}</td>`).join('') + '</tr>';
  t += '<tr><td>crest factor I</td>' + ph.map((p) => `<td>${fmt(w.crest_factor_I?.[p], 3)}</td>`).join('') + '</tr></table>';
  t += `<p>unbalance u2 ${fmt(w.unbalance_u2_percent, 3)} %, u0 ${fmt(w.unbalance_u0_percent, 3)} %</p>`;
  $('analysis-text').innerHTML = t;
}

function rippleView(w, steps) {
  $('analysis-title').textContent = 'DC ripple and current steps';
  const c = $('bars'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  if (w.ripple_I_rms_A === undefined) { $('analysis-text').textContent = 'Ripple needs the analysis (--analysis on).'; return; }
  const bands = (w.ripple_I_bands || []).map((b, k) => ({ b, u: (w.ripple_U_bands || [])[k] }));
  const top = Math.max(1e-9, ...bands.map(({ b }) => b.rms));
  const bw = (c.width - 60) / Math.max(1, bands.length);
  g.font = '12px sans-serif';
  bands.forEach(({ b }, k) => {
    const bh = (b.rms / top) * (c.height - 40);
    g.fillStyle = COLORS[2]; g.fillRect(50 + k * bw + 10, c.height - 20 - bh, bw - 20, bh);
    g.fillStyle = '#333';
    g.fillText(`${b.f_lo_Hz}–${b.f_hi_Hz} Hz: ${fmt(b.rms, 3)} A`, 50 + k * bw + 10, c.height - 5);
  });
  let t = '<table><tr><th></th><th>U</th><th>I</th></tr>';
  t += `<tr><td>ripple RMS</td><td>${fmt(w.ripple_U_rms_V, 3)} V</td><td>${fmt(w.ripple_I_rms_A, 3)} A</td></tr>`;
  t += `<tr><td>ripple peak-to-peak</td><td>${fmt(w.ripple_U_pp_V, 3)} V</td><td>${fmt(w.ripple_I_pp_A, 3)} A</td></tr>`;
  t += `<tr><td>min / max</td><td>${fmt(w.U_min_V, 2)} / ${fmt(w.U_max_V, 2)} V</td><td>${fmt(w.I_min_A, 2)} / ${fmt(w.I_max_A, 2)} A</td></tr>`;
  const peaks = (w.ripple_I_peaks || []).map((p) => `${fmt(p.f_Hz, 1)} Hz ${fmt(p.amplitude_A, 3)} A`).join(', ');
  t += `<tr><td>largest I components</td><td colspan="2">${peaks || '–'}</td></tr></table>`;
  t += '<h3>Steps</h3><table id="steps"><tr><th>start</th><th>from A</th><th>to A</th><th>rise ms</th><th>settling ms</th><th>overshoot %</th><th>delay ms</th></tr>';
  for (const s of steps.slice().reverse())
    t += `<tr><td>${s.t_start}</td><td>${fmt(s.from_A, 1)}</td><td>${fmt(s.to_A, 1)}</td><td>${fmt(s.rise_time_ms, 2)}</td><td>${fmt(s.settling_time_ms, 2)}</td><td>${fmt(s.overshoot_percent, 1)}</td><td>${fmt(s.delay_ms, 1)}</td></tr>`;
  $('analysis-text').innerHTML = t + '</table>';
}

function transactions(list) {
  let h = '<tr><th>id</th><th>EVSE</th><th>state</th><th>begin</th><th>end</th></tr>';
  const rec = (r) => (r ? `<span class="${r.verifies ? 'ok' : 'bad'}">${r.verifies ? 'verifies' : 'does not verify: ' + (r.reason || '')}</span> (PG ${r.pagination})<br><span class="rec">${r.record}</span>` : '');
  for (const t of list)
    h += `<tr><td>${t.id}</td><td>${t.evse_id}</td><td>${t.open ? 'open' : 'closed'}</td><td class="rec">${rec(t.begin)}</td><td class="rec">${rec(t.end)}</td></tr>`;
  if (!list.length) h += '<tr><td colspan="5" class="note">none</td></tr>';
  $('transactions').innerHTML = h;
}

// The health panel for a bench engineer: named, grouped rows. A counter the
// page does not know yet still shows, under "Other", by its own name.
const HEALTH_GROUPS = [
  ['Input', [['source_health', 'Source'], ['frames_acquired', 'Frames acquired'], ['frames_processed', 'Frames processed'],
    ['windows_closed', 'Windows closed'], ['windows_with_lost_frames', 'Windows with lost frames'],
    ['ring_fill_blocks', 'Ring fill, blocks'], ['ring_high_water_blocks', 'Ring high water, blocks'],
    ['ring_capacity_blocks', 'Ring capacity, blocks']]],
  ['EVerest and MQTT', [['broker_connected', 'Broker connected'], ['everest_alive', 'EVerest alive'],
    ['everest_heartbeats', 'Heartbeats received'], ['everest_last_heartbeat_id', 'Last heartbeat id'],
    ['values_published', 'Values published'], ['publish_latency_ms', 'Window to publish, ms'],
    ['mqtt_connection_losses', 'Broker connections lost']]],
  ['State and logs', [['registers_saved', 'Registers saved'], ['logs_writing', 'Logs writing'],
    ['log_windows_not_written', 'Windows not written to the log'], ['log_raw_blocks_not_written', 'Raw blocks not written'],
    ['log_write_errors', 'Log write errors']]],
  ['Database', [['store_database', 'Database'], ['store_connected', 'Connected'], ['store_lag_s', 'Behind by, s'],
    ['store_windows_written', 'Windows stored'], ['store_spool_mb', 'Waiting on disk, MB'],
    ['store_rows_dropped', 'Rows dropped at the spool limit'], ['store_rows_lost', 'Rows lost'],
    ['store_last_error', 'Last problem']]],
  ['Analysis', [['steps', 'Current steps found']]],
];
const LOSS_LABELS = {
  frames_lost_gap: 'Frames lost in gaps', frames_invalid: 'Frames in invalid blocks', blocks_invalid: 'Invalid blocks',
  frames_dropped: 'Frames dropped, ring full', blocks_rejected_rate: 'Blocks refused: sample rate',
  blocks_rejected_full_scale: 'Blocks refused: beyond full scale', blocks_time_replaced: 'Block times replaced',
  outages: 'Source outages',
};

function health(hl, web) {
  // Which software measures and signs, in one line above the counters (docs/legal.md).
  const { legal, frames_lost: lost, ...counters } = hl;
  if (legal) $('legal').textContent = `Signed by ${legal.name} ${legal.version}, sha256 ${legal.sha256}`;
  const shown = v => (v === true ? 'yes' : v === false ? 'no' : v);
  const row = (label, v) => `<tr><td>${label}</td><td class="${v === false ? 'bad' : ''}">${shown(v)}</td></tr>`;
  const group = name => `<tr class="group"><th colspan="2">${name}</th></tr>`;
  let h = '';
  const seen = new Set();
  for (const [name, rows] of HEALTH_GROUPS) {
    const present = rows.filter(([k]) => k in counters);
    if (!present.length) continue;
    h += group(name) + present.map(([k, label]) => (seen.add(k), row(label, counters[k]))).join('');
  }
  if (lost) h += group('Losses and refusals') + Object.entries(lost).map(([k, v]) => row(LOSS_LABELS[k] || k, v)).join('');
  h += group('This page') + row('Browsers connected', web.clients) + row('Updates dropped', web.updates_dropped) +
       row('Browsers refused', web.clients_refused);
  const other = Object.entries(counters).filter(([k]) => !seen.has(k));
  if (other.length) h += group('Other') + other.map(([k, v]) => row(k, v)).join('');
  $('health').innerHTML = h;
}

// ---- scope ---------------------------------------------------------------
// docs/web.md, "Scope message".
function onScope(buf) {
  const d = new DataView(buf);
  if (d.getUint8(0) !== 0x57 || d.getUint8(3) !== 0x43) return;  // "WPSC"
  const ch = d.getUint32(8, true), cols = d.getUint32(12, true);
  const s = {
    channels: ch, columns: cols, column_s: d.getFloat64(16, true),
    t0_ns: d.getBigInt64(24, true), layout: d.getUint32(32, true), triggered: d.getUint32(36, true) === 1,
    serial: Number(d.getBigUint64(40, true)),
    min: new Float32Array(buf, 48, ch * cols), max: new Float32Array(buf, 48 + 4 * ch * cols, ch * cols),
  };
  state.scope = s;
  state.scopes++;
  drawScope(s);
}

// Channel roles per layout (sample_block.hpp): AC1 U I; AC3 U1-3 I1-3; AC3N U1-3 UN I1-3 IN; DC U I.
const ROLES = { 1: ['U1', 'I1'], 2: ['U1', 'U2', 'U3', 'I1', 'I2', 'I3'], 3: ['U1', 'U2', 'U3', 'UN', 'I1', 'I2', 'I3', 'IN'], 4: ['U', 'I'] };

function drawScope(s) {
  const c = $('scope'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const roles = ROLES[s.layout] || [];
  const span_ms = s.columns * s.column_s * 1e3;
  $('scope-info').textContent = `${fmt(span_ms, 1)} ms, ${s.triggered ? 'triggered on U1 rising' : s.layout === 4 ? 'rolling' : 'free-running'}, min/max of ${s.columns} columns`;
  const half = c.height / 2, x0 = 50, xw = c.width - x0 - 50;
  const range = (pre) => {
    let m = 0;
    roles.forEach((r, k) => {
      if (!r.startsWith(pre)) return;
      for (let j = 0; j < s.columns; j++) m = Math.max(m, Math.abs(s.min[k * s.columns + j]), Math.abs(s.max[k * s.columns + j]));
    });
    return m || 1;
  };
  const dc = s.layout === 4;
  const lim = { U: range('U'), I: range('I') };
  // AC: both around the middle line, U on the left scale, I on the right.
  // DC: U in the top half and I in the bottom half, each over its own
  // min..max, so that the ripple fills the view.
  const extent = (k) => {
    let lo = Infinity, hi = -Infinity;
    for (let j = 0; j < s.columns; j++) { lo = Math.min(lo, s.min[k * s.columns + j]); hi = Math.max(hi, s.max[k * s.columns + j]); }
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    return [lo, hi];
  };
  g.strokeStyle = '#ddd'; g.strokeRect(x0, 4, xw, c.height - 8);
  g.beginPath(); g.moveTo(x0, half); g.lineTo(x0 + xw, half); g.stroke();
  g.fillStyle = '#333'; g.font = '11px sans-serif';
  g.fillText('0 ms', x0, c.height - 2); g.fillText(`${fmt(span_ms, 1)} ms`, x0 + xw - 40, c.height - 2);
  if (!dc) { g.fillText(`±${fmt(lim.U, 0)} V`, 2, 14); g.fillText(`±${fmt(lim.I, 1)} A`, x0 + xw + 4, 14); }
  roles.forEach((r, k) => {
    if (r === 'UN' || r === 'IN') return;
    const isU = r.startsWith('U');
    let scale;
    if (dc) {
      const [lo, hi] = extent(k), top = isU ? 8 : half + 8, bot = isU ? half - 8 : c.height - 8;
      scale = (v) => bot - ((v - lo) / (hi - lo)) * (bot - top);
      g.fillStyle = '#333';
      g.fillText(`${fmt(hi, 2)} ${isU ? 'V' : 'A'}`, 2, top + 8); g.fillText(`${fmt(lo, 2)}`, 2, bot);
    } else {
      scale = (v) => half - (v / lim[isU ? 'U' : 'I']) * (half - 8);
    }
    const phase = dc ? (isU ? 0 : 2) : Number(r[1]) - 1;
    // The envelope: along the maxima, back along the minima. One sample per
    // column draws a line; many draw the band they span (ripple, noise).
    const xs = (j) => x0 + ((j + 0.5) / s.columns) * xw;
    const ok = [];
    for (let j = 0; j < s.columns; j++) if (s.max[k * s.columns + j] >= s.min[k * s.columns + j]) ok.push(j);
    if (!ok.length) return;
    g.beginPath();
    ok.forEach((j, n) => (n ? g.lineTo(xs(j), scale(s.max[k * s.columns + j])) : g.moveTo(xs(j), scale(s.max[k * s.columns + j]))));
    for (let n = ok.length - 1; n >= 0; n--) g.lineTo(xs(ok[n]), scale(s.min[k * s.columns + ok[n]]));
    g.closePath();
    g.globalAlpha = isU ? 0.9 : 0.55;
    g.strokeStyle = COLORS[phase]; g.fillStyle = COLORS[phase];
    g.lineWidth = 1.2; g.stroke(); g.fill();
    g.globalAlpha = 1; g.lineWidth = 1;
  });
  let lx = x0 + 8;
  roles.filter((r) => r !== 'UN' && r !== 'IN').forEach((r) => {
    const phase = dc ? (r === 'U' ? 0 : 2) : Number(r[1]) - 1;
    g.fillStyle = COLORS[phase]; g.fillText(r, lx, 16); lx += 28;
  });
}

fetch('/api/state').then((r) => r.json()).then((m) => { if (m && m.type === 'update' && !state.last) onUpdate(m); }).catch(() => {});
connect();
