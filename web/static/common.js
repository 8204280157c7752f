// Shared helpers: JSON API calls with the session cookie, safe element building, run status over SSE.

export const STATUSES = ["NEW", "ANALYZING", "ANALYZED", "ASSEMBLING", "READY", "RESPONDING", "COMPLETED"];

// Build an element; text only ever goes in as textContent, never as HTML.
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  const { text, dataset, ...rest } = props;
  if (text !== undefined) node.textContent = text;
  Object.assign(node, rest);
  if (dataset) Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}

export async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    if (resp.status === 401) location.assign(`/ui/login?next=${encodeURIComponent(location.pathname)}`);
    throw new Error(data.error?.message || `${method} ${path}: HTTP ${resp.status}`);
  }
  return data;
}

function pill(status) {
  return el("span", { className: `pill step st-${status}`, dataset: { status } }, [
    el("span", { className: "name", text: status }),
    el("span", { className: "ms" }),
  ]);
}

// Follow a run's status stream into `strip`; resolves with the final status.
export function followRun(runId, strip, statuses = STATUSES) {
  strip.replaceChildren(...statuses.map(pill));
  strip.dataset.seen = "";
  let previous = null;
  return new Promise((resolve, reject) => {
    const source = new EventSource(`/v1/runs/${encodeURIComponent(runId)}/events`);
    source.addEventListener("status", (message) => {
      const event = JSON.parse(message.data);
      previous = mark(strip, event, previous);
    });
    source.addEventListener("end", () => {
      source.close();
      const final = strip.dataset.last || "";
      strip.dataset.final = final;
      resolve(final);
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) reject(new Error("status stream closed"));
    });
  });
}

function mark(strip, event, previous) {
  let node = strip.querySelector(`[data-status="${event.status}"]`);
  if (!node) {
    node = pill(event.status);
    strip.append(node);
  }
  for (const current of strip.querySelectorAll(".current")) current.classList.remove("current");
  node.classList.add("seen", "current");
  const at = Date.parse(event.at);
  if (previous !== null) node.querySelector(".ms").textContent = ` +${Math.max(at - previous, 0)} ms`;
  if (event.error) node.title = event.error;
  strip.dataset.last = event.status;
  strip.dataset.seen = `${strip.dataset.seen} ${event.status}`.trim();
  return at;
}
