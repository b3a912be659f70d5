// What both end-to-end scripts share: the server they drive, and a logged step.
import { mkdirSync } from 'node:fs';

export const base = process.env.SANDKASTEN_URL;
export const key = process.env.SANDKASTEN_API_KEY;
export const artifacts = process.env.SANDKASTEN_ARTIFACTS ?? 'test-artifacts';
mkdirSync(artifacts, { recursive: true });

export function step(text) {
  console.log(`e2e: ${text}`);
}

/** A JSON caller for the routes under `root` (a URL), with the API key (and `headers`, if given). */
export function jsonCaller(root, headers = {}) {
  return async function call(method, path, body) {
    const response = await fetch(`${root}/${path}`, {
      method,
      headers: { Authorization: `token ${key}`, 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    if (!response.ok) {
      throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    }
    return response.status === 204 ? null : response.json();
  };
}
