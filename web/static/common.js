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

const ENDS = new Set(["COMPLETED", "FAILED"]);
const TICK_MS = 100;

function pill(status) {
  return el("span", { className: `pill step s-${status}`, dataset: { status } }, [
    el("span", { className: "name", text: status }),
    el("span", { className: "ms" }),
  ]);
}

// Follow a run's status stream into `strip`; resolves with the final status. Each step shows the
// time the run spent in that status (server timestamps), and the current one counts up.
export function followRun(runId, strip, statuses = STATUSES) {
  strip.replaceChildren(...statuses.map(pill));
  strip.dataset.seen = "";
  const clock = { node: null, at: 0, timer: 0 };
  return new Promise((resolve, reject) => {
    const source = new EventSource(`/v1/runs/${encodeURIComponent(runId)}/events`);
    source.addEventListener("status", (message) => mark(strip, JSON.parse(message.data), clock));
    source.addEventListener("end", () => {
      source.close();
      stop(clock);
      const final = strip.dataset.last || "";
      strip.dataset.final = final;
      resolve(final);
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) return;
      stop(clock);
      reject(new Error("status stream closed"));
    });
  });
}

function mark(strip, event, clock) {
  let node = strip.querySelector(`[data-status="${event.status}"]`);
  if (!node) {
    node = pill(event.status);
    strip.append(node);
  }
  const at = Date.parse(event.at);
  if (clock.node) spent(clock.node, at - clock.at, false); // the status it left: its own time
  for (const current of strip.querySelectorAll(".current")) current.classList.remove("current");
  node.classList.add("seen", "current");
  if (event.error) node.title = event.error;
  strip.dataset.last = event.status;
  strip.dataset.seen = `${strip.dataset.seen} ${event.status}`.trim();
  stop(clock);
  if (ENDS.has(event.status)) return;
  Object.assign(clock, { node, at, base: Number(node.dataset.ms || 0) });
  clock.timer = setInterval(() => spent(node, Date.now() - at, true, clock.base), TICK_MS);
}

// A status entered again (a retry) adds to the time already spent in it.
function spent(node, ms, running, base = Number(node.dataset.ms || 0)) {
  const total = base + Math.max(ms, 0);
  if (!running) node.dataset.ms = String(total);
  node.querySelector(".ms").textContent = ` ${Math.round(total)} ms${running ? "…" : ""}`;
}

function stop(clock) {
  clearInterval(clock.timer);
  clock.timer = 0;
  clock.node = null;
}
