// Runs in the report page: draws each <canvas data-chart="n"> from the JSON in #report-data with the inlined
// Chart.js. Colours come from the page's CSS variables, so the charts follow the light or dark scheme.
(() => {
  const charts = JSON.parse(document.getElementById('report-data').textContent);
  const style = getComputedStyle(document.documentElement);
  const css = (name) => style.getPropertyValue(name).trim();
  const palette = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => css(`--c${i}`));
  const text = css('--muted');
  const grid = css('--grid');
  const count = new Intl.NumberFormat('en-US');
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const format = (unit, value) => {
    if (unit === 'bytes') {
      let v = value;
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
    }
    if (unit === 'ms') return `${count.format(Math.round(value * 10) / 10)} ms`;
    if (unit === 'percent') return `${value} %`;
    return count.format(value);
  };
  Chart.defaults.color = text;
  Chart.defaults.borderColor = grid;
  Chart.defaults.font.family = css('--font');
  Chart.defaults.animation = false;
  for (const canvas of document.querySelectorAll('canvas[data-chart]')) {
    const spec = charts[Number(canvas.dataset.chart)];
    const round = spec.type === 'doughnut';
    const horizontal = spec.type === 'bar' && spec.series.length === 1;
    new Chart(canvas, {
      type: spec.type,
      data: {
        labels: spec.labels,
        datasets: spec.series.map((s, i) => ({
          label: s.label,
          data: s.values,
          backgroundColor: round ? palette : palette[i % palette.length],
          borderColor: round ? css('--bg') : palette[i % palette.length],
          pointRadius: spec.labels.length > 60 ? 0 : 2,
          tension: 0.2,
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: horizontal ? 'y' : 'x',
        plugins: {
          legend: { display: round || spec.series.length > 1, position: round ? 'right' : 'top' },
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${format(spec.unit, item.raw)}` } },
        },
        scales: round
          ? {}
          : {
              [horizontal ? 'x' : 'y']: {
                beginAtZero: true,
                ticks: { precision: spec.unit === 'count' ? 0 : undefined, callback: (v) => format(spec.unit, v) },
              },
              [horizontal ? 'y' : 'x']: {
                ticks: {
                  autoSkip: true,
                  callback(v) {
                    const label = String(this.getLabelForValue(v));
                    return label.length > 28 ? `${label.slice(0, 27)}\u2026` : label;
                  },
                },
              },
            },
      },
    });
  }
  document.documentElement.dataset.rendered = 'true';
})();
