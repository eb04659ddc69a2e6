// charts.js -- the overview's history charts (uPlot, web/static/vendor/): jobs per point with
// their fallback, degraded and cache shares, and latency p50/p99. Colours come from the CSS
// variables, so the charts follow the light or dark scheme.

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

// The chart in el for points [{t, jobs, fallback, degraded, cache, p50_ms, p99_ms}]; kind is
// "jobs" or "latency". Returns {update(points), destroy()}.
export function chart(el, kind, title) {
  let plot = null;
  let last = [];
  const series = kind === 'jobs'
    ? [['jobs', 'jobs', '--c-jobs'], ['fallback', 'fallback', '--c-fallback'],
       ['degraded', 'degraded', '--c-degraded'], ['cache', 'cache', '--c-cache']]
    : [['p50_ms', 'p50 ms', '--c-p50'], ['p99_ms', 'p99 ms', '--c-p99']];
  const data = (points) => [points.map((p) => p.t / 1000), ...series.map(([f]) => points.map((p) => p[f] ?? null))];

  function make() {
    if (typeof uPlot === 'undefined') {
      el.textContent = 'charts unavailable (uPlot did not load)';
      return;
    }
    const fg = css('--fg-muted'), grid = css('--grid');
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const pad = (x) => String(x).padStart(2, '0');
    const hhmm = (u, splits) => splits.map((s) => { const d = new Date(s * 1000); return `${pad(d.getHours())}:${pad(d.getMinutes())}`; });
    const yfmt = kind === 'latency' ? (u, v) => v.map((x) => (x >= 1000 ? `${x / 1000} s` : `${x} ms`)) : undefined;
    const opts = {
      title,
      width: Math.max(el.clientWidth, 240),
      height: 180,
      scales: { x: { time: true } },
      axes: [{ ...axis, values: hhmm }, { ...axis, size: 56, values: yfmt }],
      // Latency has gaps (no job in a minute): points keep a lone minute visible.
      series: [{ value: (u, v) => (v === null ? '--' : new Date(v * 1000).toLocaleString()) },
        ...series.map(([, label, color]) => ({ label, stroke: css(color), width: 2, spanGaps: false,
          points: { show: kind === 'latency', size: 4, fill: css(color) } }))],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    plot = new uPlot(opts, data(last), el);
  }

  function resize() {
    if (plot) plot.setSize({ width: Math.max(el.clientWidth, 240), height: 180 });
  }
  function restyle() {
    if (plot) plot.destroy();
    el.replaceChildren();
    plot = null;
    make();
  }
  const ro = new ResizeObserver(resize);
  ro.observe(el);
  const mq = matchMedia('(prefers-color-scheme: dark)');
  mq.addEventListener('change', restyle);
  make();
  return {
    update(points) {
      last = points || [];
      if (plot) plot.setData(data(last));
    },
    destroy() {
      ro.disconnect();
      mq.removeEventListener('change', restyle);
      if (plot) plot.destroy();
    },
  };
}
