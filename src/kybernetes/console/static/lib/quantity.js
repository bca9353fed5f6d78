// Kubernetes quantities ("250m", "1.5Gi", "2e3") as numbers, for the usage bars only: the
// console process formats every number a list shows.

const SUFFIXES = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** The value of a quantity string, or null when it is not one. */
export function parseQuantity(text) {
  if (typeof text === 'number') return text;
  if (typeof text !== 'string') return null;
  const match = /^([+-]?\d*\.?\d+)(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(text.trim());
  if (!match) return null;
  const base = Number(match[1]);
  if (match[2]) return base * 10 ** Number(match[2].slice(1));
  return base * SUFFIXES[match[3] || ''];
}

/** used / total as a fraction in [0, 1], or null when either is unknown. */
export function fraction(used, total) {
  const u = parseQuantity(used);
  const t = parseQuantity(total);
  if (u == null || !t) return null;
  return Math.max(0, Math.min(1, u / t));
}
