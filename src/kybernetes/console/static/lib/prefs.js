// What the console remembers for this tab: the namespace last picked (so that moving between
// lists keeps it). Kept in sessionStorage; the URL stays the source of truth for each page.

const NS_KEY = 'kyb-console.namespace';

export function rememberNamespace(ns) {
  try { sessionStorage.setItem(NS_KEY, ns || ''); } catch { /* storage disabled: nothing to remember */ }
}

export function rememberedNamespace() {
  try { return sessionStorage.getItem(NS_KEY) || ''; } catch { return ''; }
}
