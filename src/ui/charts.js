/**
 * Time-series panels on uPlot (loaded as a classic script: `window.uPlot`). A chart is created once its
 * container has a width, follows the container's size, and takes new data with `setData`.
 */

/**
 * @typedef {{ label: string, color: string, stepped?: boolean, fill?: boolean, dash?: number[], width?: number }} SeriesSpec
 * @typedef {{
 *   series: SeriesSpec[],
 *   height: number,
 *   compact?: boolean,
 *   format?: (v: number) => string,
 *   integer?: boolean,
 *   minMax?: number,
 * }} ChartSpec
 */

const AXIS = "#8792a2";
const GRID = "#222934";
const FONT = "11px system-ui, sans-serif";

/** @param {string} hex @param {number} alpha */
const fade = (hex, alpha) => {
  const n = Number.parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
};

/** hh:mm:ss, or hh:mm on a whole minute. @param {number} s seconds */
const timeLabel = (s) => {
  const d = new Date(s * 1000);
  const hh = String(d.getHours()).padStart(2, "0");
  const mm = String(d.getMinutes()).padStart(2, "0");
  const ss = d.getSeconds();
  return ss === 0 ? `${hh}:${mm}` : `${hh}:${mm}:${String(ss).padStart(2, "0")}`;
};

/** @returns {any} */
const uPlotLib = () => /** @type {any} */ (window).uPlot;

export class Chart {
  /**
   * @param {HTMLElement} container
   * @param {ChartSpec} spec
   */
  constructor(container, spec) {
    this.container = container;
    this.spec = spec;
    /** @type {any} */
    this.plot = null;
    /** @type {any[]} */
    this.data = [[], ...spec.series.map(() => [])];
    this.observer = new ResizeObserver(() => this.fit());
    this.observer.observe(container);
    this.fit();
  }

  /** @param {number} width */
  options(width) {
    const { spec } = this;
    const lib = uPlotLib();
    const fmt = spec.format ?? ((/** @type {number} */ v) => String(v));
    const stepped = lib.paths?.stepped ? lib.paths.stepped({ align: 1 }) : undefined;
    return {
      width,
      height: spec.height,
      legend: { show: !spec.compact, live: true },
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      // Room on the right for the last time label, centred on its tick.
      padding: [6, 18, 0, 0],
      scales: {
        x: { time: true },
        y: {
          range: (/** @type {any} */ _u, /** @type {number} */ _min, /** @type {number} */ max) => {
            const top = Math.max(spec.minMax ?? 0, Number.isFinite(max) ? max : 0);
            if (top <= 0) return [0, 1];
            return [0, spec.integer ? Math.ceil(top) + 1 : top * 1.15];
          },
        },
      },
      axes: [
        {
          stroke: AXIS,
          font: FONT,
          size: spec.compact ? 20 : 24,
          grid: { stroke: GRID, width: 1 },
          ticks: { stroke: GRID, width: 1, size: 4 },
          space: spec.compact ? 60 : 80,
          values: (/** @type {any} */ _u, /** @type {number[]} */ splits) => splits.map(timeLabel),
        },
        {
          stroke: AXIS,
          font: FONT,
          // Wide enough for the longest label (about 6.5 px a character at 11 px).
          size: (/** @type {any} */ _u, /** @type {string[] | null} */ values) =>
            Math.max(28, 12 + 6.5 * Math.max(0, ...(values ?? []).map((v) => String(v).length))),
          grid: { stroke: GRID, width: 1 },
          ticks: { show: false },
          space: spec.compact ? 22 : 30,
          incrs: spec.integer ? [1, 2, 5, 10, 20, 50, 100] : undefined,
          values: (/** @type {any} */ _u, /** @type {number[]} */ vals) => vals.map((v) => fmt(v)),
        },
      ],
      series: [
        // Values show while the cursor is over the chart; otherwise the legend names the series alone.
        { value: (/** @type {any} */ _u, /** @type {number} */ v) => (v ? timeLabel(v) : "") },
        ...spec.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? 1.5,
          fill: s.fill === false ? undefined : fade(s.color, 0.12),
          dash: s.dash,
          paths: s.stepped ? stepped : undefined,
          points: { show: false },
          spanGaps: true,
          value: (/** @type {any} */ _u, /** @type {number | null} */ v) =>
            v === null || v === undefined ? "" : fmt(v),
        })),
      ],
    };
  }

  fit() {
    const width = Math.floor(this.container.clientWidth);
    if (width <= 0) return;
    if (!this.plot) {
      const lib = uPlotLib();
      if (!lib) return;
      this.plot = new lib(this.options(width), this.data, this.container);
    } else if (Math.abs(this.plot.width - width) > 1) {
      this.plot.setSize({ width, height: this.spec.height });
    }
  }

  /** @param {any[]} data `[xs (seconds), ...ys]` */
  setData(data) {
    this.data = data;
    if (!this.plot) this.fit();
    else this.plot.setData(data);
    this.container.classList.toggle("nodata", data[0].length === 0);
  }

  destroy() {
    this.observer.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}
