// Calls to the genkeep API from the pages. Errors arrive as application/problem+json; ApiError keeps the
// parts a page needs to put the message next to the right field.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? (status ? `HTTP ${status}` : "network error"));
    this.status = status; // 0 when the server could not be reached
    this.code = problem?.code ?? null;
    this.field = problem?.field ?? null;
    this.detail = problem?.detail ?? null;
  }
}

// The page's language, not the browser's: a problem's detail comes back in the words the page is written in.
const pageLanguage = () => globalThis.document?.documentElement.lang || "en";

export async function api(path, {method = "GET", body, headers = {}} = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      body,
      headers: {Accept: "application/json", "Accept-Language": pageLanguage(), ...headers},
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function taskListPath(params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value == null) continue;
    for (const one of [].concat(value)) query.append(name, String(one));
  }
  return `/api/tasks?${query}`;
}

// A random key for one submission: crypto.randomUUID is missing outside secure contexts (plain http on a LAN
// address), getRandomValues is not.
export function newIdempotencyKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
