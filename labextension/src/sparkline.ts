/**
 * The pool's sparkline: ready sandboxes per image over the last minutes, as an SVG path.
 * The API's pool history is a list of [epoch seconds, ready] points, one per refill pass.
 */

export type HistoryPoint = [number, number];

export interface SparklineOptions {
  width: number;
  height: number;
  /** How far back the line reaches, in seconds. */
  windowSeconds: number;
  /** The right edge, in epoch seconds. */
  now: number;
  /** The top of the scale; at least the highest point (the pool's target is a good value). */
  max?: number;
}

/**
 * The points inside the window, with the last value before it carried in at
 * its left edge, so the line starts where the pool really was.
 */
export function visiblePoints(history: HistoryPoint[], windowSeconds: number, now: number): HistoryPoint[] {
  const start = now - windowSeconds;
  const sorted = [...history].sort((a, b) => a[0] - b[0]);
  const inside = sorted.filter(([at]) => at >= start && at <= now);
  const before = sorted.filter(([at]) => at < start);
  const carried = before.length > 0 ? [[start, before[before.length - 1][1]] as HistoryPoint] : [];
  return [...carried, ...inside];
}

/**
 * An SVG path ("M x y L x y ...") of the ready count as a step line, or "" when
 * there is nothing to draw. The line holds its last value up to `now`.
 */
export function sparklinePath(history: HistoryPoint[], options: SparklineOptions): string {
  const { width, height, windowSeconds, now } = options;
  const points = visiblePoints(history, windowSeconds, now);
  if (points.length === 0) {
    return '';
  }
  const top = Math.max(1, options.max ?? 0, ...points.map(([, ready]) => ready));
  const x = (at: number): number => round(((at - (now - windowSeconds)) / windowSeconds) * width);
  const y = (ready: number): number => round(height - (ready / top) * height);
  const parts = [`M ${x(points[0][0])} ${y(points[0][1])}`];
  for (let i = 1; i < points.length; i++) {
    parts.push(`L ${x(points[i][0])} ${y(points[i - 1][1])}`, `L ${x(points[i][0])} ${y(points[i][1])}`);
  }
  parts.push(`L ${width} ${y(points[points.length - 1][1])}`);
  return parts.join(' ');
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
