import { describe, expect, it } from 'vitest';
import { sparklinePath, visiblePoints } from '../src/sparkline';

const options = { width: 100, height: 20, windowSeconds: 100, now: 1100 };

describe('visiblePoints', () => {
  it('keeps the window and carries the value from before it to its left edge', () => {
    const history: [number, number][] = [
      [900, 3],
      [990, 1],
      [1050, 2]
    ];
    expect(visiblePoints(history, 100, 1100)).toEqual([
      [1000, 1],
      [1050, 2]
    ]);
  });
  it('sorts what came out of order', () => {
    expect(visiblePoints([[1080, 2], [1020, 1]], 100, 1100)).toEqual([
      [1020, 1],
      [1080, 2]
    ]);
  });
});

describe('sparklinePath', () => {
  it('draws nothing without history', () => {
    expect(sparklinePath([], options)).toBe('');
  });
  it('steps from point to point and holds the last value to the right edge', () => {
    const path = sparklinePath(
      [
        [1000, 0],
        [1050, 2]
      ],
      { ...options, max: 2 }
    );
    expect(path).toBe('M 0 20 L 50 20 L 50 0 L 100 0');
  });
  it('scales to the target, or to the highest point above it', () => {
    expect(sparklinePath([[1000, 1]], { ...options, max: 4 })).toBe('M 0 15 L 100 15');
    expect(sparklinePath([[1000, 4]], { ...options, max: 2 })).toBe('M 0 0 L 100 0');
  });
});
