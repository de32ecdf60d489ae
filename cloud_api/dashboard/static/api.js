// Talking to the StoreSight API: JSON in and out, every failure an ApiError with the
// server's own words (ErrorBody {error, detail}). The session is the HttpOnly cookie that
// POST /v1/auth/login sets, so requests only need to be same-origin.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "network", `the server cannot be reached (${error.message})`);
  }
  if (!response.ok) {
    let code = `http_${response.status}`;
    let detail = response.statusText || `HTTP ${response.status}`;
    try {
      const error = await response.json();
      if (error && typeof error === "object") {
        code = error.error || code;
        detail = error.detail || detail;
      }
    } catch {
      // not an ErrorBody (a proxy's page, say): keep the status line
    }
    throw new ApiError(response.status, code, detail);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** `/v1/reports/{name}?...`; `params` with null/undefined/"" values are left out. */
export function reportUrl(name, params, format = "json") {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  query.set("format", format);
  return `/v1/reports/${encodeURIComponent(name)}?${query}`;
}
