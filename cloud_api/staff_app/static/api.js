// Talking to the StoreSight API (same origin, the HttpOnly session cookie): JSON in and out,
// every failure an ApiError carrying the server's own message.
//
// Error bodies: the API's ErrorBody is {"error": "<code>", "detail": "<message>", "fields": [...]}
// (cloud_api/api/errors.py); the staff app's brief describes
// {"error": {"code", "message", "request_id"}}. Both are read here, so either works.

export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null, requestId = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.requestId = requestId;
  }
}

function readError(body) {
  if (!body || typeof body !== "object") return {};
  const error = body.error;
  if (error && typeof error === "object") {
    return { code: error.code, message: error.message ?? error.detail, requestId: error.request_id };
  }
  return { code: typeof error === "string" ? error : undefined, message: body.detail ?? body.message };
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store", signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error?.name === "AbortError") throw error;
    throw new ApiError(0, "network", "StoreSight can't be reached. Check the connection.");
  }
  if (!response.ok) {
    let parsed = {};
    try {
      parsed = readError(await response.json());
    } catch {
      // not JSON (a proxy's error page, say): keep the status line
    }
    const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    throw new ApiError(
      response.status,
      parsed.code || `http_${response.status}`,
      parsed.message || response.statusText || `HTTP ${response.status}`,
      { retryAfter: Number.isFinite(retry) ? retry : null, requestId: parsed.requestId ?? null },
    );
  }
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}
